"""What an episode teaches, for a league: bundles, role runs, stored outputs, the league stats dataset.

Dagster-free (the assets in this folder and `coworld optimize` / `coworld league stats` both call it):

* `Knowledge(service, store, runtime_name)` — one per Dagster run or CLI command; runtimes and league
  manifests are built once and reused;
* `Knowledge.run_role(episode, kind, ref, slot)` — bundle the episode (from the artifact store; player
  logs only for `slot`), run the role through `runtime/roles.py`, store its validated outputs in the
  *knowledge store* and return a `RoleRun`. A broken role leaves `RoleRun.outcome.error` set and stores
  nothing: the episode's own files and ratings are never touched (roles only see a bundle copy);
* `Knowledge.optimize(league, policy)` — the optimizer over a policy's recent reports, grades, advice;
* `write_round_stats` / `stats_dir` — the `league_stats` dataset, hive-style::

      $COWORLD_HOME/stats/<league id>/round=<round id>/part-0.parquet
      columns: ts int64, player int64, key string, value string, episode string, policy string (+ round)

The knowledge store is the artifact store's sibling namespace (``<root>/knowledge/episodes/<ereq>/...``
locally, ``s3://<bucket>/<prefix>/knowledge/...`` on S3), so nothing is written next to an episode's
own artifacts: ``bundle.zip``, ``report.zip``, ``stats.parquet``, ``grade.json``, ``diagnosis-<slot>.*``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coworld_pipeline.runtime.artifacts import ArtifactStore, LocalArtifactStore, S3ArtifactStore
from coworld_pipeline.runtime.files import replace_whole

if TYPE_CHECKING:
    import pyarrow as pa

    from coworld_pipeline.contract import CoworldManifest
    from coworld_pipeline.league.service import LeagueService
    from coworld_pipeline.league.views import EpisodeView
    from coworld_pipeline.runtime.base import ResourceLimits, Runtime
    from coworld_pipeline.runtime.roles import RoleOutcome

# Files a role's validated outputs are stored as (knowledge store, under the episode id).
STORED_NAMES = {"report": "report.zip", "stats": "stats.parquet", "grade": "grade.json"}
STATS_FILE = "part-0.parquet"
PLANS_ID = "plans"  # knowledge-store "episode" holding optimizer plans: <league>.<policy version>.json


def knowledge_store(store: ArtifactStore) -> ArtifactStore:
    """The knowledge namespace next to an artifact store (same kind, same credentials)."""
    if isinstance(store, LocalArtifactStore):
        return LocalArtifactStore(store.root / "knowledge")
    if isinstance(store, S3ArtifactStore):
        return S3ArtifactStore(store.bucket, f"{store.prefix}/knowledge", store.endpoint_url, store.region)
    raise TypeError(f"no knowledge namespace for {store!r}")


def put_files(store: ArtifactStore, key: str, files: Mapping[str, Path]) -> dict[str, str]:
    """Store `files` (stored name -> local path) under `key`; returns stored name -> URI."""
    with tempfile.TemporaryDirectory(prefix="coworld-knowledge-") as tmp:
        for name, path in files.items():
            shutil.copyfile(path, Path(tmp) / name)
        return store.put_episode_dir(key, Path(tmp))


def stats_dir(home: Path, league_id: str) -> Path:
    """Root of a league's `league_stats` dataset (one `round=<id>/` directory per round)."""
    return Path(home) / "stats" / league_id


@dataclass(frozen=True)
class RoleRun:
    """One role run for a league episode: the runtime's outcome and where its outputs were stored."""

    episode_id: str
    kind: str
    outcome: RoleOutcome
    stored: dict[str, str] = field(default_factory=dict)  # stored name -> URI (empty when it failed)

    @property
    def ok(self) -> bool:
        return self.outcome.ok


