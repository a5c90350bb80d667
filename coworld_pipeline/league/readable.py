"""Readable identities: `orchard-demo.r3.e13` for an episode, `orchard-demo.r3` for a round.

One form everywhere an operator reads or types an identity: Dagster partition keys, events, CLI
output and CLI arguments (which also keep accepting the `ereq_…`/`round_…` ids).

- The league part is the league's name (unique, never renamed). A name that could not be a Dagster
  partition key or could not be typed back (control characters, `...`, white space, a leading dash)
  is replaced by the league's public id, which every lookup accepts too.
- `r<N>` is the round's number in its league (unique per league).
- `e<M>` is the episode's position in its round, 1-based, in the order the league accepted the
  episodes (creation time, then id). Rows are never deleted and later episodes of a round are
  created later, so a number never changes once given; for the built-in commissioners it is the
  counter of their own request ids (`r3-e13`), which events quote.

Short forms `r3.e13` / `r3-e13` / `r3` name an episode or round in a league given separately (or the
only league that has one). This module is pure string work; the lookups are in resolve.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNSAFE = re.compile(r"[\x00-\x20\x7f]|\.\.\.|^-")
# ASCII digits only: `\d` also matches other scripts' digits (`r١`), which no key ever contains.
_EPISODE = re.compile(r"^(?:(?P<league>.+)\.)?r(?P<round>[0-9]+)[.-]?e(?P<episode>[0-9]+)$")
_ROUND = re.compile(r"^(?:(?P<league>.+)\.)?r(?P<round>[0-9]+)$")

# The largest number a row can hold (SQLite INTEGER, Postgres BIGINT). A bigger one names nothing;
# binding it would raise OverflowError, and int() of a 5000-digit string raises ValueError.
MAX_NUMBER = 2**63 - 1
_MAX_DIGITS = len(str(MAX_NUMBER))


def number(digits: str) -> int | None:
    """`digits` (ASCII 0-9) as a positive row number, or None when it is 0, not digits, or larger
    than any row can hold. Never converts more than 19 digits, whatever the length of `digits`."""
    if not digits.isascii() or not digits.isdigit():
        return None
    significant = digits.lstrip("0")
    if not significant or len(significant) > _MAX_DIGITS:
        return None
    value = int(significant)
    return value if value <= MAX_NUMBER else None


def league_part(league_name: str, league_public_id: str) -> str:
    """The league's name when it is safe as (the start of) a partition key, else its public id."""
    return league_public_id if not league_name or _UNSAFE.search(league_name) else league_name


def round_key(league_name: str, league_public_id: str, round_number: int) -> str:
    return f"{league_part(league_name, league_public_id)}.r{round_number}"


def episode_key(league_name: str, league_public_id: str, round_number: int, number: int) -> str:
    return f"{round_key(league_name, league_public_id, round_number)}.e{number}"


@dataclass(frozen=True)
class ParsedRef:
    """`league` is None for a short form (`r3.e13`); `episode` is None for a round (`r3`)."""

    league: str | None
    round_number: int
    episode: int | None = None


def parse_episode(ref: str) -> ParsedRef | None:
    """`LEAGUE.rN.eM`, `rN.eM`, `rN-eM` (or None: not a readable episode reference)."""
    m = _EPISODE.match(ref.strip())
    if m is None or (round_number := number(m["round"])) is None:
        return None
    episode = number(m["episode"])
    return None if episode is None else ParsedRef(m["league"], round_number, episode)


def looks_like_round(ref: str) -> bool:
    """Shaped like `LEAGUE.rN` / `rN`, whatever N is: such a reference names a round (perhaps one
    that does not exist), not a league."""
    return _ROUND.match(ref.strip()) is not None


def parse_round(ref: str) -> ParsedRef | None:
    """`LEAGUE.rN` or `rN` (or None)."""
    m = _ROUND.match(ref.strip())
    if m is None or (round_number := number(m["round"])) is None:
        return None
    return ParsedRef(m["league"], round_number)
