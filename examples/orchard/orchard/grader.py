"""Orchard drama grader: ``python -m orchard.grader``.

Input ``COGAME_EPISODE_BUNDLE_URI``; output ``COGAME_GRADE_URI``: JSON ``{"grader_id", "score", ...}``.
``score`` in [0, 1] measures how interesting the episode was to watch:

    score = 0.45 * min(lead_changes, 5) / 5          # the lead kept changing hands
          + 0.40 * (1 - margin / max(top_score, 1))  # the finish was close
          + 0.15 * late_lead_change                  # the lead changed in the last quarter

A failed episode, or a bundle without a replay, has no match to watch: it grades 0.0 with
``"reason": "nothing to grade: <error type, or 'no replay'>"``.
"""

from __future__ import annotations

import os
from typing import Any

from orchard import uris
from orchard.analysis import Bundle, analyze, bundle_from_env

GRADER_ID = "orchard-drama-grader"


def nothing_to_grade(bundle: Bundle) -> str | None:
    """Why this bundle cannot be graded, or None when it can."""
    if bundle.failed:
        return bundle.error_type or "episode failed"
    if not bundle.has_replay:
        return "no replay"
    return None


def grade(bundle: Bundle, grader_id: str = GRADER_ID) -> dict[str, Any]:
    reason = nothing_to_grade(bundle)
    if reason is not None:
        return {"grader_id": grader_id, "score": 0.0, "reason": f"nothing to grade: {reason}"}
    stats = analyze(bundle.replay)
    scores = stats["scores"]
    top = max(scores) if scores else 0
    lead = min(stats["lead_changes"], 5) / 5
    closeness = max(0.0, 1.0 - stats["margin"] / max(top, 1))
    last_quarter = stats["ticks"] * 3 / 4
    changes = stats["lead_timeline"][1:]
    late = 1.0 if any(tick >= last_quarter for tick, _ in changes) else 0.0
    score = round(0.45 * lead + 0.40 * closeness + 0.15 * late, 4)
    return {
        "grader_id": grader_id,
        "score": score,
        "lead_changes": stats["lead_changes"],
        "final_margin": stats["margin"],
        "components": {"lead_changes": round(lead, 4), "closeness": round(closeness, 4), "late_drama": late},
        "scores": scores,
        "winner": stats["winner"],
        "ticks": stats["ticks"],
    }


def main() -> int:
    inputs = bundle_from_env("grader", "COGAME_GRADE_URI")
    if inputs is None:
        return 2
    bundle, grade_uri = inputs
    result = grade(bundle, os.environ.get("COGAME_GRADER_ID") or GRADER_ID)
    uris.write_json(grade_uri, result, os.environ.get("COGAME_GRADE_METHOD"))
    print(f"[orchard-grader] score={result['score']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
