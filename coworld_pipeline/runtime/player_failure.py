"""How a failure the game reports for one slot (`player_failure.json`) is typed."""

from __future__ import annotations

from coworld_pipeline.runtime.errors import ErrorType


def reported_player_error(exit_code: int | None, message: str) -> ErrorType:
    """The type of a failure the game reported for one slot. A player whose process or container
    died crashed. For a live one the report (`{message, failed_policy_index, kind}`) has no field
    saying why, so the game's own words decide between "never connected" and any other judgement
    (silent past the move deadline, protocol breach): both are charged to the player."""
    if exit_code not in (None, 0):
        return ErrorType.PLAYER_CRASHED
    words = message.lower()
    if "never connected" in words or "did not connect" in words:
        return ErrorType.PLAYER_NEVER_CONNECTED
    return ErrorType.PLAYER_ERROR
