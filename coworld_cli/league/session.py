"""Opening the league service for one command, and turning what goes wrong into one clear line.

Bad input (an unknown league, an invalid manifest, an empty id, a wrong secret key) prints one line
(plus each problem path of an invalid manifest) and exits 2: nothing was changed. A database that
fails prints `database error: ...` and exits 1. Neither ever shows a traceback.

SQLAlchemy and the service are imported only when a command opens the service: `coworld results`
answers from `standings_reader` without them, and its start-up time is most of what it costs.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from coworld_cli.output import EXIT_FAILED, err_console, fail_usage, print_json, shortened

if TYPE_CHECKING:
    from coworld_pipeline.league.service import LeagueService
    from coworld_pipeline.league.views import DivisionStandings


def reject_empty(as_json: bool, refs: dict[str, str | None]) -> None:
    """An id or name given as "" is a mistake (often an unset shell variable), never "all of them"."""
    for what, value in refs.items():
        if value is not None and not value.strip():
            fail_usage(f"{what} must not be empty (an unset shell variable?)", as_json)


def refuse_filters_with_id(what: str, given: str | None, filters: dict[str, object], as_json: bool) -> None:
    """Filters narrow a listing; beside one id they would be ignored, and the row shown whether or
    not it matches (`episodes X.r1.e1 --status failed` showing a succeeded episode)."""
    if given is None:
        return
    used = [option for option, value in filters.items() if value not in (None, False, 0)]
    if used:
        fail_usage(f"{used[0]} filters a listing: it cannot be combined with {what}", as_json)


def check_status(option: str, value: str | None, allowed: type[StrEnum], as_json: bool) -> None:
    """A status filter must name a status: a misspelt one matches nothing, and an empty table with
    exit 0 reads as "there are none"."""
    choices = [str(member) for member in allowed]
    if value is not None and value.strip() and value not in choices:
        fail_usage(f"{option}: unknown status {shortened(value)!r} (choose: {' | '.join(choices)})", as_json)


@contextlib.contextmanager
def league_service(
    db: str | None,
    home: str | None,
    as_json: bool,
    refs: dict[str, str | None] | None = None,
    *,
    creates: bool = False,
) -> Iterator[LeagueService]:
    """The service for one command; `refs` (label -> value) are checked to be non-empty first.

    `creates`: the command can start a league database (an upload). Others refuse an SQLite file
    that does not exist when the database was named (--db, COWORLD_DATABASE_URL): there it is most
    likely a typo, and an empty listing would say "nothing here". The home's default database is
    created by any command, as on a new machine.
    """
    reject_empty(as_json, {**(refs or {}), "--home": home, "--db": db})
    from sqlalchemy.exc import SQLAlchemyError

    from coworld_pipeline.contract.commissioner import CommissionerProtocolError
    from coworld_pipeline.contract.problems import ContractError
    from coworld_pipeline.league.errors import LeagueError
    from coworld_pipeline.league.secrets import SecretKeyError

    svc = None
    try:
        # Imported here: its modules read settings when they load (claims.py: COWORLD_LEASE_SECONDS),
        # and a bad one is a LeagueError like any other bad input.
        from coworld_pipeline.league.service import LeagueService

        svc = open_service(LeagueService, db, home, as_json, creates)
        yield svc
    except LeagueError as exc:
        fail_usage(str(exc), as_json, exc.problems)
    except (ContractError, CommissionerProtocolError) as exc:
        fail_usage(f"{exc.subject} is invalid", as_json, [p.as_dict() for p in exc.problems])
    except SecretKeyError as exc:
        fail_usage(str(exc), as_json)
    except SQLAlchemyError as exc:
        fail_database(str(getattr(exc, "orig", None) or exc), as_json)
    finally:
        if svc is not None:
            svc.close()


def may_create(db: str | None, creates: bool = False) -> bool:
    """Whether opening the league database may create it: always for a command that `creates` one (an
    upload), else only the home's default database (a named one that is missing is most likely a typo)."""
    return creates or not (db or os.environ.get("COWORLD_DATABASE_URL"))


def open_service(
    cls: type[LeagueService], db: str | None, home: str | None, as_json: bool, creates: bool
) -> LeagueService:
    """The service on `home` and `db`; a home or database file the system refuses (a file in the way,
    a name too long, no permission to create it) is bad input naming it, not a traceback, and so is
    an in-memory SQLite database (gone when the command exits, with everything it was told)."""
    from coworld_pipeline.league.location import is_sqlite, league_location, sqlite_path

    home_dir, url = league_location(db, home)  # paths only: nothing is created or opened yet
    database = Path(sqlite_path(url).partition("?")[0]) if is_sqlite(url) else None
    if database is not None and str(database) in ("", ".", ":memory:"):
        fail_usage(
            "the league database URL names an in-memory SQLite database, which is gone when the "
            "command exits: give sqlite:///PATH",
            as_json,
        )
    try:
        return cls(database_url=db, home=Path(home) if home else None, create=may_create(db, creates))
    except OSError as exc:
        # mkdir(exist_ok=True) on a file says "File exists": the problem is that it is no directory
        reason = "not a directory" if exc.errno == errno.EEXIST else exc.strerror or str(exc)
        failed = Path(exc.filename) if isinstance(exc.filename, str) else None
        if failed is not None and database is not None and failed not in (home_dir, *home_dir.parents):
            fail_usage(f"cannot use the league database file {shortened(str(database))}: {reason}", as_json)
        where = str(home) if home else f"{home_dir} (COWORLD_HOME or the default)"
        fail_usage(f"cannot use the league home {shortened(where)}: {reason}", as_json)


def fail_database(detail: str, as_json: bool) -> NoReturn:
    """The database itself failed (unreachable, locked, corrupt): exit 1, first line of the message."""
    message = (detail.strip().splitlines() or ["(no message)"])[0]
    if as_json:
        print_json({"ok": False, "error": f"database error: {message}"})
    else:
        err_console.print("[bold red]database error:[/] ", end="")
        err_console.print(message, markup=False)
    raise typer.Exit(EXIT_FAILED) from None


def quick_standings(
    db: str | None, home: str | None, target: str, as_json: bool
) -> list[DivisionStandings] | None:
    """Standings through the database driver, without the service; None: ask the service instead."""
    from coworld_pipeline.league.errors import NotFound
    from coworld_pipeline.league.location import league_location
    from coworld_pipeline.league.standings_reader import read_standings

    _, url = league_location(db, home)
    try:
        return read_standings(url, target)
    except NotFound as exc:
        fail_usage(str(exc), as_json)
