"""Untrusted inputs are read in bounded time and memory: endless or dripping URLs, zlib bombs,
corrupt episode files, named pipes and malformed image references all end as one clear error."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import resource
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from coworld_cli.league.artifacts import EpisodeArtifacts
from coworld_pipeline.contract.bounded_io import FetchError, NotRegularFile, fetch_bounded, read_regular_file
from coworld_pipeline.runtime.default_roles.common import InflateError, inflate, load_episode, zip_bytes
from coworld_pipeline.runtime.errors import EpisodeFailure
from coworld_pipeline.viewer.replays import ReplaySessions, ReplaySource
from tests.conftest import COWORLD, ORCHARD_DIR, REPO, run_cli

MANIFEST = str(ORCHARD_DIR / "coworld_manifest.json")
GIB = 1 << 30
MEMORY_CEILING = 3 * GIB  # address space of a CLI under test: without the bounds it dies, not the machine


def _bomb(expanded: int, wbits: int = 15) -> bytes:
    """zlib (or, wbits 31, gzip) data of well under 1 MiB that inflates to `expanded` zero bytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(expanded >> 20)) + packer.flush()


GZIP_BOMB = _bomb(768 << 20, wbits=31)  # one gzip member (what HTTP clients decode): 768 MiB
DRIP_STARTED = threading.Event()  # set when a client has begun reading /drip.json


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        try:
            if self.path == "/huge.json":  # streams until the client hangs up (at most 4 GiB)
                self.send_response(200)
                self.end_headers()
                block = b" " * (1 << 20)
                for _ in range(4096):
                    self.wfile.write(block)
            elif self.path == "/bomb.json":
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(GZIP_BOMB)))
                self.end_headers()
                self.wfile.write(GZIP_BOMB)
            elif self.path == "/drip.json":  # one byte at a time, never done: the deadline must end it
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                DRIP_STARTED.set()
                for _ in range(100000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)  # the drip itself, not synchronization
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    for port in range(38500, 38600):
        try:
            httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
            break
        except OSError:
            continue
    else:
        pytest.skip("no free port in 38500-38599")
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()
    httpd.server_close()


