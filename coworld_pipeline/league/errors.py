"""League errors, importable without the service (and so without SQLAlchemy)."""

from __future__ import annotations


class LeagueError(ValueError):
    """Bad input: nothing was changed. `problems` (optional) lists path/message pairs."""

    def __init__(self, message: str, problems: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.problems = problems or []


class NotFound(LeagueError):
    pass


def shortened(text: str, limit: int = 120) -> str:
    """`text` whole when short, else its head and tail and its length: an error names a 5000-character
    argument without burying the message under it."""
    return text if len(text) <= limit else f"{text[:60]}…{text[-20:]} ({len(text)} characters)"


def quoted(ref: str) -> str:
    """`ref` quoted for an error message; a 10,000-character argument by its head, tail and length."""
    if len(ref) <= 120:
        return repr(ref)
    return f"{ref[:60]!r}…{ref[-20:]!r} ({len(ref)} characters)"
