"""`--secret-env` and `--secret-env-file`: secret variables for player processes, kept out of `ps`.

Three ways to give a secret, for every command that takes one (run-episode, play, upload-policy):

* `--secret-env KEY` takes the value from the caller's environment (`API_KEY=... coworld ...` or an
  exported variable). The variable is then removed from the CLI's own environment, so that runnables
  started on the host (the process runtime) do not inherit it: only the players are given it.
* `--secret-env-file PATH` reads `KEY=VALUE` lines (blank lines and `#` comments allowed, an optional
  `export ` prefix, one pair of matching quotes around a value removed).
* `--secret-env KEY=VALUE` still works, but the value is then part of the command line: other users
  see it in `ps` and it lands in shell history.

Errors name the option, the file and line, and the key, never a value: exit 2, nothing run or stored.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import MutableMapping
from pathlib import Path
from typing import Annotated

import typer

from coworld_cli.output import fail_usage

SECRET_ENV_HELP = (
    "Secret for player processes only (repeatable): KEY takes the value from your environment; "
    "KEY=VALUE also works but shows in `ps` and shell history."
)
SECRET_ENV_FILE_HELP = "File of secret KEY=VALUE lines for player processes (# comments, blank lines ok)."

SecretEnv = Annotated[
    list[str] | None, typer.Option("--secret-env", metavar="KEY[=VALUE]", help=SECRET_ENV_HELP)
]
SecretEnvFile = Annotated[
    list[Path] | None, typer.Option("--secret-env-file", metavar="PATH", help=SECRET_ENV_FILE_HELP)
]

MAX_SECRET_FILE_BYTES = 1 << 20  # a secrets file is a few lines; anything larger is the wrong file
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# A conventional variable name (upper case). Only such a name is echoed in an error: an argument that
# is not one may be a secret value pasted where its name belongs, and an error must not print it.
_SHOWABLE_KEY = re.compile(r"[A-Z_][A-Z0-9_]*\Z")


def _shown(key: str) -> str:
    return repr(key) if _SHOWABLE_KEY.match(key) else "(not shown: it may be a value)"


def _parse_arguments(pairs: list[str], environ: MutableMapping[str, str], as_json: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for position, pair in enumerate(pairs, 1):
        key, sep, value = pair.partition("=")
        where = f"--secret-env #{position}"
        if not _KEY.match(key):
            got = (
                f" (got {key!r})"
                if _SHOWABLE_KEY.match(key)
                else " (the argument is not shown: it may be a value)"
            )
            fail_usage(f"{where} expects KEY or KEY=VALUE with an identifier KEY{got}", as_json)
        if not sep:
            if key not in environ:
                fail_usage(
                    f"{where}: {_shown(key)} is not set in your environment "
                    f"(export it, give KEY=VALUE, or use --secret-env-file)",
                    as_json,
                )
            value = environ[key]
        if key in out:
            fail_usage(f"{where}: {key!r} is given twice", as_json)
        out[key] = value
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_secret_file(path: Path, as_json: bool = False) -> dict[str, str]:
    """`KEY=VALUE` lines of one file; every error names the file and the line number."""
    try:
        info = path.stat()
        size = info.st_size
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block the read, or never end
            fail_usage(f"--secret-env-file {path}: not a regular file", as_json)
        if size > MAX_SECRET_FILE_BYTES:
            fail_usage(
                f"--secret-env-file {path}: {size} bytes, more than a secrets file can be (1 MiB)", as_json
            )
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        fail_usage(f"--secret-env-file {path}: no such file", as_json)
    except IsADirectoryError:
        fail_usage(f"--secret-env-file {path}: is a directory, not a file", as_json)
    except UnicodeDecodeError:
        fail_usage(f"--secret-env-file {path}: not UTF-8 text", as_json)
    except OSError as exc:
        fail_usage(f"--secret-env-file {path}: cannot be read ({exc.strerror or exc})", as_json)
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        where = f"--secret-env-file {path} line {number}"
        if not sep:
            fail_usage(f"{where}: expected KEY=VALUE (no '=' on the line)", as_json)
        if not _KEY.match(key):
            fail_usage(f"{where}: the key {_shown(key)} is not an identifier (letters, digits, _)", as_json)
        if key in first_line:
            fail_usage(f"{where}: {key!r} is repeated (first on line {first_line[key]})", as_json)
        value = _unquote(value.strip())
        if "\0" in value:
            fail_usage(f"{where}: the value of {key!r} contains a NUL byte", as_json)
        first_line[key] = number
        out[key] = value
    return out


def resolve_secret_env(
    pairs: list[str] | None,
    files: list[Path] | None,
    as_json: bool = False,
    environ: MutableMapping[str, str] | None = None,
) -> dict[str, str]:
    """Every secret of `--secret-env-file` files and `--secret-env` arguments; a key given twice fails.

    Values taken from the environment are removed from it (see the module docstring).
    """
    env = os.environ if environ is None else environ
    merged: dict[str, str] = {}
    sources: dict[str, str] = {}
    for path in files or []:
        for key, value in parse_secret_file(path, as_json).items():
            if key in merged:
                fail_usage(
                    f"secret {key!r} is given twice ({sources[key]} and --secret-env-file {path})", as_json
                )
            merged[key], sources[key] = value, f"--secret-env-file {path}"
    from_arguments = _parse_arguments(pairs or [], env, as_json)
    for key, value in from_arguments.items():
        if key in merged:
            fail_usage(f"secret {key!r} is given twice ({sources[key]} and --secret-env)", as_json)
        merged[key] = value
    from coworld_pipeline.contract.os_limits import runnable_problems

    for key, value in merged.items():  # what the OS would refuse when the player starts: refused now
        for problem in runnable_problems([], {key: value}, "secrets"):
            fail_usage(f"secret {_shown(key)}: {problem.message}", as_json)
    for pair in pairs or []:
        if "=" not in pair:
            env.pop(pair, None)  # the host processes the CLI starts must not inherit it
    return merged
