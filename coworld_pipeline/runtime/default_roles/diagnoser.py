"""Built-in default diagnoser: ``python -m coworld_pipeline.runtime.default_roles.diagnoser``.

Inputs ``COGAME_EPISODE_BUNDLE_URI`` and the target: ``COGAME_TARGET_SLOT`` (a slot index), else
``COGAME_TARGET_POLICY_URI`` as ``slot:N``/``N`` or a player name. Output ``COGAME_DIAGNOSIS_URI``: a zip
with ``manifest.json`` (``diagnoser_id``, ``target``, ``target_slot``, ``render``, ``data``),
``advice.md`` and ``diagnosis.json``: the slot's score against the field (rank, gap to the winner and
the mean), each per-slot result field against the winner's, and, when the replay has scored frames,
how long the slot led and when it fell behind for good. A failed episode (no scores) is diagnosed
from its ``error_info.json``: whether this slot was blamed, with the end of its player log.
"""

from __future__ import annotations

import os
import re
from typing import Any

from .common import Episode, pretty, read_episode, require_env, standing, write_bytes, zip_bytes

DIAGNOSER_ID = "default-diagnoser"


def resolve_target(episode: Episode, slot_env: str | None, target: str | None) -> int:
    for text in (slot_env, target):
        match = re.fullmatch(r"\s*(?:slot[:=])?(\d+)\s*", text or "", flags=re.IGNORECASE)
        if match and int(match.group(1)) < episode.slots:
            return int(match.group(1))
    if target:
        wanted = target.strip().lower()
        for slot, name in enumerate(episode.names):
            if name.lower() == wanted:
                return slot
    raise ValueError(f"target {target or slot_env!r} names no slot of this {episode.slots}-slot episode")


def timeline(episode: Episode, slot: int) -> dict[str, Any]:
    led = behind_since = None
    lead_frames = 0
    for tick, scores in episode.frames:
        top = max(scores)
        sole = scores[slot] == top and scores.count(top) == 1
        lead_frames += sole
        # The tick from which the slot trailed without ever catching up again.
        trailing = scores[slot] < top
        behind_since = (tick if behind_since is None else behind_since) if trailing else None
        if sole and led is None:
            led = tick
    frames = len(episode.frames)
    return {
        "lead_share": round(lead_frames / frames, 4) if frames else None,
        "first_lead_tick": led,
        "behind_since_tick": behind_since,
    }


def diagnose(episode: Episode, slot: int) -> dict[str, Any]:
    me = standing(episode, slot)
    winner = max(range(episode.slots), key=lambda s: (episode.scores[s], -s))
    fields = []
    for key, values in episode.per_slot.items():
        mean = sum(values) / len(values)
        fields.append(
            {"field": key, "value": values[slot], "winner": values[winner], "field_mean": round(mean, 6)}
        )
    # Largest relative differences from the winner first: where this slot's game differed most.
    fields.sort(key=lambda f: -abs(f["value"] - f["winner"]) / max(abs(f["winner"]), abs(f["value"]), 1.0))
    advice: list[str] = []
    if me["won"]:
        advice.append(
            f"Won by {me['score'] - (me['best_other'] or 0):g}: keep this policy as the baseline and test "
            "changes against it."
        )
    else:
        share = me["score"] / me["field_best"] if me["field_best"] else 0.0
        advice.append(
            f"Finished {me['rank']} of {me['of']}, {me['gap_to_best']:g} behind "
            f"{episode.label(winner)} ({share:.0%} of the winning score)."
        )
    if me["vs_mean"] < 0:
        advice.append(f"Scored {-me['vs_mean']:g} below the field mean of {me['field_mean']:g}.")
    for item in fields[:3]:
        if item["value"] != item["winner"] and slot != winner:
            advice.append(
                f"`{item['field']}`: {item['value']:g} against the winner's {item['winner']:g} "
                f"(field mean {item['field_mean']:g})."
            )
    trend = timeline(episode, slot) if episode.frames else {}
    if trend.get("behind_since_tick") is not None:
        advice.append(
            f"Behind the leader from tick {trend['behind_since_tick']} to the end: look at what changed "
            "around then."
        )
    if trend.get("lead_share") == 0:
        advice.append("Never led alone at any tick.")
    return {
        "diagnoser_id": DIAGNOSER_ID,
        "target_slot": slot,
        "standing": me,
        "fields": fields,
        "timeline": trend,
        "advice": advice,
        "episode": {"status": episode.status, "length": episode.length, "scores": episode.scores},
    }


def diagnose_failure(episode: Episode, slot: int) -> dict[str, Any]:
    """A failed episode has no scores: say whether this slot caused it, and show its log's end."""
    error = episode.error or {}
    kind = error.get("error_type", "unknown")
    blamed = error.get("failed_policy_index", error.get("slot"))
    log = episode.player_logs.get(slot, "")
    tail = "\n".join(log.strip().splitlines()[-15:])
    if blamed == slot:
        advice = [f"This slot's player made the episode fail ({kind}): {error.get('message', '')}"]
        advice.append(
            "The end of its log is below: fix that first."
            if tail
            else "Its log is not in the bundle: ask for player_logs of this slot."
        )
    elif blamed is not None:
        advice = [
            f"The episode failed because of slot {blamed} ({kind}), not this one: it says nothing about it."
        ]
    else:
        advice = [
            f"The episode failed ({kind}) without blaming a player: a game or platform problem; re-run it."
        ]
    return {
        "diagnoser_id": DIAGNOSER_ID,
        "target_slot": slot,
        "failure": error,
        "blamed_slot": blamed,
        "log_tail": tail if blamed == slot else "",
        "advice": advice,
        "episode": {"status": episode.status, "length": episode.length, "scores": episode.scores},
    }


def render(diagnosis: dict[str, Any], episode: Episode) -> str:
    slot = diagnosis["target_slot"]
    lines = [f"# Diagnosis for {episode.label(slot)}", ""]
    me = diagnosis.get("standing")
    if me is not None:
        lines += [f"Score {me['score']:g}, rank {me['rank']} of {me['of']}.", ""]
    else:
        lines += [f"The episode failed ({diagnosis['failure'].get('error_type', 'unknown')}).", ""]
    lines += ["## Advice", ""] + [f"- {item}" for item in diagnosis["advice"]] + [""]
    if diagnosis.get("log_tail"):
        lines += ["## End of the player log", "", "```", diagnosis["log_tail"], "```", ""]
    return "\n".join(lines)


def main() -> int:
    env = require_env("COGAME_EPISODE_BUNDLE_URI", "COGAME_DIAGNOSIS_URI")
    if env is None:
        return 2
    bundle_uri, output_uri = env
    episode = read_episode(bundle_uri)
    if episode is None:
        return 2
    target = os.environ.get("COGAME_TARGET_POLICY_URI")
    slot = resolve_target(episode, os.environ.get("COGAME_TARGET_SLOT"), target)
    diagnosis = diagnose(episode, slot) if episode.scores else diagnose_failure(episode, slot)
    diagnosis["target"] = target
    manifest = {
        "diagnoser_id": diagnosis["diagnoser_id"],
        "target": target,
        "target_slot": slot,
        "render": "advice.md",
        "data": "diagnosis.json",
    }
    archive = zip_bytes(
        {
            "manifest.json": pretty(manifest),
            "advice.md": render(diagnosis, episode).encode("utf-8"),
            "diagnosis.json": pretty(diagnosis),
        }
    )
    write_bytes(output_uri, archive, "application/zip")
    print(f"[default-diagnoser] slot {slot}: {len(diagnosis['advice'])} advice items", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