class Knowledge:
    """Role runs for league episodes (see the module docstring). Thread-safe."""

    def __init__(
        self,
        service: LeagueService,
        store: ArtifactStore,
        runtime_name: str = "process",
        timeout_seconds: float = 300.0,
        limits: dict[str, ResourceLimits] | None = None,
    ):
        self.service = service
        self.store = store
        self.knowledge = knowledge_store(store)
        self.runtime_name = runtime_name
        self.timeout_seconds = timeout_seconds
        self.limits = limits
        self.home = Path(service.store.home)
        self._manifests: dict[str, tuple[CoworldManifest, str | None]] = {}
        self._runtimes: dict[str | None, Runtime] = {}
        self._lock = threading.Lock()

    # ---- league context ------------------------------------------------------------------------

    def manifest(self, league_id: str) -> tuple[CoworldManifest, str | None]:
        """The league's coworld manifest and the directory it was uploaded from."""
        with self._lock:
            if league_id not in self._manifests:
                from coworld_pipeline.contract import CoworldManifest
                from coworld_pipeline.league.reads import league_manifest

                raw, source = self.service.store.read(lambda s: league_manifest(s, league_id))
                self._manifests[league_id] = (CoworldManifest.model_validate(raw), source)
            return self._manifests[league_id]

    def runtime(self, source_dir: str | None) -> Runtime:
        from coworld_pipeline.runtime import make_runtime

        key = source_dir if self.runtime_name == "process" else None  # process: cwd per coworld
        with self._lock:
            if key not in self._runtimes:
                base = Path(source_dir) if source_dir else None
                self._runtimes[key] = make_runtime(self.runtime_name, base_dir=base, limits=self.limits)
            return self._runtimes[key]

    def roles(self, league_id: str) -> dict[str, str]:
        return dict(self.service.leagues(league_id)[0].roles)

    # ---- bundles and role runs -----------------------------------------------------------------

    def bundle(self, episode: EpisodeView, slot: int | None = None, dest: Path | None = None) -> Any:
        """The episode's bundle (CONTRACT §7) from the artifact store: every token but player logs,
        plus the player log of `slot` when one is given (a diagnoser reads only its target's log)."""
        from coworld_pipeline.runtime.bundles import BundleRequest, BundleSource, write_bundle

        owned = frozenset({slot}) if slot is not None else frozenset()
        source = BundleSource.store(self.store, episode.id)
        name = "bundle.zip" if slot is None else f"bundle-{slot}.zip"
        target = dest or self.home / "roles" / episode.id / name
        return write_bundle(BundleRequest(source, owned_slots=owned), target)

    def store_bundle(self, episode: EpisodeView) -> tuple[Any, str]:
        """Build the shared bundle (no player logs) and keep it in the knowledge store."""
        made = self.bundle(episode)
        uri = put_files(self.knowledge, episode.id, {"bundle.zip": made.path})["bundle.zip"]
        return made, uri

    def run_role(
        self, episode: EpisodeView, kind: str, ref: str | None = None, slot: int | None = None
    ) -> RoleRun:
        """Run one role on a league episode and store what it wrote (nothing when it failed).

        ValueError: `ref` names no runnable of the league's manifest (or `slot` is not a seat).
        """
        from coworld_pipeline.runtime.roles import (
            DiagnoseRequest,
            GradeRequest,
            ReportRequest,
            RoleOptions,
            resolve_role,
            run_role,
        )

        manifest, source_dir = self.manifest(episode.league_id)
        runnable = resolve_role(kind, manifest, ref)  # type: ignore[arg-type]
        if slot is not None and slot not in {s.position for s in episode.seats}:
            raise ValueError(f"{episode.id} has no slot {slot}")
        suffix = f"-slot{slot}" if slot is not None else ""
        run_dir = self.home / "roles" / episode.id / f"{kind}-{runnable.id}{suffix}"
        bundle = self.bundle(episode, slot, run_dir.parent / f"bundle{suffix}.zip")
        if kind == "reporter":
            request: Any = ReportRequest(bundle.path, runnable)
        elif kind == "grader":
            request = GradeRequest(bundle.path, runnable)
        elif kind == "diagnoser":
            request = DiagnoseRequest(bundle.path, runnable, target_slot=slot)
        else:
            raise ValueError(f"{kind} does not run on one episode")
        options = RoleOptions(timeout_seconds=self.timeout_seconds, purpose="league")
        outcome = run_role(request, run_dir, self.runtime(source_dir), options)
        stored: dict[str, str] = {}
        if outcome.ok:
            files = {STORED_NAMES[k]: p for k, p in outcome.outputs.items() if k in STORED_NAMES}
            if "diagnosis" in outcome.outputs:
                path = outcome.outputs["diagnosis"]
                files[f"diagnosis-{slot}{path.suffix}"] = path
            stored = put_files(self.knowledge, episode.id, files)
        return RoleRun(episode.id, kind, outcome, stored)

    def stored(self, episode_id: str, name: str) -> bytes | None:
        return self.knowledge.fetch(episode_id, name)

    def grade_of(self, episode_id: str) -> float | None:
        data = self.stored(episode_id, STORED_NAMES["grade"])
        return float(json.loads(data)["score"]) if data else None

    def diagnosis_name(self, episode_id: str, slot: int) -> str | None:
        names = set(self.knowledge.list_files(episode_id))
        return next((n for n in (f"diagnosis-{slot}.zip", f"diagnosis-{slot}.json") if n in names), None)

    # ---- optimizer -------------------------------------------------------------------------------

    def recent_episodes(self, league_ref: str, policy_ref: str, limit: int) -> list[EpisodeView]:
        return self.service.episodes(
            league_ref=league_ref, policy_ref=policy_ref, status="succeeded", limit=limit
        )

    def optimize(self, league_ref: str, policy_ref: str, recent: int = 5, ref: str | None = None) -> Any:
        """Run the optimizer for a policy version over its `recent` succeeded episodes in a league.

        Stored reports, grades and advice are used where the league made them; missing ones are made
        now with the league's role settings (else the manifest's first runnable, else the built-in).
        Returns (RoleOutcome, plan URI or None, the episode ids used). LeagueError: unknown refs;
        ValueError: no episodes, or a role reference the manifest does not declare.
        """
        from coworld_pipeline.league.errors import LeagueError
        from coworld_pipeline.runtime.roles import OptimizeRequest, RoleOptions, resolve_role, run_role

        league = self.service.leagues(league_ref)[0]
        episodes = self.recent_episodes(league.id, policy_ref, recent)
        if not episodes:
            raise LeagueError(f"policy {policy_ref!r} has no succeeded episodes in league {league.name}")
        pv_id = self._policy_version_of(episodes, policy_ref)
        manifest, source_dir = self.manifest(league.id)
        inputs = self.home / "roles" / "optimizer" / f"{league.id}.{pv_id}" / "gathered"
        shutil.rmtree(inputs, ignore_errors=True)
        inputs.mkdir(parents=True)
        reports, grades, diagnoses = [], [], []
        for episode in episodes:
            slot = next(s.position for s in episode.seats if s.policy_version_id == pv_id)
            for kind, name, into, target in (
                ("reporter", STORED_NAMES["report"], reports, None),
                ("grader", STORED_NAMES["grade"], grades, None),
                ("diagnoser", self.diagnosis_name(episode.id, slot), diagnoses, slot),
            ):
                data = self.stored(episode.id, name) if name else None
                if data is None:
                    made = self.run_role(episode, kind, league.roles.get(kind), target)
                    if not made.ok:
                        continue  # the optimizer works with what there is; the failure is in made's logs
                    name = next(n for n in made.stored if n != "bundle.zip")
                    data = self.stored(episode.id, name)
                path = inputs / f"{episode.id}-{name}"
                path.write_bytes(data or b"")
                into.append(path)
        runnable = resolve_role("optimizer", manifest, ref)
        run_dir = inputs.parent / f"optimizer-{runnable.id}"
        request = OptimizeRequest(
            manifest.to_json_dict(), runnable, tuple(reports), tuple(grades), tuple(diagnoses)
        )
        options = RoleOptions(timeout_seconds=self.timeout_seconds, purpose="league")
        outcome = run_role(request, run_dir, self.runtime(source_dir), options)
        uri = None
        if outcome.ok:
            uri = put_files(self.knowledge, PLANS_ID, {f"{league.id}.{pv_id}.json": outcome.outputs["plan"]})
            uri = next(iter(uri.values()))
        return outcome, uri, [e.id for e in episodes]

    @staticmethod
    def _policy_version_of(episodes: list[EpisodeView], policy_ref: str) -> str:
        """The policy version `policy_ref` names in these episodes (a name, name:vN or version id)."""
        for seat in episodes[0].seats:
            label = seat.label or ""
            if policy_ref in (seat.policy_version_id, label, label.split(":v")[0]):
                return seat.policy_version_id
        # policy_ref matched through an older label: the seat shared by every episode is the one
        shared = set.intersection(*({s.policy_version_id for s in e.seats} for e in episodes))
        return sorted(shared)[0]


