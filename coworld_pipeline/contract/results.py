"""Validation of a game's `results.json` against its manifest."""

from __future__ import annotations

from typing import Any

from coworld_pipeline.contract.bounded_schema import validation_problems
from coworld_pipeline.contract.limits import bounds_problems
from coworld_pipeline.contract.manifest import CoworldManifest
from coworld_pipeline.contract.problems import ContractError, Problem


def validate_results(manifest: CoworldManifest, results: Any, slot_count: int) -> list[float]:
    """Check results against `results_schema` and require one numeric score per slot.

    The reference only applies the schema; leagues need the per-slot scores, so their count is
    enforced here as well. Returns the scores.
    """
    # A game's output is untrusted input too: depth and integers bounded before the (bounded) schema
    # check. Its size is the game's business (the runtime reads the file it wrote).
    problems = bounds_problems(results, measure_size=False) or validation_problems(
        manifest.game.results_schema, results, "$", "game.results_schema"
    )
    if not problems:
        scores = results.get("scores") if isinstance(results, dict) else None
        if not isinstance(scores, list):
            problems.append(Problem("$.scores", "missing: results need one score per slot"))
        elif len(scores) != slot_count:
            problems.append(Problem("$.scores", f"has {len(scores)} entries for {slot_count} slots"))
        else:
            for i, s in enumerate(scores):
                if isinstance(s, bool) or not isinstance(s, int | float):
                    problems.append(Problem(f"$.scores[{i}]", f"{s!r} is not a number"))
    if problems:
        raise ContractError("results.json", problems)
    return [float(s) for s in results["scores"]]
