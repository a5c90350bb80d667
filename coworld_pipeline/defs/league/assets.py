"""League assets: `episodes` (one partition per episode request), `round_results`, `standings`.

A run of `episodes` plays the K partitions of its partition range in a bounded thread pool through
`LeagueService.execute_episode` (atomic claim; an episode already played or running elsewhere is
not played again) and logs one materialization per episode, with its metadata, the moment the
episode is final (so a run killed half-way keeps what it finished). The blocking
check `results_match_manifest` re-reads every stored `results.json` and validates it against the
coworld manifest and the scores the league recorded.
"""

import json
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import dagster as dg

from coworld_pipeline.contract import ContractError, parse_manifest, validate_results
from coworld_pipeline.defs.league.partitions import episode_partitions, league_partitions, round_partitions
from coworld_pipeline.defs.league.recovery import worker_tag
from coworld_pipeline.defs.league.resources import (
    ArtifactStoreResource,
    EpisodeRuntimeResource,
    LeagueResource,
)
from coworld_pipeline.defs.league.settings import EPISODE_POOL, SETTINGS, TAG_PARALLELISM
from coworld_pipeline.runtime.artifacts import ArtifactStore

RESULTS_CHECK = "results_match_manifest"
TERMINAL = ("succeeded", "failed", "cancelled")
MAX_PARALLELISM = 64
GROUP = "league"

# Artifacts worth a direct link in the UI (all files are listed under "artifacts").
LINKED_ARTIFACTS = (
    "results.json",
    "replay.json.z",
    "replay.json",
    "error_info.json",
    "logs/game.stdout.log",
    "logs/game.stderr.log",
)


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.3f}".rstrip("0").rstrip(".")
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _link(store: ArtifactStore, uri: str) -> dg.MetadataValue:
    if uri.startswith("file://"):
        return dg.MetadataValue.path(uri[len("file://") :])
    return dg.MetadataValue.url(uri)


def episode_metadata(episode: dict[str, Any], store: ArtifactStore) -> dict[str, Any]:
    """UI metadata of one episode: seats, scores, duration, error, artifact locations, replay command."""
    ereq = episode["id"]
    scores = {s["position"]: s["score"] for s in episode.get("scores") or []}
    seats = [
        [p["position"], p.get("label") or p["policy_version_id"], scores.get(p["position"])]
        for p in episode.get("participants", [])
    ]
    error = episode.get("error") or {}
    artifacts = episode.get("artifacts") or {}
    meta: dict[str, Any] = {
        "status": episode["status"],
        "attempts": episode.get("attempts", 0),
        "round": episode.get("round_id"),
        "league": episode.get("league_id"),
        "variant": episode.get("variant_id"),
        "seed": episode.get("seed"),
        "seats": dg.MetadataValue.md(_md_table(["slot", "policy", "score"], seats)),
        "duration_seconds": float(episode.get("wall_seconds") or 0.0),
        "error_type": error.get("error_type") or "",
        "replay_command": dg.MetadataValue.md(
            f"```\ncoworld replay-open {ereq}\n```\n"
            f"or download: `coworld replays --round {episode.get('round_id')}`"
        ),
    }
    for slot, label, score in seats:
        meta[f"slot_{slot}_policy"] = label
        if score is not None:
            meta[f"slot_{slot}_score"] = float(score)
    if error:
        meta["error"] = dg.MetadataValue.md(
            f"**{error.get('error_type')}** (blame {error.get('blame')}, slot {error.get('slot')}): "
            f"{str(error.get('message', ''))[:1500]}"
        )
    if isinstance(artifacts, dict) and artifacts and "error" not in artifacts:
        meta["artifacts"] = dg.MetadataValue.json(artifacts)
        for name in LINKED_ARTIFACTS:
            if name in artifacts:
                meta[f"artifact:{name}"] = _link(store, artifacts[name])
    elif isinstance(artifacts, dict) and "error" in artifacts:
        meta["artifact_error"] = str(artifacts["error"])
    meta["workspace"] = dg.MetadataValue.path(episode.get("workspace") or "")
    return meta


def check_episode_results(
    episode: dict[str, Any], manifest_json: dict[str, Any], store: ArtifactStore
) -> tuple[bool | None, str]:
    """(True, "") valid; (False, why) invalid; (None, why) nothing to validate (episode not succeeded)."""
    if episode["status"] != "succeeded":
        return None, f"{episode['status']}: {(episode.get('error') or {}).get('error_type', 'no results')}"
    raw = store.fetch(episode["id"], "results.json")
    if raw is None:
        return False, "results.json is missing from the artifact store"
    try:
        results = json.loads(raw)
        manifest = parse_manifest(manifest_json, source="coworld manifest")
        scores = validate_results(manifest, results, len(episode["participants"]))
    except (ValueError, ContractError) as err:
        return False, str(err)[:500]
    recorded = [s["score"] for s in sorted(episode.get("scores") or [], key=lambda s: s["position"])]
    if [float(x) for x in recorded] != scores:
        return False, f"recorded scores {recorded} differ from results.json {scores}"
    return True, ""


