"""Human output of the league commands: Rich tables and the formatting of their cells.

Names of leagues, policies, divisions, error messages and game metadata come from users, policies
and games. None of it may reach Rich as markup: a policy named `[/]` would crash the table and one
named `[bold]x` would be shown as something else. Cells and titles are therefore `Text` objects
(never parsed), and lines that mix our markup with such values pass them through `escape`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.text import Text

from coworld_cli.output import console

if TYPE_CHECKING:
    from coworld_pipeline.league.views import DivisionStandings, EpisodeView, RankingView

TABLE_ROWS = 50  # a leaderboard's readable length; --limit 0 or --json for the rest
# Columns users grep for: kept whole (no folding) even on a narrow terminal, up to WHOLE_CHARS (a
# 200-character policy name kept whole would squeeze every other column to nothing).
WHOLE_COLUMNS = frozenset({"policy", "type"})
WHOLE_CHARS = 60
# Any column whose cells are all this short (ranks, ratings, counts, statuses) is never folded: a
# number broken over two lines (`25.0` above `0`) reads as another number.
SHORT_CHARS = 12

__all__ = ["TABLE_ROWS", "escape", "table"]


def num(value: float | None, digits: int = 2) -> str:
    """A rating, score or time: fixed digits, and nothing at all for a missing value."""
    return "" if value is None else f"{value:.{digits}f}"


def score(value: float | None) -> str:
    """A game score as the game meant it: `12`, `12.5`, not `12.000000001`."""
    return "" if value is None else f"{value:.6g}"


def when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def counts(by_status: dict[str, int]) -> str:
    """`{"succeeded": 4, "failed": 1}` -> `failed 1, succeeded 4`."""
    return ", ".join(f"{k} {v}" for k, v in sorted(by_status.items()))


def metadata(values: dict[str, Any]) -> str:
    """A commissioner's or game's free-form details, one `key=value` each, floats rounded."""
    return ", ".join(f"{k}={num(v) if isinstance(v, float) else v}" for k, v in values.items())


def cell(value: Any) -> Text:
    """Any value as a table cell that Rich never parses; None is an empty cell."""
    if value is None:
        return Text("")
    if isinstance(value, bool):
        return Text(yes_no(value))
    if isinstance(value, float):
        return Text(num(value))
    if isinstance(value, datetime):
        return Text(when(value))
    return Text(str(value))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.table import Table  # only tables need it: --json output skips the import

    cells = [[cell(v) for v in row] for row in rows]
    out = Table(title=Text(title), show_lines=False)
    for i, name in enumerate(columns):
        width = max([*(r[i].cell_len for r in cells), 0])
        if width <= SHORT_CHARS or (name in WHOLE_COLUMNS and width <= WHOLE_CHARS):
            out.add_column(name, no_wrap=True, min_width=max(width, len(name)))
        else:
            out.add_column(name, overflow="fold")
    for row in cells:
        out.add_row(*row)
    console.print(out)


def line(template: str, *values: Any) -> None:
    """Print `template` (our markup, `{}` placeholders) with each value escaped into it."""
    console.print(template.format(*(escape("" if v is None else str(v)) for v in values)))


def first(rows: Sequence[Any], limit: int | None) -> Sequence[Any]:
    return rows[:limit] if limit else rows


def more_rows(shown: int, total: int) -> None:
    if total > shown:
        console.print(
            f"… {total - shown} more (rows {shown + 1}-{total}): "
            "--limit 0 shows every row, --json prints them all"
        )


# Why the rows of a section below the ranked ones have no rank (standings_reader.SECTIONS).
UNRANKED = {
    "unrated": "not ranked yet (-): no rated episode; the rating shown is the prior",
    "inactive": "not ranked (-): quarantined or retired, listed with their last rating",
}


def standings_tables(groups: Iterable[DivisionStandings], limit: int | None) -> None:
    for g in groups:
        shown = first(g.standings, limit)
        table(
            f"{g.league.name} / {g.division.name} (level {g.division.level})",
            [
                "rank",
                "policy",
                "status",
                "rating",
                "mu",
                "sigma",
                "95% skill",
                "P(> next)",
                "settled",
                "episodes",
                "wins",
                "avg score",
            ],
            [
                [
                    "-" if r.rank is None else r.rank,
                    r.label,
                    r.status,
                    num(r.rating),
                    num(r.mu),
                    num(r.sigma),
                    "" if r.skill_low is None else f"{r.skill_low:.1f}..{r.skill_high:.1f}",
                    num(r.p_above_next),
                    {True: "yes", False: "no", None: ""}[r.settled],
                    r.episodes,
                    r.wins,
                    num(r.average_score),
                ]
                for r in shown
            ],
        )
        more_rows(len(shown), len(g.standings))
        sections = Counter(r.section for r in g.standings)
        unsettled = sum(1 for r in g.standings if r.settled is False)
        if unsettled:
            line(
                "{} of {} ranked places not settled at 95%: more episodes would still change them",
                unsettled,
                sections["ranked"],
            )
        for section, why in UNRANKED.items():
            if sections[section]:
                line("{} " + why, sections[section])


def rankings_table(title: str, rows: Iterable[RankingView], episodes: dict[str, int] | None = None) -> None:
    """A round's rankings; a line saying why instead of an empty table when it has none (`episodes`:
    the round's episode counts by status, to tell a round whose episodes all failed from one in play)."""
    rows = list(rows)
    if rows:
        table(
            title,
            ["division", "rank", "policy", "score", "details"],
            [[r.division, r.rank, r.label, num(r.score, 3), metadata(r.result_metadata)] for r in rows],
        )
        return
    episodes = episodes or {}
    if episodes.get("succeeded"):
        why = "its episodes are rated when the round completes"
    elif episodes.get("failed") and not any(v for k, v in episodes.items() if k != "failed"):
        failed = episodes["failed"]
        which = "its only episode" if failed == 1 else f"all {failed} of its episodes"
        why = f"{which} failed, and a failed episode is never rated"
    else:
        why = "no episode of it was rated"
    line("{}: none ({})", title, why)


def seats(episode: EpisodeView) -> str:
    return " | ".join(s.label or s.policy_version_id for s in episode.seats)


def seat_scores(episode: EpisodeView) -> str:
    scores = episode.scores
    return "" if scores is None else " | ".join(score(s) for s in scores)
