"""What the Dagster UI is given to render: untrusted names stay literal, failed episodes say failed."""

from __future__ import annotations

from pathlib import Path

from coworld_pipeline.defs.league.metadata import episode_metadata, md_code, md_table, md_text
from coworld_pipeline.league.views import EpisodeView, Seat
from coworld_pipeline.runtime.artifacts import LocalArtifactStore

MARKUP = "[bold red]crash3[/] <b>x</b> **y** <img src=x onerror=alert(1)> a|b"


def test_md_text_keeps_markup_literal_and_identifiers_readable():
    text = md_text(MARKUP + "\nsecond line")
    assert "<" not in text and ">" not in text and "\n" not in text
    assert r"\[bold red\]crash3\[/\]" in text and r"\*\*y\*\*" in text and r"a\|b" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    # `_` inside a word cannot start emphasis: identifiers stay as they are; at a word's edge it can.
    assert md_text("player_crashed ereq_1") == "player_crashed ereq_1"
    assert md_text("_em_") == r"\_em\_"
    table = md_table(["policy", "score"], [[MARKUP, 1.5], [None, 2.0]])
    assert table.count("\n") == 3 and "<b>" not in table and "| 1.5 |" in table


def test_md_code_fence_outlasts_backticks_inside():
    block = md_code("a ``` b ```` c")
    fence = block.splitlines()[0]
    assert set(fence) == {"`"} and len(fence) == 5 and block.endswith("\n" + fence)


def test_failed_episode_metadata_links_logs_and_offers_no_replay(tmp_path: Path):
    workspace = tmp_path / "ws"
    (workspace / "logs").mkdir(parents=True)
    names = ("error_info.json", "logs/game.stderr.log", "logs/policy_agent_0.log", "logs/policy_agent_1.log")
    for name in names:
        (workspace / name).write_text("x")
    episode = EpisodeView(
        id="ereq_1",
        key="qa.r1.e3",
        request_id="ereq_1",
        league_id="league_1",
        round_id="round_1",
        division_id="div_1",
        variant_id="duel",
        seed=1,
        status="failed",
        attempts=1,
        seats=(Seat(0, "pv_0", "greedy:v1", None), Seat(1, "pv_1", MARKUP, None)),
        error={"error_type": "player_crashed", "blame": "player", "slot": 1, "message": "exit 3 <b>"},
        attempt_errors=(),
        workspace=str(workspace),
        replay_path=None,
        artifacts={name: (workspace / name).as_uri() for name in names},
        wall_seconds=1.0,
        created_at=None,
        finished_at=None,
    )
    meta = episode_metadata(episode, LocalArtifactStore(tmp_path))
    assert "replay_command" not in meta and "replay" not in meta
    assert meta["artifact:logs/policy_agent_1.log"].value == str(workspace / "logs/policy_agent_1.log")
    assert "artifact:logs/policy_agent_0.log" in meta
    assert "<b>" not in meta["error"].value and "player\\_crashed" not in meta["error"].value
    assert "<b>" not in meta["seats"].value and r"\[bold red\]" in meta["seats"].value
