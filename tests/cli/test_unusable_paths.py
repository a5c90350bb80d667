"""Paths the system refuses to look at (a name longer than the file system allows, a file where a
directory must be) are bad input like any other: exit 2, one line naming the argument and why, no
traceback. `Path.is_dir()` and `mkdir()` raise on them instead of answering False, which is how
they once reached the user as OSError tracebacks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

LONG = "a" * 5000  # far over NAME_MAX (255) and PATH_MAX (4096)
ORCHARD = REPO / "examples" / "orchard"
MANIFEST = str(ORCHARD / "coworld_manifest.json")


COMPOSE = str(ORCHARD / "docker-compose.yml")
CASES = {
    "report": (("report", LONG), "episode"),
    "grade": (("grade", LONG), "episode"),
    "episode-stats": (("episode-stats", LONG), "episode"),
    "bundle": (("bundle", LONG, "-o", "{tmp}/bundle"), "episode"),
    "run-episode": (("run-episode", MANIFEST, LONG), "at most 4096 characters"),
    "build-compose": (("build", LONG, MANIFEST, "1.0.0", "{tmp}/out.json"), "compose file"),
    "build-template": (("build", COMPOSE, LONG, "1.0.0", "{tmp}/out.json"), "manifest template"),
    "leagues-long-home": (("leagues", "--home", LONG), "cannot use the league home"),
    "leagues-home-is-a-file": (("leagues", "--home", "{tmp}/a-file"), "/a-file: not a directory"),
    "results-home-under-a-file": (
        ("results", "some-league", "--home", "{tmp}/a-file/league"),
        "/a-file/league: Not a directory",
    ),
    "overview-long-home": (
        ("league", "overview", "some-league", "--home", LONG),
        "cannot use the league home",
    ),
}


@pytest.mark.parametrize(("args", "named"), list(CASES.values()), ids=list(CASES))
def test_an_unusable_path_is_a_usage_error(args: tuple[str, ...], named: str, tmp_path: Path) -> None:
    env = {**os.environ, "COWORLD_HOME": str(tmp_path / "home")}
    env.pop("COWORLD_DATABASE_URL", None)
    (tmp_path / "a-file").write_text("not a directory\n")  # (a file of our own: a bug must not hit /etc)
    proc = run_cli(*(arg.replace("{tmp}", str(tmp_path)) for arg in args), env=env, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert named in proc.stderr, proc.stderr[-2000:]
    assert len(proc.stderr) < 2000, "the 5000-character argument is shortened, not echoed whole"


def test_a_home_that_is_a_file_is_named_whichever_way_it_was_given(tmp_path: Path) -> None:
    """COWORLD_HOME is an argument too, named like --home."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    env = {**os.environ, "COWORLD_HOME": str(a_file)}
    env.pop("COWORLD_DATABASE_URL", None)
    proc = run_cli("leagues", "--json", env=env, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)["error"] == f"cannot use the league home {a_file}: not a directory"
