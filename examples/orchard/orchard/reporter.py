"""Orchard reporter: ``python -m orchard.reporter``.

Input ``COGAME_EPISODE_BUNDLE_URI`` (episode bundle zip). Output ``COGAME_REPORT_URI``: a zip holding
``manifest.json`` (``reporter_id``, ``render``, ``event_log``), ``report.md``, ``events.parquet`` (columns
exactly ``ts`` int64, ``player`` int64, ``key`` string, ``value`` string with JSON values) and ``stats.json``.
Output is deterministic for a given bundle.

A failed episode, or a bundle without a replay, gets the same zip: ``report.md`` says why there is no match
to report (error type and message, the slot blamed if any) and shows the end of each log in the bundle;
``events.parquet`` starts with ``(0, -1, "episode_failed", <error_info.json or {}>)`` (``"replay_missing"``
for a succeeded episode); ``stats.json`` has ``status``, ``error`` and ``blamed_slot``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchard import uris
from orchard.analysis import (
    Bundle,
    analyze,
    bundle_from_env,
    deterministic_zip,
    fenced,
    log_tail,
    plain,
    shorten,
    slot_label,
)

REPORTER_ID = "orchard-reporter"
LOG_TAIL_LINES = 20
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


# --------------------------------------------------------------------------------------------------
# failed episodes and bundles without a replay: no match to analyse, so report what went wrong
# --------------------------------------------------------------------------------------------------
def _final_ts(bundle: Bundle) -> int:
    ticks = bundle.results.get("ticks")
    return ticks if isinstance(ticks, int) and not isinstance(ticks, bool) else 0


def _scores(bundle: Bundle) -> list[Any]:
    scores = bundle.results.get("scores")
    return scores if isinstance(scores, list) else []


def failure_rows(bundle: Bundle) -> list[tuple[int, int, str, str]]:
    rows: list[tuple[int, int, str, str]] = []
    if bundle.failed:
        rows.append((0, -1, "episode_failed", _json(bundle.error or {})))
    if not bundle.has_replay:
        rows.append((0, -1, "replay_missing", _json(None)))
    names = bundle.player_names()
    if names:
        rows.append((0, -1, "players", _json(names)))
    if bundle.blamed_slot is not None:
        rows.append((0, bundle.blamed_slot, "blamed_for_failure", _json(bundle.error_type or "unknown")))
    if bundle.results:
        final_tick = _final_ts(bundle)
        rows.append((final_tick, -1, "final_results", _json(bundle.results)))
        for slot, score in enumerate(_scores(bundle)):
            rows.append((final_tick, slot, "final_score", _json(score)))
    return rows


def failure_stats(bundle: Bundle) -> dict[str, Any]:
    return {
        "status": bundle.status,
        "error": bundle.error,
        "error_type": bundle.error_type,
        "blamed_slot": bundle.blamed_slot,
        "has_replay": bundle.has_replay,
        "slot_count": bundle.slot_count,
        "scores": _scores(bundle),
        "winner": bundle.results.get("winner"),
    }


def _slot_name(bundle: Bundle, slot: int) -> str:
    names = bundle.player_names()
    return f"slot {slot} ({names[slot]})" if slot < len(names) else f"slot {slot}"


def _log_sections(bundle: Bundle) -> list[tuple[str, str]]:
    """(title, entry name) for each log in the bundle: the game's, then each slot's, then any other."""
    sections = [(f"Game {plain(stream)}", name) for stream, name in bundle.game_log_names().items()]
    for slot, name in bundle.player_log_names().items():
        sections.append((f"Player log of {_slot_name(bundle, slot)}", name))
    shown = {name for _, name in sections}
    sections += [("Log", name) for name in sorted(bundle.logs) if name not in shown]
    return sections


def render_failure(bundle: Bundle, stats: dict[str, Any]) -> str:
    lines = ["# Orchard match report", ""]
    ereq = bundle.manifest.get("ereq_id")
    lines += [f"Episode `{ereq or '?'}` ({bundle.status}).", ""]
    if bundle.failed:
        kind = bundle.error_type or "unknown error"
        lines.append(f"The episode **failed** ({plain(kind)}), so there is no match to report.")
        blamed = bundle.blamed_slot
        if blamed is not None:
            lines.append(f"The failure was blamed on **{_slot_name(bundle, blamed)}**.")
        elif bundle.error is None:
            lines.append("The bundle has no error report (error_info.json), so nobody can be blamed.")
        else:
            lines.append("No player was blamed: a problem of the game or the platform.")
        if bundle.error_message:
            # The message is untrusted text (often a traceback): fenced, so it renders as written.
            lines += ["", "Error message:", "", *fenced(shorten(bundle.error_message))]
        if bundle.has_replay:
            lines += ["", "The bundle holds a partial replay; it is not analysed for a failed episode."]
    else:
        lines.append("The episode succeeded, but the bundle holds no replay, so there is no match to report.")
    if stats["scores"]:
        scores = ", ".join(
            f"{_slot_name(bundle, slot)}: {score}" for slot, score in enumerate(stats["scores"])
        )
        lines += ["", f"Final scores: {scores}."]
    lines += ["", "## Logs", ""]
    sections = _log_sections(bundle)
    if not sections:
        lines += ["The bundle holds no logs.", ""]
    for title, name in sections:
        lines += [f"### {title}: `{plain(name)}` (last {LOG_TAIL_LINES} lines)", ""]
        tail = log_tail(bundle.logs[name], LOG_TAIL_LINES)
        lines += [*fenced(tail), ""] if tail else ["(empty)", ""]
    return "\n".join(lines)


def build_report(bundle: Bundle, reporter_id: str = REPORTER_ID) -> bytes:
    if bundle.has_match:
        stats = analyze(bundle.replay)
        report, rows = render_report(bundle, stats), event_rows(bundle)
    else:
        stats = failure_stats(bundle)
        report, rows = render_failure(bundle, stats), failure_rows(bundle)
    entries = {
        "manifest.json": _json(
            {"reporter_id": reporter_id, "render": "report.md", "event_log": "events.parquet"}
        ).encode("utf-8"),
        "report.md": report.encode("utf-8"),
        "events.parquet": parquet_bytes(rows),
        "stats.json": (json.dumps(stats, sort_keys=True, indent=2) + "\n").encode("utf-8"),
    }
    return deterministic_zip(entries)


def main() -> int:
    inputs = bundle_from_env("reporter", "COGAME_REPORT_URI")
    if inputs is None:
        return 2
    bundle, report_uri = inputs
    report = build_report(bundle, os.environ.get("COGAME_REPORTER_ID") or REPORTER_ID)
    uris.write_bytes(report_uri, report, "application/zip", os.environ.get("COGAME_REPORT_METHOD"))
    print(f"[orchard-reporter] wrote {len(report)} bytes to {report_uri.split('?')[0]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
