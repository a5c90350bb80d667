"""Single-episode commands: validate, schema, run-episode, play, certify, replay, janitor."""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlparse

import typer

from coworld_cli import output  # its consoles are made on first use: `output.console`
from coworld_cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    JSON_OPTION,
    escape,
    fail_contract,
    fail_usage,
    print_json,
)
from coworld_cli.secret_env import SecretEnv, SecretEnvFile, resolve_secret_env
from coworld_pipeline.contract.episode_request import (
    EpisodeRequest,
    PlayerSpec,
    certification_request,
    parse_episode_request,
    validate_request,
    with_seed,
)
from coworld_pipeline.contract.limits import MAX_INTEGER_DIGITS
from coworld_pipeline.contract.manifest import (
    CoworldManifest,
    Role,
    load_manifest,
    manifest_dir,
    read_json_document,
)
from coworld_pipeline.contract.problems import ContractError
from coworld_pipeline.runtime import (
    RUNTIMES,
    EpisodeLinks,
    EpisodeOptions,
    EpisodeOutcome,
    make_runtime,
    run_episode,
)
from coworld_pipeline.runtime.base import ResourceLimits, Runtime
from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType
from coworld_pipeline.runtime.signals import Terminated

if TYPE_CHECKING:
    from rich.live import Live
    from rich.table import Table

RUNTIME_OPTION = typer.Option(
    None,
    "--runtime",
    envvar="COWORLD_RUNTIME",
    help=f"Where runnables run: {' | '.join(RUNTIMES)} (default docker).",
)


# ---- shared helpers ------------------------------------------------------------------------------


def _open_in_browser(url: str) -> None:
    import webbrowser  # only `play` and `replay` open pages: not imported by every command

    webbrowser.open(url)


def load_manifest_or_exit(ref: str, as_json: bool) -> CoworldManifest:
    try:
        manifest = load_manifest(ref)
    except ContractError as exc:
        fail_contract(exc, as_json)
    for warning in manifest.warnings:  # fields no generation defines: ignored, never fatal
        output.err_console.print("[yellow]warning[/] " + escape(str(warning)), highlight=False)
    return manifest


def episode_timeout(manifest: CoworldManifest, given: float | None) -> float:
    """--timeout, else the manifest's `episode_timeout_minutes` (0.1.64), else an hour."""
    if given is not None:
        return given
    minutes = manifest.episode_timeout_minutes
    return minutes * 60.0 if minutes else 3600.0


def runtime_or_exit(
    name: str | None, ref: str, as_json: bool, limits: dict[str, ResourceLimits] | None = None
) -> Runtime:
    name = name or "docker"
    if name not in RUNTIMES:
        fail_usage(f"--runtime must be one of {', '.join(RUNTIMES)} (got {name!r})", as_json)
    try:
        return make_runtime(name, base_dir=manifest_dir(ref), limits=limits)
    except EpisodeFailure as exc:
        fail_usage(exc.message, as_json)


def host_runs_or_exit(rt: Runtime, request: EpisodeRequest, as_json: bool) -> None:
    """The process runtime runs each runnable's `run` argv on the host; one without it (Docker would
    use the image's entrypoint) is refused here, before the game starts, naming where it is."""
    if rt.name != "process":
        return
    entries = [("the manifest's $.game.runnable.run", request.manifest.game.runnable.run)]
    entries += [(f"$.players[{i}].run", p.run) for i, p in enumerate(request.players)]
    problems = [
        {"path": path, "message": "empty: the process runtime cannot run an image's own entrypoint"}
        for path, run in entries
        if not run
    ]
    if problems:
        fail_usage("the process runtime needs a `run` argv for every runnable", as_json, problems)


WORKSPACE = "workspace (--output-dir)"


def default_output_dir(ref: str) -> Path:
    """Mirrors the reference: next to a local manifest, else ./coworld-results."""
    if urlparse(ref).scheme in ("http", "https"):
        return Path("coworld-results").resolve()
    directory = manifest_dir(ref)
    return (directory / "results") if directory else Path("coworld-results").resolve()


