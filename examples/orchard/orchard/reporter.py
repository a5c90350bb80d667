"""Orchard reporter: ``python -m orchard.reporter``.

Input ``COGAME_EPISODE_BUNDLE_URI`` (episode bundle zip). Output ``COGAME_REPORT_URI``: a zip holding
``manifest.json`` (``reporter_id``, ``render``, ``event_log``), ``report.md``, ``events.parquet`` (columns
exactly ``ts`` int64, ``player`` int64, ``key`` string, ``value`` string with JSON values) and ``stats.json``.
Output is deterministic for a given bundle.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchard import uris
from orchard.analysis import Bundle, analyze, deterministic_zip, load_bundle, slot_label

REPORTER_ID = "orchard-reporter"
EVENT_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("player", pa.int64(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=False),
    ]
)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def event_rows(bundle: Bundle) -> list[tuple[int, int, str, str]]:
    replay = bundle.replay
    rows: list[tuple[int, int, str, str]] = [
        (
            0,
            -1,
            "board",
            _json(
                {
                    "width": replay["width"],
                    "height": replay["height"],
                    "trees": [[t["id"], t["x"], t["y"]] for t in replay["trees"]],
                }
            ),
        ),
        (0, -1, "players", _json(replay["player_names"])),
    ]
    previous_leader = None
    for frame in replay["frames"]:
        tick = frame["tick"]
        for slot, position in enumerate(frame["positions"]):
            if frame["actions"] is not None:
                rows.append((tick, slot, "move", _json(frame["actions"][slot])))
            rows.append((tick, slot, "position", _json(position)))
        for slot, tree, share in frame["harvests"]:
            rows.append((tick, slot, "harvest", _json({"tree": tree, "share": share})))
        for tree in frame["rotted"]:
            rows.append((tick, -1, "fruit_rotted", _json({"tree": tree})))
        rows.append((tick, -1, "scores", _json(frame["scores"])))
        leader = frame.get("leader")
        if leader is not None and leader != previous_leader:
            rows.append(
                (
                    tick,
                    -1,
                    "lead_change" if previous_leader is not None else "first_lead",
                    _json({"from": previous_leader, "to": leader}),
                )
            )
            previous_leader = leader
    final_tick = replay["frames"][-1]["tick"]
    rows.append((final_tick, -1, "final_results", _json(bundle.results)))
    for slot, score in enumerate(bundle.results.get("scores", [])):
        rows.append((final_tick, slot, "final_score", _json(score)))
    return rows


def parquet_bytes(rows: list[tuple[int, int, str, str]]) -> bytes:
    columns = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    table = pa.Table.from_arrays(
        [
            pa.array(list(column), type=field.type)
            for column, field in zip(columns, EVENT_SCHEMA, strict=True)
        ],
        schema=EVENT_SCHEMA,
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy", row_group_size=max(1, len(rows)))
    return sink.getvalue().to_pybytes()


def render_report(bundle: Bundle, stats: dict[str, Any]) -> str:
    replay = bundle.replay
    results = bundle.results
    lines = ["# Orchard match report", ""]
    status = bundle.manifest.get("status")
    ereq = bundle.manifest.get("ereq_id")
    if ereq or status:
        lines += [f"Episode `{ereq or '?'}` ({status or 'unknown status'}).", ""]
    winner = results.get("winner")
    headline = "The match ended in a tie." if winner is None else f"**{slot_label(replay, winner)}** won."
    lines += [
        f"{headline} {stats['ticks']} ticks on a {replay['width']}x{replay['height']} board with "
        f"{len(replay['trees'])} trees; the lead changed hands {stats['lead_changes']} times and the "
        f"final margin was {stats['margin']:g}.",
        "",
        "| slot | player | score | fruit | shared | missed in reach | lost races | wall bumps | stays |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for slot in stats["slots"]:
        lines.append(
            f"| {slot['slot']} | {slot['label']} | {slot['score']} | {slot['fruit']} | "
            f"{slot['shared_harvests']} | "
            f"{len(slot['missed_fruit'])} | {len(slot['lost_races'])} | {slot['wall_bumps']} | "
            f"{slot['moves'].get('stay', 0)} |"
        )
    lines += [
        "",
        f"Fruit that ripened during the match: {stats['fruit_available']}; rotted unpicked: "
        f"{stats['fruit_rotted']}; contested (split) harvests: {stats['contested_harvests']}.",
        "",
        "## Lead timeline",
        "",
    ]
    if stats["lead_timeline"]:
        for tick, leader in stats["lead_timeline"]:
            lines.append(f"- tick {tick}: {slot_label(replay, leader)} takes the lead")
    else:
        lines.append("- nobody ever led alone")
    lines += [
        "",
        "## Score progression",
        "",
        "| tick | " + " | ".join(f"P{i}" for i in range(len(stats["scores"]))) + " |",
        "| --- |" + " --- |" * len(stats["scores"]),
    ]
    timeline = stats["score_timeline"]
    step = max(1, len(timeline) // 10)
    for row in timeline[step - 1 :: step]:
        lines.append("| " + " | ".join(f"{value:g}" for value in row) + " |")
    lines.append("")
    return "\n".join(lines)


def build_report(bundle: Bundle, reporter_id: str = REPORTER_ID) -> bytes:
    stats = analyze(bundle.replay)
    entries = {
        "manifest.json": _json(
            {"reporter_id": reporter_id, "render": "report.md", "event_log": "events.parquet"}
        ).encode("utf-8"),
        "report.md": render_report(bundle, stats).encode("utf-8"),
        "events.parquet": parquet_bytes(event_rows(bundle)),
        "stats.json": (json.dumps(stats, sort_keys=True, indent=2) + "\n").encode("utf-8"),
    }
    return deterministic_zip(entries)


def main() -> int:
    bundle_uri = os.environ.get("COGAME_EPISODE_BUNDLE_URI")
    report_uri = os.environ.get("COGAME_REPORT_URI")
    if not bundle_uri or not report_uri:
        print("orchard.reporter needs COGAME_EPISODE_BUNDLE_URI and COGAME_REPORT_URI", file=sys.stderr)
        return 2
    bundle = load_bundle(bundle_uri)
    report = build_report(bundle, os.environ.get("COGAME_REPORTER_ID") or REPORTER_ID)
    uris.write_bytes(report_uri, report, "application/zip", os.environ.get("COGAME_REPORT_METHOD"))
    print(f"[orchard-reporter] wrote {len(report)} bytes to {report_uri.split('?')[0]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
