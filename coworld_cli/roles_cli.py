"""Episode knowledge commands: bundle, report, grade, diagnose, episode-stats.

EPISODE is a local `coworld run-episode` output directory, or else a league episode id whose
workspace the league service knows. The roles run on `--runtime` (docker by default, as episodes)
with the manifest's own runnables (`--manifest`, else the `coworld_manifest.json` next to a
run-episode `results/` directory), or the built-in defaults (`--reporter default`, and whenever no
manifest is found). Outputs land in `-o DIR` (default `$COWORLD_HOME/roles/<episode>/<role>-<id>`).

Player logs in bundles follow CONTRACT §7: a local directory is yours, so every slot's log is included;
for a league episode only the slots given with `--slot` (or all with `--operator`).
Exit codes: 0 success, 1 the role failed (its logs are kept), 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from coworld_cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    JSON_OPTION,
    console,
    err_console,
    fail_usage,
    output_directory,
    output_file,
    print_json,
    usable_path,
)

DB_OPTION = typer.Option(None, "--db", envvar="COWORLD_DATABASE_URL", help="League database URL.")
HOME_OPTION = typer.Option(None, "--home", envvar="COWORLD_HOME", help="Platform home (default ~/.coworld).")
RUNTIME_OPTION = typer.Option(
    None, "--runtime", envvar="COWORLD_RUNTIME", help="Where roles run: docker | process (default docker)."
)
MANIFEST_OPTION = typer.Option(
    None, "--manifest", "-m", help="The Coworld manifest whose role runnables to use."
)
OUTPUT_OPTION = typer.Option(None, "--output-dir", "-o", help="Run directory of the role.")
TIMEOUT_OPTION = typer.Option(300.0, "--timeout", min=1, help="Seconds before the role is stopped.")


@dataclass(frozen=True)
class Episode:
    directory: Path
    episode_id: str | None  # league episodes: the ereq id
    local: bool  # a run-episode directory of this machine: every player log is the caller's
    # League episodes: their coworld's stored manifest and the directory it was uploaded from.
    manifest_json: dict[str, Any] | None = None
    source_dir: str | None = None


SHOWN_FIELD_CHARS = 300  # per field of a grade in the human output (--json and grade.json have all)

# What `run-episode -o DIR` always leaves in DIR (an episode that failed early has only error_info.json
# and episode.json): a directory with none of them is not an episode, whatever else it holds.
EPISODE_MARKERS = ("episode.json", "results.json", "error_info.json", "replay.json", "replay.json.z")


def resolve_episode(ref: str, db: str | None, home: str | None, as_json: bool) -> Episode:
    if not ref.strip():
        fail_usage("the episode is empty: give a run-episode -o directory or a league episode id", as_json)
    path = usable_path(ref, "episode", as_json)
    if path.is_dir():
        if not any((path / name).is_file() for name in EPISODE_MARKERS):
            fail_usage(
                f"{ref} is not an episode directory: it has none of {', '.join(EPISODE_MARKERS)} "
                "(give a run-episode -o directory or a league episode id)",
                as_json,
            )
        return Episode(path.resolve(), None, True)
    if path.exists():
        fail_usage(f"{ref} is a file, not an episode directory or a league episode id", as_json)
    try:
        from coworld_cli.league.session import may_create
        from coworld_pipeline.league import reads
        from coworld_pipeline.league.errors import LeagueError
        from coworld_pipeline.league.service import LeagueService

        service = LeagueService(database_url=db, home=Path(home) if home else None, create=may_create(db))
        try:
            view = service.episode(ref)
            directory = Path(view.workspace)
            manifest_json, source_dir = service.store.read(lambda s: reads.league_manifest(s, view.league_id))
        finally:
            service.close()  # the role runs for minutes: no database connection held open meanwhile
    except LeagueError as exc:
        fail_usage(f"{ref} is neither an episode directory nor a known league episode ({exc})", as_json)
    except Exception as exc:  # a missing/unreadable database is bad input here, not a traceback
        fail_usage(f"{ref} is not a directory, and the league database cannot be read: {exc}", as_json)
    if not Path(directory).is_dir():
        fail_usage(f"league episode {ref} has no workspace at {directory} (not played yet?)", as_json)
    return Episode(Path(directory), Path(directory).name, False, manifest_json, source_dir)


def _slots_or_exit(slots: list[int], as_json: bool) -> frozenset[int]:
    if any(s < 0 for s in slots):
        fail_usage("--slot must be 0 or more", as_json)
    return frozenset(slots)


def _make_bundle(
    episode: Episode, dest: Path, include: Any, slots: frozenset[int], operator: bool, as_json: bool
) -> Any:
    from coworld_pipeline.runtime.bundles import BundleRequest, BundleSource, episode_slot_count, write_bundle

    try:
        source = BundleSource.local(episode.directory, episode.episode_id)
        count = episode_slot_count(source) if slots else None
        if count is not None and max(slots) >= count:  # it would be left out without a word
            fail_usage(f"--slot {max(slots)} is out of range: the episode has {count} slots", as_json)
        request = BundleRequest(source, include, owned_slots=slots, operator=operator or episode.local)
        return write_bundle(request, dest)
    except (FileNotFoundError, OSError, ValueError) as exc:
        fail_usage(f"cannot bundle {episode.directory}: {exc}", as_json)


def _manifest(episode: Episode, ref: str | None, as_json: bool) -> tuple[Any, Path | None]:
    from coworld_pipeline.contract.manifest import MANIFEST_FILENAME, load_manifest, manifest_dir
    from coworld_pipeline.contract.problems import ContractError

    candidate: str | None = ref
    if candidate is None:
        beside = episode.directory.parent / MANIFEST_FILENAME  # run-episode's default <manifest dir>/results
        candidate = str(beside) if beside.is_file() else None
    if candidate is None and episode.manifest_json is not None:  # a league episode: its coworld's own
        from coworld_pipeline.contract import parse_manifest

        source = Path(episode.source_dir) if episode.source_dir else None
        return parse_manifest(episode.manifest_json, source="the league's coworld manifest"), source
    if candidate is None:
        return None, None
    try:
        return load_manifest(candidate), manifest_dir(candidate)
    except ContractError as exc:
        fail_usage(f"{exc.subject} is invalid", as_json, [p.as_dict() for p in exc.problems])


def _run_dir(episode: Episode, kind: str, runnable_id: str, output: Path | None, as_json: bool) -> Path:
    if output is not None:
        return output_directory(output, "--output-dir", as_json).resolve()
    from coworld_pipeline.home import platform_home

    key = episode.episode_id
    if key is None:
        digest = hashlib.sha1(str(episode.directory).encode()).hexdigest()[:10]
        key = f"{episode.directory.name}-{digest}"
    return platform_home() / "roles" / key / f"{kind}-{runnable_id}"


def run_role_command(
    kind: str,
    episode_ref: str,
    role_ref: str | None,
    manifest_ref: str | None,
    runtime_name: str | None,
    output: Path | None,
    timeout: float,
    db: str | None,
    home: str | None,
    as_json: bool,
    target_slot: int | None = None,
) -> Any:
    """Resolve everything, bundle the episode, run the role; exits 1/130 on failure, 2 on bad input."""
    from coworld_pipeline.runtime import RUNTIMES, make_runtime
    from coworld_pipeline.runtime.errors import EpisodeFailure
    from coworld_pipeline.runtime.roles import (
        DiagnoseRequest,
        GradeRequest,
        ReportRequest,
        RoleOptions,
        is_episode_workspace,
        resolve_role,
        run_role,
    )
    from coworld_pipeline.runtime.signals import Terminated

    episode = resolve_episode(episode_ref, db, home, as_json)
    manifest, base_dir = _manifest(episode, manifest_ref, as_json)
    try:
        runnable = resolve_role(kind, manifest, role_ref)  # type: ignore[arg-type]
    except ValueError as exc:
        hint = "" if manifest is not None else " (no manifest found: give --manifest)"
        fail_usage(f"{exc}{hint}", as_json)
    if manifest is None and not as_json:
        err_console.print(f"[dim]no manifest found: running the built-in default {kind}[/]")
    name = runtime_name or "docker"
    if name not in RUNTIMES:
        fail_usage(f"--runtime must be one of {', '.join(RUNTIMES)} (got {name!r})", as_json)
    try:
        runtime = make_runtime(name, base_dir=base_dir)
    except EpisodeFailure as exc:
        fail_usage(exc.message, as_json)
    run_dir = _run_dir(episode, kind, runnable.id, output, as_json)
    if run_dir == episode.directory or episode.directory in run_dir.parents:
        fail_usage(f"-o {run_dir} is inside the episode directory: roles never write there", as_json)
    if is_episode_workspace(run_dir):  # another episode's: run_role would refuse it with a ValueError
        fail_usage(f"-o {run_dir} is an episode directory: roles never write there", as_json)
    with tempfile.TemporaryDirectory(prefix="coworld-bundle-") as tmp:
        slots = frozenset({target_slot}) if target_slot is not None else frozenset()
        # Refuses a --slot the episode does not have (the same count run_role checks against).
        bundle = _make_bundle(episode, Path(tmp) / "bundle.zip", None, slots, False, as_json)
        if kind == "reporter":
            request: Any = ReportRequest(bundle.path, runnable)
        elif kind == "grader":
            request = GradeRequest(bundle.path, runnable)
        else:
            request = DiagnoseRequest(bundle.path, runnable, target_slot=target_slot)
        try:
            outcome = run_role(request, run_dir, runtime, RoleOptions(timeout_seconds=timeout))
        except (KeyboardInterrupt, Terminated):
            where = escape(str(run_dir))
            err_console.print(f"[bold red]interrupted[/]: everything was removed; logs are in {where}")
            raise typer.Exit(EXIT_INTERRUPTED) from None
    if not outcome.ok:
        if as_json:
            print_json({"ok": False, **outcome.summary()})
        else:
            err_console.print(
                f"[bold red]{kind} {escape(outcome.runnable_id)} failed[/]: {escape(str(outcome.error))}"
            )
            err_console.print(f"logs kept in: {outcome.logs_dir}", markup=False)
        raise typer.Exit(EXIT_FAILED)
    return outcome


def _zip_text(path: Path, member: str | None) -> str | None:
    if member is None:
        return None
    with zipfile.ZipFile(path) as archive:
        return archive.read(member).decode("utf-8", errors="replace")


def _printed_json(outcome: Any, as_json: bool) -> bool:
    """Print the outcome for tools (and say so), or its headline for people."""
    if as_json:
        print_json({"ok": True, **outcome.summary()})
        return True
    source = "built-in" if outcome.builtin else "manifest"
    took = f"{outcome.wall_seconds:.2f}s"
    console.print(f"[bold green]{outcome.kind}[/] {escape(outcome.runnable_id)} ({source}) in {took}")
    return False


# ---- commands ------------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    @app.command()
    def bundle(
        episode: str = typer.Argument(..., help="run-episode output directory or league episode id."),
        output: Path = typer.Option(..., "--output", "-o", help="Where to write the zip."),
        include: list[str] = typer.Option(
            None, "--include", help="Tokens (repeatable or comma-separated); default: all permitted."
        ),
        slot: list[int] = typer.Option(None, "--slot", help="Include the player log of this slot."),
        operator: bool = typer.Option(False, "--operator", help="Include every slot's player log."),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Write an episode bundle (CONTRACT §7): the zip roles read, with its manifest.json."""
        from coworld_pipeline.runtime.bundles import parse_include

        try:
            tokens = parse_include(include or None)
        except ValueError as exc:
            fail_usage(str(exc), as_json)
        slots = _slots_or_exit(slot or [], as_json)
        output = output_file(output, "--output", "zip", as_json)
        ep = resolve_episode(episode, db, home, as_json)
        made = _make_bundle(ep, output, tokens, slots, operator, as_json)
        if as_json:
            info = {"ok": True, "path": str(made.path), "size": made.size, "sha256": made.sha256}
            print_json({**info, "dropped": list(made.dropped), "manifest": made.manifest})
            return
        wrote = escape(str(made.path))
        console.print(f"[bold green]wrote[/] {wrote} ({made.size} bytes, {made.status} episode)")
        console.print(f"included: {', '.join(made.manifest['include']) or 'nothing'}", markup=False)
        if made.dropped:
            dropped = escape(", ".join(made.dropped))
            console.print(f"[yellow]not included[/] (absent or not permitted): {dropped}")

    @app.command()
    def report(
        episode: str = typer.Argument(..., help="run-episode output directory or league episode id."),
        reporter: str = typer.Option(None, "--reporter", help="Reporter id in the manifest, or 'default'."),
        manifest: str = MANIFEST_OPTION,
        runtime: str = RUNTIME_OPTION,
        output: Path = OUTPUT_OPTION,
        timeout: float = TIMEOUT_OPTION,
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Run a reporter: a report zip (rendered here) and the stats parquet."""
        outcome = run_role_command(
            "reporter", episode, reporter, manifest, runtime, output, timeout, db, home, as_json
        )
        if _printed_json(outcome, as_json):
            return
        console.print(f"report: {outcome.outputs['report']}", markup=False)
        if "stats" in outcome.outputs:
            console.print(f"stats:  {outcome.outputs['stats']} ({outcome.stats_rows} rows)", markup=False)
        text = _zip_text(outcome.outputs["report"], outcome.report.render)
        if text is not None:
            console.print()
            console.print(escape(text))

    @app.command()
    def grade(
        episode: str = typer.Argument(..., help="run-episode output directory or league episode id."),
        grader: str = typer.Option(None, "--grader", help="Grader id in the manifest, or 'default'."),
        manifest: str = MANIFEST_OPTION,
        runtime: str = RUNTIME_OPTION,
        output: Path = OUTPUT_OPTION,
        timeout: float = TIMEOUT_OPTION,
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Run a grader: one finite score for the episode (its meaning is the grader's)."""
        outcome = run_role_command(
            "grader", episode, grader, manifest, runtime, output, timeout, db, home, as_json
        )
        if _printed_json(outcome, as_json):
            return
        console.print(f"[bold]score {outcome.score:g}[/]")
        for key, value in sorted(outcome.grade.items()):
            if key not in ("score", "grader_id"):
                text = json.dumps(value)  # a grader may write megabytes: the terminal gets a line
                shown = (
                    text
                    if len(text) <= SHOWN_FIELD_CHARS
                    else f"{text[:SHOWN_FIELD_CHARS]}… ({len(text):,} chars)"
                )
                console.print(f"  {escape(str(key)[:SHOWN_FIELD_CHARS])}: {escape(shown)}")

    @app.command()
    def diagnose(
        episode: str = typer.Argument(..., help="run-episode output directory or league episode id."),
        slot: int = typer.Option(..., "--slot", min=0, help="The slot (policy seat) to diagnose."),
        diagnoser: str = typer.Option(
            None, "--diagnoser", help="Diagnoser id in the manifest, or 'default'."
        ),
        manifest: str = MANIFEST_OPTION,
        runtime: str = RUNTIME_OPTION,
        output: Path = OUTPUT_OPTION,
        timeout: float = TIMEOUT_OPTION,
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Run a diagnoser on one slot: advice for the author of the policy in that seat."""
        outcome = run_role_command(
            "diagnoser", episode, diagnoser, manifest, runtime, output, timeout, db, home, as_json, slot
        )
        if _printed_json(outcome, as_json):
            return
        path = outcome.outputs["diagnosis"]
        console.print(f"advice: {path}", markup=False)
        diagnosis = outcome.diagnosis
        if diagnosis.kind == "zip":
            render = diagnosis.manifest.get("render")
            names = set(diagnosis.names)
            member = (
                render if render in names else next((n for n in diagnosis.names if n.endswith(".md")), None)
            )
            text = _zip_text(path, member)
        else:
            text = "\n".join(f"- {item}" for item in diagnosis.document.get("advice") or [])
        if text:
            console.print()
            console.print(escape(text))

    @app.command("episode-stats")
    def episode_stats(
        episode: str = typer.Argument(..., help="run-episode output directory or league episode id."),
        reporter: str = typer.Option(None, "--reporter", help="Reporter id in the manifest, or 'default'."),
        key: list[str] = typer.Option(None, "--key", help="Only rows with this key (repeatable)."),
        player: int = typer.Option(None, "--player", min=-1, help="Only rows of this slot (-1: global)."),
        limit: int = typer.Option(50, "--limit", min=0, help="Rows shown (0: all); --json prints all."),
        manifest: str = MANIFEST_OPTION,
        runtime: str = RUNTIME_OPTION,
        output: Path = OUTPUT_OPTION,
        timeout: float = TIMEOUT_OPTION,
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """The reporter's event log (ts, player, key, value) as a table."""
        if player is not None and player >= 0:  # checked before the reporter runs for a minute
            from coworld_pipeline.runtime.bundles import BundleSource, episode_slot_count

            count = episode_slot_count(
                BundleSource.local(resolve_episode(episode, db, home, as_json).directory)
            )
            if count is not None and player >= count:
                fail_usage(f"--player {player} is out of range: the episode has {count} slots", as_json)
        outcome = run_role_command(
            "reporter", episode, reporter, manifest, runtime, output, timeout, db, home, as_json
        )
        if "stats" not in outcome.outputs:
            fail_usage(f"reporter {outcome.runnable_id} wrote no event log", as_json)
        import pyarrow.parquet as pq

        rows = pq.read_table(outcome.outputs["stats"]).to_pylist()
        rows = [r for r in rows if (not key or r["key"] in key) and (player is None or r["player"] == player)]
        if as_json:
            print_json(rows)
            return
        from rich.table import Table

        shown = rows if limit == 0 else rows[:limit]
        table = Table("ts", "player", "key", "value", title=f"event log of {escape(outcome.runnable_id)}")
        for r in shown:
            table.add_row(str(r["ts"]), str(r["player"]), escape(r["key"]), escape(r["value"]))
        console.print(table)
        if len(shown) < len(rows):
            console.print(
                f"[dim]{len(shown)} of {len(rows)} rows (--limit 0 for all, --json for every row)[/]"
            )