def looks_like_request(value: str) -> bool:
    try:
        return value.endswith(".json") or Path(value).is_file()
    except OSError:  # not a name a file can have (too long): an image reference, checked as one
        return False


def build_request(
    manifest: CoworldManifest,
    inputs: list[str],
    run: list[str],
    variant: str | None,
    seed: int | None,
    as_json: bool,
) -> EpisodeRequest:
    """The reference's positional rules: a request file, no image, one image for all, or one per slot."""
    try:
        if inputs and looks_like_request(inputs[0]):
            if len(inputs) > 1:
                fail_usage(
                    "an episode request file cannot be combined with other positional arguments", as_json
                )
            if run or variant:
                fail_usage("--run and --variant cannot be combined with an episode request file", as_json)
            data = read_json_document(inputs[0], "episode request")
            request = parse_episode_request(data, manifest, source=f"episode request {inputs[0]}")
        else:
            if run and not inputs:
                fail_usage("--run needs at least one player image", as_json)
            base = certification_request(manifest)
            config = base.game_config
            if variant is not None:
                try:
                    config = json.loads(json.dumps(manifest.variant(variant).game_config))
                except KeyError as exc:
                    fail_usage(str(exc.args[0]), as_json)
            slots = manifest.slots_for(config)
            cert_players = base.players
            if not inputs:
                if len(cert_players) != slots:
                    fail_usage(
                        f"variant {variant!r} has {slots} slots but the certification fixture has "
                        f"{len(cert_players)} players: give player images",
                        as_json,
                    )
                players = cert_players
            else:
                if len(inputs) not in (1, slots):
                    fail_usage(
                        f"give 1 image (all slots) or {slots} images (one per slot); got {len(inputs)}",
                        as_json,
                    )
                images = inputs * slots if len(inputs) == 1 else inputs
                players = []
                for slot, image in enumerate(images):
                    template = cert_players[slot] if slot < len(cert_players) else cert_players[0]
                    players.append(
                        PlayerSpec(
                            image=image, run=list(run) if run else list(template.run), env=dict(template.env)
                        )
                    )
            request = validate_request(EpisodeRequest(manifest=manifest, game_config=config, players=players))
        if seed is not None:
            if len(str(abs(seed))) > MAX_INTEGER_DIGITS:  # as in a request file: the game reads it too
                fail_usage(f"--seed has {len(str(abs(seed)))} digits; at most {MAX_INTEGER_DIGITS}", as_json)
            request = with_seed(request, seed)
        return request
    except ContractError as exc:
        fail_contract(exc, as_json)
    except ValueError as exc:
        fail_usage(str(exc), as_json)


