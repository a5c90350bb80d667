"""Every command the README shows works as written, run the way a new user runs them.

Each ```bash block of README.md is run in order, as one `bash -e` script per block, from a directory
that looks like the checkout (its top-level entries linked, outputs land in the copy), with `coworld`
on the PATH and a fresh `COWORLD_HOME`. A comment line right before a block's fence says how:

- `<!-- readme: run -->` (or no comment): every command must exit 0;
- `<!-- readme: serve -->`: every line is a long-running server: it must print an `http://` link on
  stdout, answer it, and stop on Ctrl-C (SIGINT) within 15 s;
- `<!-- readme: skip -- why -->`: not run here, and the comment says which test covers it instead.
"""

from __future__ import annotations

import os
import re
import selectors
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARKER = re.compile(r"^<!-- readme: (run|serve|skip)(?: -- (.+))? -->$")
LINK = re.compile(r"https?://[^\s\"'<>]+")
# The checkout's own state stays out of the copy: a new user has none of it.
NOT_LINKED = {".git", ".coworld", ".dagster_home", "out", "test-artifacts", "results"}


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    mode: str
    why: str
    text: str

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"


def bash_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            start = i
            body: list[str] = []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            marker = MARKER.match(lines[start - 1].strip()) if start else None
            mode, why = (marker.group(1), marker.group(2) or "") if marker else ("run", "")
            blocks.append(Block(start + 1, mode, why, "\n".join(body)))
        i += 1
    return blocks


def commands(block: Block) -> list[str]:
    """The block's commands: lines joined while a `\\` continues them or a quote is still open."""
    out: list[str] = []
    pending = ""
    for raw in block.text.splitlines():
        pending = f"{pending}\n{raw}" if pending else raw
        if pending.rstrip().endswith("\\"):
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on on the next line
            continue
        if words:
            out.append(pending)
        pending = ""
    assert not pending, f"{block.id}: unterminated command {pending!r}"
    return out


BLOCKS = bash_blocks(README.read_text())


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    work = tmp_path_factory.mktemp("readme-checkout")
    for entry in REPO.iterdir():
        if entry.name not in NOT_LINKED:
            (work / entry.name).symlink_to(entry)
    own = ("COWORLD_", "DAGSTER_", "PYTEST_")  # a new user's shell has none of the suite's settings
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["COWORLD_HOME"] = str(work / ".coworld")
    env["COLUMNS"] = "160"
    env["BROWSER"] = "true"  # `coworld play` opens the viewer with the user's browser: here, a no-op
    return work, env


def test_the_readme_has_runnable_blocks() -> None:
    modes = [b.mode for b in BLOCKS]
    assert modes.count("run") >= 4 and "serve" in modes, modes
    for block in BLOCKS:
        if block.mode == "skip":
            assert block.why, f"{block.id}: a skipped block says why and which test covers it"
        if block.mode != "skip":
            for command in commands(block):
                assert not re.search(r"\b(MANIFEST|IMAGE|EREQ|EPISODE|OUT)\b", command), (
                    f"{block.id}: a placeholder is not a command a user can run: {command}"
                )


@pytest.mark.docker
@pytest.mark.parametrize("block", [b for b in BLOCKS if b.mode == "run"], ids=lambda b: b.id)
def test_run_block(block: Block, checkout: tuple[Path, dict[str, str]]) -> None:
    work, env = checkout
    script = "set -eo pipefail\ntrap 'echo \"README command failed: $BASH_COMMAND\" >&2' ERR\n" + block.text
    proc = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, (
        f"{block.id} exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]


@pytest.mark.docker
@pytest.mark.parametrize("block", [b for b in BLOCKS if b.mode == "serve"], ids=lambda b: b.id)
def test_serve_block(block: Block, checkout: tuple[Path, dict[str, str]]) -> None:
    work, env = checkout
    for command in commands(block):
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            link = first_link(proc, deadline=time.monotonic() + 180)
            if not link:
                proc.kill()
                _, err = proc.communicate(timeout=15)
                pytest.fail(f"{block.id}: `{command}` printed no link on stdout\n{err[-3000:]}")
            answer = httpx.get(link, timeout=30, follow_redirects=True)
            assert answer.status_code == 200, f"{command}: {link} answered {answer.status_code}"
            os.killpg(proc.pid, signal.SIGINT)
            code = proc.wait(timeout=15)
            assert code in (0, 130), f"{command}: Ctrl-C ended it with {code}"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def first_link(proc: subprocess.Popen[str], deadline: float) -> str | None:
    """The first http(s) link the server prints on stdout (a whole line), or None if it exits first."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not sel.select(timeout=left):
                break
            line = proc.stdout.readline()
            if not line:
                return None  # it exited without printing a link
            if found := LINK.search(line):
                return found.group(0).rstrip(".,)")
    return None
