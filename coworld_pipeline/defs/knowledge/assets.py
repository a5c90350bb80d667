"""Knowledge assets: what each league episode teaches, with lineage back to `episodes`.

    episodes -> episode_bundles -> episode_reports, episode_stats (one reporter run), episode_grades
             episode_bundles -> diagnoser_advice (per league policy version) -> optimizer_plans (on request)
             episode_stats   -> league_stats (per round: one hive-partitioned pyarrow dataset per league)

Why a sensor and not an `AutomationCondition`: whether a league runs a role is a league setting (the
`roles` column of the league database), which a declarative condition cannot read; `eager()` would
start a run for every episode of every league just to find the role switched off. The `knowledge`
sensor (sensors.py) requests exactly the enabled roles' assets for each new succeeded episode, once.

A broken role run (crash, timeout, invalid output, too large) fails the materialization with the
typed `role_*` reason, the message and the logs path in the failure's metadata; the step is retried
like an infrastructure failure (`ROLE_RETRY`); the episode's own files and ratings are never touched.
"""

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any, NoReturn

import dagster as dg

from coworld_pipeline.defs.knowledge.core import (
    PLANS_ID,
    Knowledge,
    RoleRun,
    duckdb_view_sql,
    episode_rows,
    stats_dir,
    write_round_stats,
)
from coworld_pipeline.defs.knowledge.partitions import policy_partitions, split_policy_key
from coworld_pipeline.defs.knowledge.resources import KnowledgeResource
from coworld_pipeline.defs.league.metadata import md_code, md_table, md_text, round_name
from coworld_pipeline.defs.league.partitions import episode_partitions, round_partitions
from coworld_pipeline.defs.league.settings import decimal, whole_number

GROUP = "knowledge"
PREVIEW_ROWS = 20
AUTOMATION = (
    " Materialized by the `knowledge` sensor for each new succeeded episode of a league that enables "
    "the role (a league setting in the league database, which an AutomationCondition cannot read)."
)


def _retry_policy() -> dg.RetryPolicy:
    """Role failures are retried like infrastructure failures: a few attempts, backing off."""
    retries = whole_number("COWORLD_ROLE_RETRIES")
    delay = decimal("COWORLD_ROLE_RETRY_DELAY_SECONDS")
    return dg.RetryPolicy(max_retries=retries, delay=delay, backoff=dg.Backoff.EXPONENTIAL)


ROLE_RETRY = _retry_policy()
ALL_EPISODES = dg.AllPartitionMapping()  # a per-round / per-policy asset reads many episodes
# What every knowledge asset that runs a role shares (the UI groups them; failures are retried).
ROLE_ASSET: dict[str, Any] = {"group_name": GROUP, "kinds": {"python"}, "retry_policy": ROLE_RETRY}


def _enabled_ref(kn: Knowledge, league_id: str, kind: str) -> str:
    ref = kn.roles(league_id).get(kind)
    if ref is None:
        raise dg.Failure(
            f"league {league_id} does not enable a {kind} (coworld league create ... --{kind} ID)",
            allow_retries=False,
        )
    return ref


def episode_role(kn: Knowledge, episode_id: str, kind: str) -> tuple[Any, RoleRun]:
    """Run the league's `kind` on one episode; a broken run fails the materialization."""
    episode = kn.service.episode(episode_id)
    run = kn.run_role(episode, kind, _enabled_ref(kn, episode.league_id, kind))
    if not run.ok:
        fail_role(run)
    return episode, run


def fail_role(run: RoleRun) -> NoReturn:
    """A failed materialization: the typed reason, the message and where the logs are."""
    outcome = run.outcome
    error = outcome.error
    assert error is not None
    raise dg.Failure(
        description=f"{run.kind} {outcome.runnable_id} failed on {run.episode_id}: "
        f"{error.error_type}: {error.message}",
        metadata={
            "error_type": str(error.error_type),
            "reason": str(error.details.get("reason", error.error_type)),
            "message": error.message[:2000],
            "runnable": outcome.runnable_id,
            "logs": dg.MetadataValue.path(str(outcome.logs_dir)),
            "error_info": dg.MetadataValue.path(str(outcome.run_dir / "error_info.json")),
            "stderr_tail": dg.MetadataValue.md(md_code(str(error.details.get("stderr_tail", ""))[-1500:])),
        },
        allow_retries=True,
    )


