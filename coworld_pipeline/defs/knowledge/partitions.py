"""Dynamic partitions of the knowledge assets: one per (league, policy version).

Keys are `<league id>:<policy version id>` (the policy version id alone may play in several leagues,
each with its own diagnoser); the `knowledge` sensor adds them as rounds close.
"""

from __future__ import annotations

import dagster as dg

policy_partitions = dg.DynamicPartitionsDefinition(name="league_policies")


def policy_key(league_id: str, policy_version_id: str) -> str:
    return f"{league_id}:{policy_version_id}"


def split_policy_key(key: str) -> tuple[str, str]:
    league_id, _, pv_id = key.partition(":")
    if not league_id or not pv_id:
        raise ValueError(f"bad league_policies key {key!r}: expected <league id>:<policy version id>")
    return league_id, pv_id
