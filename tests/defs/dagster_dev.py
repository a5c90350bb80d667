"""Start `dagster dev` (webserver + daemon + code server) on a fresh instance and talk GraphQL to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from coworld_pipeline.defs.league.recovery import TAG_WORKER
from coworld_pipeline.league import LeagueService
from coworld_pipeline.league.views import LeagueView
from tests.defs.helpers import REPO, descendants, free_port, orchard_processes, wait_for

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def instance_yaml(dagster_home: Path, template: Path | None = None) -> Path:
    """The repo's dagster.yaml (or `template`) with its storage moved into `dagster_home` (what an
    operator would do)."""
    text = (template or REPO / "dagster.yaml").read_text().replace(".dagster_home", str(dagster_home))
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    path.write_text(text)
    return path


class DagsterDev:
    """`dagster dev` in `root` (instance in root/dagster_home, league home in root/coworld_home).

    `instance_template` replaces the repo's dagster.yaml and `workspace` its workspace.yaml (e.g. a
    deployment profile whose code location is a gRPC server started beforehand).
    """

    def __init__(
        self,
        root: Path,
        env: dict[str, str] | None = None,
        port: int | None = None,
        instance_template: Path | None = None,
        workspace: Path | None = None,
    ):
        self.root = root
        self.dagster_home = root / "dagster_home"
        self.coworld_home = root / "coworld_home"
        instance_yaml(self.dagster_home, instance_template)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.log_path = root / "dagster_dev.log"
        full_env = {
            **os.environ,
            "DAGSTER_HOME": str(self.dagster_home),
            "COWORLD_HOME": str(self.coworld_home),
            "COWORLD_RUNTIME": "process",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self._log = self.log_path.open("wb")
        self.started = time.monotonic()
        workspace_file = str(workspace or "workspace.yaml")
        self.proc = subprocess.Popen(
            [DAGSTER, "dev", "-w", workspace_file, "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=REPO,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(self._ready, 120, "the dagster webserver and code location", interval=1.0)
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - self.started

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited: {self.log_tail()}")
        data = self.gql("{ assetNodes { assetKey { path } } }", check=False)
        return bool(data and data.get("assetNodes"))

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def gql(self, query: str, variables: dict[str, Any] | None = None, check: bool = True) -> Any:
        try:
            response = httpx.post(self.url, json={"query": query, "variables": variables or {}}, timeout=30)
        except httpx.HTTPError:
            if check:
                raise
            return None
        body = response.json()
        if check and body.get("errors"):
            raise AssertionError(body["errors"])
        return body.get("data")

    # ---- queries --------------------------------------------------------------------------------

    def materializations(self, asset: str, limit: int = 50) -> list[dict[str, Any]]:
        data = self.gql(
            """query($path: [String!]!, $limit: Int) {
              assetOrError(assetKey: {path: $path}) {
                ... on Asset { assetMaterializations(limit: $limit) {
                  partition runId timestamp
                  metadataEntries { label
                    ... on JsonMetadataEntry { jsonString }
                    ... on TextMetadataEntry { text }
                    ... on IntMetadataEntry { intValue }
                    ... on FloatMetadataEntry { floatValue }
                    ... on PathMetadataEntry { path }
                    ... on UrlMetadataEntry { url }
                    ... on MarkdownMetadataEntry { mdStr }
                  } } } } }""",
            {"path": [asset], "limit": limit},
        )
        out = []
        for m in (data["assetOrError"] or {}).get("assetMaterializations") or []:
            meta = {}
            for entry in m["metadataEntries"]:
                for key in ("jsonString", "text", "intValue", "floatValue", "path", "url", "mdStr"):
                    if key in entry:
                        meta[entry["label"]] = entry[key]
            out.append({"partition": m["partition"], "runId": m["runId"], "metadata": meta})
        return out

    def runs(self, tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
        data = self.gql(
            """query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) {
                 ... on Runs { results { runId jobName status tags { key value } } } } }""",
            {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
        )
        runs = data["runsOrError"]["results"]
        for run in runs:
            run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
        return runs

    # ---- shutdown -------------------------------------------------------------------------------

    def stop(self) -> None:
        family = descendants(self.proc.pid) if self.proc.poll() is None else []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            if sig == signal.SIGTERM:
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    pass
        for pid in family:  # anything that left the process group (run workers, code servers)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)
        self._log.close()
        # Game and player processes die with their run worker (PR_SET_PDEATHSIG).
        wait_for(
            lambda: not [p for p in orchard_processes() if p[0] in family or session_process(p[0])],
            30,
            "game/player processes to exit after dagster stopped",
        )


def session_process(pid: int) -> bool:
    mark = os.environ.get("CWP_TEST_SESSION")
    if not mark:
        return False
    try:
        return f"CWP_TEST_SESSION={mark}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


# ---- a round whose run worker is SIGKILLed mid-episode (shared by the process and docker tests) --


def wait_for_demo_standings(dev: DagsterDev) -> None:
    """A `standings` materialization whose order ranks exactly the demo's players."""
    from coworld_pipeline.demo import DEMO_PLAYERS

    standings = wait_for(
        lambda: [m for m in dev.materializations("standings") if m["metadata"].get("order")],
        120,
        "a standings materialization",
        1,
    )
    assert {p.partition(":")[0] for p in json.loads(standings[0]["metadata"]["order"])} == set(DEMO_PLAYERS)


