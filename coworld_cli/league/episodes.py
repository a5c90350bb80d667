"""League episodes and their files: episodes, episode-results, episode-logs, replays, replay-open."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from coworld_cli.league import render
from coworld_cli.league.artifacts import EpisodeArtifacts
from coworld_cli.league.options import (
    AsJson,
    Db,
    Home,
    LeagueFilter,
    Offset,
    PolicyFilter,
    RoundFilter,
    Runtime,
    limit,
)
from coworld_cli.league.session import check_status, league_service, refuse_filters_with_id
from coworld_cli.output import (
    console,
    err_console,
    fail_usage,
    output_directory,
    output_file,
    print_json,
    visible_controls,
    write_output,
)
from coworld_pipeline.league.status import EpisodeStatus

if TYPE_CHECKING:
    from coworld_pipeline.league.views import EpisodeView

EpisodeId = Annotated[
    str,
    typer.Argument(
        help="Episode: LEAGUE.rN.eM (as the Dagster UI and events show it), rN.eM with --league, "
        "or its id (ereq_…)."
    ),
]


def episodes(
    episode_id: Annotated[
        str | None, typer.Argument(help="Show one episode: LEAGUE.rN.eM, rN.eM with --league, or ereq_….")
    ] = None,
    league: LeagueFilter = None,
    round_id: RoundFilter = None,
    policy: PolicyFilter = None,
    status: Annotated[str | None, typer.Option("--status", help=" | ".join(EpisodeStatus))] = None,
    with_replay: Annotated[bool, typer.Option("--with-replay", help="Only episodes with a replay.")] = False,
    max_rows: Annotated[int, limit(1000, "episodes")] = 200,
    offset: Offset = 0,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Episode requests: status, seed, seats, per-seat scores, error, replay."""
    refs = {"the episode id": episode_id, "--league": league, "--round": round_id, "--policy": policy}
    check_status("--status", status, EpisodeStatus, as_json)
    filters = {"--round": round_id, "--policy": policy, "--status": status, "--with-replay": with_replay}
    refuse_filters_with_id("an episode id", episode_id, {**filters, "--offset": offset}, as_json)
    with league_service(db, home, as_json, {**refs, "--status": status}) as svc:
        if episode_id is not None:
            rows = [svc.episode(episode_id, league)]
        else:
            rows = svc.episodes(
                league_ref=league,
                round_ref=round_id,
                policy_ref=policy,
                status=status,
                with_replay=with_replay,
                limit=max_rows,
                offset=offset,
            )
    if as_json:
        print_json(rows[0].to_json() if episode_id is not None else [e.to_json() for e in rows])
        return
    # Who played (league/play.py): for one episode, or when several workers shared the rows.
    workers = {(e.played_by or {}).get("worker") for e in rows if e.played_by}
    played_by = bool(workers) and (episode_id is not None or len(workers) > 1)
    render.table(
        "episodes",
        ["episode", "status", "variant", "seed", "seats", "scores", "attempts", "error", "replay"]
        + ["worker", "engine"] * played_by,
        [
            [
                e.key or e.id,
                e.status,
                e.variant_id,
                e.seed,
                render.seats(e),
                render.seat_scores(e),
                e.attempts,
                e.error_type,
                bool(e.replay_path),
            ]
            + [(e.played_by or {}).get("worker"), (e.played_by or {}).get("engine")] * played_by
            for e in rows
        ],
    )


