"""The league overview (league/overview.py) as Dagster metadata: a markdown block and tables.

The `standings` asset carries it, so the page an operator opens first says how the current round
went, what failed and why, who is quarantined and when the next round opens.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from coworld_pipeline.defs.league.metadata import md_table, md_text
from coworld_pipeline.league.overview import LeagueOverview


def overview_markdown(o: LeagueOverview) -> str:
    r = o.current_round
    lines = [
        f"**{md_text(o.league)}**: "
        + (f"round {r.number} ({md_text(r.key)}) {r.status}: {r.progress}" if r else "no round yet")
    ]
    lines.append(f"next round: {md_text(o.next_round)}")
    if o.failures:
        lines.append(
            f"\n**{md_text(o.failures_title)}**\n\n"
            + md_table(
                ["episode", "error", "blame", "policy", "reason"],
                [
                    [f.episode, f.error_type, f.blame or "", f.policy or "", f.message[:120]]
                    for f in o.failures
                ],
            )
        )
    if o.quarantines:
        lines.append(
            "\n**quarantined**\n\n"
            + md_table(["policy", "reason"], [[q.policy, q.reason[:160]] for q in o.quarantines])
        )
    return "\n\n".join(lines)


def overview_metadata(o: LeagueOverview) -> dict[str, Any]:
    """`overview` (markdown), the round's counts as numbers, and the failures as a table."""
    r = o.current_round
    meta: dict[str, Any] = {
        "overview": dg.MetadataValue.md(overview_markdown(o)),
        "current_round": r.key if r else "",
        "round_progress": r.progress if r else "",
        "next_round": o.next_round,
        "failed_episodes": r.failed if r else 0,  # of the current round
        "failed_episodes_recent_rounds": o.failures_total,
        "quarantined": len(o.quarantines),
    }
    if o.failures:
        meta["failures"] = dg.MetadataValue.table(
            records=[
                dg.TableRecord(
                    {
                        "episode": f.episode,
                        "error_type": f.error_type,
                        "blame": f.blame or "",
                        "policy": f.policy or "",
                        "reason": f.message,
                    }
                )
                for f in o.failures
            ],
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("episode", "string", description="league.rN.eM: its episodes partition"),
                    dg.TableColumn("error_type", "string"),
                    dg.TableColumn("blame", "string"),
                    dg.TableColumn("policy", "string"),
                    dg.TableColumn("reason", "string"),
                ]
            ),
        )
    return meta