@dg.asset(
    partitions_def=episode_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=SETTINGS.episodes_per_run),
    pool=EPISODE_POOL,
    group_name=GROUP,
    kinds={"python"},
    output_required=False,  # materializations are logged per episode as each one finishes
    check_specs=[
        dg.AssetCheckSpec(
            RESULTS_CHECK,
            asset="episodes",
            blocking=True,
            description="Every succeeded episode's stored results.json validates against the coworld "
            "manifest (results_schema, one numeric score per slot) and matches the recorded scores.",
        )
    ],
    description="One partition per episode request. A run plays its partitions (K at most) "
    "concurrently through the episode runtime and stores their artifacts.",
)
def episodes(
    context: dg.AssetExecutionContext,
    league: LeagueResource,
    episode_runtime: EpisodeRuntimeResource,
    artifacts: ArtifactStoreResource,
):
    keys = list(context.partition_keys)
    context.instance.add_run_tags(context.run.run_id, worker_tag())  # lets the sensor spot a vanished worker
    parallelism = episode_runtime.parallelism
    if context.run.tags.get(TAG_PARALLELISM, "").isdigit():  # set by the commissioner (idle pool slots)
        parallelism = max(1, min(int(context.run.tags[TAG_PARALLELISM]), MAX_PARALLELISM))
    service = league.service()
    store = artifacts.store()
    before = {key: service.episodes(ereq_ref=key)[0]["status"] for key in keys}
    to_play = [key for key in keys if before[key] == "pending"]
    for key in keys:
        if before[key] != "pending":
            context.log.info(f"{key} is {before[key]}: not played again")
    context.log.info(
        f"playing {len(to_play)} episode(s), {parallelism} at a time, "
        f"runtime {episode_runtime.runtime}, artifacts {store!r}"
    )

    errors: dict[str, str] = {}
    manifests: dict[str, dict[str, Any]] = {}
    check_rows: list[list[Any]] = []
    rounds: set[str] = set()
    invalid = 0

    def play(key: str) -> str:
        try:
            return service.execute_episode(key, episode_runtime.runtime, store)
        except Exception as exc:  # the platform failed (not the episode): the sensor requeues it
            errors[key] = f"{type(exc).__name__}: {exc}"
            return "error"

    # One materialization per episode, logged as soon as it is final: a run that dies mid-way keeps
    # the materializations of what it finished, and its unfinished episodes are requeued.
    pool = ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="episode")
    futures = {pool.submit(play, key): key for key in to_play}
    try:
        for future in as_completed(futures):
            key = futures[future]
            status = future.result()
            if status == "error":
                context.log.error(f"{key}: platform error: {errors[key]}")
                continue
            episode = service.episodes(ereq_ref=key)[0]
            rounds.add(episode["round_id"])
            if status not in TERMINAL:
                context.log.warning(f"{key}: {status} (attempt {episode['attempts']} will be retried)")
                continue
            context.log.info(f"{key}: {status} in {episode.get('wall_seconds') or 0:.1f}s")
            yield dg.AssetMaterialization(
                asset_key=context.asset_key, partition=key, metadata=episode_metadata(episode, store)
            )
            league_id = episode["league_id"]
            if league_id not in manifests:
                coworld = service.leagues(league_id)[0]["coworld"]["id"]
                manifests[league_id] = service.coworld_manifest(coworld)
            ok, why = check_episode_results(episode, manifests[league_id], store)
            invalid += ok is False
            check_rows.append([key, {True: "valid", False: "INVALID", None: "skipped"}[ok], why])
    except BaseException:
        # Terminated from the UI (or failing): start nothing new. Episodes already playing finish and
        # are recorded by the league; the sensor requeues the rest and reports their materializations.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)

    # Feed the results back right away, so a round closes without waiting for the next sensor tick.
    for round_id in sorted(rounds):
        progress = service.advance_round(round_id)
        context.log.info(f"{round_id}: {progress.status} {progress.counts}")

    yield dg.AssetCheckResult(
        check_name=RESULTS_CHECK,
        passed=invalid == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "checked": sum(1 for r in check_rows if r[1] != "skipped"),
            "invalid": invalid,
            "skipped_not_succeeded": sum(1 for r in check_rows if r[1] == "skipped"),
            "episodes": dg.MetadataValue.md(_md_table(["episode", "results", "detail"], check_rows)),
        },
    )
    if errors:
        raise dg.Failure(
            f"{len(errors)} episode(s) hit a platform error; the commissioner requeues them",
            metadata={"errors": dg.MetadataValue.json(errors)},
        )


