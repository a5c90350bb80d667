"""Built-in default grader: ``python -m coworld_pipeline.runtime.default_roles.grader``.

Input ``COGAME_EPISODE_BUNDLE_URI``; output ``COGAME_GRADE_URI``: ``{"grader_id", "score", ...}`` with
``score`` in [0, 1], higher for episodes more worth watching:

    closeness  = 1 - (top - second) / max(|top|, |second|, 1)      # how close the finish was
    eventful   = min(lead_changes, 4) / 4                            # how often the lead changed
    score      = 0.6 * closeness + 0.4 * eventful    (closeness alone when the replay has no frames)

A failed episode, or one without scores, grades 0 with the reason.
"""

from __future__ import annotations

import os
from typing import Any

from .common import Episode, pretty, read_episode, require_env, write_bytes

GRADER_ID = "default-grader"


def grade(episode: Episode, grader_id: str = GRADER_ID) -> dict[str, Any]:
    if episode.status != "success" or len(episode.scores) < 1:
        reason = (episode.error or {}).get("error_type") or "no scores"
        return {"grader_id": grader_id, "score": 0.0, "reason": f"nothing to grade: {reason}"}
    ranked = sorted(episode.scores, reverse=True)
    top, second = ranked[0], (ranked[1] if len(ranked) > 1 else ranked[0])
    closeness = max(0.0, 1.0 - (top - second) / max(abs(top), abs(second), 1.0))
    changes = episode.lead_changes()
    components: dict[str, float] = {"closeness": round(closeness, 4)}
    if episode.frames:
        eventful = min(changes, 4) / 4
        components["eventful"] = round(eventful, 4)
        score = 0.6 * closeness + 0.4 * eventful
    else:
        score = closeness
    return {
        "grader_id": grader_id,
        "score": round(score, 4),
        "components": components,
        "margin": top - second,
        "lead_changes": changes,
        "episode_length": episode.length,
    }


def main() -> int:
    env = require_env("COGAME_EPISODE_BUNDLE_URI", "COGAME_GRADE_URI")
    if env is None:
        return 2
    bundle_uri, grade_uri = env
    episode = read_episode(bundle_uri)
    if episode is None:
        return 2
    result = grade(episode, os.environ.get("COGAME_GRADER_ID") or GRADER_ID)
    write_bytes(grade_uri, pretty(result), "application/json")
    print(f"[default-grader] score={result['score']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
