"""Shared CLI plumbing: JSON vs Rich output and clean, traceback-free errors."""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from coworld_pipeline.contract.problems import ContractError
from coworld_pipeline.league.errors import shortened as shortened  # one shortener for both layers
from coworld_pipeline.runtime.files import write_whole

if TYPE_CHECKING:
    from rich.console import Console
    from rich.segment import Segment

    from coworld_pipeline.runtime.base import ResourceLimits

    console: Console
    err_console: Console

# Piped or redirected output is read by tools and people scrolling a file, not an 80-column terminal:
# keep table rows whole there (COLUMNS, when set, still wins).
_WIDTH = None if (sys.stdout is not None and sys.stdout.isatty()) or "COLUMNS" in os.environ else 160


_consoles: dict[bool, Console] = {}
_consoles_lock = threading.Lock()

# C0 controls but newline and tab, DEL, and C1 controls (0x9b is a one-byte CSI on some terminals).
_CONTROLS = [*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0)]
_VISIBLE = {code: f"\\x{code:02x}" for code in _CONTROLS}


def visible_controls(text: str) -> str:
    """`text` with its control characters written out (ESC as `\\x1b`): printed, it cannot move the
    cursor, recolour, retitle or clear the reader's terminal."""
    return text.translate(_VISIBLE)


def _make_console(stderr: bool) -> Console:
    from rich.console import Console

    class TerminalSafeConsole(Console):
        """Names, descriptions, messages and logs come from manifests, policies and games: on a
        terminal their control characters are shown, not obeyed (Rich's own styling and cursor
        moves, which it keeps apart as styles and control segments, still work). Piped or
        redirected output is left byte for byte as it was, as `docker logs` does."""

        def _render_buffer(self, buffer: Iterable[Segment]) -> str:
            if self.is_terminal:
                buffer = [s if s.control else s._replace(text=visible_controls(s.text)) for s in buffer]
            return super()._render_buffer(buffer)

    # No emoji codes: a policy named `:fire:` is printed as typed (we print none of our own).
    return TerminalSafeConsole(stderr=stderr, highlight=False, emoji=False, width=_WIDTH)


def _console(stderr: bool) -> Console:
    """The Rich console for stdout or stderr, made on first use: importing Rich costs every command a
    few tens of milliseconds, and a `--json` run (what scripts and the league call) may not print
    through it at all."""
    with _consoles_lock:
        if stderr not in _consoles:
            _consoles[stderr] = _make_console(stderr)
        return _consoles[stderr]


