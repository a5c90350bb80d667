"""Built-in default reporter: ``python -m coworld_pipeline.runtime.default_roles.reporter``.

Input ``COGAME_EPISODE_BUNDLE_URI``. Outputs ``COGAME_REPORT_URI`` (zip: ``manifest.json`` with
``reporter_id``/``render``/``event_log``, ``report.md``, ``events.parquet``, ``stats.json``) and, when
set, ``COGAME_REPLAY_STATS_PARQUET_URI`` (the same event log). Event-log rows (ts, player, key, value):

* ``(0, -1, "slot_count")``, ``(0, slot, "name")`` when names are known;
* per frame of a replay with ticks and scores: ``(tick, -1, "scores")`` and ``(tick, -1, "lead_change")``;
* at the end (ts = episode length): ``(end, -1, "episode_length")``, ``"margin"``, ``"lead_changes"``,
  ``"winner"``, every numeric top-level result field as ``results.<name>``; per slot ``"final_score"``,
  ``"rank"`` and every per-slot numeric result field as ``results.<name>``.
"""

from __future__ import annotations

import os
from typing import Any

from .common import Episode, dumps, pretty, read_episode, require_env, write_bytes, zip_bytes

REPORTER_ID = "default-reporter"


def event_rows(episode: Episode) -> list[tuple[int, int, str, str]]:
    rows: list[tuple[int, int, str, str]] = [(0, -1, "slot_count", dumps(episode.slots))]
    rows += [(0, slot, "name", dumps(name)) for slot, name in enumerate(episode.names)]
    leader = None
    for tick, scores in episode.frames:
        rows.append((tick, -1, "scores", dumps(scores)))
        top = max(scores)
        leaders = [slot for slot, value in enumerate(scores) if value == top]
        if len(leaders) == 1 and leaders[0] != leader:
            rows.append((tick, -1, "lead_change", dumps({"from": leader, "to": leaders[0]})))
            leader = leaders[0]
    end = episode.length or 0
    stats = summary(episode)
    for key in ("episode_length", "margin", "lead_changes", "winner"):
        rows.append((end, -1, key, dumps(stats[key])))
    rows.append((end, -1, "status", dumps(episode.status)))
    rows += [(end, -1, f"results.{key}", dumps(value)) for key, value in episode.globals.items()]
    ranks = episode.ranks()
    for slot, score in enumerate(episode.scores):
        rows.append((end, slot, "final_score", dumps(score)))
        rows.append((end, slot, "rank", dumps(ranks[slot])))
        for key, values in episode.per_slot.items():
            rows.append((end, slot, f"results.{key}", dumps(values[slot])))
    return rows


def summary(episode: Episode) -> dict[str, Any]:
    ranked = sorted(episode.scores, reverse=True)
    margin = ranked[0] - ranked[1] if len(ranked) > 1 else (ranked[0] if ranked else 0.0)
    ranks = episode.ranks()
    winners = [slot for slot, rank in enumerate(ranks) if rank == 1]
    return {
        "status": episode.status,
        "slot_count": episode.slots,
        "episode_length": episode.length,
        "scores": episode.scores,
        "ranks": ranks,
        "winner": winners[0] if len(winners) == 1 else None,
        "margin": margin,
        "lead_changes": episode.lead_changes(),
        "results_fields": sorted([*episode.globals, *episode.per_slot]),
    }


def parquet_bytes(rows: list[tuple[int, int, str, str]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [("ts", pa.int64()), ("player", pa.int64()), ("key", pa.string()), ("value", pa.string())]
    )
    columns = [list(column) for column in zip(*rows, strict=True)] if rows else [[], [], [], []]
    table = pa.Table.from_arrays(
        [pa.array(column, type=f.type) for column, f in zip(columns, schema, strict=True)], schema=schema
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy", row_group_size=max(1, len(rows)))
    return sink.getvalue().to_pybytes()


def render(episode: Episode, stats: dict[str, Any]) -> str:
    title = f"Episode `{episode.ereq_id}`" if episode.ereq_id else "Episode"
    lines = [f"# {title} report", ""]
    if episode.status != "success":
        reason = (episode.error or {}).get("error_type", "unknown")
        lines += [f"The episode **failed** ({reason}).", ""]
    if not episode.scores:
        return "\n".join([*lines, "No scores were recorded.", ""])
    if stats["winner"] is None:
        lines.append("The episode ended with a tie at the top.")
    else:
        lines.append(f"**{episode.label(stats['winner'])}** won by {stats['margin']:g}.")
    length = stats["episode_length"]
    lines += [
        f"Length: {length if length is not None else 'unknown'}; lead changes: {stats['lead_changes']}.",
        "",
    ]
    fields = list(episode.per_slot)
    lines.append("| slot | rank | score | " + " | ".join(fields) + (" |" if fields else "|"))
    lines.append("| --- | --- | --- |" + " --- |" * len(fields))
    for slot, score in enumerate(episode.scores):
        extra = "".join(f" {episode.per_slot[f][slot]:g} |" for f in fields)
        lines.append(f"| {episode.label(slot)} | {stats['ranks'][slot]} | {score:g} |{extra}")
    lines.append("")
    return "\n".join(lines)


def build_report(episode: Episode, reporter_id: str) -> tuple[bytes, bytes]:
    stats = summary(episode)
    events = parquet_bytes(event_rows(episode))
    manifest = {"reporter_id": reporter_id, "render": "report.md", "event_log": "events.parquet"}
    archive = zip_bytes(
        {
            "manifest.json": pretty(manifest),
            "report.md": render(episode, stats).encode("utf-8"),
            "events.parquet": events,
            "stats.json": pretty(stats),
        }
    )
    return archive, events


def main() -> int:
    env = require_env("COGAME_EPISODE_BUNDLE_URI", "COGAME_REPORT_URI")
    if env is None:
        return 2
    bundle_uri, report_uri = env
    episode = read_episode(bundle_uri)
    if episode is None:
        return 2
    archive, events = build_report(episode, os.environ.get("COGAME_REPORTER_ID") or REPORTER_ID)
    write_bytes(report_uri, archive, "application/zip")
    stats_uri = os.environ.get("COGAME_REPLAY_STATS_PARQUET_URI")
    if stats_uri:
        write_bytes(stats_uri, events, "application/vnd.apache.parquet")
    print(f"[default-reporter] {episode.slots} slots, report {len(archive)} bytes", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
