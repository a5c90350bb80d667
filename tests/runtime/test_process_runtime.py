"""The process runtime: a child's tie to the runner that started it (PR_SET_PDEATHSIG), its logs."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from coworld_pipeline.runtime import base as runtime_base
from coworld_pipeline.runtime import process_runtime
from coworld_pipeline.runtime.base import Launched, LaunchSpec
from coworld_pipeline.runtime.process_runtime import ProcessRuntime, die_with

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")


def test_a_child_whose_runner_died_before_the_tie_was_made_goes_at_once():
    """A runner SIGKILLed between fork and prctl sends its child no signal: without a look at its
    parent the child (a game) would run on for good. Here the child is told of a parent it does not
    have, as it would be after such a death, and must go instead of running `sleep`."""
    orphan = subprocess.Popen(["sleep", "60"], preexec_fn=die_with(os.getpid() + 4_194_304))
    assert orphan.wait(timeout=10) == 1
    tied = subprocess.Popen(["sh", "-c", "exit 3"], preexec_fn=die_with(os.getpid()))
    assert tied.wait(timeout=10) == 3  # with its parent alive, the program runs as given


@contextlib.contextmanager
def _exited(tmp_path: Path, code: str, stderr: bool) -> Iterator[Launched]:
    """A child running `python -c code` in a process sandbox, once it has exited."""
    with ProcessRuntime().sandbox(secrets.token_hex(8), "test") as box:
        spec = LaunchSpec(
            role="player",
            name="player-0",
            image="unused",
            run=["python", "-c", code],
            env={},
            stdout_path=tmp_path / "out.log",
            stderr_path=tmp_path / "err.log" if stderr else None,
        )
        launched = box.start(spec)
        launched.proc.wait(timeout=60)  # type: ignore[attr-defined]
        yield launched


def test_a_flooding_child_is_cut_at_the_log_cap_and_its_exit_still_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host processes write into a pipe that is copied with the docker runtime's cap: a child that
    floods its output cannot fill the disk, its log says what was dropped, and it runs to its end."""
    monkeypatch.setattr(runtime_base, "MAX_LOG_BYTES", 100_000)
    flood = "import sys; sys.stdout.write('x' * 3_000_000); sys.stdout.flush(); print('end'); sys.exit(4)"
    with _exited(tmp_path, flood, stderr=False) as launched:
        assert launched.poll() == 4
    kept, _, note = (tmp_path / "out.log").read_bytes().rpartition(b"\n[coworld: ")
    assert kept == b"x" * 100_000
    assert note == b"log cut at 100,000 bytes; 2,900,004 more dropped]\n"


def test_an_exit_is_reported_with_its_logs_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure quotes the tail of the logs as soon as it sees the exit: by then the copier has
    written everything the child wrote, on stdout and on stderr, however far behind it was (here
    slowed down, as on a loaded host, so that the child is long gone before its output is copied)."""
    copy = process_runtime.copy_capped

    def slow_copy(chunks: Iterable[bytes], path: Path) -> None:
        def slowly() -> Iterator[bytes]:
            for chunk in chunks:
                time.sleep(0.2)  # the copier's pace, not a synchronization: nothing waits for it
                yield chunk

        copy(slowly(), path)

    monkeypatch.setattr(process_runtime, "copy_capped", slow_copy)
    code = "import sys; sys.stdout.write('o' * 100_000); sys.stderr.write('last words'); sys.exit(1)"
    with _exited(tmp_path, code, stderr=True) as launched:
        assert launched.poll() == 1
        assert (tmp_path / "out.log").stat().st_size == 100_000
        assert (tmp_path / "err.log").read_bytes() == b"last words"


def test_a_grandchild_holding_the_pipe_neither_blocks_the_exit_nor_keeps_the_copier(tmp_path: Path) -> None:
    """A grandchild in a session of its own escapes the process group's kill and keeps the child's
    stdout open. The child's exit is still reported (after a bounded wait for its logs), and once
    the sandbox is closed the log copier gives up instead of waiting on the pipe for good."""
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys; "
        "g = subprocess.Popen(['sleep', '120'], start_new_session=True); "
        f"open({str(pid_file)!r}, 'w').write(str(g.pid)); print('child done', flush=True)"
    )
    try:
        with _exited(tmp_path, code, stderr=False) as launched:
            started = time.monotonic()
            assert launched.poll() == 0
            assert time.monotonic() - started < process_runtime._Process.LOG_DRAIN_SECONDS + 1.0
            assert (tmp_path / "out.log").read_bytes() == b"child done\n"
        copier = launched._copiers[0]  # type: ignore[attr-defined]
        copier.join(timeout=5)
        assert not copier.is_alive()
    finally:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