def run_bounded(*args: str, timeout: float = 120) -> tuple[int, str, int]:
    """(exit code, stderr + stdout, peak RSS in bytes) of `coworld ARGS` under a memory ceiling."""

    def ceiling() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CEILING, MEMORY_CEILING))

    proc = subprocess.Popen(
        [*COWORLD, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=ceiling
    )
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait for it again
    return proc.returncode, out, usage.ru_maxrss * 1024


def flat(text: str) -> str:
    """The text without any whitespace: Rich wraps long paths mid-word at the terminal width."""
    return "".join(text.split())


# ---- defect 1: URLs ------------------------------------------------------------------------------


def test_replay_url_that_streams_forever_stops_at_the_replay_cap(server: str) -> None:
    code, out, rss = run_bounded("replay", MANIFEST, f"{server}/huge.json", "--runtime", "process")
    assert code == 2, out
    assert flat("larger than 512 MiB") in flat(out) and "Traceback" not in out
    assert rss < 1.5 * GIB, rss


def test_replay_url_with_a_gzip_bomb_body_stops_at_the_replay_cap(server: str) -> None:
    code, out, rss = run_bounded("replay", MANIFEST, f"{server}/bomb.json", "--runtime", "process")
    assert code == 2, out
    assert flat("larger than 512 MiB") in flat(out) and "Traceback" not in out
    assert rss < 1.5 * GIB, rss


def test_manifest_url_that_streams_forever_is_refused_at_1_mib(server: str) -> None:
    code, out, _ = run_bounded("validate", f"{server}/huge.json", timeout=60)
    assert code == 2, out
    assert flat("larger than 1024 KiB") in flat(out) and "Traceback" not in out


def test_a_dripping_server_is_given_up_on_at_the_overall_deadline(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"not downloaded within 2 seconds"):
        fetch_bounded(f"{server}/drip.json", 1 << 20, 2.0)
    assert time.monotonic() - started < 10


def test_sigterm_while_a_url_is_read_exits_130_without_a_traceback(server: str) -> None:
    DRIP_STARTED.clear()
    proc = subprocess.Popen(
        [*COWORLD, "validate", f"{server}/drip.json"], cwd=REPO, stderr=subprocess.PIPE, text=True
    )
    try:
        assert DRIP_STARTED.wait(60), "the CLI never requested the URL"
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err, err


# ---- defects 2 and 3: compressed and corrupt episode files ----------------------------------------


def test_inflate_bounds_bombs_and_names_garbage_and_truncation() -> None:
    with pytest.raises(InflateError, match=r"x.z is larger than 1 MiB decompressed"):
        inflate(_bomb(8 << 20), "x.z", 1 << 20)
    with pytest.raises(InflateError, match=r"x.z does not decompress .*incorrect header check"):
        inflate(b"garbage", "x.z")
    with pytest.raises(InflateError, match=r"truncated"):
        inflate(zlib.compress(os.urandom(5000))[:-100], "x.z")
    assert inflate(gzip.compress(b"{}") * 2, "x.gz", kind="gzip") == b"{}{}"
    assert inflate(zlib.compress(b"[1]"), "x.z") == b"[1]"


def _episode(tmp_path: Path, packed_replay: bytes) -> Path:
    episode = tmp_path / "episode"
    episode.mkdir()
    (episode / "replay.json.z").write_bytes(packed_replay)
    return episode


def test_bundle_of_a_zlib_bomb_replay_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    episode = _episode(tmp_path, _bomb(640 << 20))
    code, out, rss = run_bounded("bundle", str(episode), "-o", str(tmp_path / "x.zip"))
    assert code == 2, out
    assert flat("replay.json.z is larger than 512 MiB decompressed") in flat(out) and "Traceback" not in out
    assert rss < 1.5 * GIB, rss
    assert not (tmp_path / "x.zip").exists()


@pytest.mark.parametrize("command", ["bundle", "grade", "report"])
def test_a_garbage_replay_json_z_is_a_usage_error_naming_the_file(tmp_path: Path, command: str) -> None:
    episode = _episode(tmp_path, b"garbage")
    extra = ["-o", str(tmp_path / "x.zip")] if command == "bundle" else ["--manifest", MANIFEST]
    extra += [] if command == "bundle" else ["--runtime", "process", "-o", str(tmp_path / "out")]
    proc = run_cli(command, str(episode), *extra)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = flat(proc.stderr)
    assert flat(f"{episode}/replay.json.z does not decompress") in message
    assert flat("incorrect header check") in message
    assert "Traceback" not in proc.stderr


def test_a_truncated_results_json_is_a_usage_error_naming_the_file(tmp_path: Path) -> None:
    episode = tmp_path / "episode"
    episode.mkdir()
    (episode / "results.json").write_text('{"scores": [1, ')
    proc = run_cli("bundle", str(episode), "-o", str(tmp_path / "x.zip"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert flat(f"{episode}/results.json is not valid JSON") in flat(proc.stderr)
    assert "Traceback" not in proc.stderr


def test_league_artifacts_viewer_and_roles_inflate_within_bounds(tmp_path: Path) -> None:
    workspace = _episode(tmp_path, b"garbage")
    (workspace / "results.json").write_text('{"scores": [1, ')
    files = EpisodeArtifacts("ereq_x", workspace)
    with pytest.raises(ValueError, match=r"replay.json.z does not decompress"):
        files.replay_bytes()
    with pytest.raises(ValueError, match=r"results.json is not valid JSON"):
        files.read_json("results.json")
    (workspace / "replay.json.z").write_bytes(_bomb(600 << 20))
    with pytest.raises(ValueError, match=r"larger than 512 MiB"):
        files.replay_bytes()
    source = ReplaySource("ereq_x", None, {}, None, fetch_replay=lambda: b"garbage")
    with pytest.raises(EpisodeFailure, match=r"replay.json.z of ereq_x does not decompress"):
        ReplaySessions._local_replay(source, tmp_path / "viewer")
    bundle = zip_bytes(
        {"manifest.json": json.dumps({"files": {"replay": "replay.json.z"}}).encode(), "replay.json.z": b"x"}
    )
    assert load_episode(bundle) is not None  # an unreadable replay entry is an absent one


# ---- defect 4: named pipes ----------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    return path


def test_read_regular_file_refuses_a_fifo_without_opening_it(fifo: Path) -> None:
    with pytest.raises(NotRegularFile, match=r"is not a regular file \(a named pipe\)"):
        read_regular_file(fifo, 10)


@pytest.mark.parametrize(
    "args",
    [
        ("validate", "{fifo}"),
        ("upload-coworld", "{fifo}"),
        ("certify", "{fifo}", "--runtime", "process"),
        ("run-episode", MANIFEST, "{fifo}", "--runtime", "process", "-o", "{tmp}/out"),
    ],
    ids=["validate", "upload-coworld", "certify", "run-episode-request"],
)
def test_a_named_pipe_is_refused_not_waited_on(fifo: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    argv = [a.format(fifo=fifo, tmp=tmp_path) for a in args]
    proc = run_cli(*argv, timeout=60, env={**os.environ, "COWORLD_HOME": str(tmp_path / "home")})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert flat(f"{fifo} is not a regular file") in flat(proc.stderr) and "Traceback" not in proc.stderr


# ---- defect 5: image references ------------------------------------------------------------------


@pytest.mark.parametrize("image", ["/x", "x/", "a//b", "a:b:c"])
def test_an_invalid_image_reference_is_refused_before_anything_runs(tmp_path: Path, image: str) -> None:
    proc = run_cli("run-episode", MANIFEST, image, "--runtime", "process", "-o", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert flat(f"invalid image reference '{image}'") in flat(proc.stderr) and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()
