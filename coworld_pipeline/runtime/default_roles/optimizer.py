"""Built-in default optimizer (one-shot): ``python -m coworld_pipeline.runtime.default_roles.optimizer``.

Env: ``COWORLD_MANIFEST_URI``, ``COGAME_OPTIMIZER_OUTPUT_URI`` (required), ``COGAME_OPTIMIZER_ID``,
``COGAME_POLICY_WORKSPACE_URI`` and comma-separated ``COGAME_REPORT_URIS``, ``COGAME_GRADER_OUTPUT_URIS``,
``COGAME_DIAGNOSER_OUTPUT_URIS``. Writes a JSON plan ``{optimizer_id, coworld_name, policy_workspace_uri,
input_counts, recommendations, evidence}``: the target's mean rank and win rate over the diagnosed
episodes, the per-slot result fields where it trails the winners most often, and which graded
episodes to study first (the closest, most eventful ones).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any

from .common import pretty, read_bytes, require_env, write_bytes

OPTIMIZER_ID = "default-optimizer"


def _split(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _document(uri: str, member: str) -> dict[str, Any] | None:
    """A JSON document, or a zip's member named `member`; None when neither is readable."""
    data = read_bytes(uri)
    try:
        if data[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                data = archive.read(member)
        doc = json.loads(data)
    except (KeyError, ValueError, zipfile.BadZipFile):
        return None
    return doc if isinstance(doc, dict) else None


def plan(grades: list[tuple[str, dict]], diagnoses: list[dict], reports: list[dict]) -> tuple[list, dict]:
    recommendations: list[str] = []
    evidence: dict[str, Any] = {}
    standings = [d["standing"] for d in diagnoses if isinstance(d.get("standing"), dict)]
    if standings:
        wins = sum(1 for s in standings if s.get("won"))
        mean_rank = sum(float(s.get("rank", 0)) for s in standings) / len(standings)
        mean_gap = sum(float(s.get("gap_to_best", 0)) for s in standings) / len(standings)
        evidence["diagnoses"] = {
            "episodes": len(standings),
            "wins": wins,
            "mean_rank": round(mean_rank, 3),
            "mean_gap_to_best": round(mean_gap, 3),
        }
        if wins == len(standings):
            recommendations.append(
                f"Won all {wins} diagnosed episodes: raise the bar (stronger opponents, more seeds) before "
                "changing the policy."
            )
        else:
            recommendations.append(
                f"Won {wins} of {len(standings)} diagnosed episodes (mean rank {mean_rank:.2f}, "
                f"{mean_gap:.2f} points behind the winner on average): close that gap first."
            )
        trailing: dict[str, int] = {}
        for diagnosis in diagnoses:
            for item in diagnosis.get("fields") or []:
                if isinstance(item, dict) and item.get("value") != item.get("winner"):
                    trailing[str(item.get("field"))] = trailing.get(str(item.get("field")), 0) + 1
        if trailing:
            worst = sorted(trailing.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
            evidence["fields_differing_from_winner"] = dict(worst)
            recommendations.append(
                "Result fields that most often differ from the winner's: "
                + ", ".join(f"`{name}` ({count} episodes)" for name, count in worst)
                + "; read those parts of the rules first."
            )
    scored = [(uri, float(g["score"])) for uri, g in grades if isinstance(g.get("score"), int | float)]
    if scored:
        scored.sort(key=lambda item: -item[1])
        evidence["grades"] = {"count": len(scored), "mean": round(sum(s for _, s in scored) / len(scored), 4)}
        evidence["study_first"] = [uri for uri, _ in scored[:3]]
        recommendations.append(
            f"Study the {min(3, len(scored))} highest-graded episodes first (closest and most eventful): "
            "their turning points show what decided them."
        )
    if reports:
        evidence["reports"] = len(reports)
    if not recommendations:
        recommendations.append("No reports, grades or diagnoses given: diagnose some episodes first.")
    return recommendations, evidence


def main() -> int:
    env = require_env("COWORLD_MANIFEST_URI", "COGAME_OPTIMIZER_OUTPUT_URI")
    if env is None:
        return 2
    manifest_uri, output_uri = env
    manifest = json.loads(read_bytes(manifest_uri))
    report_uris = _split(os.environ.get("COGAME_REPORT_URIS"))
    grade_uris = _split(os.environ.get("COGAME_GRADER_OUTPUT_URIS"))
    diagnosis_uris = _split(os.environ.get("COGAME_DIAGNOSER_OUTPUT_URIS"))
    grades = [(uri, doc) for uri in grade_uris if (doc := _document(uri, "grade.json")) is not None]
    diagnoses = [doc for uri in diagnosis_uris if (doc := _document(uri, "diagnosis.json")) is not None]
    reports = [doc for uri in report_uris if (doc := _document(uri, "stats.json")) is not None]
    recommendations, evidence = plan(grades, diagnoses, reports)
    output = {
        "optimizer_id": os.environ.get("COGAME_OPTIMIZER_ID") or OPTIMIZER_ID,
        "coworld_name": (manifest.get("game") or {}).get("name"),
        "policy_workspace_uri": os.environ.get("COGAME_POLICY_WORKSPACE_URI") or None,
        "input_counts": {
            "reports": len(report_uris),
            "grader_outputs": len(grade_uris),
            "diagnoser_outputs": len(diagnosis_uris),
        },
        "recommendations": recommendations,
        "evidence": evidence,
    }
    write_bytes(output_uri, pretty(output), "application/json")
    print(f"[default-optimizer] {len(recommendations)} recommendations", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
