"""Reporter, grader and diagnoser on bundles of failed episodes, bundles without a replay and broken bundles.

Bundles are built in memory; each role's ``main()`` runs in-process with its environment set by monkeypatch.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from orchard import diagnoser, grader, reporter
from orchard.engine import play_episode, replay_bytes
from orchard.players import greedy, planner
from orchard_testlib import make_config

GAME_LOGS = {"stdout": "logs/game.stdout.log", "stderr": "logs/game.stderr.log"}
PLAYER_LOGS = {"0": "logs/policy_agent_0.log", "1": "logs/policy_agent_1.log"}
# A player log trying to close the report's code block early and inject markup after it.
HOSTILE_LOG = "\n".join(
    [
        *(f"step {i}" for i in range(30)),
        "```",
        "# Injected heading",
        "`````` and a longer run",
        "Traceback (most recent call last):",
        "KeyError: 'trees'",
    ]
)
LONG_MESSAGE = "policy crashed: " + "x" * 2000
ERROR_INFO = {"error_type": "policy_error", "message": LONG_MESSAGE, "failed_policy_index": 1}


def write_bundle(path: Path, manifest: dict[str, Any] | None, entries: dict[str, Any]) -> Path:
    """A bundle zip at ``path``: dict/list entries are written as JSON, str/bytes as they are."""
    with zipfile.ZipFile(path, "w") as archive:
        if manifest is not None:
            archive.writestr("manifest.json", json.dumps(manifest))
        for name, value in entries.items():
            archive.writestr(name, json.dumps(value) if isinstance(value, dict | list) else value)
    return path


def game_logs() -> dict[str, str]:
    return {
        GAME_LOGS["stdout"]: "\n".join(f"tick {i}" for i in range(40)) + "\n",
        GAME_LOGS["stderr"]: "",
    }


@pytest.fixture
def failed_bundle(tmp_path: Path) -> Path:
    """A failed episode: slot 1's player is blamed and its log holds backtick fences."""
    manifest = {
        "ereq_id": "ereq_failed",
        "status": "failed",
        "include": ["config", "error_info", "game_logs", "player_logs"],
        "files": {
            "config": "config.json",
            "error_info": "error_info.json",
            "game_logs": GAME_LOGS,
            "player_logs": PLAYER_LOGS,
        },
    }
    entries = {
        "config.json": make_config(seed=3),
        "error_info.json": ERROR_INFO,
        **game_logs(),
        PLAYER_LOGS["0"]: "connected\nwaiting\n",
        PLAYER_LOGS["1"]: HOSTILE_LOG,
    }
    return write_bundle(tmp_path / "failed.zip", manifest, entries)


@pytest.fixture
def unexplained_bundle(tmp_path: Path) -> Path:
    """A failed episode with no error_info.json and no config: the slot count comes from the player logs."""
    manifest = {
        "ereq_id": "ereq_unexplained",
        "status": "failed",
        "include": ["game_logs", "player_logs"],
        "files": {"game_logs": GAME_LOGS, "player_logs": PLAYER_LOGS},
    }
    entries = {**game_logs(), PLAYER_LOGS["0"]: "p0 ok\n", PLAYER_LOGS["1"]: "p1 ok\n"}
    return write_bundle(tmp_path / "unexplained.zip", manifest, entries)


def episode_files(seed: int = 9) -> dict[str, Any]:
    config = make_config(seed=seed, max_ticks=40)
    game = play_episode(
        {k: v for k, v in config.items() if k != "tokens"}, [greedy.choose_action, planner.choose_action]
    )
    return {"results.json": game.results(), "replay.json": replay_bytes(game), "config.json": config}


