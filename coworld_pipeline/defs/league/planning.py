"""Pure helpers of the commissioner sensor: which episodes a run covers and how to batch the rest.

A run plays K episode partitions given as a partition *range* (`dagster/asset_partition_range_*`
tags); a range is resolved against the order of the dynamic partition keys, so a batch only ever
groups episodes whose keys are adjacent in that order. Episodes of one round are added together,
so in practice a round's pending episodes split into ceil(n / K) runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from coworld_pipeline.defs.league.settings import TAG_PARTITION, TAG_RANGE_END, TAG_RANGE_START


@dataclass(frozen=True)
class Batch:
    keys: tuple[str, ...]

    @property
    def start(self) -> str:
        return self.keys[0]

    @property
    def end(self) -> str:
        return self.keys[-1]

    def tags(self) -> dict[str, str]:
        return {TAG_RANGE_START: self.start, TAG_RANGE_END: self.end}


class KeyOrder:
    """Positions of the dynamic partition keys (existing keys, then keys about to be added)."""

    def __init__(self, keys: Sequence[str]):
        self.keys: list[str] = list(keys)
        self.index: dict[str, int] = {k: i for i, k in enumerate(self.keys)}

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def extend(self, new_keys: Iterable[str]) -> list[str]:
        """Append keys not known yet (in order); returns the ones actually appended."""
        added = []
        for key in new_keys:
            if key not in self.index:
                self.index[key] = len(self.keys)
                self.keys.append(key)
                added.append(key)
        return added

    def covered(self, tags: Mapping[str, str]) -> list[str]:
        """Episode keys a run with these tags materializes (a range, a single partition, or none)."""
        start, end = tags.get(TAG_RANGE_START), tags.get(TAG_RANGE_END)
        if start is not None and end is not None:
            i, j = self.index.get(start), self.index.get(end)
            if i is None or j is None or j < i:
                return []
            return self.keys[i : j + 1]
        single = tags.get(TAG_PARTITION)
        return [single] if single is not None and single in self.index else []


def plan_batches(order: KeyOrder, todo: Iterable[str], per_run: int, max_batches: int) -> list[Batch]:
    """Group `todo` keys into at most `max_batches` batches of <= `per_run` keys adjacent in `order`.

    Each maximal run of adjacent keys is cut into ceil(n / per_run) batches of near-equal size, so
    40 episodes with K=16 become 14+13+13 rather than 16+16+8.
    """
    positions = sorted(order.index[k] for k in set(todo) if k in order.index)
    segments: list[list[int]] = []
    for pos in positions:
        if segments and pos == segments[-1][-1] + 1:
            segments[-1].append(pos)
        else:
            segments.append([pos])
    batches: list[Batch] = []
    for segment in segments:
        count = -(-len(segment) // per_run)
        size, extra = divmod(len(segment), count)
        at = 0
        for i in range(count):
            n = size + (1 if i < extra else 0)
            batches.append(Batch(tuple(order.keys[p] for p in segment[at : at + n])))
            at += n
            if len(batches) >= max_batches:
                return batches
    return batches