def episode_results(
    episode_id: EpisodeId,
    league: LeagueFilter = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write results.json here.")] = None,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """The raw results.json of an episode (it is JSON either way)."""
    target = output_file(output, "--output", "json", as_json) if output else None
    with league_service(db, home, as_json, {"the episode id": episode_id, "--league": league}) as svc:
        files = EpisodeArtifacts.of(svc.episode(episode_id, league))
    data = files.read("results.json")
    if data is None:
        fail_usage(f"episode {episode_id} has no results.json (see `coworld episodes {episode_id}`)", as_json)
    try:
        parsed = files.parse_json("results.json", data)
    except ValueError as exc:  # a truncated or corrupt file: bad data, named, not a traceback
        fail_usage(str(exc), as_json)
    if target:
        write_output(target, data, "--output", as_json)
        render.line("wrote {}", str(target))
    else:
        print_json(parsed)


def _replay_or_fail(files: EpisodeArtifacts, episode_id: str, as_json: bool) -> bytes:
    """The episode's decompressed replay; exit 2 when it is absent or does not decompress."""
    try:
        data = files.replay_bytes()
    except ValueError as exc:  # InflateError: corrupt, truncated or a zlib bomb
        fail_usage(str(exc), as_json)
    if data is None:
        fail_usage(f"the replay of {episode_id} is neither on disk nor in the artifact store", as_json)
    return data


def _print_log(name: str, data: bytes, episode: EpisodeView) -> None:
    """A log as it is (stdout): piped or redirected byte for byte (Rich would drop BEL, CR and other
    controls), on a terminal with its control characters shown rather than obeyed; an empty one says
    so on stderr."""
    if data.strip():
        ending = b"" if data.endswith(b"\n") else b"\n"
        if sys.stdout.isatty():
            sys.stdout.write(visible_controls(data.decode(errors="replace")) + ending.decode())
        else:
            sys.stdout.flush()
            sys.stdout.buffer.write(data + ending)
        sys.stdout.flush()
        return
    err_console.print(f"{name} of {episode.key} is empty", markup=False)


def _print_failure(episode: EpisodeView, error: dict[str, Any] | None = None) -> None:
    """Why the episode (or the attempt of `error`) failed, on stderr after its log: a crashed
    player's log rarely says it."""
    error = episode.error if error is None else error
    if not error:
        return
    slot = error.get("slot")
    where = f" (slot {slot})" if slot is not None else ""
    message = str(error.get("message") or "").strip()
    blame = f" [blame: {error['blame']}]" if error.get("blame") else ""
    kind = error.get("error_type") or episode.error_type
    err_console.print(f"episode error: {kind}{where}: {message}{blame}", markup=False)


def _attempt_error(episode: EpisodeView, attempt: int | None) -> dict[str, Any] | None:
    """The error of an earlier attempt (None: the last attempt's is the episode's own)."""
    if attempt is None or attempt >= episode.attempts:
        return None
    found = [e for e in episode.attempt_errors if e.get("attempt") == attempt]
    return found[-1] if found else {}


def _no_logs(episode: EpisodeView, what: str, as_json: bool) -> NoReturn:
    name = episode.key or episode.id
    if episode.attempts == 0:
        reason = str((episode.error or {}).get("message") or "").strip()
        why = f": {reason}" if reason else ""
        fail_usage(f"{name} has no {what}: it was never played ({episode.status}{why})", as_json)
    fail_usage(f"no {what} for {name} (status {episode.status})", as_json)


def episode_logs(
    episode_id: EpisodeId,
    league: LeagueFilter = None,
    list_only: Annotated[bool, typer.Option("--list", help="List the available logs (default).")] = False,
    game: Annotated[bool, typer.Option("--game", help="Print the game's logs.")] = False,
    agent: Annotated[
        int | None, typer.Option("--agent", min=0, help="Print the log of this slot's player.")
    ] = None,
    attempt: Annotated[
        int | None,
        typer.Option(
            "--attempt", min=1, help="An earlier attempt's logs (1 = the first; default: the last attempt)."
        ),
    ] = None,
    download_dir: Annotated[
        str | None, typer.Option("--download-dir", "-d", help="Copy every log into this directory.")
    ] = None,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """List, print or download an episode's game and player logs (of its last attempt, or --attempt N)."""
    modes = {"--game": game, "--agent": agent is not None, "--download-dir": download_dir is not None}
    picked = [option for option, given in modes.items() if given]
    if len(picked) > 1 or (list_only and picked[:1] in (["--game"], ["--agent"])):
        # One of them would be ignored without a word (`-d DIR --game` printed, and copied nothing).
        second = picked[1] if len(picked) > 1 else "--list"
        fail_usage(
            f"{picked[0]} and {second} cannot be combined: print one log, or list or copy them all", as_json
        )
    out = output_directory(download_dir, "--download-dir", as_json) if download_dir else None
    with league_service(db, home, as_json, {"the episode id": episode_id, "--league": league}) as svc:
        episode = svc.episode(episode_id, league)
    name = episode.key or episode.id
    if attempt is not None and attempt > episode.attempts:
        played = f"1-{episode.attempts}" if episode.attempts else "none: it was never played"
        fail_usage(f"{name} has {episode.attempts} attempt(s): --attempt {played}", as_json)
    files = EpisodeArtifacts.of(episode, attempt)
    error = _attempt_error(episode, attempt)
    if game:
        found = False
        for log in ("logs/game.stdout.log", "logs/game.stderr.log"):
            data = files.read(log)
            if data is not None:
                found = True
                console.print(f"[bold]== {Path(log).name}[/]")
                _print_log(Path(log).name, data, episode)
        if not found:
            _no_logs(episode, "game logs", as_json)
        _print_failure(episode, error)
        return
    if agent is not None:
        if agent >= len(episode.seats):
            fail_usage(f"{name} has {len(episode.seats)} seats: --agent 0-{len(episode.seats) - 1}", as_json)
        data = files.read(f"logs/policy_agent_{agent}.log")
        if data is None:
            _no_logs(episode, f"log for agent {agent}", as_json)
        _print_log(f"the log of agent {agent}", data, episode)
        _print_failure(episode, error)
        return
    logs = [n for n in files.names("logs/") if n.endswith(".log")]
    if not logs and episode.attempts == 0:
        _no_logs(episode, "logs", as_json)
    copied: list[Path] = []
    if out:
        prefix = files.episode_id + (f"-attempt-{attempt}" if files.under else "")
        for log in logs:
            copied.append(out / f"{prefix}-{Path(log).name}")
            write_output(copied[-1], files.read(log) or b"", "log", as_json)
    shown = attempt if files.under else episode.attempts
    if as_json:
        listing = {"logs": [files.location(n) for n in logs]}
        if out:
            listing["downloaded"] = [str(path) for path in copied]
        print_json(
            {
                "episode_request_id": files.episode_id,
                "attempt": shown,
                "attempts": episode.attempts,
                **listing,
            }
        )
        return
    if out:
        render.line("copied {} log(s) to {}", len(copied), str(out))
    for log in copied or logs:
        render.line("{}", str(log) if out else files.location(log))
    if not logs:
        err_console.print(f"no logs stored for {name} (status {episode.status})", markup=False)
    if episode.attempts > 1:
        others = ", ".join(str(n) for n in range(1, episode.attempts + 1) if n != shown)
        render.line(
            "(attempt {} of {}; the logs of attempt {} too: coworld episode-logs {} --attempt N)",
            shown,
            episode.attempts,
            others,
            name,
        )


def replays(
    league: LeagueFilter = None,
    round_id: RoundFilter = None,
    policy: PolicyFilter = None,
    download_dir: Annotated[
        str | None,
        typer.Option("--download-dir", "-o", help="Write <ereq>.json (decompressed) + index.json."),
    ] = None,
    max_rows: Annotated[int, limit(1000, "episodes")] = 1000,
    offset: Offset = 0,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Episodes with a replay; optionally download them (decompressed) with an index.json."""
    out = output_directory(download_dir, "--download-dir", as_json) if download_dir else None
    with league_service(
        db, home, as_json, {"--league": league, "--round": round_id, "--policy": policy}
    ) as svc:
        rows = svc.episodes(
            league_ref=league,
            round_ref=round_id,
            policy_ref=policy,
            with_replay=True,
            limit=max_rows,
            offset=offset,
        )
    index: list[dict[str, Any]] = []
    for e in rows:
        files = EpisodeArtifacts.of(e)
        shape = e.to_json()
        entry = {
            "episode_request_id": e.id,
            "replay_url": files.location("replay.json.z"),
            "seed": e.seed,
            "status": e.status,
            "participants": shape["participants"],
            "scores": shape["scores"],
            "local_path": None,
            "command": f"coworld replay-open {e.key or e.id}",
        }
        if out:
            data = _replay_or_fail(files, e.id, as_json)
            dest = out / f"{e.id}.json"
            write_output(dest, data, "replay", as_json)
            entry["local_path"] = str(dest)
        index.append(entry)
    if out:
        write_output(out / "index.json", json.dumps(index, indent=2).encode(), "index", as_json)
    if as_json:
        print_json(index)
        return
    render.table(
        "replays",
        ["episode", "seats", "replay", "open with"],
        [
            [e.key or e.id, render.seats(e), i["local_path"] or i["replay_url"], i["command"]]
            for e, i in zip(rows, index, strict=True)
        ],
    )


def replay_open(
    episode_id: EpisodeId,
    league: LeagueFilter = None,
    runtime: Runtime = "process",
    timeout: Annotated[
        float, typer.Option("--timeout-seconds", min=1, help="Seconds the replay server may take to start.")
    ] = 60.0,
    print_only: Annotated[
        bool, typer.Option("--print-only", help="Only print the replay and manifest paths.")
    ] = False,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Serve an episode's replay with its Coworld's game in replay mode and print the viewer link."""
    with league_service(db, home, as_json, {"the episode id": episode_id, "--league": league}) as svc:
        ep = svc.episode(episode_id, league)
        coworld_id = svc.leagues(ep.league_id)[0].coworld.id
        cw = next(c for c in svc.coworlds() if c.id == coworld_id)
        manifest = svc.coworld_manifest(cw.id)
    files = EpisodeArtifacts.of(ep)
    if not ep.replay_path:
        fail_usage(f"episode {ep.key or ep.id} has no replay (status {ep.status})", as_json)
    info = {
        "episode_request_id": ep.id,
        "replay": ep.replay_path,
        "coworld": cw.id,
        "source_dir": cw.source_dir,
    }
    if print_only:
        if as_json:
            print_json(info)
        else:
            render.line("replay {} (coworld {}:{}, {})", ep.replay_path, cw.name, cw.version, cw.source_dir)
        return
    _serve(ep.id, Path(ep.replay_path), files, manifest, cw.source_dir, runtime, timeout, info, as_json)


def _serve(
    episode_id: str,
    replay_file: Path,
    files: EpisodeArtifacts,
    manifest_doc: dict[str, Any],
    source_dir: str | None,
    runtime: str,
    timeout: float,
    info: dict[str, Any],
    as_json: bool,
) -> None:
    """Run the game in replay mode on `replay_file` until it exits or Ctrl-C."""
    import secrets
    import time

    from coworld_pipeline.contract import parse_manifest
    from coworld_pipeline.runtime import RUNTIMES, make_runtime
    from coworld_pipeline.runtime.replay_server import replay_workdir, serve_replay

    if runtime not in RUNTIMES:
        fail_usage(f"unknown runtime {runtime!r} (choose: {', '.join(RUNTIMES)})", as_json)
    rt = make_runtime(runtime, base_dir=Path(source_dir) if source_dir else None)
    # Removed on every exit (also Ctrl-C and errors): replay-open leaves no temporary directory behind.
    with replay_workdir() as workdir:
        if not replay_file.is_file():  # kept only in the artifact store (e.g. S3)
            data = _replay_or_fail(files, episode_id, as_json)
            replay_file = workdir / "replay" / "replay.json"
            replay_file.parent.mkdir(parents=True)
            replay_file.write_bytes(data)
        with rt.sandbox(secrets.token_hex(8), "replay") as box:
            package = Path(source_dir) if source_dir else None  # where a static replay viewer bundle lives
            server, url = serve_replay(
                box, parse_manifest(manifest_doc), replay_file, workdir, timeout, package_dir=package
            )
            if as_json:
                print_json({**info, "url": url})
            else:
                render.line("replay viewer: {}\n[dim]Ctrl-C to stop[/]", url)
            with contextlib.suppress(KeyboardInterrupt):
                while server.poll() is None:
                    time.sleep(0.2)


def register(app: typer.Typer) -> None:
    app.command("episodes")(episodes)
    app.command("episode-results")(episode_results)
    app.command("episode-logs")(episode_logs)
    app.command("replays")(replays)
    app.command("replay-open")(replay_open)
