"""Commissioner message models (CONTRACT §9): parse by type, reject unknown types and bad fields."""

from __future__ import annotations

import pytest

from coworld_pipeline.contract.commissioner import (
    MAX_STATE_BYTES,
    CommissionerProtocolError,
    EpisodeFailed,
    EpisodeResult,
    RoundComplete,
    RoundStart,
    ScheduleEpisodes,
    parse_commissioner_message,
    parse_message,
    parse_platform_message,
)


def test_every_type_round_trips():
    start = parse_message(
        {
            "type": "round_start",
            "round_id": "r",
            "round_number": 1,
            "league": {"id": "l"},
            "divisions": [{"id": "d", "name": "open", "level": 1}],
            "memberships": [{"id": "m", "division_id": "d", "policy_version_id": "p"}],
            "variants": [{"id": "duel", "name": "Duel", "game_config": {}}],
            "state": None,
            "future_field": 1,
        }
    )
    assert isinstance(start, RoundStart) and start.memberships[0].is_champion is False
    assert parse_message(start.to_json()).to_json_dict() == start.to_json_dict()
    sched = parse_commissioner_message(
        {
            "type": "schedule_episodes",
            "episodes": [{"request_id": "a", "variant_id": "duel", "policy_version_ids": ["p", "q"]}],
        }
    )
    assert isinstance(sched, ScheduleEpisodes) and sched.episodes[0].seed is None
    assert isinstance(
        parse_platform_message(
            {
                "type": "episode_result",
                "request_id": "a",
                "scores": [{"policy_version_id": "p", "score": 1}],
                "game_results": None,
            }
        ),
        EpisodeResult,
    )
    assert isinstance(
        parse_platform_message({"type": "episode_failed", "request_id": "a", "error": "x"}), EpisodeFailed
    )
    for kind, extra in [
        ("episodes_accepted", {"request_ids": ["a"]}),
        ("episodes_rejected", {"request_ids": ["a"], "errors": {"a": "no"}}),
        ("round_abort", {"reason": "stop"}),
    ]:
        assert parse_platform_message({"type": kind, **extra}).type == kind
    done = parse_commissioner_message({"type": "round_complete", "state": {"k": 1}})
    assert isinstance(done, RoundComplete) and done.results == [] and done.graduation_changes == []


@pytest.mark.parametrize(
    ("message", "needle"),
    [
        ({"type": "hello"}, "unknown message type 'hello'"),
        ({"round_id": "r"}, "missing"),
        ([1, 2], "JSON object"),
        ("{not json", "not JSON"),
        (
            {"type": "schedule_episodes", "episodes": [{"request_id": "a", "variant_id": "duel"}]},
            "policy_version_ids",
        ),
    ],
)
def test_bad_messages_are_clear_errors(message, needle):
    with pytest.raises(CommissionerProtocolError) as err:
        parse_message(message)
    assert needle in str(err.value)


def test_direction_is_enforced():
    with pytest.raises(CommissionerProtocolError, match="unknown message type 'round_start'"):
        parse_commissioner_message({"type": "round_start"})
    with pytest.raises(CommissionerProtocolError, match="unknown message type 'schedule_episodes'"):
        parse_platform_message({"type": "schedule_episodes", "episodes": []})


def test_oversize_state_is_rejected():
    big = "x" * (MAX_STATE_BYTES + 1)
    with pytest.raises(CommissionerProtocolError) as err:
        parse_commissioner_message({"type": "round_complete", "state": big})
    assert err.value.problems[0].path == "$.state"
    assert "10 MiB" in str(err.value)