@dataclass
class RoundUnderFire:
    """A round of the demo players, opened by hand in the league database of a `dagster dev`."""

    dev: DagsterDev
    service: LeagueService
    league: LeagueView
    round_pub: str
    total: int  # episodes of the round

    @classmethod
    def open(cls, dev: DagsterDev, name: str, episodes_per_pair: int) -> RoundUnderFire:
        from coworld_pipeline.demo import DEMO_PLAYERS, ensure_demo_league

        service = LeagueService(home=dev.coworld_home)
        league = ensure_demo_league(
            service, name=name, episodes_per_pair=episodes_per_pair, kick_off=False, interval_minutes=None
        )
        assert league is not None
        round_id = service.open_round(league.id, "test").round_id
        assert round_id
        pairs = len(DEMO_PLAYERS) * (len(DEMO_PLAYERS) - 1) // 2
        return cls(dev, service, league, f"round_{round_id}", pairs * episodes_per_pair)

    def succeeded(self) -> int:
        return self.service.round(self.round_pub).episodes.get("succeeded", 0)

    def started_runs_by_worker(self) -> dict[str, dict[str, Any]]:
        """Episode runs of the round in progress, by their worker (`<host>:<pid>`)."""
        return {
            r["tags"][TAG_WORKER]: r
            for r in self.dev.runs({"coworld/round": self.round_pub})
            if r["status"] == "STARTED" and TAG_WORKER in r["tags"]
        }

    def workers(self) -> set[str]:
        """Every run worker (`<host>:<pid>`) of this dagster instance so far."""
        return {r["tags"][TAG_WORKER] for r in self.dev.runs() if TAG_WORKER in r["tags"]}

    def assert_nothing_lost(self, victim_run_id: str, killed_at: float) -> None:
        """The round completes; every episode succeeded and was counted exactly once; the killed
        run is failed in Dagster and every episode partition is materialized."""

        def round_closed():
            info = self.service.round(self.round_pub)
            return info if info.status != "running" else None

        info = wait_for(round_closed, 300, "the round to complete after the kill", 1)
        print(f"round completed {time.monotonic() - killed_at:.1f}s after the SIGKILL")
        assert info.status == "completed", info
        assert info.episodes == {"succeeded": self.total}, info

        episodes = self.service.episodes(round_ref=self.round_pub, limit=1000)
        assert len(episodes) == self.total
        interrupted = [e for e in episodes if any(a["error_type"] == "interrupted" for a in e.attempt_errors)]
        assert interrupted, "the kill should have interrupted at least one episode"
        rated = [
            e.episode_request_id
            for e in self.service.events(self.league.id, event_type="episode_rated", limit=1000)
        ]
        assert sorted(rated) == sorted(e.id for e in episodes), "every episode counted exactly once"
        rows = self.service.standings(self.league.id)[0].standings
        assert sum(r.episodes for r in rows) == 2 * self.total

        statuses = {r["runId"]: r["status"] for r in self.dev.runs({"coworld/round": self.round_pub})}
        assert statuses[victim_run_id] == "FAILURE"
        wait_for(
            lambda: (
                {m["partition"] for m in self.dev.materializations("episodes", limit=1000)}
                >= {e.key for e in episodes}
            ),
            120,
            "every episode partition materialized",
            2,
        )
