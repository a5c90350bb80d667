"""League errors, importable without the service (and so without SQLAlchemy)."""

from __future__ import annotations


class LeagueError(ValueError):
    """Bad input: nothing was changed. `problems` (optional) lists path/message pairs."""

    def __init__(self, message: str, problems: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.problems = problems or []


class NotFound(LeagueError):
    pass