class PhaseDisplay:
    """Live phase table for humans; silent under --json."""

    def __init__(self, title: str, enabled: bool):
        self.title = title
        self.enabled = enabled
        self.rows: list[list[str]] = []
        self.started = time.monotonic()
        self.live: Live | None = None

    def __enter__(self) -> PhaseDisplay:
        if self.enabled:
            from rich.live import Live  # only humans watch phases: --json skips the import

            self.live = Live(self.render(), console=output.err_console, refresh_per_second=8, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.rows:
            self.rows[-1][2] = "done" if exc[0] is None else "stopped"
        if self.live:
            self.live.update(self.render())
            self.live.__exit__(*exc)
            if not output.err_console.is_terminal:
                output.err_console.line()  # Rich ends a non-terminal Live without a newline

    def render(self) -> Table:
        from rich.table import Table
        from rich.text import Text

        # The title and details quote the manifest and the user's input (a game named `[red]x[/]`, an
        # image, a path): plain Text, never parsed as markup. Only status and time are ours.
        table = Table(title=Text(self.title), show_header=True, header_style="bold")
        table.add_column("phase")
        table.add_column("detail")
        table.add_column("status")
        table.add_column("at", justify="right")
        for phase, detail, status, at in self.rows:
            table.add_row(Text(phase), Text(detail), status, at)
        return table

    def __call__(self, phase: str, detail: str) -> None:
        if self.rows:
            self.rows[-1][2] = "[green]ok[/]"
        if phase != "done":
            self.rows.append([phase, detail, "[yellow]…[/]", f"{time.monotonic() - self.started:5.2f}s"])
        if self.live:
            self.live.update(self.render())


def report_outcome(outcome: EpisodeOutcome, as_json: bool) -> None:
    if as_json:
        print_json({"ok": outcome.ok, "workspace": str(outcome.workspace), **outcome.summary()})
    elif outcome.ok:
        output.console.print(
            f"[bold green]episode succeeded[/] in {outcome.wall_seconds:.2f}s — scores {outcome.scores}"
        )
        output.console.print(f"artifacts: {outcome.workspace}", markup=False)
        for name in sorted(outcome.files()):
            output.console.print(f"  {name}", markup=False)
    else:
        err = outcome.error
        assert err is not None
        output.console.print(f"[bold red]episode failed[/]: {escape(str(err))}")
        output.console.print(f"error info: {outcome.workspace / 'error_info.json'}", markup=False)
        output.console.print(f"logs kept in: {outcome.workspace / 'logs'}", markup=False)
    if not outcome.ok:
        raise typer.Exit(EXIT_FAILED)


def execute(
    request: EpisodeRequest,
    workspace: Path,
    runtime: Runtime,
    options: EpisodeOptions,
    as_json: bool,
    title: str,
) -> EpisodeOutcome:
    display = PhaseDisplay(title, enabled=not as_json)
    options.on_phase = display
    try:
        with display:
            return run_episode(request, workspace, runtime, options)
    except (KeyboardInterrupt, Terminated) as exc:
        reason = str(exc) or "SIGINT"
        output.err_console.print(
            f"[bold red]interrupted[/] ({reason}): everything was removed; "
            f"logs and error_info.json are in {workspace}"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _replay_failed(message: str, stderr_tail: str, as_json: bool) -> NoReturn:
    """The replay server failed: say why with its last stderr lines (its log directory is removed)."""
    if as_json:
        print_json({"ok": False, "error": message, "game_stderr_tail": stderr_tail})
    else:
        output.err_console.print(f"[bold red]error:[/] {escape(message)}")
        if stderr_tail.strip():
            output.err_console.print("last lines of the game's stderr:", style="dim")
            output.err_console.print(stderr_tail.rstrip(), markup=False)
    raise typer.Exit(EXIT_FAILED)


# ---- commands ------------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    from coworld_cli import package_cli

    package_cli.register(app)

    @app.command()
    def validate(
        manifest: str = typer.Argument(..., help="Path or URL of coworld_manifest.json (templates allowed)."),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Validate a manifest; print a summary, or every problem with its JSON path (exit 2)."""
        m = load_manifest_or_exit(manifest, as_json)
        rule = m.slot_rule
        summary = {
            "ok": True,
            "game": m.game.name,
            "version": m.game.version,
            "template": m.is_template,
            "slots": rule.describe(),
            "variants": [
                {"id": v.id, "name": v.name, "slots": m.describe_slots(v.game_config)} for v in m.variants
            ],
            "runnables": {role.value: [r.id for r in m.role(role)] for role in Role},
            "certification_players": [p.player_id for p in m.certification.players],
            "content_hash": m.content_hash,
            "generation": m.generation.value,
            "schema_version": m.schema_version,
            "warnings": [w.as_dict() for w in m.warnings],
        }
        if as_json:
            print_json(summary)
            return
        # Every name below comes from the manifest's author: escaped, so `[/]` prints as text.
        output.console.print(
            f"[bold green]valid[/] {escape(m.label)}{' (template)' if m.is_template else ''}"
            f" — {escape(m.game.description)}"
        )
        output.console.print(f"slots: {escape(rule.describe())}   owner: {escape(m.game.owner)}")
        output.console.print(f"generation: {m.generation.value} (schema {m.schema_version})")
        from rich.table import Table

        table = Table("variant", "name", "slots")
        for v in summary["variants"]:
            table.add_row(escape(v["id"]), escape(v["name"]), escape(str(v["slots"])))
        output.console.print(table)
        roles = Table("role", "runnables")
        roles.add_row("game", escape(m.game.runnable.image or "—"))
        for role, ids in summary["runnables"].items():
            roles.add_row(role, escape(", ".join(ids)) or "—")
        output.console.print(roles)
        output.console.print(f"certification players: {escape(', '.join(summary['certification_players']))}")

    @app.command()
    def schema(
        kind: str = typer.Argument(..., help="manifest | episode-request"),
        as_json: bool = typer.Option(False, "--json", help="Accepted for symmetry: the schema is JSON."),
    ) -> None:
        """Print the JSON Schema generated from our models."""
        models = {"manifest": CoworldManifest, "episode-request": EpisodeRequest}
        if kind not in models:
            fail_usage(f"unknown schema {kind!r}: choose manifest or episode-request", as_json)
        print_json(models[kind].model_json_schema(by_alias=True))

    @app.command("run-episode")
    def run_episode_cmd(
        manifest: str = typer.Argument(..., help="Manifest path or URL."),
        inputs: list[str] = typer.Argument(
            None, help="REQUEST.json, or player images (1 for all slots, or 1 per slot)."
        ),
        run: list[str] = typer.Option([], "--run", help="argv replacing the supplied images' run (repeat)."),
        runtime: str = RUNTIME_OPTION,
        output_dir: Path = typer.Option(
            None, "--output-dir", "-o", help="Workspace (default: <manifest dir>/results)."
        ),
        timeout: float = typer.Option(
            None,
            "--timeout",
            "--timeout-seconds",
            min=1,
            help="Game phase timeout, s (default: the manifest's episode_timeout_minutes, else 3600).",
        ),
        seed: int = typer.Option(None, "--seed", help="Set game_config.seed."),
        variant: str = typer.Option(None, "--variant", help="Use this variant's config."),
        secret_env: SecretEnv = None,
        secret_env_file: SecretEnvFile = None,
        verify_replay: bool = typer.Option(
            False,
            "--verify-replay/--no-verify-replay",
            help="Also load the replay in the game's replay mode.",
        ),
        allow_player_egress: bool = typer.Option(
            False, "--allow-player-egress", help="docker: let players reach the internet."
        ),
        game_cpus: float = typer.Option(
            1.0, "--game-cpus", envvar="COWORLD_GAME_CPUS", help="CPUs for the game container (docker)."
        ),
        game_memory: str = typer.Option(
            "1g",
            "--game-memory",
            envvar="COWORLD_GAME_MEMORY",
            help="Memory for the game container, no swap.",
        ),
        player_cpus: float = typer.Option(
            1.0,
            "--player-cpus",
            envvar="COWORLD_PLAYER_CPUS",
            help="CPUs for each player container (docker).",
        ),
        player_memory: str = typer.Option(
            "1g", "--player-memory", envvar="COWORLD_PLAYER_MEMORY", help="Memory for each player container."
        ),
        pids_limit: int = typer.Option(
            512, "--pids-limit", envvar="COWORLD_PIDS_LIMIT", help="Processes per container, at most."
        ),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Run one headless episode with every runner check; artifacts land in the workspace."""
        secrets_map = resolve_secret_env(secret_env, secret_env_file, as_json)
        m = load_manifest_or_exit(manifest, as_json)
        request = build_request(m, inputs or [], run, variant, seed, as_json)
        workspace = output.output_directory(output_dir or default_output_dir(manifest), WORKSPACE, as_json)
        limits = output.limits_or_exit(
            game_cpus, game_memory, player_cpus, player_memory, pids_limit, as_json
        )
        rt = runtime_or_exit(runtime, manifest, as_json, limits)
        host_runs_or_exit(rt, request, as_json)
        options = EpisodeOptions(
            timeout_seconds=episode_timeout(m, timeout),
            verify_replay=verify_replay,
            secret_env={slot: dict(secrets_map) for slot in range(request.slot_count)},
            allow_player_egress=allow_player_egress,
            package_dir=manifest_dir(manifest),
        )
        outcome = execute(request, workspace, rt, options, as_json, f"{m.label} on {rt.name}")
        report_outcome(outcome, as_json)

    @app.command()
    def play(
        manifest: str = typer.Argument(..., help="Manifest path or URL."),
        inputs: list[str] = typer.Argument(None, help="REQUEST.json, or player images."),
        run: list[str] = typer.Option([], "--run", help="argv replacing the supplied images' run (repeat)."),
        runtime: str = RUNTIME_OPTION,
        output_dir: Path = typer.Option(
            None, "--output-dir", "-o", help="Workspace (default: a new directory)."
        ),
        timeout: float = typer.Option(
            None, "--timeout", "--timeout-seconds", min=1, help="Stop the episode after this many seconds."
        ),
        seed: int = typer.Option(None, "--seed", help="Set game_config.seed."),
        variant: str = typer.Option(None, "--variant", help="Use this variant's config."),
        secret_env: SecretEnv = None,
        secret_env_file: SecretEnvFile = None,
        open_browser: bool = typer.Option(
            True, "--open-browser/--no-open-browser", help="Open the global viewer in your browser."
        ),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Interactive episode: prints player, global and admin links and opens the global viewer."""
        secrets_map = resolve_secret_env(secret_env, secret_env_file, as_json)
        m = load_manifest_or_exit(manifest, as_json)
        request = build_request(m, inputs or [], run, variant, seed, as_json)
        rt = runtime_or_exit(runtime, manifest, as_json)
        host_runs_or_exit(rt, request, as_json)
        workspace = (
            output.output_directory(output_dir, WORKSPACE, as_json)
            if output_dir
            else Path(tempfile.mkdtemp(prefix="coworld-play-"))
        )

        def show_links(links: EpisodeLinks) -> None:
            if as_json:
                print_json(
                    {
                        "links": {
                            "players": links.players,
                            "global": links.global_url,
                            "admin": links.admin_url,
                        }
                    }
                )
            else:  # the links are the command's output (stdout); phases and diagnostics go to stderr
                for slot, url in enumerate(links.players):
                    output.console.print(f"player {slot}: {url}", markup=False, soft_wrap=True)
                output.console.print(f"global:   {links.global_url}", markup=False, soft_wrap=True)
                output.console.print(f"admin:    {links.admin_url}", markup=False, soft_wrap=True)
            if open_browser:
                _open_in_browser(links.global_url)

        options = EpisodeOptions(
            timeout_seconds=episode_timeout(m, timeout),
            probes=False,
            purpose="play",
            secret_env={slot: dict(secrets_map) for slot in range(request.slot_count)},
            on_game_ready=show_links,
        )
        outcome = execute(request, workspace, rt, options, as_json, f"playing {m.label}")
        report_outcome(outcome, as_json)

    @app.command()
    def certify(
        manifest: str = typer.Argument(..., help="Manifest path or URL."),
        runtime: str = RUNTIME_OPTION,
        timeout: float = typer.Option(
            60.0, "--timeout", "--timeout-seconds", min=1, help="Seconds each certification episode may take."
        ),
        output_dir: Path = typer.Option(
            None, "--output-dir", "-o", help="Keep the certification workspace here."
        ),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Every check of CONTRACT §6; prints a checklist; non-zero exit on any failure."""
        from coworld_pipeline.runtime.certify import certify as run_certification

        m = load_manifest_or_exit(manifest, as_json)
        if m.is_template:
            fail_usage("templates cannot be certified: game.version is missing (hydrate it first)", as_json)
        try:
            certification_request(m)  # players it cannot run (game-hosted files): a usage error
        except ContractError as exc:
            fail_usage(f"{exc.subject} is invalid", as_json, [p.as_dict() for p in exc.problems])
        rt = runtime_or_exit(runtime, manifest, as_json)
        workspace = (
            output.output_directory(output_dir, WORKSPACE, as_json)
            if output_dir
            else Path(tempfile.mkdtemp(prefix="coworld-cert-"))
        )
        display = PhaseDisplay(f"certifying {m.label} on {rt.name}", enabled=not as_json)
        try:
            with display:
                report = run_certification(
                    m, rt, workspace, timeout, on_phase=display, package_dir=manifest_dir(manifest)
                )
        except (KeyboardInterrupt, Terminated):
            output.err_console.print("[bold red]interrupted[/]: everything was removed")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        if as_json:
            print_json(report.to_json())
        else:
            from rich.table import Table
            from rich.text import Text

            table = Table("", "check", "detail", title=Text(f"certification of {m.label}"))
            for check, ok, detail in report.checks:  # checks quote the manifest: never markup
                table.add_row("[green]✔[/]" if ok else "[red]✘[/]", Text(check), Text(detail))
            output.console.print(table)
            output.console.print(f"workspace: {workspace}", markup=False)
            output.console.print("[bold green]CERTIFIED[/]" if report.ok else "[bold red]NOT CERTIFIED[/]")
        if not report.ok:
            raise typer.Exit(EXIT_FAILED)

    @app.command()
    def replay(
        manifest: str = typer.Argument(..., help="Manifest path or URL."),
        replay_file: str = typer.Argument(..., help="Replay path or URL (.json, .json.z, .json.gz)."),
        runtime: str = RUNTIME_OPTION,
        timeout: float = typer.Option(
            60.0, "--timeout", "--timeout-seconds", min=1, help="Health timeout, s."
        ),
        open_browser: bool = typer.Option(
            False, "--open-browser/--no-open-browser", help="Open the replay viewer in your browser."
        ),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Start the game in replay mode and print the viewer link; runs until interrupted.

        Only a replay is served: a .json, .json.z or .json.gz file (or URL) that parses as JSON; anything
        else is exit 2. The temporary directory (replay copy, server logs) is removed on every exit.
        """
        from coworld_pipeline.runtime.replay_server import (
            log_tail,
            materialize_replay,
            replay_workdir,
            serve_replay,
        )

        m = load_manifest_or_exit(manifest, as_json)
        rt = runtime_or_exit(runtime, manifest, as_json)
        try:
            with replay_workdir() as workdir:
                logs = workdir / "logs"
                try:
                    local = materialize_replay(replay_file, workdir / "replay")
                    with rt.sandbox(secrets.token_hex(8), "replay") as box:
                        package = manifest_dir(manifest)
                        server, url = serve_replay(box, m, local, workdir, timeout, package_dir=package)
                        if as_json:
                            print_json({"url": url, "logs": str(logs)})
                        else:
                            output.console.print(f"replay viewer: {url}", markup=False)
                            output.console.print("[dim]Ctrl-C to stop[/]")
                        if open_browser:
                            _open_in_browser(url)
                        while server.poll() is None:
                            time.sleep(0.2)
                        code = server.poll()
                except EpisodeFailure as exc:
                    if exc.error_type is ErrorType.MISSING_REPLAY:
                        fail_usage(exc.message, as_json)
                    _replay_failed(str(exc), log_tail(logs / "game.stderr.log", 2000), as_json)
                if code != 0:
                    tail = log_tail(logs / "game.stderr.log", 2000)
                    _replay_failed(f"replay server exited with code {code}", tail, as_json)
        except (KeyboardInterrupt, Terminated):
            output.err_console.print("stopped; the replay server and its temporary files were removed")
            raise typer.Exit(0) from None

    @app.command()
    def janitor(as_json: bool = JSON_OPTION) -> None:
        """Remove what platform processes that died left: containers, networks, processes, scratch dirs."""
        from coworld_pipeline.runtime.janitor import reap_orphans

        reaped = reap_orphans()
        if as_json:
            print_json(reaped)
        else:
            output.console.print(
                f"reaped {reaped['processes']} process group(s), {reaped['docker']} container(s)/network(s), "
                f"{reaped['firewall_rules']} firewall rule(s), {reaped['scratch_dirs']} scratch dir(s)"
            )
