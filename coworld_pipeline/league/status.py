"""The status words of league rows, in one place, with the sets every module asks about.

They are `StrEnum`s: stored as their plain value in the database (`status` columns are strings), and
compared and printed as strings, so JSON output and SQL filters need no conversion.
"""

from __future__ import annotations

from enum import StrEnum


class EpisodeStatus(StrEnum):
    PENDING = "pending"  # scheduled, waiting for a runner to claim it
    RUNNING = "running"  # claimed by a runner (attempt N)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RoundStatus(StrEnum):
    RUNNING = "running"  # open: at most one per league
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class MembershipStatus(StrEnum):
    QUALIFYING = "qualifying"  # submitted, no episode completed yet
    ACTIVE = "active"
    QUARANTINED = "quarantined"  # too many consecutive player failures: never scheduled again
    RETIRED = "retired"  # superseded by a newer version of the same policy


class SubmissionStatus(StrEnum):
    ACCEPTED = "accepted"
    ALREADY_MEMBER = "already_member"


# An episode in one of these states never changes again.
TERMINAL: frozenset[EpisodeStatus] = frozenset(
    {EpisodeStatus.SUCCEEDED, EpisodeStatus.FAILED, EpisodeStatus.CANCELLED}
)
# ... and in one of these it still may (a runner has it, or will).
OPEN: frozenset[EpisodeStatus] = frozenset({EpisodeStatus.PENDING, EpisodeStatus.RUNNING})
# Memberships a commissioner may schedule.
ELIGIBLE: frozenset[MembershipStatus] = frozenset({MembershipStatus.QUALIFYING, MembershipStatus.ACTIVE})