def _role_metadata(run: RoleRun) -> dict[str, Any]:
    outcome = run.outcome
    meta: dict[str, Any] = {
        "runnable": outcome.runnable_id,
        "builtin": outcome.builtin,
        "wall_seconds": round(outcome.wall_seconds, 3),
        "logs": dg.MetadataValue.path(str(outcome.logs_dir)),
    }
    for name, uri in run.stored.items():
        meta[f"artifact:{name}"] = dg.MetadataValue.path(uri[7:]) if uri.startswith("file://") else uri
    return meta


def stats_preview(table: Any, rows: int = PREVIEW_ROWS) -> dg.TableMetadataValue:
    columns = list(table.column_names)
    kinds = {"int64": "int", "string": "string", "large_string": "string"}
    return dg.MetadataValue.table(
        records=[dg.TableRecord({k: v for k, v in r.items()}) for r in table.slice(0, rows).to_pylist()],
        schema=dg.TableSchema(
            columns=[dg.TableColumn(c, kinds.get(str(table.schema.field(c).type), "string")) for c in columns]
        ),
    )


def _zip_member(data: bytes, name: str | None) -> str:
    if not name:
        return ""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read(name).decode("utf-8", errors="replace") if name in archive.namelist() else ""


def advice_text(data: bytes) -> str:
    """The readable part of a diagnoser's advice: its zip's render/advice.md, or a JSON's advice list."""
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            manifest = json.loads(archive.read("manifest.json")) if "manifest.json" in names else {}
            render = manifest.get("render")
            member = render if render in names else next((n for n in names if n.endswith(".md")), None)
        return _zip_member(data, member)
    doc = json.loads(data)
    return "\n".join(f"- {item}" for item in doc.get("advice") or [])


# ---- per episode ---------------------------------------------------------------------------------


@dg.asset(
    partitions_def=episode_partitions,
    deps=["episodes"],
    **ROLE_ASSET,
    description="The episode bundle (CONTRACT §7 zip with its manifest.json) the roles read: every "
    "include token but player logs (those go only to a diagnoser, for its target slot)." + AUTOMATION,
)
def episode_bundles(
    context: dg.AssetExecutionContext,
    knowledge: KnowledgeResource,
) -> dg.MaterializeResult:
    kn = knowledge.knowledge()
    episode = kn.service.episode(context.partition_key)
    made, uri = kn.store_bundle(episode)
    return dg.MaterializeResult(
        metadata={
            "league": episode.league_id,
            "round": episode.round_id,
            "episode_status": made.status,
            "include": dg.MetadataValue.json(made.manifest["include"]),
            "size_bytes": made.size,
            "sha256": made.sha256,
            "bundle": dg.MetadataValue.path(uri[7:]) if uri.startswith("file://") else uri,
        }
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "episode_reports",
            deps=["episode_bundles"],
            group_name=GROUP,
            kinds={"python"},
            description="The league's reporter on the episode bundle: a validated report zip "
            "(its rendered page previewed here)." + AUTOMATION,
        ),
        dg.AssetSpec(
            "episode_stats",
            deps=["episode_bundles"],
            group_name=GROUP,
            kinds={"parquet"},
            description="The reporter's event log (ts, player, key, value) as parquet in the knowledge "
            "store, with its row count and a preview." + AUTOMATION,
        ),
    ],
    partitions_def=episode_partitions,
    retry_policy=ROLE_RETRY,
    name="reporter_run",
)
def reporter_run(
    context: dg.AssetExecutionContext,
    knowledge: KnowledgeResource,
) -> Iterator[dg.MaterializeResult]:
    _, run = episode_role(knowledge.knowledge(), context.partition_key, "reporter")
    outcome = run.outcome
    base = _role_metadata(run)
    report_bytes = outcome.outputs["report"].read_bytes()
    rendered = _zip_member(report_bytes, outcome.report.render if outcome.report else None)
    yield dg.MaterializeResult(
        asset_key="episode_reports",
        metadata={**base, "report": dg.MetadataValue.md(rendered[:20_000] or "(no rendered page)")},
    )
    stats: dict[str, Any] = {"rows": 0, "note": "the reporter wrote no event log"}
    if "stats" in outcome.outputs:
        import pyarrow.parquet as pq

        table = pq.read_table(outcome.outputs["stats"])
        stats = {"rows": table.num_rows, "preview": stats_preview(table)}
    yield dg.MaterializeResult(asset_key="episode_stats", metadata={**base, **stats})