# ---- league_stats ----------------------------------------------------------------------------------


def episode_rows(episode_id: str, labels: Mapping[int, str], stats: bytes) -> pa.Table:
    """One episode's event log with its `episode` and per-row `policy` (the seat's label; "" global)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(stats))
    # Vectorized (10k episodes per league are routine): label of player p is names[p + 1].
    top = max([*labels, 0])
    names = pa.array([""] + [labels.get(p, "") for p in range(top + 1)], pa.string())
    players = pc.add(table.column("player"), 1)
    policy = pc.take(names, pc.if_else(pc.less_equal(players, top + 1), players, 0))
    episode = pa.repeat(pa.scalar(episode_id, pa.string()), table.num_rows)
    return table.append_column("episode", episode).append_column("policy", policy)


def write_round_stats(root: Path, round_id: str, tables: Iterable[pa.Table]) -> tuple[Path, int]:
    """Write one round's partition (`round=<id>/part-0.parquet`, replaced atomically); (path, rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = [t for t in tables if t.num_rows]
    schema = pa.schema(
        [
            ("ts", pa.int64()),
            ("player", pa.int64()),
            ("key", pa.string()),
            ("value", pa.string()),
            ("episode", pa.string()),
            ("policy", pa.string()),
        ]
    )
    table = pa.concat_tables([t.cast(schema) for t in parts]) if parts else schema.empty_table()
    path = Path(root) / f"round={round_id}" / STATS_FILE
    replace_whole(path, lambda tmp: pq.write_table(table, tmp))
    return path, table.num_rows


