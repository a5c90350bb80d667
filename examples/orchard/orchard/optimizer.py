"""Orchard optimizer (one-shot): ``python -m orchard.optimizer``.

Required env: ``COWORLD_MANIFEST_URI`` (the Coworld manifest JSON), ``COGAME_OPTIMIZER_ID``,
``COGAME_OPTIMIZER_OUTPUT_URI``. Optional: ``COGAME_POLICY_WORKSPACE_URI`` and comma-separated
``COGAME_REPORT_URIS`` (reporter zips), ``COGAME_GRADER_OUTPUT_URIS`` (grade JSON) and
``COGAME_DIAGNOSER_OUTPUT_URIS`` (diagnoser zips). Writes JSON
``{optimizer_id, coworld_name, policy_workspace_uri, input_counts, recommendations, evidence}``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from orchard import uris
from orchard.analysis import read_zip_json


def _split(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _load_member(uri: str, member: str) -> Any | None:
    """A zip's JSON member, or the document itself when the URI holds plain JSON."""
    data = uris.read_bytes(uri)
    found = read_zip_json(data, member)
    if found is not None:
        return found
    try:
        return json.loads(uris.decompress(data, uri))
    except ValueError:
        return None


def recommend(
    manifest: dict[str, Any],
    reports: list[dict[str, Any]],
    grades: list[dict[str, Any]],
    diagnoses: list[dict[str, Any]],
) -> tuple[list[str], dict[str, Any]]:
    players = [entry.get("id") for entry in manifest.get("player", [])]
    recommendations: list[str] = []
    evidence: dict[str, Any] = {}

    if diagnoses:
        totals = {
            key: 0
            for key in (
                "missed_fruit",
                "missed_value",
                "lost_races",
                "lost_value",
                "wall_bumps",
                "stays",
                "ticks",
            )
        }
        for diagnosis in diagnoses:
            for key in totals:
                totals[key] += int(diagnosis.get("summary", {}).get(key, 0))
        evidence["diagnoses"] = totals
        if totals["missed_fruit"]:
            recommendations.append(
                f"Plan ahead with the ripening schedule: the diagnosed policies let {totals['missed_fruit']} "
                f"reachable fruit (value {totals['missed_value']}) rot. Score each visible fruit as "
                "value * 0.9^(harvest_tick - now), where harvest_tick = max(now + distance, ripe), and chain "
                "2-3 targets (see orchard.players.planner.plan)."
            )
        if totals["lost_races"]:
            recommendations.append(
                f"Stop chasing fruit an opponent reaches first: {totals['lost_races']} races (value "
                f"{totals['lost_value']}) were lost by one or two steps. Discount a target to ~20% when any "
                "opponent's earliest harvest tick is earlier than yours and to 50% on a tie."
            )
        if totals["wall_bumps"]:
            recommendations.append(
                f"Clamp moves to the board: {totals['wall_bumps']} moves into the edge were wasted."
            )
        if totals["ticks"] and totals["stays"] / totals["ticks"] > 0.4:
            recommendations.append(
                f"Idle less ({totals['stays']} of {totals['ticks']} ticks spent staying): when nothing is "
                "worth chasing, walk toward the tree that ripens next or the orchard's centre."
            )
    if reports:
        contested = sum(int(report.get("contested_harvests", 0)) for report in reports)
        available = sum(int(report.get("fruit_available", 0)) for report in reports)
        rotted = sum(int(report.get("fruit_rotted", 0)) for report in reports)
        evidence["reports"] = {
            "contested_harvests": contested,
            "fruit_available": available,
            "fruit_rotted": rotted,
        }
        if available and rotted / available > 0.15:
            recommendations.append(
                f"{rotted} of {available} fruit rotted unpicked across the reported episodes: a policy that "
                "covers the far half of the board (opposite the opponent) has free value to collect."
            )
        if contested:
            recommendations.append(
                f"{contested} harvests were split between players; prefer targets you reach strictly first, "
                "since a split halves the value."
            )
    if grades:
        mean = sum(float(grade.get("score", 0.0)) for grade in grades) / len(grades)
        evidence["grades"] = {"count": len(grades), "mean_score": round(mean, 4)}
        if mean < 0.4:
            recommendations.append(
                f"Episodes graded dull (mean drama score {mean:.2f}): schedule the 'four' variant or pair "
                "policies of similar strength (e.g. greedy vs planner) to get more lead changes."
            )
    if not recommendations:
        baseline = "planner" if "planner" in players else (players[0] if players else "the bundled player")
        recommendations.append(
            f"Start from the '{baseline}' player (python -m orchard.players.{baseline}) and test changes "
            "offline with orchard.engine.play_episode over 50 seeded episodes, alternating seats."
        )
    recommendations.append(
        "Evaluate every candidate against both 'greedy' and 'planner' over at least 50 seeds with "
        "alternating seats before uploading; require a >= 60% win rate against the current best."
    )
    return recommendations, evidence


def main() -> int:
    manifest_uri = os.environ.get("COWORLD_MANIFEST_URI")
    optimizer_id = os.environ.get("COGAME_OPTIMIZER_ID")
    output_uri = os.environ.get("COGAME_OPTIMIZER_OUTPUT_URI")
    if not manifest_uri or not optimizer_id or not output_uri:
        print(
            "orchard.optimizer needs COWORLD_MANIFEST_URI, COGAME_OPTIMIZER_ID and "
            "COGAME_OPTIMIZER_OUTPUT_URI",
            file=sys.stderr,
        )
        return 2
    manifest = uris.read_json(manifest_uri)
    report_uris = _split(os.environ.get("COGAME_REPORT_URIS"))
    grade_uris = _split(os.environ.get("COGAME_GRADER_OUTPUT_URIS"))
    diagnosis_uris = _split(os.environ.get("COGAME_DIAGNOSER_OUTPUT_URIS"))
    reports = [
        doc for doc in (_load_member(uri, "stats.json") for uri in report_uris) if isinstance(doc, dict)
    ]
    grades = [doc for doc in (_load_member(uri, "grade.json") for uri in grade_uris) if isinstance(doc, dict)]
    diagnoses = [
        doc
        for doc in (_load_member(uri, "diagnosis.json") for uri in diagnosis_uris)
        if isinstance(doc, dict)
    ]
    recommendations, evidence = recommend(manifest, reports, grades, diagnoses)
    output = {
        "optimizer_id": optimizer_id,
        "coworld_name": manifest.get("game", {}).get("name"),
        "policy_workspace_uri": os.environ.get("COGAME_POLICY_WORKSPACE_URI") or None,
        "input_counts": {
            "reports": len(report_uris),
            "grader_outputs": len(grade_uris),
            "diagnoser_outputs": len(diagnosis_uris),
        },
        "recommendations": recommendations,
        "evidence": evidence,
    }
    uris.write_json(output_uri, output, os.environ.get("COGAME_OPTIMIZER_OUTPUT_METHOD"))
    print(f"[orchard-optimizer] {len(recommendations)} recommendations", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