@dg.asset(
    partitions_def=episode_partitions,
    deps=["episode_bundles"],
    **ROLE_ASSET,
    description="The league's grader on the episode bundle: one finite score (how worth watching "
    "the episode was; plotted over partitions)." + AUTOMATION,
)
def episode_grades(
    context: dg.AssetExecutionContext,
    knowledge: KnowledgeResource,
) -> dg.MaterializeResult:
    episode, run = episode_role(knowledge.knowledge(), context.partition_key, "grader")
    grade = dict(run.outcome.grade or {})
    return dg.MaterializeResult(
        metadata={
            **_role_metadata(run),
            "score": float(grade["score"]),
            "round": episode.round_id,
            "league": episode.league_id,
            "grade": dg.MetadataValue.json(grade),
        }
    )


# ---- per league policy version, per round ----------------------------------------------------------


@dg.asset(
    partitions_def=policy_partitions,
    deps=[dg.AssetDep("episode_bundles", partition_mapping=ALL_EPISODES)],
    **ROLE_ASSET,
    description="The league's diagnoser on a policy version's recent episodes (its own seat's player "
    "log only): advice for the policy's author. One partition per `<league>:<policy version>`; "
    "requested by the `knowledge` sensor when a round of a league that enables the diagnoser closes.",
)
def diagnoser_advice(
    context: dg.AssetExecutionContext,
    knowledge: KnowledgeResource,
) -> dg.MaterializeResult:
    kn = knowledge.knowledge()
    league_id, pv_id = split_policy_key(context.partition_key)
    ref = _enabled_ref(kn, league_id, "diagnoser")
    rows, texts, failures = [], [], []
    policy_label = pv_id  # the partition key is ids; the UI also shows who it is for (`name:vN`)
    for episode in kn.recent_episodes(league_id, pv_id, knowledge.recent_episodes):
        seat = next(s for s in episode.seats if s.policy_version_id == pv_id)
        slot, policy_label = seat.position, seat.label or policy_label
        name = kn.diagnosis_name(episode.id, slot)
        if name is None:  # not diagnosed yet (an earlier round's advice is reused)
            run = kn.run_role(episode, "diagnoser", ref, slot)
            if not run.ok:
                failures.append(run)
                continue
            name = next(iter(run.stored))
        text = advice_text(kn.stored(episode.id, name) or b"{}")
        texts.append(f"### {md_text(episode.key or episode.id)} (slot {slot})\n\n{text}")
        first = (text.strip().splitlines() or [""])[0][:200]
        rows.append([episode.key or episode.id, round_name(episode), slot, first])
    if failures and not rows:
        fail_role(failures[0])
    for run in failures:
        context.log.warning(f"diagnoser failed on {run.episode_id}: {run.outcome.error}")
    return dg.MaterializeResult(
        metadata={
            "league": league_id,
            "policy_version": pv_id,
            "policy": policy_label,
            "episodes": len(rows),
            "failed_episodes": dg.MetadataValue.json([r.episode_id for r in failures]),
            "summary": dg.MetadataValue.md(md_table(["episode", "round", "slot", "first advice"], rows)),
            "advice": dg.MetadataValue.md("\n\n".join(texts)[:40_000] or "no episodes yet"),
        }
    )