def duckdb_view_sql(root: Path) -> str:
    """The DuckDB relation over a league's dataset (round from the hive path)."""
    pattern = str(Path(root) / "*" / "*.parquet").replace("'", "''")
    return f"read_parquet('{pattern}', hive_partitioning = true)"


STATS_QUERY_ROWS = 10_000  # rows a query returns at most (the rest: add LIMIT / aggregate)
STATS_QUERY_SECONDS = 60.0
STATS_QUERY_MEMORY = "1GB"
_READ_ONLY = ("SELECT", "EXPLAIN")  # DuckDB parses WITH, DESCRIBE, SUMMARIZE and VALUES as SELECT


class StatsQueryError(ValueError):
    """The query was refused, failed or ran out of time; the message says which."""


@dataclass(frozen=True)
class StatsQuery:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool  # more rows than STATS_QUERY_ROWS matched


def query_stats(root: Path, sql: str) -> StatsQuery:
    """One read-only DuckDB query over a league's dataset as the view `league_stats`.

    Bounded like every other input: one SELECT-like statement (no COPY, ATTACH, INSTALL, SET, ...),
    files readable only below `root` and nothing written, 1 GB of memory, 60 s, 10,000 rows.
    """
    import duckdb

    con = duckdb.connect(config={"memory_limit": STATS_QUERY_MEMORY})
    timer = threading.Timer(STATS_QUERY_SECONDS, con.interrupt)
    try:
        kinds = [str(st.type).rsplit(".", 1)[-1] for st in con.extract_statements(sql)]
        if len(kinds) != 1 or kinds[0] not in _READ_ONLY:
            raise StatsQueryError(
                "--sql takes one read-only query (SELECT, WITH, DESCRIBE, SUMMARIZE, EXPLAIN); "
                f"got {', '.join(kinds) or 'none'}"
            )
        root = Path(root).resolve()  # the one directory it may read, as DuckDB will see the paths
        quoted = str(root).replace("'", "''")
        con.execute(f"SET allowed_directories = ['{quoted}/']")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        con.execute(f"CREATE VIEW league_stats AS SELECT * FROM {duckdb_view_sql(root)}")
        timer.start()
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchmany(STATS_QUERY_ROWS + 1)
    except duckdb.InterruptException:
        raise StatsQueryError(f"the query ran longer than {STATS_QUERY_SECONDS:.0f} s") from None
    except duckdb.Error as exc:
        raise StatsQueryError(f"SQL error: {_first_line(exc)}") from None
    finally:
        timer.cancel()
        con.close()
    return StatsQuery(columns, rows[:STATS_QUERY_ROWS], len(rows) > STATS_QUERY_ROWS)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or ["?"])[0]
