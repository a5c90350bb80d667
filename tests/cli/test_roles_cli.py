"""`coworld bundle/report/grade/diagnose/episode-stats` as a user runs them, on a real Orchard episode."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ORCHARD_DIR, run_cli
from tests.fixtures.roles.episodes import ORCHARD_MANIFEST, play_orchard, tree_digest

RUNTIMES = ["process", pytest.param("docker", marks=pytest.mark.docker)]


@pytest.fixture(scope="module")
def coworld(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of Orchard with a played episode in its default run-episode place (`<manifest dir>/results`)."""
    root = tmp_path_factory.mktemp("cli") / "orchard"
    root.mkdir()
    shutil.copy(ORCHARD_MANIFEST, root / "coworld_manifest.json")
    # Process runs use the manifest's directory as the working directory: Orchard's code must be there.
    (root / "orchard").symlink_to(ORCHARD_DIR / "orchard")
    play_orchard(root / "results")
    return root


def run_wide(*args: str):
    """Rich wraps at the terminal width: a wide one keeps each message on the one line it is."""
    return run_cli(*args, env={**os.environ, "COLUMNS": "1000"})


def cli_json(*args: str, code: int = 0) -> dict:
    proc = run_cli(*args, "--json")
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


def test_bundle_command(coworld: Path, tmp_path: Path) -> None:
    episode = coworld / "results"
    out = cli_json("bundle", str(episode), "-o", str(tmp_path / "ep.zip"), "--include", "results,replay")
    assert out["manifest"]["include"] == ["results", "replay"] and out["size"] > 0
    with zipfile.ZipFile(tmp_path / "ep.zip") as archive:
        assert sorted(archive.namelist()) == ["manifest.json", "replay.json", "results.json"]
    # A local directory is the caller's own run: every player log goes in by default.
    out = cli_json("bundle", str(episode), "-o", str(tmp_path / "all.zip"))
    assert out["manifest"]["files"]["player_logs"] == {
        "0": "logs/policy_agent_0.log",
        "1": "logs/policy_agent_1.log",
    }
    proc = run_wide("bundle", str(episode), "-o", str(tmp_path / "x.zip"), "--include", "results,logs")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "unknown include token 'logs'" in proc.stderr and "Traceback" not in proc.stderr
    # A slot the episode does not have would be left out without a word.
    proc = run_wide("bundle", str(episode), "-o", str(tmp_path / "s.zip"), "--slot", "1", "--slot", "7")
    assert proc.returncode == 2 and "--slot 7 is out of range: the episode has 2 slots" in proc.stderr
    assert not (tmp_path / "s.zip").exists()
    proc = run_cli("bundle", str(episode), "-o", str(tmp_path / "h.zip"))
    assert proc.returncode == 0 and "included: results, replay, config, game_logs, player_logs" in proc.stdout
    # A directory that run-episode did not write is not an episode (here: the game's own source).
    for not_an_episode in (str(coworld / "orchard"), ""):
        out = cli_json("bundle", not_an_episode, "-o", str(tmp_path / "no.zip"), code=2)
        assert "episode" in out["error"] and not (tmp_path / "no.zip").exists()


