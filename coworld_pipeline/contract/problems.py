"""Validation problems that name the offending place with a JSON path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


def json_path(parts: Iterable[Any], root: str = "$") -> str:
    """Render path parts as `$.game.variants[0].id`."""
    out = root
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            out += f".{text}" if text.replace("_", "").replace("-", "").isalnum() else f"[{text!r}]"
    return out


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class ContractError(ValueError):
    """One or more contract violations; `problems` lists each with its JSON path."""

    def __init__(self, subject: str, problems: Sequence[Problem]):
        self.subject = subject
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"{self.subject} is invalid ({len(self.problems)} problem(s)):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "problems": [p.as_dict() for p in self.problems]}


def pydantic_problems(exc: Any, root: str = "$") -> list[Problem]:
    """Convert a pydantic ValidationError into problems with JSON paths."""
    problems = []
    for err in exc.errors():
        loc = [p for p in err.get("loc", ()) if p not in ("function-after", "function-before")]
        problems.append(Problem(json_path(loc, root), err.get("msg", "invalid")))
    return problems


def jsonschema_problems(errors: Iterable[Any], root: str) -> list[Problem]:
    """Convert jsonschema ValidationErrors (from iter_errors) into problems."""
    out = []
    for err in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        out.append(Problem(json_path(err.absolute_path, root), _shorten(err.message)))
    return out


def _shorten(message: str, limit: int = 500) -> str:
    """jsonschema quotes whole values in its messages; a 1 MiB value must not become a 1 MiB line."""
    return message if len(message) <= limit else message[: limit - 1] + "…"
