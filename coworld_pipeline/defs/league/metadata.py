"""What the Dagster UI shows of league objects: materialization metadata built from league views."""

from __future__ import annotations

import html
import re
from typing import Any

import dagster as dg

from coworld_pipeline.defs.league.links import episode_links
from coworld_pipeline.league.views import DivisionStandings, EpisodeView, RankingView, RoundView
from coworld_pipeline.runtime.artifacts import ArtifactStore

# Artifacts worth a direct link in the UI (all files are listed under "artifacts").
LINKED_ARTIFACTS = (
    "results.json",
    "replay.json.z",
    "replay.json",
    "error_info.json",
    "logs/game.stdout.log",
    "logs/game.stderr.log",
)


# Characters markdown may act on. `_` only at a word's edge, where it can open or close emphasis:
# inside identifiers (`player_crashed`) it is literal and stays unescaped, as API readers expect.
_MD_SPECIAL = re.compile(r"([\\`*\[\]|~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")


def md_text(value: Any) -> str:
    """`value` as literal markdown text on one line: names and messages are untrusted (a policy named
    `<b>x</b>` or `**x**` must show as typed, not bold; an `<img>` tag must not vanish)."""
    text = html.escape(str(value), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\r", " ").replace("\n", " ")


def md_code(text: str) -> str:
    """`text` as a fenced code block whose fence no run of backticks inside it can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.3f}".rstrip("0").rstrip(".")
        return md_text(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _link(uri: str) -> dg.MetadataValue:
    if uri.startswith("file://"):
        return dg.MetadataValue.path(uri[len("file://") :])
    return dg.MetadataValue.url(uri)


def round_name(episode: EpisodeView) -> str:
    """The episode's round as the CLI takes it: `league.rN` of its key `league.rN.eM`, else its id."""
    return (episode.key or "").rpartition(".")[0] or episode.round_id


def episode_metadata(episode: EpisodeView, store: ArtifactStore) -> dict[str, Any]:
    """UI metadata of one episode: seats, scores, duration, error, artifact locations, replay command."""
    seats = [[s.position, s.label or s.policy_version_id, s.score] for s in episode.seats]
    error = episode.error or {}
    artifacts = episode.artifacts or {}
    meta: dict[str, Any] = {
        "episode": episode.id,  # the partition key is the readable `league.rN.eM`
        "status": episode.status,
        "attempts": episode.attempts,
        "round": episode.round_id,
        "league": episode.league_id,
        "variant": episode.variant_id,
        "seed": episode.seed,
        "seats": dg.MetadataValue.md(md_table(["slot", "policy", "score"], seats)),
        "duration_seconds": float(episode.wall_seconds or 0.0),
        "error_type": episode.error_type or "",
    }
    if episode.replay_path:  # a failed or cancelled episode has none: no command that would say so
        meta["replay_command"] = dg.MetadataValue.md(
            md_code(f"coworld replay-open {episode.key or episode.id}")
            + f"\nor download: `coworld replays --round {round_name(episode)}`"
        )
    meta.update(episode_links(episode))  # replay (or live) in `coworld serve`, only when there is one
    for key, value in (episode.played_by or {}).items():  # which worker and engine played it
        meta[key] = str(value)
    for seat in episode.seats:
        meta[f"slot_{seat.position}_policy"] = seat.label or seat.policy_version_id
        if seat.score is not None:
            meta[f"slot_{seat.position}_score"] = float(seat.score)
    if error:
        kind, blame = error.get("error_type") or "unknown error", error.get("blame") or "unknown"
        where = f", slot {error['slot']}" if error.get("slot") is not None else ""
        meta["error"] = dg.MetadataValue.md(
            f"**{md_text(kind)}** (blame {md_text(blame)}{where}): "
            + md_text(str(error.get("message") or "")[:1500])
        )
    if artifacts and "error" not in artifacts:
        meta["artifacts"] = dg.MetadataValue.json(artifacts)
        player_logs = [f"logs/policy_agent_{seat.position}.log" for seat in episode.seats]
        for name in (*LINKED_ARTIFACTS, *player_logs):
            if name in artifacts:
                meta[f"artifact:{name}"] = _link(artifacts[name])
    elif "error" in artifacts:
        meta["artifact_error"] = str(artifacts["error"])
    meta["workspace"] = dg.MetadataValue.path(episode.workspace)
    return meta


def rankings_table(rankings: list[RankingView]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "division": r.division or "",
                    "rank": r.rank,
                    "policy": r.label or r.policy_version_id,
                    "score": r.score,
                }
            )
            for r in rankings
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("division", "string"),
                dg.TableColumn("rank", "int"),
                dg.TableColumn("policy", "string"),
                dg.TableColumn("score", "float"),
            ]
        ),
    )


