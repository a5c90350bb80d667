"""`coworld replay` serves replays only, and leaves no temporary directory behind on any exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import zlib
from pathlib import Path

import httpx
import pytest

from tests.conftest import COWORLD, REPO, make_testkit, run_cli

REPLAY = {"frames": [{"type": "state", "tick": 0, "scores": [0, 0], "done": False}]}


def private_tmp(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A TMPDIR of the test's own, so that a leftover temporary directory can be seen."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    return tmp, {**os.environ, "TMPDIR": str(tmp)}


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("/etc/passwd", None, "is not a replay file: give a .json, .json.z, .json.gz replay"),
        ("notes.txt", b'{"frames": []}', "is not a replay file"),
        ("replay.json", b"root:x:0:0:root:/root:/bin/bash\n", "is not a replay: its content is not JSON"),
        ("replay.json", b'"just a string"', "a replay is a JSON object or array"),
        ("replay.json.z", b"not zlib at all", "is not a replay: it does not decompress"),
        ("replay.json.gz", zlib.compress(b"{}"), "is not a replay: it does not decompress"),
        ("ftp://host/replay.json", None, "a replay is a local path, a file:// or an http(s):// URL"),
    ],
    ids=["etc-passwd", "wrong-suffix", "not-json", "json-scalar", "bad-zlib", "zlib-named-gz", "ftp"],
)
def test_replay_accepts_only_a_replay(
    tmp_path: Path, name: str, content: bytes | None, expected: str
) -> None:
    manifest = make_testkit(tmp_path)
    tmp, env = private_tmp(tmp_path)
    target = name
    if content is not None:
        path = tmp_path / name
        path.write_bytes(content)
        target = str(path)
    proc = run_cli("replay", str(manifest), target, "--runtime", "process", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = " ".join(proc.stderr.split())
    assert expected in message, message
    assert "Traceback" not in proc.stderr
    assert "root:x:0" not in proc.stdout + proc.stderr  # the file's content is never echoed
    assert list(tmp.iterdir()) == []
    as_json = run_cli("replay", str(manifest), target, "--runtime", "process", "--json", env=env)
    assert as_json.returncode == 2 and json.loads(as_json.stdout)["ok"] is False


def read_json_document(stream: object) -> dict:
    buffer = ""
    while not buffer.rstrip().endswith("}"):
        line = stream.readline()  # type: ignore[attr-defined]
        assert line, "the replay command ended before printing its URL"
        buffer += line
    return json.loads(buffer)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("suffix", [".json", ".json.z"])
def test_replay_serves_a_replay_and_removes_its_temporary_directory(
    tmp_path: Path, sig: signal.Signals, suffix: str
) -> None:
    manifest = make_testkit(tmp_path)
    tmp, env = private_tmp(tmp_path)
    data = json.dumps(REPLAY).encode()
    replay = tmp_path / f"replay{suffix}"
    replay.write_bytes(zlib.compress(data) if suffix.endswith(".z") else data)
    proc = subprocess.Popen(
        [*COWORLD, "replay", str(manifest), str(replay), "--runtime", "process", "--json"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = read_json_document(proc.stdout)["url"]
        assert httpx.get(url, timeout=10).status_code == 200
        (workdir,) = tmp.iterdir()  # while it runs: the replay copy and the server's logs
        assert json.loads((workdir / "replay" / "replay.json").read_text()) == REPLAY
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert list(tmp.iterdir()) == []


def test_replay_server_that_fails_prints_why_and_leaves_nothing(tmp_path: Path) -> None:
    path = make_testkit(tmp_path)
    manifest = json.loads(path.read_text())
    manifest["game"]["runnable"]["run"] = [
        "python",
        "-c",
        "import sys; print('replay boom: no viewer today', file=sys.stderr); sys.exit(4)",
    ]
    path.write_text(json.dumps(manifest))
    replay = tmp_path / "replay.json"
    replay.write_text(json.dumps(REPLAY))
    tmp, env = private_tmp(tmp_path)
    proc = run_cli("replay", str(path), str(replay), "--runtime", "process", "--timeout", "5", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "replay_failed" in proc.stderr and "replay boom: no viewer today" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp.iterdir()) == []


def test_replay_open_of_a_league_episode_removes_its_temporary_directory(tmp_path: Path) -> None:
    from coworld_pipeline.league.service import LeagueService
    from tests.league.conftest import orchard_league

    home = tmp_path / "home"
    db = f"sqlite:///{home / 'league.db'}"
    svc = LeagueService(db, home)
    try:
        orchard_league(svc, "open", players=("random", "greedy"))
        svc.run_round("open", runtime_name="process")
        episode = next(e for e in svc.episodes(league_ref="open") if e.replay_path)
    finally:
        svc.close()
    tmp, env = private_tmp(tmp_path)
    env.update({"COWORLD_HOME": str(home), "COWORLD_DATABASE_URL": db})
    proc = subprocess.Popen(
        [*COWORLD, "replay-open", episode.id, "--json"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = read_json_document(proc.stdout)["url"]
        assert httpx.get(url, timeout=10).status_code == 200
        assert len(list(tmp.iterdir())) == 1  # its workdir, while it serves
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert list(tmp.iterdir()) == []