def __getattr__(name: str) -> Any:
    """`console` and `err_console`, made when first imported or used (PEP 562)."""
    if name in ("console", "err_console"):
        return _console(stderr=name == "err_console")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def escape(text: str) -> str:
    """Rich's markup escape (`[` in user text prints as typed), imported when first needed."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


EXIT_FAILED = 1  # the thing ran and failed (episode, certification)
EXIT_USAGE = 2  # bad input: nothing was run or changed
EXIT_INTERRUPTED = 130

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


def print_json(data: Any) -> None:
    """`data` as strict JSON: NaN and infinities (a rating of a policy that never played, a statistic
    over no episodes) are null, since `NaN` is not JSON and strict parsers refuse the whole output."""
    try:
        text = json.dumps(data, indent=2, default=str, allow_nan=False)
    except ValueError:  # only when a non-finite float is present: the common case pays one pass
        text = json.dumps(_finite(data), indent=2, default=str, allow_nan=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(value) for value in data]
    return data


def fail_usage(message: str, as_json: bool = False, problems: list[dict[str, str]] | None = None) -> NoReturn:
    if as_json:
        print_json({"ok": False, "error": message, "problems": problems or []})
    else:
        # Messages quote user input (names, paths): escaped, so `[/]` in a name cannot break them.
        err_console = _console(stderr=True)
        err_console.print(f"[bold red]error:[/] {escape(message)}")
        for p in problems or []:
            err_console.print(f"  [red]-[/] [bold]{escape(p['path'])}[/]: {escape(p['message'])}")
    raise typer.Exit(EXIT_USAGE)


def usable_path(value: str | os.PathLike[str], what: str, as_json: bool = False) -> Path:
    """`value` as a path that can be looked at (it may not exist), or exit 2 naming why it cannot.

    `Path.is_dir()` and friends answer False for a missing path but raise for one the system refuses
    to look at (a name longer than the file system allows, a directory that may not be searched).
    """
    path = Path(value).expanduser()
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        fail_usage(f"{what} {shortened(str(value))}: {exc.strerror or exc}", as_json)
    return path


def output_directory(value: str | os.PathLike[str], what: str, as_json: bool = False) -> Path:
    """`value` as a directory to write into (made later when missing), or exit 2 before anything runs
    when it cannot be one: a file there or in the way, a name the system refuses."""
    path = _writable_place(value, what, as_json)
    if path.exists() and not path.is_dir():
        fail_usage(f"{what} {shortened(str(value))} is a file, not a directory", as_json)
    return path


# What a command writes, by its first bytes or its text: an existing file of that kind may be replaced,
# any other file is left alone (a mistyped `-o README.md` must not lose it).
_OUTPUT_KINDS = {"zip": "a zip archive", "json": "a JSON document"}
_JSON_REPLACE_LIMIT = 64 * 1024 * 1024


def output_file(value: str | os.PathLike[str], what: str, kind: str, as_json: bool = False) -> Path:
    """`value` as a file to write (`kind`: "zip" or "json"), or exit 2 before anything runs: a
    directory there, a file in the way of its parent, or an existing file of another kind."""
    path = _writable_place(value, what, as_json)
    if path.is_dir():
        fail_usage(f"{what} {shortened(str(value))} is a directory: give a file name", as_json)
    if (other := _not_a_regular_file(path)) is not None:
        # The file is written whole by renaming a new one over the path: that would replace a link
        # (`/dev/stdout`) or a device (`/dev/null`) with a plain file, not write through it.
        fail_usage(f"{what} {shortened(str(value))} is {other}: not replaced (give a file's path)", as_json)
    if path.exists() and not _is_kind(path, kind):
        fail_usage(
            f"{what} {shortened(str(value))} exists and is not {_OUTPUT_KINDS[kind]}: not replaced "
            "(remove it, or give another path)",
            as_json,
        )
    return path


def write_output(path: Path, data: bytes, what: str, as_json: bool = False) -> None:
    """Write `data` to `path` whole or not at all; a path the system refuses is exit 2 naming it."""
    try:
        write_whole(path, data)
    except OSError as exc:
        fail_usage(f"cannot write {what} {shortened(str(path))}: {exc.strerror or exc}", as_json)


def _writable_place(value: str | os.PathLike[str], what: str, as_json: bool) -> Path:
    path = usable_path(value, what, as_json)
    for parent in path.absolute().parents:  # the nearest existing ancestor must be a directory
        if parent.exists():
            if not parent.is_dir():
                fail_usage(f"{what} {shortened(str(value))}: {parent} is a file, not a directory", as_json)
            break
    return path


def _not_a_regular_file(path: Path) -> str | None:
    """What `path` is when it exists and is not a regular file (None: absent, or a regular file)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    from coworld_pipeline.contract.bounded_io import file_kind

    return file_kind(mode)


def _is_kind(path: Path, kind: str) -> bool:
    try:
        if path.stat().st_size == 0:
            return True  # nothing to lose
        if kind == "zip":
            with path.open("rb") as fh:
                return fh.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
        if path.stat().st_size > _JSON_REPLACE_LIMIT:
            return False
        json.loads(path.read_bytes())
        return True
    except (OSError, ValueError):
        return False


def limits_or_exit(
    game_cpus: float, game_memory: str, player_cpus: float, player_memory: str, pids: int, as_json: bool
) -> dict[str, ResourceLimits]:
    """The container limits of the options, or exit 2 naming each option no container can run with."""
    from coworld_pipeline.runtime.base import LimitsError, role_limits

    try:
        return role_limits(game_cpus, game_memory, player_cpus, player_memory, pids)
    except LimitsError as exc:
        problems = [{"path": _limit_setting(key), "message": why} for key, why in exc.problems.items()]
        fail_usage("the container limits cannot be used", as_json, problems)


def _limit_setting(key: str) -> str:
    """Where a limit was set: its option, or its environment variable (COWORLD_GAME_MEMORY for
    game_memory) when the command line does not give the option, so the error names what to fix."""
    option = "--" + key.replace("_", "-")
    given = any(arg == option or arg.startswith(option + "=") for arg in sys.argv[1:])
    envvar = "COWORLD_" + key.upper()
    return envvar if not given and envvar in os.environ else option


def fail_contract(exc: ContractError, as_json: bool = False) -> NoReturn:
    fail_usage(f"{exc.subject} is invalid", as_json, [p.as_dict() for p in exc.problems])


def parse_env_pairs(pairs: list[str], option: str, as_json: bool = False) -> dict[str, str]:
    """KEY=VALUE pairs; the error names the option and the key, never the value (it may be secret)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:  # the whole argument may be a secret value given without its key: not echoed
            fail_usage(f"{option} expects KEY=VALUE: an argument has no '='", as_json)
        if not key or not key.replace("_", "").isalnum() or key[0].isdigit():
            fail_usage(
                f"{option} expects KEY=VALUE with an identifier KEY (got key {shortened(key)!r})", as_json
            )
        out[key] = value
    return out