@pytest.fixture
def no_replay_bundle(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A succeeded episode whose bundle was asked for results and config only."""
    files = episode_files()
    manifest = {
        "ereq_id": "ereq_no_replay",
        "status": "success",
        "include": ["results", "config"],
        "files": {"results": "results.json", "config": "config.json"},
    }
    entries = {"results.json": files["results.json"], "config.json": files["config.json"]}
    return write_bundle(tmp_path / "no_replay.zip", manifest, entries), files["results.json"]


@pytest.fixture
def succeeded_bundle(tmp_path: Path) -> Path:
    manifest = {
        "ereq_id": "ereq_ok",
        "status": "success",
        "include": ["results", "replay", "config"],
        "files": {"results": "results.json", "replay": "replay.json", "config": "config.json"},
    }
    return write_bundle(tmp_path / "ok.zip", manifest, episode_files())


ROLES = {
    "reporter": (reporter, "COGAME_REPORT_URI", "report.zip"),
    "grader": (grader, "COGAME_GRADE_URI", "grade.json"),
    "diagnoser": (diagnoser, "COGAME_DIAGNOSIS_URI", "diagnosis.zip"),
}


def run_role(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    role: str,
    bundle: Path,
    target: str | None = None,
    output_name: str | None = None,
) -> tuple[int, Path]:
    module, output_env, default_name = ROLES[role]
    output = tmp_path / "out" / (output_name or default_name)
    for name in ("COGAME_REPORTER_ID", "COGAME_GRADER_ID", "COGAME_TARGET_POLICY_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COGAME_EPISODE_BUNDLE_URI", bundle.as_uri())
    monkeypatch.setenv(output_env, output.as_uri())
    if target is not None:
        monkeypatch.setenv("COGAME_TARGET_POLICY_URI", target)
    return module.main(), output


def read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def event_table(report: dict[str, bytes]) -> pa.Table:
    return pq.read_table(io.BytesIO(report["events.parquet"]))


def code_blocks(markdown: str) -> list[str]:
    """The contents of the fenced code blocks, as a CommonMark renderer sees them."""
    markdown_it = pytest.importorskip("markdown_it")  # comes with rich, a project dependency
    return [token.content for token in markdown_it.MarkdownIt().parse(markdown) if token.type == "fence"]


# --------------------------------------------------------------------------------------------------
# failed episode, slot 1 blamed
# --------------------------------------------------------------------------------------------------
def test_reporter_reports_the_failure(monkeypatch, tmp_path, failed_bundle):
    code, output = run_role(monkeypatch, tmp_path, "reporter", failed_bundle)
    assert code == 0
    report = read_zip(output)
    assert sorted(report) == ["events.parquet", "manifest.json", "report.md", "stats.json"]
    assert json.loads(report["manifest.json"]) == {
        "reporter_id": "orchard-reporter",
        "render": "report.md",
        "event_log": "events.parquet",
    }
    text = report["report.md"].decode()
    assert text.startswith("# Orchard match report")
    assert "The episode **failed** (policy_error)" in text
    assert "blamed on **slot 1 (Player 1)**" in text
    message = code_blocks(text)[0].strip()
    assert message.startswith("policy crashed: xxx") and len(message) <= 500
    stats = json.loads(report["stats.json"])
    assert stats["status"] == "failed" and stats["error"] == ERROR_INFO and stats["blamed_slot"] == 1
    # Deterministic, like the report of a succeeded episode.
    assert run_role(monkeypatch, tmp_path, "reporter", failed_bundle, output_name="again.zip")[0] == 0
    assert (tmp_path / "out" / "again.zip").read_bytes() == output.read_bytes()


def test_report_shows_log_tails_that_cannot_escape_their_fence(monkeypatch, tmp_path, failed_bundle):
    code, output = run_role(monkeypatch, tmp_path, "reporter", failed_bundle)
    assert code == 0
    text = read_zip(output)["report.md"].decode()
    blocks = code_blocks(text)
    hostile_tail = "\n".join(HOSTILE_LOG.splitlines()[-20:]) + "\n"
    # The hostile log is one whole block, its ``` lines included: nothing leaked out as markup.
    assert hostile_tail in blocks
    assert not re.search(r"^# Injected heading", text.replace(hostile_tail, ""), flags=re.MULTILINE)
    game_tail = "\n".join(f"tick {i}" for i in range(20, 40)) + "\n"
    assert game_tail in blocks  # the last 20 lines of the game's stdout, not more
    assert "connected\nwaiting\n" in blocks
    assert "### Game stderr: `logs/game.stderr.log` (last 20 lines)\n\n(empty)" in text


def test_failure_event_log_keeps_the_exact_schema(monkeypatch, tmp_path, failed_bundle, succeeded_bundle):
    assert run_role(monkeypatch, tmp_path, "reporter", failed_bundle)[0] == 0
    failed = event_table(read_zip(tmp_path / "out" / "report.zip"))
    assert run_role(monkeypatch, tmp_path, "reporter", succeeded_bundle, output_name="ok.zip")[0] == 0
    succeeded = event_table(read_zip(tmp_path / "out" / "ok.zip"))
    assert failed.schema == succeeded.schema == reporter.EVENT_SCHEMA
    assert failed.schema.names == ["ts", "player", "key", "value"]
    assert [field.type for field in failed.schema] == [pa.int64(), pa.int64(), pa.string(), pa.string()]
    rows = failed.to_pylist()
    assert rows[0] == {
        "ts": 0,
        "player": -1,
        "key": "episode_failed",
        "value": json.dumps(ERROR_INFO, sort_keys=True, separators=(",", ":")),
    }
    assert {"ts": 0, "player": 1, "key": "blamed_for_failure", "value": '"policy_error"'} in rows
    for row in rows:
        json.loads(row["value"])


def test_grader_has_nothing_to_grade(monkeypatch, tmp_path, failed_bundle):
    code, output = run_role(monkeypatch, tmp_path, "grader", failed_bundle)
    assert code == 0
    assert json.loads(output.read_text()) == {
        "grader_id": "orchard-drama-grader",
        "score": 0.0,
        "reason": "nothing to grade: policy_error",
    }


@pytest.mark.parametrize(
    ("target", "slot", "resolution", "wording"),
    [
        ("1", 1, "slot index 1", "Your player made the episode fail (policy_error)"),
        ("slot:0", 0, "slot index 0", "Slot 1 made the episode fail (policy_error), not this one"),
        ("player 1", 1, "name match 'player 1'", "Your player made the episode fail"),
        ("7", 0, "matched no slot; diagnosing slot 0", "Slot 1 made the episode fail"),
        (None, 0, "no target given; diagnosing slot 0", "says nothing about your player"),
    ],
)
def test_diagnoser_says_who_caused_the_failure(
    monkeypatch, tmp_path, failed_bundle, target, slot, resolution, wording
):
    code, output = run_role(monkeypatch, tmp_path, "diagnoser", failed_bundle, target=target)
    assert code == 0
    files = read_zip(output)
    assert sorted(files) == ["advice.md", "diagnosis.json", "manifest.json"]
    manifest = json.loads(files["manifest.json"])
    assert manifest == {
        "diagnoser_id": "orchard-diagnoser",
        "target": target,
        "target_slot": slot,
        "render": "advice.md",
        "data": "diagnosis.json",
    }
    advice = files["advice.md"].decode()
    diagnosis = json.loads(files["diagnosis.json"])
    assert advice.startswith(f"# Orchard diagnosis for P{slot} Player {slot}")
    assert resolution in diagnosis["target_resolution"] and wording in advice
    assert diagnosis["failure"]["blamed_slot"] == 1
    assert diagnosis["failure"]["verdict"] == ("target" if slot == 1 else "other")
    assert diagnosis["summary"] == {}  # what the optimizer reads, empty but present
    blocks = code_blocks(advice)
    if slot == 1:  # the target's own log, fenced whole
        assert "\n".join(HOSTILE_LOG.splitlines()[-20:]) + "\n" in blocks
    else:
        assert "connected\nwaiting\n" in blocks


# --------------------------------------------------------------------------------------------------
# failed episode without error_info.json
# --------------------------------------------------------------------------------------------------
def test_failure_without_error_info(monkeypatch, tmp_path, unexplained_bundle):
    code, output = run_role(monkeypatch, tmp_path, "reporter", unexplained_bundle)
    assert code == 0
    report = read_zip(output)
    text = report["report.md"].decode()
    assert "The episode **failed** (unknown error)" in text and "nobody can be blamed" in text
    rows = event_table(report).to_pylist()
    assert rows[0] == {"ts": 0, "player": -1, "key": "episode_failed", "value": "{}"}
    stats = json.loads(report["stats.json"])
    assert stats["status"] == "failed" and stats["error"] is None and stats["slot_count"] == 2

    code, output = run_role(monkeypatch, tmp_path, "grader", unexplained_bundle)
    assert code == 0
    assert json.loads(output.read_text())["reason"] == "nothing to grade: episode failed"

    code, output = run_role(monkeypatch, tmp_path, "diagnoser", unexplained_bundle, target="1")
    assert code == 0
    files = read_zip(output)
    advice = files["advice.md"].decode()
    assert json.loads(files["manifest.json"])["target_slot"] == 1  # in range: 2 player logs listed
    assert "without blaming any player" in advice and "Re-run the episode" in advice
    assert "p1 ok\n" in code_blocks(advice)


# --------------------------------------------------------------------------------------------------
# succeeded episode, bundle without a replay
# --------------------------------------------------------------------------------------------------
def test_succeeded_episode_without_replay(monkeypatch, tmp_path, no_replay_bundle):
    bundle, results = no_replay_bundle
    code, output = run_role(monkeypatch, tmp_path, "reporter", bundle)
    assert code == 0
    report = read_zip(output)
    assert "holds no replay" in report["report.md"].decode()
    rows = event_table(report).to_pylist()
    assert {"ts": 0, "player": -1, "key": "replay_missing", "value": "null"} in rows
    assert not [row for row in rows if row["key"] == "episode_failed"]
    finals = sorted((row for row in rows if row["key"] == "final_score"), key=lambda row: row["player"])
    assert [json.loads(row["value"]) for row in finals] == results["scores"]
    assert json.loads(report["stats.json"])["status"] == "success"

    code, output = run_role(monkeypatch, tmp_path, "grader", bundle)
    assert code == 0
    assert json.loads(output.read_text()) == {
        "grader_id": "orchard-drama-grader",
        "score": 0.0,
        "reason": "nothing to grade: no replay",
    }

    code, output = run_role(monkeypatch, tmp_path, "diagnoser", bundle, target="1")
    assert code == 0
    diagnosis = json.loads(read_zip(output)["diagnosis.json"])
    assert diagnosis["target_slot"] == 1 and diagnosis["failure"]["verdict"] == "no_replay"


def test_succeeded_episode_with_replay_is_analysed(monkeypatch, tmp_path, succeeded_bundle):
    code, output = run_role(monkeypatch, tmp_path, "reporter", succeeded_bundle)
    assert code == 0
    text = read_zip(output)["report.md"].decode()
    assert "## Lead timeline" in text and "failed" not in text
    code, output = run_role(monkeypatch, tmp_path, "grader", succeeded_bundle)
    assert code == 0
    assert "reason" not in json.loads(output.read_text())


# --------------------------------------------------------------------------------------------------
# unreadable bundles: one line on stderr, exit code 2, no output
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", sorted(ROLES))
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not_a_zip", "not a readable zip file"),
        ("corrupt_results", "results.json is unreadable"),
        ("missing_file", "cannot read"),
    ],
)
def test_unreadable_bundle_is_a_clean_error(monkeypatch, tmp_path, capsys, role, case, expected):
    bundle = tmp_path / "bundle.zip"
    if case == "not_a_zip":
        bundle.write_bytes(b"this is not a zip file\n")
    elif case == "corrupt_results":
        write_bundle(
            bundle,
            {"status": "success", "files": {"results": "results.json"}},
            {"results.json": '{"scores": [1,'},
        )
    code, output = run_role(monkeypatch, tmp_path, role, bundle, target="0")
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err
    assert err.startswith(f"orchard.{role}: ")
    assert not output.exists()