def round_metadata(info: RoundView) -> dict[str, Any]:
    rankings = list(info.results or ())
    rows = [[r.division, r.rank, r.label, r.score] for r in rankings]
    return {
        "league": info.league.name,
        "league_id": info.league.id,
        "round_number": info.round_number,
        "status": info.status,
        "error": info.error or "",
        "started_at": info.to_json()["started_at"] or "",
        "completed_at": info.to_json()["completed_at"] or "",
        "episodes": dg.MetadataValue.json(dict(info.episodes)),
        "episodes_succeeded": int(info.episodes.get("succeeded", 0)),
        "episodes_failed": int(info.episodes.get("failed", 0)),
        "rankings": rankings_table(rankings),
        "rankings_md": dg.MetadataValue.md(md_table(["division", "rank", "policy", "score"], rows)),
        "ranking_order": dg.MetadataValue.json([r.label for r in rankings]),
    }


STANDINGS_COLUMNS = [
    "rank",
    "policy",
    "rating",
    "settled",
    "P(> next)",
    "episodes",
    "wins",
    "avg score",
    "status",
]


def _settled(value: bool | None) -> str:
    return {True: "yes", False: "no", None: ""}[value]


def standings_metadata(
    league_name: str, divisions: list[DivisionStandings], after_round: int
) -> dict[str, Any]:
    sections, records, order = [], [], []
    for div in divisions:
        rows = [
            [
                "-" if r.rank is None else r.rank,
                r.label,
                round(r.rating, 2),
                _settled(r.settled),
                None if r.p_above_next is None else round(r.p_above_next, 2),
                r.episodes,
                r.wins,
                None if r.average_score is None else round(r.average_score, 2),
                r.status,
            ]
            for r in div.standings
        ]
        sections.append(
            f"### {md_text(div.league.name)} / {md_text(div.division.name)}\n\n"
            + md_table(STANDINGS_COLUMNS, rows)
        )
        for r in div.standings:
            order.append(r.label)
            records.append(
                dg.TableRecord(
                    {
                        "division": div.division.name,
                        "rank": r.rank,
                        "policy": r.label,
                        "rating": round(r.rating, 3),
                        "mu": round(r.mu, 3),
                        "sigma": round(r.sigma, 3),
                        "episodes": r.episodes,
                        "wins": r.wins,
                        "settled": _settled(r.settled),
                        "p_above_next": None if r.p_above_next is None else round(r.p_above_next, 3),
                        "status": r.status,
                    }
                )
            )
    return {
        "league": league_name,
        "after_round": after_round,
        "standings": dg.MetadataValue.md("\n\n".join(sections) or "no entrants yet"),
        "table": dg.MetadataValue.table(
            records=records,
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("division", "string"),
                    dg.TableColumn("rank", "int"),
                    dg.TableColumn("policy", "string"),
                    dg.TableColumn("rating", "float"),
                    dg.TableColumn("mu", "float"),
                    dg.TableColumn("sigma", "float"),
                    dg.TableColumn("episodes", "int"),
                    dg.TableColumn("wins", "int"),
                    dg.TableColumn(
                        "settled", "string", description="order with both neighbours known at 95%"
                    ),
                    dg.TableColumn("p_above_next", "float", description="P(really stronger than the next)"),
                    dg.TableColumn("status", "string"),
                ]
            ),
        ),
        "order": dg.MetadataValue.json(order),
        "entrants": len(order),
    }
