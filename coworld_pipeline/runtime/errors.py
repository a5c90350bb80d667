"""Typed episode failures: what went wrong, who is to blame, and whether a retry can help."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorType(StrEnum):
    IMAGE_MISSING = "image_missing"
    CONFIG_ERROR = "config_error"
    GAME_START_FAILED = "game_start_failed"
    GAME_CRASHED = "game_crashed"
    GAME_TIMEOUT = "game_timeout"
    CONTRACT_VIOLATION = "contract_violation"
    PLAYER_CRASHED = "player_crashed"
    PLAYER_NEVER_CONNECTED = "player_never_connected"
    # The game judged a running player failed (silent past its move deadline, broke the protocol):
    # the contract's `player_error`, reported through COGAME_PLAYER_FAILURE_URI.
    PLAYER_ERROR = "player_error"
    INVALID_RESULTS = "invalid_results"
    MISSING_RESULTS = "missing_results"
    MISSING_REPLAY = "missing_replay"
    REPLAY_FAILED = "replay_failed"
    INTERRUPTED = "interrupted"
    PLATFORM_ERROR = "platform_error"
    # Supporting roles (reporter, grader, diagnoser, optimizer) run after an episode: their failures
    # never touch the episode's own data or ratings, and a league retries them like infrastructure.
    ROLE_START_FAILED = "role_start_failed"
    ROLE_CRASHED = "role_crashed"
    ROLE_TIMEOUT = "role_timeout"
    ROLE_MISSING_OUTPUT = "role_missing_output"
    ROLE_INVALID_OUTPUT = "role_invalid_output"
    ROLE_OUTPUT_TOO_LARGE = "role_output_too_large"


# Who a failure is charged to. Only "player" failures count against a policy (quarantine);
# "game" and "platform" failures are infrastructure from a league's point of view: retried,
# never a loss for anyone.
_BLAME = {
    ErrorType.PLAYER_CRASHED: "player",
    ErrorType.PLAYER_NEVER_CONNECTED: "player",
    ErrorType.PLAYER_ERROR: "player",
    ErrorType.IMAGE_MISSING: "platform",
    ErrorType.CONFIG_ERROR: "platform",
    ErrorType.INTERRUPTED: "platform",
    ErrorType.PLATFORM_ERROR: "platform",
    **{t: "role" for t in ErrorType if t.value.startswith("role_")},
}


class EpisodeFailure(Exception):
    """One typed failure. `phase` is where it happened: an episode phase ("images" for a missing
    image, "game", "health", "players", ...) or a supporting role's kind. A runtime that raises one
    without knowing the phase leaves it None; the episode runner fills in the phase it was in, so a
    recorded failure (error_info.json, a league's episode row) always names one."""

    def __init__(
        self,
        error_type: ErrorType,
        message: str,
        slot: int | None = None,
        phase: str | None = None,
        details: dict[str, Any] | None = None,
    ):
        self.error_type = ErrorType(error_type)
        self.message = message
        self.slot = slot
        self.phase = phase
        self.details = details or {}
        super().__init__(message)

    @property
    def blame(self) -> str:
        if (
            self.error_type
            in (ErrorType.PLAYER_CRASHED, ErrorType.PLAYER_NEVER_CONNECTED, ErrorType.PLAYER_ERROR)
            and self.slot is None
        ):
            return "game"
        return _BLAME.get(self.error_type, "game")

    @property
    def infrastructure(self) -> bool:
        """True when the players are not at fault: a league retries these and never rates them."""
        return self.blame != "player"

    def __str__(self) -> str:
        where = f" (slot {self.slot})" if self.slot is not None else ""
        return f"{self.error_type.value}{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "error_type": self.error_type.value,
            "message": self.message[:4000],
            # `failed_policy_index` is the reference's name for the slot at fault.
            "failed_policy_index": self.slot,
            "slot": self.slot,
            "blame": self.blame,
            "phase": self.phase,
            **({"details": self.details} if self.details else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EpisodeFailure:
        return cls(
            ErrorType(data["error_type"]),
            data.get("message", ""),
            slot=data.get("slot", data.get("failed_policy_index")),
            phase=data.get("phase"),
            details=data.get("details"),
        )
