"""Orchard drama grader: ``python -m orchard.grader``.

Input ``COGAME_EPISODE_BUNDLE_URI``; output ``COGAME_GRADE_URI``: JSON ``{"grader_id", "score", ...}``.
``score`` in [0, 1] measures how interesting the episode was to watch:

    score = 0.45 * min(lead_changes, 5) / 5          # the lead kept changing hands
          + 0.40 * (1 - margin / max(top_score, 1))  # the finish was close
          + 0.15 * late_lead_change                  # the lead changed in the last quarter
"""

from __future__ import annotations

import os
import sys
from typing import Any

from orchard import uris
from orchard.analysis import Bundle, analyze, load_bundle

GRADER_ID = "orchard-drama-grader"


def grade(bundle: Bundle, grader_id: str = GRADER_ID) -> dict[str, Any]:
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
    bundle_uri = os.environ.get("COGAME_EPISODE_BUNDLE_URI")
    grade_uri = os.environ.get("COGAME_GRADE_URI")
    if not bundle_uri or not grade_uri:
        print("orchard.grader needs COGAME_EPISODE_BUNDLE_URI and COGAME_GRADE_URI", file=sys.stderr)
        return 2
    result = grade(load_bundle(bundle_uri), os.environ.get("COGAME_GRADER_ID") or GRADER_ID)
    uris.write_json(grade_uri, result, os.environ.get("COGAME_GRADE_METHOD"))
    print(f"[orchard-grader] score={result['score']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
