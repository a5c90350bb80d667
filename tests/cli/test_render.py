"""The league tables' layout: numbers are never broken over lines, however long a name is."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from coworld_cli.league import render

COLUMNS = ["rank", "policy", "status", "rating", "mu", "sigma", "95% skill", "episodes"]


@pytest.mark.parametrize("name_chars", [20, 80, 200])
def test_long_policy_names_fold_and_numbers_stay_whole(
    monkeypatch: pytest.MonkeyPatch, name_chars: int
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=out, width=100, color_system=None))
    rows = [[1, "p" * name_chars + ":v1", "active", 24.78, 41.72, 5.65, "30.7..52.8", 24]]
    render.table("standings", COLUMNS, rows)
    text = out.getvalue()
    for value in ("24.78", "41.72", "5.65", "30.7..52.8", "active", "episodes"):
        assert value in text, text  # whole, on one line
    assert max(len(line) for line in text.splitlines()) <= 100
