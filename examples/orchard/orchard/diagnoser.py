"""Orchard diagnoser: ``python -m orchard.diagnoser``.

Inputs: ``COGAME_EPISODE_BUNDLE_URI`` (episode bundle zip) and ``COGAME_TARGET_POLICY_URI``, which names the
slot to diagnose. Accepted forms, tried in order:

1. a slot index: ``1``, ``slot:1``, ``slot=1``, or any URI ending in ``/1``, ``#1``, ``#slot=1``, ``?slot=1``;
2. a name: compared case-insensitively with the replay's player names and policy names, first as the whole
   value, then as the last path segment of the URI (``file:///policies/planner`` -> ``planner``), then as a
   substring of a name.

Unset or unmatched targets fall back to slot 0 (the manifest records how the target was resolved).
Output ``COGAME_DIAGNOSIS_URI``: a zip with ``manifest.json``, ``advice.md`` and ``diagnosis.json``.

A failed episode (or a bundle without a replay) has no play to analyse. The diagnosis then says, from
``error_info.json``, whether the target slot made the episode fail, another slot did (so the episode says
nothing about the target), or no player was blamed (a game or platform problem: re-run it), and shows the
end of the target slot's player log when the bundle has it. Without a replay the slot count comes from the
results, else the config, else the player logs listed in the bundle's manifest.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from typing import Any

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
)

DIAGNOSER_ID = "orchard-diagnoser"
LOG_TAIL_LINES = 20


def resolve_target(
    target: str | None, slots: int, player_names: list[str], policy_names: list[str] | None = None
) -> tuple[int, str]:
    """(slot, how it was resolved) for ``target`` among ``slots`` slots with these names."""
    if not target:
        return 0, "no target given; diagnosing slot 0"
    text = target.strip()
    match = re.fullmatch(r"(?:slot[:=])?(\d+)", text, flags=re.IGNORECASE) or re.search(
        r"(?:[/#?&]|slot[:=])(?:slot=)?(\d+)$", text, flags=re.IGNORECASE
    )
    if match and int(match.group(1)) < slots:
        return int(match.group(1)), f"slot index {match.group(1)}"
    # Names may be missing (a failed episode's config need not list players): pad so every slot has one.
    names = [str(name).lower() for name in player_names] + [""] * slots
    policies = [(name or "").lower() for name in (policy_names or [])] + [""] * slots
    path_tail = urllib.parse.unquote(urllib.parse.urlsplit(text).path.rstrip("/").rsplit("/", 1)[-1]).lower()
    candidates = [text.lower(), path_tail]
    for candidate in candidates:
        if not candidate:
            continue
        for slot in range(slots):
            if candidate in (names[slot], policies[slot]):
                return slot, f"name match {candidate!r}"
    for candidate in candidates:
        if not candidate:
            continue
        for slot in range(slots):
            if candidate in names[slot] or (policies[slot] and candidate in policies[slot]):
                return slot, f"partial name match {candidate!r}"
    return 0, f"target {text!r} matched no slot; diagnosing slot 0"


def diagnose(bundle: Bundle, target: str | None) -> dict[str, Any]:
    replay = bundle.replay
    slot, how = resolve_target(
        target, len(replay["player_names"]), replay["player_names"], replay.get("policy_names")
    )
    stats = analyze(replay)
    me = stats["slots"][slot]
    ticks = max(1, stats["ticks"])
    moves = me["moves"]
    findings: list[dict[str, Any]] = []
    for miss in me["missed_fruit"]:
        findings.append({"kind": "missed_fruit", "tick": miss["ripe"], **miss})
    for race in me["lost_races"]:
        findings.append({"kind": "lost_race", **race})
    findings.sort(key=lambda item: (item.get("tick", 0), item["kind"]))
    missed_value = sum(item["value"] for item in me["missed_fruit"])
    lost_value = sum(item["value"] for item in me["lost_races"])
    advice: list[str] = []
    if me["missed_fruit"]:
        advice.append(
            f"{len(me['missed_fruit'])} fruit worth {missed_value} rotted while you could still have "
            "reached them from where you stood when they ripened: rank targets by value over (travel + "
            "wait) time and include fruit listed in each tree's `upcoming` schedule, not only ripe fruit."
        )
    if me["lost_races"]:
        advice.append(
            f"You lost {len(me['lost_races'])} races (fruit worth {lost_value}) by arriving a step or two "
            "late: before committing, compare your distance with each opponent's and skip fruit they reach "
            "first."
        )
    if me["wall_bumps"]:
        advice.append(
            f"{me['wall_bumps']} moves bumped into the board edge and were wasted; clamp moves to the grid."
        )
    stay_share = moves.get("stay", 0) / ticks
    if stay_share > 0.4:
        advice.append(
            f"You stayed put on {moves.get('stay', 0)} of {ticks} ticks; when nothing is ripe nearby, "
            "move toward the tree that ripens next (or the middle of the orchard) instead of idling."
        )
    if me["shared_harvests"] > me["fruit"] / 3 and me["shared_harvests"] > 1:
        advice.append(
            f"{me['shared_harvests']} of your {me['fruit']} harvests were split with an opponent; prefer "
            "fruit you reach strictly first."
        )
    if not advice:
        advice.append("No obvious mistakes: the slot harvested what it could reach and never wasted a move.")
    return {
        "diagnoser_id": DIAGNOSER_ID,
        "target": target,
        "target_slot": slot,
        "target_resolution": how,
        "label": me["label"],
        "summary": {
            "score": me["score"],
            "fruit": me["fruit"],
            "shared_harvests": me["shared_harvests"],
            "missed_fruit": len(me["missed_fruit"]),
            "missed_value": missed_value,
            "lost_races": len(me["lost_races"]),
            "lost_value": lost_value,
            "wall_bumps": me["wall_bumps"],
            "stays": moves.get("stay", 0),
            "distance": me["distance"],
            "ticks": stats["ticks"],
            "won": stats["winner"] == slot,
        },
        "findings": findings,
        "advice": advice,
    }


def render_advice(diagnosis: dict[str, Any]) -> str:
    summary = diagnosis["summary"]
    lines = [
        f"# Orchard diagnosis for {diagnosis['label']}",
        "",
        f"Target `{diagnosis['target']}` resolved as: {diagnosis['target_resolution']}.",
        "",
        f"Score {summary['score']} from {summary['fruit']} fruit over {summary['ticks']} ticks "
        f"({'won' if summary['won'] else 'did not win'}); walked {summary['distance']} squares.",
        "",
        "## Advice",
        "",
    ]
    lines += [f"- {item}" for item in diagnosis["advice"]]
    lines += ["", "## Findings", ""]
    if not diagnosis["findings"]:
        lines.append("- none")
    for item in diagnosis["findings"][:40]:
        if item["kind"] == "missed_fruit":
            lines.append(
                f"- tick {item['ripe']}: value-{item['value']} fruit on tree {item['tree']} ripened "
                f"{item['distance_at_ripe']} steps away and rotted at tick {item['rot']} unpicked"
            )
        else:
            lines.append(
                f"- tick {item['tick']}: lost value-{item['value']} fruit on tree {item['tree']} to slot(s) "
                f"{item['winner']} while {item['distance_before']} steps away"
            )
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# failed episodes and bundles without a replay: judge from error_info.json, show the player log's end
# --------------------------------------------------------------------------------------------------
def diagnose_failure(bundle: Bundle, target: str | None) -> dict[str, Any]:
    names = bundle.player_names()
    slot, how = resolve_target(target, bundle.slot_count, names)
    label = f"P{slot} {names[slot]}" if slot < len(names) else f"P{slot}"
    kind = plain(bundle.error_type or "unknown error")
    blamed = bundle.blamed_slot
    log = bundle.player_log(slot)
    tail = log_tail(log, LOG_TAIL_LINES) if log else ""
    if not bundle.failed:
        verdict = "no_replay"
        advice = [
            "The episode finished, but the bundle holds no replay, so there is no play to analyse: ask for "
            "a bundle that includes the replay."
        ]
    elif blamed == slot:
        verdict = "target"
        advice = [
            f"Your player made the episode fail ({kind}): fix this before tuning any strategy, since a "
            "failed episode scores nothing.",
            "The end of its log is below."
            if tail
            else "Its log is not in the bundle: ask for a bundle with this slot's player log.",
        ]
    elif blamed is not None:
        verdict = "other"
        advice = [
            f"Slot {blamed} made the episode fail ({kind}), not this one: this episode says nothing about "
            "your player. Look at other episodes."
        ]
    else:
        verdict = "none"
        advice = [
            f"The episode failed ({kind}) without blaming any player: a problem of the game or the platform, "
            "not of your player. Re-run the episode."
        ]
    return {
        "diagnoser_id": DIAGNOSER_ID,
        "target": target,
        "target_slot": slot,
        "target_resolution": how,
        "label": label,
        "status": bundle.status,
        "failure": {
            "error_type": bundle.error_type,
            "message": shorten(bundle.error_message),
            "blamed_slot": blamed,
            "verdict": verdict,  # target | other | none | no_replay
        },
        "log_tail": tail,
        # Kept (empty) so that consumers of succeeded diagnoses, like the optimizer, read this one too.
        "summary": {},
        "findings": [],
        "advice": advice,
    }


def render_failure_advice(diagnosis: dict[str, Any]) -> str:
    failure = diagnosis["failure"]
    kind = plain(failure["error_type"] or "unknown error")
    if failure["verdict"] == "no_replay":
        headline = "The bundle holds no replay of this episode."
    elif failure["verdict"] == "target":
        headline = f"The episode failed ({kind}), and the failure was blamed on this slot."
    elif failure["verdict"] == "other":
        headline = f"The episode failed ({kind}), blamed on slot {failure['blamed_slot']}, not this one."
    else:
        headline = f"The episode failed ({kind}); no player was blamed."
    lines = [
        f"# Orchard diagnosis for {diagnosis['label']}",
        "",
        f"Target `{diagnosis['target']}` resolved as: {diagnosis['target_resolution']}.",
        "",
        headline,
        "",
        "## Advice",
        "",
    ]
    lines += [f"- {item}" for item in diagnosis["advice"]]
    if failure["message"]:
        # The message and the log are untrusted text: fenced, so they render as written.
        lines += ["", "## Error message", "", *fenced(failure["message"])]
    if diagnosis["log_tail"]:
        lines += [
            "",
            f"## End of the player log (last {LOG_TAIL_LINES} lines)",
            "",
            *fenced(diagnosis["log_tail"]),
        ]
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    inputs = bundle_from_env("diagnoser", "COGAME_DIAGNOSIS_URI")
    if inputs is None:
        return 2
    bundle, output_uri = inputs
    target = os.environ.get("COGAME_TARGET_POLICY_URI")
    if bundle.has_match:
        diagnosis = diagnose(bundle, target)
        advice_md = render_advice(diagnosis)
    else:
        diagnosis = diagnose_failure(bundle, target)
        advice_md = render_failure_advice(diagnosis)
    manifest = {
        "diagnoser_id": DIAGNOSER_ID,
        "target": diagnosis["target"],
        "target_slot": diagnosis["target_slot"],
        "render": "advice.md",
        "data": "diagnosis.json",
    }
    archive = deterministic_zip(
        {
            "manifest.json": json.dumps(manifest, sort_keys=True, indent=2).encode("utf-8"),
            "advice.md": advice_md.encode("utf-8"),
            "diagnosis.json": json.dumps(diagnosis, sort_keys=True, indent=2).encode("utf-8"),
        }
    )
    uris.write_bytes(output_uri, archive, "application/zip", os.environ.get("COGAME_DIAGNOSIS_METHOD"))
    print(
        f"[orchard-diagnoser] slot {diagnosis['target_slot']}: {len(diagnosis['advice'])} advice items",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