@dg.asset(
    partitions_def=policy_partitions,
    deps=[
        "diagnoser_advice",
        dg.AssetDep("episode_reports", partition_mapping=ALL_EPISODES),
        dg.AssetDep("episode_grades", partition_mapping=ALL_EPISODES),
    ],
    **ROLE_ASSET,
    description="The optimizer's plan for a policy version from its recent reports, grades and advice "
    "(missing ones are made first). On request only: materialize a partition in the UI, launch the "
    "`optimize_policy` job, or run `coworld optimize --league L --policy NAME`.",
)
def optimizer_plans(
    context: dg.AssetExecutionContext,
    knowledge: KnowledgeResource,
) -> dg.MaterializeResult:
    kn = knowledge.knowledge()
    league_id, pv_id = split_policy_key(context.partition_key)
    outcome, uri, used = kn.optimize(league_id, pv_id, knowledge.recent_episodes)
    if not outcome.ok:
        fail_role(RoleRun(PLANS_ID, "optimizer", outcome))
    return dg.MaterializeResult(
        metadata={
            "runnable": outcome.runnable_id,
            "episodes": dg.MetadataValue.json(used),
            "plan": dg.MetadataValue.json(dict(outcome.plan or {})),
            "plan_file": dg.MetadataValue.path(uri[7:]) if uri and uri.startswith("file://") else (uri or ""),
            "logs": dg.MetadataValue.path(str(outcome.logs_dir)),
        }
    )


@dg.asset(
    partitions_def=round_partitions,
    deps=[dg.AssetDep("episode_stats", partition_mapping=ALL_EPISODES)],
    group_name=GROUP,
    kinds={"parquet", "duckdb"},
    description="One pyarrow dataset over every event log of a league, partitioned by round "
    "(hive-style `round=<id>/part-0.parquet` under `$COWORLD_HOME/stats/LEAGUE_ID/`), with each "
    "row's episode and policy. Requested by the `knowledge` sensor once a closed round's reports are "
    "done; query it with `coworld league stats L --sql ...`.",
)
def league_stats(
    context: dg.AssetExecutionContext,
    knowledge: KnowledgeResource,
) -> dg.MaterializeResult:
    kn = knowledge.knowledge()
    round_id = kn.service.round(context.partition_key).id  # the key is readable (`league.rN`)
    episodes = kn.service.episodes(round_ref=round_id, status="succeeded", limit=100_000)
    tables, missing = [], []
    for episode in episodes:
        data = kn.stored(episode.id, "stats.parquet")
        if data is None:
            missing.append(episode.id)
            continue
        labels = {s.position: s.label or s.policy_version_id for s in episode.seats}
        tables.append(episode_rows(episode.id, labels, data))
    league_id = kn.service.round(round_id).league.id
    root = stats_dir(kn.home, league_id)
    path, rows = write_round_stats(root, round_id, tables)
    import pyarrow.parquet as pq

    return dg.MaterializeResult(
        metadata={
            "league": league_id,
            "rows": rows,
            "episodes_with_stats": len(tables),
            "episodes_without_stats": dg.MetadataValue.json(missing),
            "dataset": dg.MetadataValue.path(str(root)),
            "partition_file": dg.MetadataValue.path(str(path)),
            "preview": stats_preview(pq.read_table(path)),
            "open_with": dg.MetadataValue.md(
                f'```python\nimport duckdb\nduckdb.sql("SELECT * FROM {duckdb_view_sql(root)}").show()\n```'
            ),
        }
    )


def best_graded_metadata(kn: Knowledge, league_id: str, rounds: int = 5, top: int = 3) -> dict[str, Any]:
    """The best-graded episodes of a league's last `rounds` rounds (empty when nothing was graded)."""
    rows = []
    for rnd in kn.service.rounds(league_ref=league_id, limit=rounds).entries:
        graded = []
        for episode in kn.service.episodes(round_ref=rnd.id, status="succeeded", limit=100_000):
            score = kn.grade_of(episode.id)
            if score is not None:
                graded.append((score, episode))
        graded.sort(key=lambda pair: -pair[0])
        for score, episode in graded[:top]:
            seats = " vs ".join(s.label or s.policy_version_id for s in episode.seats)
            name = episode.key or episode.id
            rows.append([rnd.round_number, name, score, seats, f"coworld replay-open {name}"])
    if not rows:
        return {}
    return {
        "best_graded_episodes": dg.MetadataValue.md(
            md_table(["round", "episode", "grade", "seats", "watch"], rows)
        )
    }
