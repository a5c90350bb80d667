"""Reporter, grader, diagnoser and optimizer run as real subprocesses on a bundle from a real episode."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from orchard_testlib import ORCHARD_DIR, PYTHON, make_config, run_full_episode, subprocess_env


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    game = run_full_episode(root / "episode", make_config(seed=41, max_ticks=100), ["greedy", "planner"])
    files = {
        "results.json": (game.workdir / "results.json").read_bytes(),
        "replay.json": game.replay_bytes(),
        "config.json": (game.workdir / "config.json").read_bytes(),
        "logs/game.stdout.log": (game.workdir / "game.stdout.log").read_bytes(),
        "logs/game.stderr.log": (game.workdir / "game.stderr.log").read_bytes(),
        "logs/policy_agent_0.log": (game.workdir / "player0.log").read_bytes(),
        "logs/policy_agent_1.log": (game.workdir / "player1.log").read_bytes(),
    }
    manifest = {
        "ereq_id": "ereq_orchard_test",
        "status": "success",
        "include": ["results", "replay", "config", "game_logs", "player_logs"],
        "files": {
            "results": "results.json",
            "replay": "replay.json",
            "config": "config.json",
            "game_logs": {"stdout": "logs/game.stdout.log", "stderr": "logs/game.stderr.log"},
            "player_logs": {"0": "logs/policy_agent_0.log", "1": "logs/policy_agent_1.log"},
        },
    }
    path = root / "bundle.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def run_module(module: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [PYTHON, "-m", module],
        cwd=ORCHARD_DIR,
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_reporter_zip_with_markdown_and_exact_parquet_schema(bundle: Path, tmp_path: Path):
    output = tmp_path / "report.zip"
    env = {"COGAME_EPISODE_BUNDLE_URI": bundle.as_uri(), "COGAME_REPORT_URI": output.as_uri()}
    run_module("orchard.reporter", env)
    with zipfile.ZipFile(output) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest == {
            "reporter_id": "orchard-reporter",
            "render": "report.md",
            "event_log": "events.parquet",
        }
        report = archive.read("report.md").decode()
        table = pq.read_table(io.BytesIO(archive.read("events.parquet")))
        stats = json.loads(archive.read("stats.json"))
    assert report.startswith("# Orchard match report")
    assert "Lead timeline" in report and "P1 Player 1" in report
    assert table.schema.names == ["ts", "player", "key", "value"]
    assert [field.type for field in table.schema] == [pa.int64(), pa.int64(), pa.string(), pa.string()]
    rows = table.to_pylist()
    keys = {row["key"] for row in rows}
    assert {"position", "move", "harvest", "scores", "final_results", "final_score"} <= keys
    assert {row["player"] for row in rows} == {-1, 0, 1}
    for row in rows:
        json.loads(row["value"])
    finals = [row for row in rows if row["key"] == "final_score"]
    results = json.loads(zipfile.ZipFile(bundle).read("results.json"))
    assert [json.loads(row["value"]) for row in sorted(finals, key=lambda r: r["player"])] == results[
        "scores"
    ]
    assert stats["scores"] == results["scores"]
    # deterministic output
    second = tmp_path / "report2.zip"
    run_module("orchard.reporter", {**env, "COGAME_REPORT_URI": second.as_uri()})
    assert second.read_bytes() == output.read_bytes()


def test_grader_scores_drama(bundle: Path, tmp_path: Path):
    output = tmp_path / "grade.json"
    run_module(
        "orchard.grader", {"COGAME_EPISODE_BUNDLE_URI": bundle.as_uri(), "COGAME_GRADE_URI": output.as_uri()}
    )
    grade = json.loads(output.read_text())
    assert grade["grader_id"] == "orchard-drama-grader"
    assert isinstance(grade["score"], float) and 0.0 <= grade["score"] <= 1.0
    results = json.loads(zipfile.ZipFile(bundle).read("results.json"))
    assert grade["lead_changes"] == results["lead_changes"]
    assert grade["final_margin"] == abs(results["scores"][0] - results["scores"][1])


@pytest.mark.parametrize(
    ("target", "slot"),
    [("1", 1), ("slot:0", 0), ("file:///policies/player%201", 1), ("Player 0", 0), (None, 0)],
)
def test_diagnoser_advice_for_target_slot(bundle: Path, tmp_path: Path, target, slot):
    output = tmp_path / "diagnosis.zip"
    env = {"COGAME_EPISODE_BUNDLE_URI": bundle.as_uri(), "COGAME_DIAGNOSIS_URI": output.as_uri()}
    if target is not None:
        env["COGAME_TARGET_POLICY_URI"] = target
    run_module("orchard.diagnoser", env)
    with zipfile.ZipFile(output) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        advice = archive.read("advice.md").decode()
        diagnosis = json.loads(archive.read("diagnosis.json"))
    assert manifest["target_slot"] == slot and manifest["render"] == "advice.md"
    assert advice.startswith(f"# Orchard diagnosis for P{slot} ")
    assert "## Advice" in advice and diagnosis["advice"]
    assert diagnosis["summary"]["ticks"] == 100


def test_optimizer_turns_outputs_into_recommendations(bundle: Path, tmp_path: Path):
    common = {"COGAME_EPISODE_BUNDLE_URI": bundle.as_uri()}
    report, grade, diagnoses = (
        tmp_path / "r.zip",
        tmp_path / "g.json",
        [tmp_path / "d0.zip", tmp_path / "d1.zip"],
    )
    run_module("orchard.reporter", {**common, "COGAME_REPORT_URI": report.as_uri()})
    run_module("orchard.grader", {**common, "COGAME_GRADE_URI": grade.as_uri()})
    for slot, path in enumerate(diagnoses):
        run_module(
            "orchard.diagnoser",
            {**common, "COGAME_DIAGNOSIS_URI": path.as_uri(), "COGAME_TARGET_POLICY_URI": str(slot)},
        )
    output = tmp_path / "plan.json"
    run_module(
        "orchard.optimizer",
        {
            "COWORLD_MANIFEST_URI": (ORCHARD_DIR / "coworld_manifest.json").as_uri(),
            "COGAME_OPTIMIZER_ID": "orchard-optimizer",
            "COGAME_OPTIMIZER_OUTPUT_URI": output.as_uri(),
            "COGAME_REPORT_URIS": report.as_uri(),
            "COGAME_GRADER_OUTPUT_URIS": grade.as_uri(),
            "COGAME_DIAGNOSER_OUTPUT_URIS": ",".join(path.as_uri() for path in diagnoses),
        },
    )
    plan = json.loads(output.read_text())
    assert plan["optimizer_id"] == "orchard-optimizer"
    assert plan["coworld_name"] == "orchard"
    assert plan["policy_workspace_uri"] is None
    assert plan["input_counts"] == {"reports": 1, "grader_outputs": 1, "diagnoser_outputs": 2}
    assert len(plan["recommendations"]) >= 2
    assert all(isinstance(item, str) and len(item) > 20 for item in plan["recommendations"])


def test_runnables_fail_clearly_without_env():
    for module in ("orchard.reporter", "orchard.grader", "orchard.diagnoser", "orchard.optimizer"):
        result = subprocess.run(
            [PYTHON, "-m", module],
            cwd=ORCHARD_DIR,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2 and "needs" in result.stderr