def rankings_table(rankings: list[dict[str, Any]]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "division": r.get("division") or "",
                    "rank": int(r["rank"]),
                    "policy": r.get("label") or r["policy_version_id"],
                    "score": float(r["score"]),
                }
            )
            for r in rankings
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("division", "string"),
                dg.TableColumn("rank", "int"),
                dg.TableColumn("policy", "string"),
                dg.TableColumn("score", "float"),
            ]
        ),
    )


@dg.asset(
    partitions_def=round_partitions,
    group_name=GROUP,
    kinds={"python"},
    description="One partition per round: the commissioner's rankings once the round has closed.",
)
def round_results(context: dg.AssetExecutionContext, league: LeagueResource) -> dg.MaterializeResult:
    service = league.service()
    round_id = context.partition_key
    info = service.rounds(round_ref=round_id)["entries"][0]
    rankings = info.get("results") or []
    rows = [[r.get("division"), r["rank"], r.get("label"), r["score"]] for r in rankings]
    episodes_by_status = info.get("episodes") or {}
    return dg.MaterializeResult(
        metadata={
            "league": info["league"]["name"],
            "league_id": info["league"]["id"],
            "round_number": info["round_number"],
            "status": info["status"],
            "error": info.get("error") or "",
            "started_at": info.get("started_at") or "",
            "completed_at": info.get("completed_at") or "",
            "episodes": dg.MetadataValue.json(episodes_by_status),
            "episodes_succeeded": int(episodes_by_status.get("succeeded", 0)),
            "episodes_failed": int(episodes_by_status.get("failed", 0)),
            "rankings": rankings_table(rankings),
            "rankings_md": dg.MetadataValue.md(_md_table(["division", "rank", "policy", "score"], rows)),
            "ranking_order": dg.MetadataValue.json([r.get("label") for r in rankings]),
        }
    )


@dg.asset(
    partitions_def=league_partitions,
    group_name=GROUP,
    kinds={"python"},
    description="One partition per league: the current standings table per division "
    "(openskill, ranked by mu - 3 sigma).",
)
def standings(context: dg.AssetExecutionContext, league: LeagueResource) -> dg.MaterializeResult:
    service = league.service()
    league_id = context.partition_key
    divisions = service.standings(league_id)
    sections, records, order = [], [], []
    for div in divisions:
        rows = div["standings"]
        sections.append(
            f"### {div['league']['name']} / {div['division']['name']}\n\n"
            + _md_table(
                ["rank", "policy", "rating", "mu", "sigma", "episodes", "wins", "avg score", "status"],
                [
                    [
                        r["rank"],
                        r["label"],
                        r["rating"],
                        r["mu"],
                        r["sigma"],
                        r["episodes"],
                        r["wins"],
                        r["average_score"],
                        r["status"],
                    ]
                    for r in rows
                ],
            )
        )
        for r in rows:
            order.append(r["label"])
            records.append(
                dg.TableRecord(
                    {
                        "division": div["division"]["name"],
                        "rank": int(r["rank"]),
                        "policy": r["label"],
                        "rating": float(r["rating"]),
                        "mu": float(r["mu"]),
                        "sigma": float(r["sigma"]),
                        "episodes": int(r["episodes"]),
                        "wins": int(r["wins"]),
                        "status": r["status"],
                    }
                )
            )
    name = divisions[0]["league"]["name"] if divisions else league_id
    latest = service.rounds(league_ref=league_id, limit=1)["entries"]
    return dg.MaterializeResult(
        metadata={
            "league": name,
            "after_round": latest[0]["round_number"] if latest else 0,
            "standings": dg.MetadataValue.md("\n\n".join(sections) or "no entrants yet"),
            "table": dg.MetadataValue.table(
                records=records,
                schema=dg.TableSchema(
                    columns=[
                        dg.TableColumn("division", "string"),
                        dg.TableColumn("rank", "int"),
                        dg.TableColumn("policy", "string"),
                        dg.TableColumn("rating", "float"),
                        dg.TableColumn("mu", "float"),
                        dg.TableColumn("sigma", "float"),
                        dg.TableColumn("episodes", "int"),
                        dg.TableColumn("wins", "int"),
                        dg.TableColumn("status", "string"),
                    ]
                ),
            ),
            "order": dg.MetadataValue.json(order),
            "entrants": len(order),
        }
    )
