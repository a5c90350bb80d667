"""League commands: catalogue, leagues, rounds and everything users can inspect.

Names and fields mirror the reference CLI (CLI.md §2-§4). Every command takes `--json`, `--db URL`
(or COWORLD_DATABASE_URL) and `--home DIR` (or COWORLD_HOME). Bad input prints one clear line
(plus each problem path for invalid manifests) and exits with code 2; nothing is changed.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from coworld_cli.output import (
    EXIT_FAILED,
    JSON_OPTION,
    console,
    err_console,
    fail_usage,
    parse_env_pairs,
    print_json,
)

DB_OPTION = typer.Option(
    None, "--db", envvar="COWORLD_DATABASE_URL", help="Database URL (default: SQLite in home)."
)
HOME_OPTION = typer.Option(None, "--home", envvar="COWORLD_HOME", help="Platform home (default ~/.coworld).")
LEAGUE_OPTION = typer.Option(None, "--league", "-l", help="League id or name.")
TABLE_ROWS = 50  # a leaderboard's readable length; --limit 0 or --json for the rest


@contextlib.contextmanager
def _service(db: str | None, home: str | None, as_json: bool) -> Iterator[Any]:
    """Open the service; turn every bad-input error into a one-line message and exit code 2."""
    from sqlalchemy.exc import SQLAlchemyError

    from coworld_pipeline.contract.commissioner import CommissionerProtocolError
    from coworld_pipeline.contract.problems import ContractError
    from coworld_pipeline.league.secrets import SecretKeyError
    from coworld_pipeline.league.service import LeagueError, LeagueService

    svc = None
    try:
        svc = LeagueService(database_url=db, home=Path(home) if home else None)
        yield svc
    except LeagueError as exc:
        fail_usage(str(exc), as_json, exc.problems)
    except (ContractError, CommissionerProtocolError) as exc:
        fail_usage(f"{exc.subject} is invalid", as_json, [p.as_dict() for p in exc.problems])
    except SecretKeyError as exc:
        fail_usage(str(exc), as_json)
    except SQLAlchemyError as exc:
        message = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if as_json:
            print_json({"ok": False, "error": f"database error: {message}"})
        else:
            err_console.print(f"[bold red]database error:[/] {message}")
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        if svc is not None:
            svc.close()


def _read_standings(
    db: str | None, home: str | None, target: str, as_json: bool
) -> list[dict[str, Any]] | None:
    """Standings without loading the service (see standings_reader); None: ask the service."""
    from coworld_pipeline.league.errors import NotFound
    from coworld_pipeline.league.location import league_location
    from coworld_pipeline.league.standings_reader import read_standings

    _, url = league_location(db, home)
    try:
        return read_standings(url, target)
    except NotFound as exc:
        fail_usage(str(exc), as_json)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table  # only tables need it: --json output skips the import

    table = Table(title=title, show_lines=False)
    for i, c in enumerate(columns):
        if c in ("policy", "type"):  # keep names whole: they are what users grep for
            width = max([len(c), *(len(str(r[i])) for r in rows)])
            table.add_column(c, no_wrap=True, min_width=width)
        else:
            table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*["" if v is None else str(v) for v in r])
    console.print(table)


def _fmt(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _first(rows: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    return rows[:limit] if limit else rows


def _more_rows(shown: int, total: int) -> None:
    if total > shown:
        console.print(
            f"… {total - shown} more (ranks {shown + 1}-{total}): "
            "--limit 0 shows every row, --json prints them all"
        )


def _standings_tables(groups: list[dict[str, Any]], limit: int | None) -> None:
    for g in groups:
        shown = _first(g["standings"], limit)
        _table(
            f"{g['league']['name']} / {g['division']['name']} (level {g['division']['level']})",
            ["rank", "policy", "status", "rating", "mu", "sigma", "episodes", "wins", "avg score"],
            [
                [
                    r["rank"],
                    r["label"],
                    r["status"],
                    _fmt(r["rating"]),
                    _fmt(r["mu"]),
                    _fmt(r["sigma"]),
                    r["episodes"],
                    r["wins"],
                    _fmt(r["average_score"]),
                ]
                for r in shown
            ],
        )
        _more_rows(len(shown), len(g["standings"]))


def _rankings_table(title: str, rows: list[dict[str, Any]]) -> None:
    _table(
        title,
        ["division", "rank", "policy", "score", "details"],
        [
            [
                r["division"],
                r["rank"],
                r["label"],
                _fmt(r["score"], 3),
                ", ".join(
                    f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in r["result_metadata"].items()
                ),
            ]
            for r in rows
        ],
    )


class EpisodeArtifacts:
    """An episode's files: the local workspace when it is there, else the configured artifact store
    (COWORLD_ARTIFACT_STORE=s3 ...), so inspection commands work wherever the league kept them."""

    def __init__(self, episode_id: str, workspace: Path):
        self.episode_id = episode_id
        self.workspace = workspace
        self._store: Any = None

    @property
    def store(self) -> Any:
        if self._store is None:
            from coworld_pipeline.runtime.artifacts import store_from_env

            self._store = store_from_env()
        return self._store

    def read(self, name: str) -> bytes | None:
        local = self.workspace / name
        if local.is_file():
            return local.read_bytes()
        return self.store.fetch(self.episode_id, name)

    def names(self, prefix: str = "") -> list[str]:
        if self.workspace.is_dir():
            local = [
                p.relative_to(self.workspace).as_posix() for p in self.workspace.rglob("*") if p.is_file()
            ]
            if local:
                return sorted(n for n in local if n.startswith(prefix))
        return sorted(n for n in self.store.list_files(self.episode_id) if n.startswith(prefix))

    def location(self, name: str) -> str:
        local = self.workspace / name
        return local.as_uri() if local.is_file() else self.store.uri_for(self.episode_id, name)

    def replay_bytes(self) -> bytes | None:
        """The decompressed replay, from replay.json or replay.json.z."""
        data = self.read("replay.json")
        if data is None and (packed := self.read("replay.json.z")) is not None:
            data = zlib.decompress(packed)
        return data


def _artifacts(svc: Any, episode_id: str) -> EpisodeArtifacts:
    ws = svc.episode_dir(episode_id)
    return EpisodeArtifacts(ws.name, ws)


def register(app: typer.Typer) -> None:
    league_app = typer.Typer(help="Create and manage leagues.", no_args_is_help=True)
    round_app = typer.Typer(help="Run and inspect league rounds.", no_args_is_help=True)
    app.add_typer(league_app, name="league")
    app.add_typer(round_app, name="round")

    # ---- catalogue ---------------------------------------------------------------------------------

    @app.command("upload-coworld")
    def upload_coworld(
        manifest: str = typer.Argument(..., help="Path of coworld_manifest.json."),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Validate and store a Coworld manifest (idempotent per content hash)."""
        with _service(db, home, as_json) as svc:
            out = svc.upload_coworld(manifest)
        if as_json:
            print_json(out)
            return
        verb = "uploaded" if out["created"] else "already uploaded"
        console.print(f"{out['name']}:{out['version']} {verb}: {out['id']}")
        console.print(
            f"hash {out['manifest_hash']}; variants {', '.join(out['variants'])}; "
            f"players {', '.join(out['players'])}"
        )

    @app.command("coworlds")
    def coworlds(db: str = DB_OPTION, home: str = HOME_OPTION, as_json: bool = JSON_OPTION) -> None:
        """List uploaded Coworlds."""
        with _service(db, home, as_json) as svc:
            rows = svc.coworlds()
        if as_json:
            print_json(rows)
            return
        _table(
            "coworlds",
            ["id", "name", "version", "variants", "hash"],
            [
                [r["id"], r["name"], r["version"], ", ".join(r["variants"]), r["manifest_hash"][:19]]
                for r in rows
            ],
        )

    @app.command("upload-policy")
    def upload_policy(
        image: str = typer.Argument(
            ..., help="Player image (the process runtime ignores it and runs --run)."
        ),
        name: str = typer.Option(..., "--name", "-n", help="Policy name."),
        run: list[str] = typer.Option(
            [], "--run", help="argv element (repeatable); replaces the image command."
        ),
        env: list[str] = typer.Option([], "--env", help="Public KEY=VALUE (repeatable)."),
        secret_env: list[str] = typer.Option([], "--secret-env", help="Secret KEY=VALUE, stored encrypted."),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Create the next version of a policy (name:vN)."""
        env_map = parse_env_pairs(env, "--env", as_json)
        secret_map = parse_env_pairs(secret_env, "--secret-env", as_json)
        with _service(db, home, as_json) as svc:
            out = svc.upload_policy(image, name, run=run, env=env_map, secret_env=secret_map)
        if as_json:
            print_json(out)
            return
        console.print(f"policy {out['label']} created: {out['id']}")
        if out["secret_env_keys"]:
            console.print(f"secret env (encrypted): {', '.join(out['secret_env_keys'])}")

    @app.command("policies")
    def policies(db: str = DB_OPTION, home: str = HOME_OPTION, as_json: bool = JSON_OPTION) -> None:
        """List policy versions (secret env: key names only)."""
        with _service(db, home, as_json) as svc:
            rows = svc.policies()
        if as_json:
            print_json(rows)
            return
        _table(
            "policy versions",
            ["policy", "id", "image", "run", "secret env"],
            [
                [r["label"], r["id"], r["image"], " ".join(r["run"]), ", ".join(r["secret_env_keys"])]
                for r in rows
            ],
        )

    @app.command("submit")
    def submit(
        policy: str = typer.Argument(..., help="NAME, NAME:vN or a policy version id."),
        league: str = typer.Option(..., "--league", "-l", help="League id or name."),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Submit a policy version to a league."""
        with _service(db, home, as_json) as svc:
            out = svc.submit(policy, league)
        if as_json:
            print_json(out)
            return
        console.print(
            f"submission {out['id']}: {out['status']}; membership {out['league_policy_membership_id']} "
            f"({out['membership_status']})"
        )

    # ---- leagues -------------------------------------------------------------------------------------

    @league_app.command("create")
    def league_create(
        name: str = typer.Argument(..., help="League name."),
        coworld: str = typer.Option(..., "--coworld", "-c", help="Coworld id, name or name:version."),
        variant: list[str] = typer.Option(
            [], "--variant", help="Variant id (repeatable; default: the first)."
        ),
        commissioner: str = typer.Option(
            "round-robin", "--commissioner", help="round-robin | swiss | elimination"
        ),
        episodes_per_pair: int = typer.Option(
            None, "--episodes-per-pair", min=1, help="Episodes per pairing."
        ),
        graduation: str = typer.Option("none", "--graduation", help="none | percentile | win-streak"),
        promote_top_pct: float = typer.Option(10.0, "--promote-top-pct", min=0, max=100),
        relegate_bottom_pct: float = typer.Option(10.0, "--relegate-bottom-pct", min=0, max=100),
        streak_length: int = typer.Option(3, "--streak-length", min=1),
        divisions: int = typer.Option(1, "--divisions", min=1, max=20, help="Number of division levels."),
        interval_minutes: float = typer.Option(None, "--interval-minutes", help="Round cadence (scheduler)."),
        config: list[str] = typer.Option([], "--config", help="Game config override KEY=JSON (repeatable)."),
        infra_retries: int = typer.Option(
            2, "--infra-retries", min=0, help="Retries of infrastructure failures."
        ),
        quarantine_after: int = typer.Option(
            3, "--quarantine-after", min=1, help="Consecutive player failures."
        ),
        failed_slot_budget: int = typer.Option(
            20, "--failed-slot-budget", min=0, help="Failed seats per round."
        ),
        episode_timeout: float = typer.Option(600.0, "--episode-timeout", min=1, help="Seconds per episode."),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Create a league on an uploaded Coworld."""
        overrides: dict[str, Any] = {}
        for key, raw in parse_env_pairs(config, "--config", as_json).items():
            try:
                overrides[key] = json.loads(raw)
            except json.JSONDecodeError:
                overrides[key] = raw
        cfg = {
            "graduation": graduation,
            "promote_top_pct": promote_top_pct,
            "relegate_bottom_pct": relegate_bottom_pct,
            "streak_length": streak_length,
        }
        if episodes_per_pair:
            cfg["episodes_per_pair"] = episodes_per_pair
        with _service(db, home, as_json) as svc:
            out = svc.create_league(
                name,
                coworld,
                variants=variant or None,
                commissioner=commissioner,
                commissioner_config=cfg,
                divisions=divisions,
                interval_minutes=interval_minutes,
                config_overrides=overrides,
                failure_policy={
                    "infra_retries": infra_retries,
                    "quarantine_after": quarantine_after,
                    "failed_slot_budget": failed_slot_budget,
                    "episode_timeout_seconds": episode_timeout,
                },
            )
        if as_json:
            print_json(out)
            return
        console.print(
            f"league {out['name']} created: {out['id']} ({out['commissioner_key']}, variants "
            f"{', '.join(out['variants'])}, {len(out['divisions'])} division(s))"
        )

    def _pause(league: str, paused: bool, db: str | None, home: str | None, as_json: bool) -> None:
        with _service(db, home, as_json) as svc:
            out = svc.set_paused(league, paused)
        if as_json:
            print_json(out)
        else:
            console.print(f"league {out['name']} {'paused' if paused else 'resumed'}")

    @league_app.command("pause")
    def league_pause(
        league: str = typer.Argument(...),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Stop opening new rounds (an open round still finishes)."""
        _pause(league, True, db, home, as_json)

    @league_app.command("resume")
    def league_resume(
        league: str = typer.Argument(...),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Open rounds again."""
        _pause(league, False, db, home, as_json)

    @app.command("leagues")
    def leagues(
        league: str = typer.Argument(None, help="Show one league."),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """List leagues or show one."""
        with _service(db, home, as_json) as svc:
            rows = svc.leagues(league)
        if as_json:
            print_json(rows[0] if league else rows)
            return
        _table(
            "leagues",
            ["id", "name", "coworld", "commissioner", "variants", "members", "paused", "last round"],
            [
                [
                    r["id"],
                    r["name"],
                    f"{r['coworld']['name']}:{r['coworld']['version']}",
                    r["commissioner_key"],
                    ", ".join(r["variants"]),
                    ", ".join(f"{k} {v}" for k, v in r["memberships"].items()),
                    r["paused"],
                    ""
                    if not r["last_round"]
                    else f"#{r['last_round']['number']} {r['last_round']['status']}",
                ]
                for r in rows
            ],
        )

    @app.command("divisions")
    def divisions_cmd(
        division: str = typer.Argument(None),
        league: str = LEAGUE_OPTION,
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """List divisions (optionally of one league) or show one."""
        with _service(db, home, as_json) as svc:
            rows = svc.divisions(division, league)
        if as_json:
            print_json(rows[0] if division else rows)
            return
        _table(
            "divisions",
            ["id", "league", "name", "level", "members", "schedule"],
            [
                [
                    r["id"],
                    r["league"]["name"],
                    r["name"],
                    r["level"],
                    r["member_count"],
                    r["commissioner_description"]["round_schedule"],
                ]
                for r in rows
            ],
        )

    @app.command("rounds")
    def rounds_cmd(
        round_id: str = typer.Argument(None, help="Show one round with its results."),
        league: str = LEAGUE_OPTION,
        status: str = typer.Option(None, "--status"),
        limit: int = typer.Option(25, "--limit", min=1, max=200),
        offset: int = typer.Option(0, "--offset", min=0),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """List rounds or show one."""
        with _service(db, home, as_json) as svc:
            out = svc.rounds(round_id, league, status, limit, offset)
        if as_json:
            print_json(out["entries"][0] if round_id else out)
            return
        rows = out["entries"]
        _table(
            "rounds",
            ["id", "league", "#", "status", "episodes", "failed seats", "started", "error"],
            [
                [
                    r["id"],
                    r["league"]["name"],
                    r["round_number"],
                    r["status"],
                    ", ".join(f"{k} {v}" for k, v in r["episodes"].items()),
                    r["failed_slots"],
                    r["started_at"],
                    r["error"],
                ]
                for r in rows
            ],
        )
        if round_id:
            _rankings_table("results", rows[0]["results"])
        else:
            console.print(f"Rows {offset + 1 if rows else 0}-{offset + len(rows)} of {out['total_count']}")

    @app.command("results")
    def results(
        target: str = typer.Argument(..., help="league (id or name), div_… or round_…"),
        limit: int = typer.Option(
            None,
            "--limit",
            min=0,
            help=f"Rows per table (default {TABLE_ROWS}; 0: all). --json prints every row unless given.",
        ),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Standings of a league or division (openskill, mu - 3 sigma), or a round's rankings."""
        if limit is None and not as_json:
            limit = TABLE_ROWS
        # League and division standings come straight from the database driver when it can serve
        # them: this is the command users repeat, and loading the service costs more than the query.
        groups = None if target.startswith("round_") else _read_standings(db, home, target, as_json)
        if groups is None:
            with _service(db, home, as_json) as svc:
                if target.startswith("round_"):
                    rankings = svc.round_rankings(target)
                    shown = _first(rankings, limit)
                    if as_json:
                        print_json(shown)
                    else:
                        _rankings_table(f"round {target}", shown)
                        _more_rows(len(shown), len(rankings))
                    return
                if target.startswith("div_"):
                    div = svc.divisions(target)[0]
                    groups = svc.standings(div["league"]["id"], target)
                else:
                    groups = svc.standings(target)
        if as_json:
            print_json([{**g, "standings": _first(g["standings"], limit)} for g in groups])
        else:
            _standings_tables(groups, limit)

    @app.command("memberships")
    def memberships(
        league: str = LEAGUE_OPTION,
        division: str = typer.Option(None, "--division", "-d"),
        policy: str = typer.Option(None, "--policy", "-p"),
        status: str = typer.Option(None, "--status", help="qualifying | active | quarantined | retired"),
        active_only: bool = typer.Option(False, "--active-only"),
        limit: int = typer.Option(1000, "--limit", min=1, max=1000),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """League memberships with their status and reason."""
        with _service(db, home, as_json) as svc:
            rows = svc.memberships(league, division, policy, status, limit)
        if active_only:
            rows = [r for r in rows if r["is_active"]]
        if as_json:
            print_json(rows)
            return
        _table(
            "memberships",
            ["id", "league", "division", "policy", "status", "reason", "failures"],
            [
                [
                    r["id"],
                    r["league"]["name"],
                    r["division"]["name"],
                    r["policy_version"]["label"],
                    r["status"],
                    r["status_reason"],
                    r["consecutive_failures"],
                ]
                for r in rows
            ],
        )

    @app.command("submissions")
    def submissions(
        league: str = LEAGUE_OPTION,
        policy: str = typer.Option(None, "--policy", "-p"),
        limit: int = typer.Option(1000, "--limit", min=1, max=1000),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """League submissions."""
        with _service(db, home, as_json) as svc:
            rows = svc.submissions(league, policy, limit)
        if as_json:
            print_json(rows)
            return
        _table(
            "submissions",
            ["id", "league", "policy", "status", "membership", "created"],
            [
                [
                    r["id"],
                    r["league"]["name"],
                    r["policy_version"]["label"],
                    r["status"],
                    r["league_policy_membership_id"],
                    r["created_at"],
                ]
                for r in rows
            ],
        )

    @app.command("episodes")
    def episodes(
        episode_id: str = typer.Argument(None, help="Show one episode request."),
        league: str = LEAGUE_OPTION,
        round_id: str = typer.Option(None, "--round", "-r"),
        policy: str = typer.Option(None, "--policy", "-p"),
        status: str = typer.Option(None, "--status"),
        with_replay: bool = typer.Option(False, "--with-replay"),
        limit: int = typer.Option(200, "--limit", min=1, max=1000),
        offset: int = typer.Option(0, "--offset", min=0),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Episode requests: status, seed, seats, per-seat scores, error, replay."""
        with _service(db, home, as_json) as svc:
            rows = svc.episodes(episode_id, league, round_id, policy, status, with_replay, limit, offset)
        if as_json:
            print_json(rows[0] if episode_id else rows)
            return
        _table(
            "episodes",
            ["id", "status", "variant", "seed", "seats", "scores", "attempts", "error", "replay"],
            [
                [
                    r["id"],
                    r["status"],
                    r["variant_id"],
                    r["seed"],
                    " | ".join(p["label"] or p["policy_version_id"] for p in r["participants"]),
                    " | ".join(f"{s['score']:g}" for s in r["scores"]),
                    r["attempts"],
                    (r["error"] or {}).get("error_type"),
                    "yes" if r["replay_path"] else "no",
                ]
                for r in rows
            ],
        )

    @app.command("episode-results")
    def episode_results(
        episode_id: str = typer.Argument(...),
        output: str = typer.Option(None, "--output", "-o", help="Write results.json here."),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """The raw results.json of an episode."""
        with _service(db, home, as_json) as svc:
            files = _artifacts(svc, episode_id)
        data = files.read("results.json")
        if data is None:
            fail_usage(
                f"episode {episode_id} has no results.json (see `coworld episodes {episode_id}`)", as_json
            )
        if output:
            Path(output).write_bytes(data)
            console.print(f"wrote {output}")
        else:
            print_json(json.loads(data))

    @app.command("episode-logs")
    def episode_logs(
        episode_id: str = typer.Argument(...),
        list_only: bool = typer.Option(False, "--list", help="List the available logs (default)."),
        game: bool = typer.Option(False, "--game", help="Print the game's logs."),
        agent: int = typer.Option(None, "--agent", min=0, help="Print the log of this slot's player."),
        download_dir: str = typer.Option(None, "--download-dir", "-d"),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """List, print or download an episode's game and player logs."""
        with _service(db, home, as_json) as svc:
            files = _artifacts(svc, episode_id)
        logs = [n for n in files.names("logs/") if n.endswith(".log")]
        if game:
            for name in ("logs/game.stdout.log", "logs/game.stderr.log"):
                data = files.read(name)
                if data is not None:
                    console.print(f"[bold]== {Path(name).name}[/]")
                    console.out(data.decode(errors="replace"), highlight=False)
            return
        if agent is not None:
            data = files.read(f"logs/policy_agent_{agent}.log")
            if data is None:
                fail_usage(f"no log for agent {agent} in {episode_id}", as_json)
            console.out(data.decode(errors="replace"), highlight=False)
            return
        if download_dir:
            out = Path(download_dir)
            out.mkdir(parents=True, exist_ok=True)
            for name in logs:
                (out / f"{files.episode_id}-{Path(name).name}").write_bytes(files.read(name) or b"")
        if as_json:
            print_json({"episode_request_id": files.episode_id, "logs": [files.location(n) for n in logs]})
            return
        for name in logs:
            console.print(files.location(name))

    @app.command("replays")
    def replays(
        league: str = LEAGUE_OPTION,
        round_id: str = typer.Option(None, "--round", "-r"),
        policy: str = typer.Option(None, "--policy", "-p"),
        download_dir: str = typer.Option(
            None, "--download-dir", "-o", help="Write <ereq>.json + index.json."
        ),
        limit: int = typer.Option(1000, "--limit", min=1, max=1000),
        offset: int = typer.Option(0, "--offset", min=0),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Episodes with a replay; optionally download them (decompressed) with an index.json."""
        with _service(db, home, as_json) as svc:
            rows = svc.episodes(None, league, round_id, policy, None, True, limit, offset)
            readers = {r["id"]: _artifacts(svc, r["id"]) for r in rows}
        index = []
        for r in rows:
            files = readers[r["id"]]
            entry = {
                "episode_request_id": r["id"],
                "replay_url": files.location("replay.json.z"),
                "seed": r["seed"],
                "status": r["status"],
                "participants": r["participants"],
                "scores": r["scores"],
                "local_path": None,
                "command": f"coworld replay-open {r['id']}",
            }
            if download_dir:
                out = Path(download_dir)
                out.mkdir(parents=True, exist_ok=True)
                dest = out / f"{r['id']}.json"
                data = files.replay_bytes()
                if data is None:
                    fail_usage(
                        f"the replay of {r['id']} is neither on disk nor in the artifact store", as_json
                    )
                dest.write_bytes(data)
                entry["local_path"] = str(dest)
            index.append(entry)
        if download_dir:
            (Path(download_dir) / "index.json").write_text(json.dumps(index, indent=2))
        if as_json:
            print_json(index)
            return
        _table(
            "replays",
            ["episode", "seats", "replay", "open with"],
            [
                [
                    e["episode_request_id"],
                    " | ".join(p["label"] for p in e["participants"]),
                    e["local_path"] or e["replay_url"],
                    e["command"],
                ]
                for e in index
            ],
        )

    @app.command("replay-open")
    def replay_open(
        episode_id: str = typer.Argument(...),
        runtime: str = typer.Option("process", "--runtime", help="process | docker"),
        timeout: float = typer.Option(60.0, "--timeout-seconds", min=1),
        print_only: bool = typer.Option(
            False, "--print-only", help="Only print the replay and manifest paths."
        ),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Serve an episode's replay with its Coworld's game in replay mode and print the viewer link."""
        with _service(db, home, as_json) as svc:
            ep = svc.episodes(episode_id)[0]
            league = svc.leagues(ep["league_id"])[0]
            cw = next(c for c in svc.coworlds() if c["id"] == league["coworld"]["id"])
        if not ep["replay_path"]:
            fail_usage(f"episode {episode_id} has no replay (status {ep['status']})", as_json)
        info = {
            "episode_request_id": ep["id"],
            "replay": ep["replay_path"],
            "coworld": cw["id"],
            "source_dir": cw["source_dir"],
        }
        if print_only:
            if as_json:
                print_json(info)
            else:
                console.print(
                    f"replay {info['replay']} (coworld {cw['name']}:{cw['version']}, {cw['source_dir']})"
                )
            return
        import secrets as _secrets
        import tempfile
        import time

        from coworld_pipeline.contract import parse_manifest
        from coworld_pipeline.runtime import make_runtime
        from coworld_pipeline.runtime.replay_server import serve_replay

        with _service(db, home, as_json) as svc:
            manifest = parse_manifest(svc.coworld_manifest(cw["id"]))
        rt = make_runtime(runtime, base_dir=Path(cw["source_dir"]) if cw["source_dir"] else None)
        workdir = Path(tempfile.mkdtemp(prefix="coworld-replay-"))
        replay_file = Path(ep["replay_path"])
        if not replay_file.is_file():  # kept only in the artifact store (e.g. S3)
            with _service(db, home, as_json) as svc:
                data = _artifacts(svc, episode_id).replay_bytes()
            if data is None:
                fail_usage(
                    f"the replay of {episode_id} is neither on disk nor in the artifact store", as_json
                )
            replay_file = workdir / "replay" / "replay.json"
            replay_file.parent.mkdir(parents=True)
            replay_file.write_bytes(data)
        with rt.sandbox(_secrets.token_hex(8), "replay") as box:
            server, url = serve_replay(box, manifest, replay_file, workdir, timeout)
            if as_json:
                print_json({**info, "url": url})
            else:
                console.print(f"replay viewer: {url}\n[dim]Ctrl-C to stop[/]")
            with contextlib.suppress(KeyboardInterrupt):
                while server.poll() is None:
                    time.sleep(0.2)

    @app.command("events")
    def events(
        league: str = LEAGUE_OPTION,
        division: str = typer.Option(None, "--division", "-d"),
        round_id: str = typer.Option(None, "--round", "-r"),
        event_type: str = typer.Option(None, "--event-type", "--type"),
        policy: str = typer.Option(None, "--policy", "-p"),
        limit: int = typer.Option(50, "--limit", min=1, max=100000),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Scheduler decisions: rounds opened/refused, episodes scheduled/rejected/retried, quarantines, …"""
        with _service(db, home, as_json) as svc:
            rows = svc.events(league, round_id, event_type, policy, division, limit)
        if as_json:
            print_json(rows)
            return
        _table(
            "events",
            ["id", "time", "type", "headline"],
            [[r["id"], r["created_at"], r["event_type"], r["headline"]] for r in rows],
        )

    # ---- rounds ----------------------------------------------------------------------------------------

    @round_app.command("run")
    def round_run(
        league: str = typer.Option(..., "--league", "-l", help="League id or name."),
        parallel: int = typer.Option(1, "--parallel", min=1, max=64, help="Episodes at once."),
        runtime: str = typer.Option("process", "--runtime", help="process | docker"),
        db: str = DB_OPTION,
        home: str = HOME_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Run one round of a league now (or finish its open round) and print the rankings."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from coworld_pipeline.league.runner import run_round
        from coworld_pipeline.runtime import RUNTIMES

        if runtime not in RUNTIMES:
            fail_usage(f"unknown runtime {runtime!r} (choose: {', '.join(RUNTIMES)})", as_json)
        with _service(db, home, as_json) as svc:
            if as_json:
                run = run_round(svc, league, parallel=parallel, runtime_name=runtime)
            else:
                with Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[detail]}"),
                    TimeElapsedColumn(),
                    console=console,
                    transient=False,
                ) as bar:
                    task = bar.add_task("round", total=None, detail="")

                    def on_progress(p: Any, last: Any) -> None:
                        total = sum(p.counts.values())
                        finished = sum(p.counts.get(k, 0) for k in ("succeeded", "failed", "cancelled"))
                        detail = ", ".join(f"{k} {v}" for k, v in sorted(p.counts.items()))
                        bar.update(
                            task,
                            total=total or None,
                            completed=finished,
                            detail=detail,
                            description=f"round {p.status}",
                        )

                    run = run_round(
                        svc, league, parallel=parallel, runtime_name=runtime, on_progress=on_progress
                    )
            out = run.to_json()
            if run.round_id:
                out["rankings"] = svc.round_rankings(run.round_id)
                out["standings"] = svc.standings(run.league_id)
        if as_json:
            print_json(out)
        elif run.round_id is None:
            console.print(f"no round opened: {run.refused}")
        else:
            console.print(
                f"round {out['round_id']}: {out['status']}"
                + (f" ({out['error']})" if out["error"] else "")
                + f" in {out['wall_seconds']:.1f}s"
            )
            _rankings_table("round rankings", out["rankings"])
            _standings_tables(out["standings"])


def main() -> None:
    """`python -m coworld_cli.league_cli`: the league commands alone."""
    app = typer.Typer(
        name="coworld", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
    )
    register(app)
    app(prog_name="coworld")


if __name__ == "__main__":
    main()
