"""Two real `coworld` CLI processes submitting and running rounds against one database at once."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

from coworld_pipeline.league.service import LeagueService
from tests.conftest import COWORLD, REPO
from tests.league.conftest import FAST, orchard_league


def test_two_cli_processes_lose_no_rows(db_url: str, home: Path):
    svc = LeagueService(db_url, home)
    orchard_league(
        svc,
        "Busy",
        players=("random", "greedy"),
        overrides={**FAST, "max_ticks": 5},
        commissioner_config={"episodes_per_pair": 1},
    )
    svc.close()
    results: dict[str, list[tuple[list[str], int, str, str]]] = {"a": [], "b": []}

    def worker(tag: str) -> None:
        steps: list[list[str]] = []
        for k in range(2):
            steps.append(
                [
                    "upload-policy",
                    "img",
                    "--name",
                    f"{tag}{k}",
                    "--run",
                    "python",
                    "--run",
                    "-m",
                    "--run",
                    "orchard.players.random",
                    "--json",
                ]
            )
            steps.append(["submit", f"{tag}{k}", "--league", "Busy", "--json"])
        # both processes also race for versions of one shared policy name
        steps.append(
            [
                "upload-policy",
                f"img-{tag}",
                "--name",
                "shared",
                "--run",
                "python",
                "--run",
                "-m",
                "--run",
                "orchard.players.greedy",
                "--json",
            ]
        )
        steps.append(["round", "run", "--league", "Busy", "--parallel", "2", "--json"])
        steps.append(["round", "run", "--league", "Busy", "--parallel", "2", "--json"])
        for args in steps:
            proc = subprocess.run(
                [*COWORLD, *args, "--db", db_url, "--home", str(home)],
                capture_output=True,
                text=True,
                timeout=300,
                cwd=REPO,
            )
            results[tag].append((args, proc.returncode, proc.stdout, proc.stderr))

    threads = [threading.Thread(target=worker, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for tag, runs in results.items():
        for args, code, out, err in runs:
            assert code == 0, (tag, args, out, err)
            assert "Traceback" not in err
    svc = LeagueService(db_url, home)
    try:
        labels = {p.label for p in svc.policies()}
        assert {"a0:v1", "a1:v1", "b0:v1", "b1:v1", "shared:v1", "shared:v2"} <= labels
        submitted = {
            json.loads(out)["id"]
            for runs in results.values()
            for args, _, out, _ in runs
            if args[0] == "submit"
        }
        assert submitted <= {s.id for s in svc.submissions("Busy")} and len(submitted) == 4
        assert len(svc.memberships("Busy")) == 6
        rounds = svc.rounds(league_ref="Busy", limit=200).entries
        assert rounds and {r.status for r in rounds} == {"completed"}
        numbers = sorted(r.round_number for r in rounds)
        assert numbers == list(range(1, len(numbers) + 1))
        episodes = svc.episodes(league_ref="Busy", limit=1000)
        assert {e.status for e in episodes} == {"succeeded"}
        assert all(e.attempts == 1 for e in episodes)  # nothing ran twice
        rated = sum(1 for e in svc.events("Busy", event_type="episode_rated", limit=100000))
        assert rated == len(episodes)
        per_entrant = {r.label: r.episodes for g in svc.standings("Busy") for r in g.standings}
        played = {}
        for e in episodes:
            for p in {s.label for s in e.seats}:
                played[p] = played.get(p, 0) + 1
        assert {k: v for k, v in per_entrant.items() if v} == played
    finally:
        svc.close()
