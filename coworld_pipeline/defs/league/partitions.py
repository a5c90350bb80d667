"""Dynamic partitions: one per episode request, one per round, one per league.

Keys are the readable identities (league/readable.py) an operator can read in the UI and type into
the CLI: `orchard-demo.r3.e13` (an episode), `orchard-demo.r3` (a round), `orchard-demo` (a league;
a name that cannot be a key falls back to its `league_…` id). Assets resolve a key with the league
service, which also accepts the `ereq_…`/`round_…`/`league_…` ids of partitions added before.

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
