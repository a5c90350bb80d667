"""Entry point of the `coworld` command."""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import sys
import threading
from typing import NoReturn

import typer

from coworld_pipeline.runtime import signals

# Pydantic looks for plugins among the entry points of every installed distribution when it builds
# the first model (~20 ms of each command's start-up); the CLI uses none. An explicit setting wins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

app = typer.Typer(
    name="coworld",
    help="Run Coworld episodes and leagues on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each command group is imported only when one of its commands runs (both for --help): the episode
# group pulls in the runtime stack, the league group SQLAlchemy and the league service, and start-up
# time is most of what a short command costs.
EPISODE_COMMANDS = {
    *("validate", "schema", "run-episode", "play", "certify", "replay", "janitor"),
    *("build", "convert"),  # coworld_cli/package_cli.py, registered by the episode group
}
# Episode knowledge (bundles and supporting roles): coworld_cli/roles_cli.py.
ROLE_COMMANDS = {"bundle", "report", "grade", "diagnose", "episode-stats"}
# League knowledge: coworld_cli/knowledge_cli.py (`league stats` joins the league group).
KNOWLEDGE_COMMANDS = {"optimize"}
SERVE_COMMANDS = {"serve"}  # coworld_cli/serve_cli.py: the replay and live-game web app


def register_episode_commands() -> None:
    from coworld_cli import episode_cli

    episode_cli.register(app)


def register_role_commands() -> None:
    from coworld_cli import roles_cli

    roles_cli.register(app)


def register_knowledge_commands() -> None:
    from coworld_cli import knowledge_cli

    knowledge_cli.register(app)


def register_serve_commands() -> None:
    from coworld_cli import serve_cli

    serve_cli.register(app)


def register_league_commands() -> None:
    from coworld_cli import league

    league.register(app)


def json_usage_errors(args: list[str]) -> None:
    """With `--json`, a command-line error that Click finds before any command runs (an option out
    of range, a missing argument) is printed as JSON on stdout like every other error, not as Rich's
    usage box; the exit code stays 2."""
    if "--json" not in (args[: args.index("--")] if "--" in args else args):
        return
    from typer import rich_utils

    from coworld_cli.output import print_json

    def as_json(error: Exception) -> None:
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        print_json({"ok": False, "error": message, "problems": []})

    rich_utils.rich_format_error = as_json  # typer.core looks it up at each error


# Options that name where a command writes. Click turns `-o ''` into Path('.'): the current directory,
# which a command then fills with an episode's files; an empty value is almost always an unset variable.
OUTPUT_OPTIONS = ("-o", "--output", "--output-dir", "--download-dir", "-d")


def empty_output_option(args: list[str]) -> str | None:
    """The first output option given an empty value (`-o ''`, `--output=`), or None."""
    for i, arg in enumerate(args):
        if arg == "--":
            return None
        if arg in OUTPUT_OPTIONS and i + 1 < len(args) and args[i + 1] == "":
            return arg
        if arg.startswith("--") and arg.endswith("=") and arg[:-1] in OUTPUT_OPTIONS:
            return arg[:-1]
    return None


def main() -> None:
    signals.install()
    for name in ("stdout", "stderr"):  # started with the stream closed (`>&-`): output goes nowhere
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - open for the process's life
    json_usage_errors(sys.argv[1:])
    if (option := empty_output_option(sys.argv[1:])) is not None:
        from coworld_cli.output import fail_usage

        try:
            fail_usage(f"{option} must not be empty (an unset shell variable?)", "--json" in sys.argv[1:])
        except typer.Exit as exc:
            exit_now(exc.exit_code)
    command = sys.argv[1] if len(sys.argv) > 1 else None
    if command is None or command.startswith("-") or command in EPISODE_COMMANDS:
        register_episode_commands()
    # With a lone command Typer would run it without its name: `optimize` comes with the role group.
    if command is None or command.startswith("-") or command in ROLE_COMMANDS | KNOWLEDGE_COMMANDS:
        register_role_commands()
    if command is None or command.startswith("-") or command in KNOWLEDGE_COMMANDS:
        register_knowledge_commands()
    # `serve` comes with the league group (a lone command would run without its name).
    if command is None or command.startswith("-") or command in SERVE_COMMANDS:
        register_serve_commands()
    others = EPISODE_COMMANDS | ROLE_COMMANDS | KNOWLEDGE_COMMANDS
    if command is None or command.startswith("-") or command not in others:
        register_league_commands()
    try:
        app(prog_name="coworld")
    except SystemExit as exc:
        exit_now(exc.code)
    except BrokenPipeError:  # `coworld results x | head -1`: the reader has what it wanted
        _quiet_stdout()
        exit_now(1)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EIO, errno.EBADF, errno.EDQUOT):
            raise
        # Writing the output failed (`> /dev/full`, a full disk): say so in one line.
        _quiet_stdout()
        print(f"coworld: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        exit_now(1)
    except (signals.Terminated, KeyboardInterrupt):  # a signal outside a command's own handling
        print("coworld: interrupted", file=sys.stderr)
        exit_now(130)  # as every command that handles it exits (README: CLI interrupted)
    exit_now(0)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null: its buffer still holds what could not be written, and flushing it at
    exit would fail again (Python then prints "Exception ignored ...")."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def exit_now(code: object) -> NoReturn:
    """Exit as the interpreter would, minus tearing down every module (~0.1 s with ours loaded).

    What the interpreter does first at exit still happens, in its order: non-daemon threads are
    joined (with the executors' exit hooks), atexit callbacks run (temporary directories and other
    finalizers included) and the standard streams are flushed. Only the module teardown and final
    garbage collection, which nothing here depends on, are skipped.
    """
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # SystemExit("message"): print it and fail, as Python does
        print(code, file=sys.stderr)
        status = 1
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
