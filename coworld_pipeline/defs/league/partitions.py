"""Dynamic partitions: one per episode request, one per round, one per league.

Keys are added by the commissioner sensor in chunks of at most `ADD_CHUNK` (SQLite caps the number
of SQL variables per statement; dagster issue #16260).
"""

from __future__ import annotations

import dagster as dg

ADD_CHUNK = 500

episode_partitions = dg.DynamicPartitionsDefinition(name="episodes")
round_partitions = dg.DynamicPartitionsDefinition(name="rounds")
league_partitions = dg.DynamicPartitionsDefinition(name="leagues")


def add_requests(
    partitions_def: dg.DynamicPartitionsDefinition, keys: list[str]
) -> list[dg.AddDynamicPartitionsRequest]:
    """`AddDynamicPartitionsRequest`s for `keys`, in order, at most `ADD_CHUNK` keys each."""
    return [partitions_def.build_add_request(keys[i : i + ADD_CHUNK]) for i in range(0, len(keys), ADD_CHUNK)]
