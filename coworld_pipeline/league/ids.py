"""Public identifiers: prefixed UUIDs (`league_…`, `div_…`, `round_…`, `ereq_…`, `cow_…`).

The database and the commissioner protocol use raw UUIDs; users see the prefixed forms. Every
lookup accepts either.
"""

from __future__ import annotations

PREFIXES = {
    "coworld": "cow_",
    "league": "league_",
    "division": "div_",
    "round": "round_",
    "ereq": "ereq_",
    "membership": "mem_",
    "submission": "sub_",
    "policy_version": "",
}


def public(kind: str, raw: str | None) -> str | None:
    if raw is None:
        return None
    return PREFIXES[kind] + raw


def raw_id(kind: str, value: str) -> str:
    prefix = PREFIXES[kind]
    if prefix and value.startswith(prefix):
        return value[len(prefix) :]
    return value


def looks_like_uuid(value: str) -> bool:
    parts = value.split("-")
    return len(value) == 36 and [len(p) for p in parts] == [8, 4, 4, 4, 12]
