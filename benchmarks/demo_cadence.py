"""The demo's round cadence under `dagster dev`: a round a minute, every schedule tick explained.

    .venv/bin/python benchmarks/demo_cadence.py [--minutes 5] [--port 18410]

Starts `dagster dev` the way `make demo` does (COWORLD_DEMO=1, the `process` runtime, the repo's
dagster.yaml) but on its own port, Dagster instance and platform home (temp dirs). The commissioner
sensor seeds `orchard-demo` (a round every minute) and opens its kick-off round; from the first
round the `open_rounds` schedule opens, it watches `--minutes` schedule ticks and prints, per tick,
what it did (the round it opened, or its skip reason) and the rounds opened per minute. Then it
pauses the league (`coworld league pause`), waits for the next tick and prints its skip reason and
the `schedule_skipped` event `coworld events` shows.

Target: N rounds in N minutes (+-0), every tick with an explanation; "paused" in the tick after the
pause and in `coworld events`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coworld_pipeline.demo import DEMO_LEAGUE  # noqa: E402
from coworld_pipeline.league import LeagueService  # noqa: E402

BIN = Path(sys.executable).parent
TICKS = """query { repositoriesOrError { ... on RepositoryConnection { nodes { schedules { name
  scheduleState { ticks(limit: 40) { tickId status timestamp skipReason runIds
    error { message } logEvents { events { message } } } } } } } } }"""


def wait_until(fn: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
            if value:
                return value
        except (httpx.HTTPError, OSError, ValueError, KeyError):
            pass  # not up yet
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def gql(url: str, query: str) -> Any:
    body = httpx.post(url, json={"query": query}, timeout=30).json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]


def schedule_ticks(url: str) -> list[dict[str, Any]]:
    """The `open_rounds` schedule's finished ticks, oldest first."""
    for repo in gql(url, TICKS)["repositoriesOrError"]["nodes"]:
        for schedule in repo["schedules"]:
            if schedule["name"] == "open_rounds":
                ticks = schedule["scheduleState"]["ticks"]
                return sorted((t for t in ticks if t["status"] != "STARTED"), key=lambda t: t["timestamp"])
    return []


def explanation(tick: dict[str, Any]) -> str:
    lines = [e["message"] for e in (tick.get("logEvents") or {}).get("events", [])]
    if tick["status"] == "SKIPPED":
        return tick["skipReason"] or ""
    if tick["status"] == "FAILURE":
        return f"FAILED: {(tick.get('error') or {}).get('message', '')[:200]}"
    return "; ".join(lines) + f" -> {len(tick['runIds'])} run(s)"


def hhmmss(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minutes", type=int, default=5, help="schedule ticks to watch after the first round"
    )
    parser.add_argument("--port", type=int, default=18410, help="the dagster webserver port")
    parser.add_argument("--keep", action="store_true", help="keep the temp homes and dagster_dev.log")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="demo-cadence-"))
    dagster_home, coworld_home = root / "dagster_home", root / "coworld_home"
    dagster_home.mkdir()
    text = (REPO / "dagster.yaml").read_text().replace(".dagster_home", str(dagster_home))
    (dagster_home / "dagster.yaml").write_text(text)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "COWORLD_HOME": str(coworld_home),
        "COWORLD_DEMO": "1",
        "COWORLD_RUNTIME": "process",
    }
    url = f"http://127.0.0.1:{args.port}/graphql"
    log = (root / "dagster_dev.log").open("wb")
    command = [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(args.port)]
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        started = time.monotonic()
        wait_until(lambda: gql(url, "{ assetNodes { assetKey { path } } }")["assetNodes"], 240, "dagster dev")
        print(f"dagster dev ready in {time.monotonic() - started:.0f}s (home {root})", flush=True)
        service = LeagueService(home=coworld_home)
        wait_until(lambda: [lg for lg in service.leagues() if lg.name == DEMO_LEAGUE], 120, "the demo league")

        def scheduled_rounds() -> list[Any]:
            rounds = service.rounds(league_ref=DEMO_LEAGUE, limit=1000).entries
            return sorted(
                (r for r in rounds if r.trigger.startswith("schedule")), key=lambda r: r.round_number
            )

        first = wait_until(scheduled_rounds, 240, "the first round the schedule opens", 1.0)[0]
        # The tick that opened it (the oldest that did; it may still be finishing when the round shows).
        first_tick = wait_until(
            lambda: next((t for t in schedule_ticks(url) if t["runIds"] or "opened" in explanation(t)), None),
            60,
            "the tick that opened the first scheduled round",
            1.0,
        )
        t0 = first_tick["timestamp"]
        print(f"first scheduled round: {first.round_number}, tick {hhmmss(t0)}", flush=True)
        # Wait for the N ticks of the window [t0, t0 + N minutes) and the first one after it.
        wait_until(
            lambda: len([t for t in schedule_ticks(url) if t["timestamp"] >= t0 - 1]) > args.minutes,
            args.minutes * 60 + 150,
            f"{args.minutes + 1} schedule ticks",
            2.0,
        )
        ticks = [t for t in schedule_ticks(url) if t0 - 1 <= t["timestamp"] < t0 + args.minutes * 60 - 1]
        opened = [r for r in scheduled_rounds() if r.round_number >= first.round_number]
        in_window = [
            r for r in opened if r.started_at.replace(tzinfo=UTC).timestamp() < t0 + args.minutes * 60 - 1
        ]
        print(f"\nschedule ticks {hhmmss(t0)} .. +{args.minutes} min:")
        for tick in ticks:
            print(f"  {hhmmss(tick['timestamp'])}  {tick['status']:<8} {explanation(tick)}")
        unexplained = [t for t in ticks if not explanation(t).strip()]
        per_minute = [
            sum(
                1
                for r in in_window
                if t0 + 60 * m - 1 <= r.started_at.replace(tzinfo=UTC).timestamp() < t0 + 60 * (m + 1) - 1
            )
            for m in range(args.minutes)
        ]
        print(f"\nrounds opened per minute: {per_minute}")
        print(f"rounds opened in {args.minutes} min: {len(in_window)} (target {args.minutes})")
        print(f"ticks without an explanation: {len(unexplained)}")

        # Pause: the next tick says so, and so does `coworld events`.
        paused_at = time.time()
        coworld = [str(BIN / "coworld")]
        cli_env = {**env, "COWORLD_HOME": str(coworld_home)}  # the CLI's --home, as the demo sets it
        subprocess.run(
            [*coworld, "league", "pause", DEMO_LEAGUE], env=cli_env, check=True, capture_output=True
        )
        tick = wait_until(
            lambda: next((t for t in schedule_ticks(url) if t["timestamp"] > paused_at), None),
            150,
            "the tick after the pause",
            2.0,
        )
        print(f"\npaused at {hhmmss(paused_at)}; next tick {hhmmss(tick['timestamp'])}: {explanation(tick)}")
        events = json.loads(
            subprocess.run(
                [*coworld, "events", "--league", DEMO_LEAGUE, "--type", "schedule_skipped", "--json"],
                env=cli_env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        newest = events[-1]["headline"] if events else "(none)"  # `coworld events` lists oldest first
        print(f"coworld events (schedule_skipped, newest): {newest}")
        ok = (
            len(in_window) == args.minutes
            and not unexplained
            and "paused" in explanation(tick)
            and bool(events)
            and "paused" in newest
        )
        print(
            f"\n{'PASS' if ok else 'FAIL'}: {len(in_window)}/{args.minutes} rounds, paused shown: "
            f"{'paused' in explanation(tick)}"
        )
        if not ok:
            sys.exit(1)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=20)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
