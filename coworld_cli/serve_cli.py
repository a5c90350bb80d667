"""`coworld serve`: the local web app for replays and live games (coworld_pipeline/viewer/)."""

from __future__ import annotations

from typing import Annotated

import typer

from coworld_cli.league.options import Db, Home
from coworld_cli.league.session import league_service
from coworld_cli.output import console, err_console, fail_usage


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 3001,
    idle_seconds: Annotated[
        float,
        typer.Option(
            "--idle-seconds", min=0.1, help="Stop a replay server nobody has used for this many seconds."
        ),
    ] = 300.0,
    runtime: Annotated[
        str,
        typer.Option(
            "--runtime", envvar="COWORLD_RUNTIME", help="Where replay servers run: process | docker."
        ),
    ] = "process",
    startup_timeout: Annotated[
        float, typer.Option("--timeout-seconds", min=1, help="Seconds a replay server may take to start.")
    ] = 60.0,
    db: Db = None,
    home: Home = None,
) -> None:
    """Serve replays and live games of the league: /, /replay/EPISODE, /live/EPISODE (Ctrl-C to stop)."""
    from coworld_pipeline.runtime import RUNTIMES
    from coworld_pipeline.runtime.signals import Terminated
    from coworld_pipeline.viewer.app import ViewerApp, make_server
    from coworld_pipeline.viewer.replays import ReplaySessions

    if runtime not in RUNTIMES:
        fail_usage(f"--runtime: unknown runtime {runtime!r} (choose: {', '.join(RUNTIMES)})")
    # "" would listen on every address, while the URL printed below says 127.0.0.1.
    with league_service(db, home, False, {"--host": host}) as svc:
        replays = ReplaySessions(runtime, idle_seconds, startup_timeout)
        try:
            server = make_server(ViewerApp(svc, replays), host, port)
        except OSError as exc:
            replays.close()
            fail_usage(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})")
        shown = "127.0.0.1" if host == "0.0.0.0" else host
        console.print(f"coworld serve: http://{shown}:{port}  (league home {svc.home})", markup=False)
        try:
            server.serve_forever(poll_interval=0.2)
        except (KeyboardInterrupt, Terminated):
            err_console.print("coworld serve: stopping", markup=False)
        finally:
            server.server_close()
            replays.close()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