def test_bad_episode_references_exit_2(tmp_path: Path, coworld: Path) -> None:
    other_episode = tmp_path / "other"
    shutil.copytree(coworld / "results", other_episode)
    for args in (
        ["report", "ereq_00000000000000000000000000000000", "--runtime", "process"],
        ["grade", str(coworld / "results" / "results.json"), "--runtime", "process"],
        ["diagnose", str(coworld / "results"), "--slot", "5", "--runtime", "process"],
        ["episode-stats", str(coworld / "results"), "--player", "5", "--runtime", "process"],
        ["report", str(coworld / "results"), "--reporter", "nope", "--runtime", "process"],
        ["grade", str(coworld / "results"), "--runtime", "kubernetes"],
        ["grade", str(coworld / "results"), "--runtime", "process", "-o", str(coworld / "results" / "g")],
        # Another episode's workspace (here: a copy of this one).
        ["grade", str(coworld / "results"), "--runtime", "process", "-o", str(other_episode)],
    ):
        proc = run_wide(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("error:") and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert (
        "--slot 5 is out of range: the episode has 2 slots"
        in run_wide("diagnose", str(coworld / "results"), "--slot", "5", "--runtime", "process").stderr
    )
    assert (
        "--player 5 is out of range: the episode has 2 slots"
        in run_wide("episode-stats", str(coworld / "results"), "--player", "5", "--runtime", "process").stderr
    )


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_roles_from_the_cli(
    runtime: str, request: pytest.FixtureRequest, coworld: Path, tmp_path: Path
) -> None:
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    episode = str(coworld / "results")
    before = tree_digest(coworld / "results")
    base = ["--runtime", runtime]
    report = cli_json("report", episode, *base, "-o", str(tmp_path / "report"))
    assert report["ok"] and report["runnable_id"] == "orchard-reporter" and report["stats_rows"] > 50
    assert Path(report["outputs"]["report"]).is_file() and report["report"]["render"] == "report.md"
    grade = cli_json("grade", episode, *base, "--grader", "default", "-o", str(tmp_path / "grade"))
    assert grade["builtin"] and 0 <= grade["grade"]["score"] <= 1
    diagnosis = cli_json("diagnose", episode, "--slot", "1", *base, "-o", str(tmp_path / "diag"))
    assert diagnosis["diagnosis"]["manifest"]["target_slot"] == 1
    rows = cli_json("episode-stats", episode, *base, "--reporter", "default", "-o", str(tmp_path / "stats"))
    assert rows and all(set(row) == {"ts", "player", "key", "value"} for row in rows)
    scores = json.loads((coworld / "results" / "results.json").read_text())["scores"]
    assert [json.loads(r["value"]) for r in rows if r["key"] == "final_score"] == scores
    assert tree_digest(coworld / "results") == before


def test_human_output(coworld: Path, tmp_path: Path) -> None:
    episode = str(coworld / "results")
    proc = run_cli("report", episode, "--runtime", "process", "-o", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    assert "reporter orchard-reporter (manifest)" in proc.stdout and "# Orchard match report" in proc.stdout
    proc = run_cli("grade", episode, "--runtime", "process", "-o", str(tmp_path / "g"))
    assert proc.returncode == 0 and "score " in proc.stdout
    proc = run_cli("diagnose", episode, "--slot", "0", "--diagnoser", "default", "--runtime", "process")
    assert proc.returncode == 0 and "## Advice" in proc.stdout
    proc = run_cli(
        "episode-stats", episode, "--runtime", "process", "--key", "final_score", "-o", str(tmp_path / "s")
    )
    assert proc.returncode == 0 and "final_score" in proc.stdout and "position" not in proc.stdout


def test_failed_role_exits_1_with_logs(coworld: Path, tmp_path: Path) -> None:
    """A manifest whose grader crashes: exit 1, the typed failure, and where its logs are."""
    manifest = json.loads((coworld / "coworld_manifest.json").read_text())
    manifest["grader"][0]["run"] = [
        "python",
        "-c",
        "import sys; print('grader boom', file=sys.stderr); sys.exit(4)",
    ]
    path = tmp_path / "coworld_manifest.json"
    path.write_text(json.dumps(manifest))
    args = ["grade", str(coworld / "results"), "--manifest", str(path), "--runtime", "process"]
    out = cli_json(*args, "-o", str(tmp_path / "g"), code=1)
    assert out["ok"] is False and out["error"]["error_type"] == "role_crashed"
    assert "grader boom" in out["error"]["details"]["stderr_tail"]
    proc = run_cli(*args, "-o", str(tmp_path / "g2"))
    assert proc.returncode == 1 and "role_crashed" in proc.stderr and "logs kept in" in proc.stderr


def test_a_league_episode_id_runs_its_coworlds_own_roles(tmp_path: Path) -> None:
    """EPISODE as a league episode id: the roles come from the manifest the league's coworld stored."""
    from coworld_pipeline.league.service import LeagueService
    from tests.league.conftest import orchard_league

    home = tmp_path / "home"
    svc = LeagueService(home=home)
    orchard_league(svc, "roles", players=("random", "greedy"))
    run = svc.run_round("roles", runtime_name="process")
    assert run.progress is not None and run.progress.status == "completed"
    ereq = svc.episodes(league_ref="roles")[0].id
    svc.close()
    env = {**os.environ, "COWORLD_HOME": str(home)}
    proc = run_cli("report", ereq, "--runtime", "process", "--json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and report["runnable_id"] == "orchard-reporter" and not report["builtin"]


def test_grade_prints_a_huge_field_as_one_short_line(coworld: Path, tmp_path: Path) -> None:
    """A grader may write megabytes into a field: the human output shows its start and its size (the
    whole stays in grade.json and --json), so printing it takes no time."""
    root = tmp_path / "cw"
    shutil.copytree(coworld, root, symlinks=True)
    manifest = json.loads((root / "coworld_manifest.json").read_text())
    writer = (
        "import os, json; from urllib.parse import urlparse; "
        "open(urlparse(os.environ['COGAME_GRADE_URI']).path, 'w')"
        ".write(json.dumps({'score': 0.5, 'notes': 'x' * 3_000_000}))"
    )
    manifest["grader"][0]["run"] = ["python", "-c", writer]
    (root / "coworld_manifest.json").write_text(json.dumps(manifest))
    proc = run_wide("grade", str(root / "results"), "--runtime", "process", "-o", str(tmp_path / "g"))
    assert proc.returncode == 0, proc.stderr
    (notes,) = [line for line in proc.stdout.splitlines() if line.strip().startswith("notes:")]
    assert len(notes) < 400 and "(3,000,002 chars)" in notes, notes
    assert "score 0.5" in proc.stdout
