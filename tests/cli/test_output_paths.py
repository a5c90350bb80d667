"""Where a command writes is checked before it runs: a file where a directory must be (or in the way of
one), a directory where a file must be, or an existing file of another kind than the command writes is
a usage error (exit 2) naming the option, and the file is left as it was. An existing file of the
command's own kind (a bundle zip, a JSON manifest) is replaced whole, through a temporary file that
never stays behind. (Once, `bundle -o` on an existing file replaced it with a zip, whatever it was.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import ORCHARD_DIR, run_cli
from tests.fixtures.roles.episodes import ORCHARD_MANIFEST, play_orchard

PRECIOUS = "a file the user cares about\n"
COMPOSE = ORCHARD_DIR / "docker-compose.yml"
TEMPLATE = ORCHARD_DIR / "coworld_manifest_template.json"


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return play_orchard(tmp_path_factory.mktemp("output-paths") / "episode")


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text(PRECIOUS)
    return path


def run(*args: str, home: Path):
    env = {**os.environ, "COWORLD_HOME": str(home), "COLUMNS": "1000"}
    env.pop("COWORLD_DATABASE_URL", None)
    return run_cli(*args, env=env, timeout=120)


def assert_refused(proc, needle: str, precious: Path) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert proc.stderr.startswith("error:") and needle in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert precious.read_text() == PRECIOUS


ROLE = ("--manifest", str(ORCHARD_MANIFEST), "--runtime", "process", "-o")
# (arguments with {file} where the command writes, what the error names)
DIRECTORY_OUTPUTS = {
    "run-episode": (
        ("run-episode", str(ORCHARD_MANIFEST), "--runtime", "process", "-o", "{file}"),
        "workspace",
    ),
    "certify": (("certify", str(ORCHARD_MANIFEST), "--runtime", "process", "-o", "{file}/sub"), "workspace"),
    "report": (("report", "{episode}", *ROLE, "{file}"), "--output-dir"),
    "grade": (("grade", "{episode}", *ROLE, "{file}/sub"), "--output-dir"),
    "episode-stats": (("episode-stats", "{episode}", *ROLE, "{file}"), "--output-dir"),
}


@pytest.mark.parametrize(("args", "named"), list(DIRECTORY_OUTPUTS.values()), ids=list(DIRECTORY_OUTPUTS))
def test_a_file_where_a_directory_must_be(
    args: tuple[str, ...], named: str, episode: Path, precious: Path, tmp_path: Path
) -> None:
    argv = [a.replace("{file}", str(precious)).replace("{episode}", str(episode)) for a in args]
    proc = run(*argv, home=tmp_path / "home")
    assert_refused(proc, f"{named}", precious)
    assert "is a file, not a directory" in proc.stderr


FILE_OUTPUTS = {
    "bundle": (("bundle", "{episode}", "-o", "{out}"), "zip archive"),
    "convert": (("convert", str(ORCHARD_MANIFEST), "--contract", "0.1.11", "-o", "{out}"), "JSON document"),
    "build": (("build", str(COMPOSE), str(TEMPLATE), "1.0.0", "{out}"), "JSON document"),
}


@pytest.mark.parametrize(("args", "kind"), list(FILE_OUTPUTS.values()), ids=list(FILE_OUTPUTS))
def test_a_file_of_another_kind_or_a_directory_is_not_replaced(
    args: tuple[str, ...], kind: str, episode: Path, precious: Path, tmp_path: Path
) -> None:
    for out, needle in (
        (precious, f"exists and is not a {kind}: not replaced"),
        (tmp_path, "is a directory"),
    ):
        argv = [a.replace("{out}", str(out)).replace("{episode}", str(episode)) for a in args]
        assert_refused(run(*argv, home=tmp_path / "home"), needle, precious)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_file_of_the_commands_own_kind_is_replaced_whole(episode: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    for args in (
        ("bundle", str(episode), "-o", str(tmp_path / "ep.zip")),
        ("convert", str(ORCHARD_MANIFEST), "--contract", "0.1.11", "-o", str(tmp_path / "m.json")),
    ):
        first = run(*args, "--json", home=home)
        again = run(*args, "--json", home=home)
        assert first.returncode == again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["ok"] is True
    assert json.loads((tmp_path / "m.json").read_text())["game"]["name"] == "orchard"
    assert (tmp_path / "ep.zip").read_bytes()[:4] == b"PK\x03\x04"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.zip", "m.json"]  # no .tmp left
