"""League service on a real database (SQLite and Postgres); episodes via an injected runner."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from coworld_pipeline.contract import ContractError
from coworld_pipeline.contract.commissioner import CommissionerProtocolError
from coworld_pipeline.league.db import HEAD_REVISION, MIGRATIONS_DIR
from coworld_pipeline.league.handoff import EpisodeOutcome
from coworld_pipeline.league.service import DEFAULT_FAILURE_POLICY, LeagueError, LeagueService, NotFound
from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType
from tests.league.conftest import ORCHARD_MANIFEST, FakeOutcome, by_label, orchard_league, scores_by_slot


def test_migrations_head_and_models_agree(svc: LeagueService):
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from coworld_pipeline.league.models import Base

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION
    with svc.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert diff == []


def test_bad_input_changes_nothing(svc: LeagueService, tmp_path: Path):
    orchard_league(svc, "L")
    before = svc.counts()
    with pytest.raises(NotFound, match="unknown league 'nope'"):
        svc.submit("random", "nope")
    with pytest.raises(NotFound, match="unknown policy 'ghost'"):
        svc.submit("ghost", "L")
    with pytest.raises(NotFound, match="unknown policy version 'random:v9'"):
        svc.submit("random:v9", "L")
    with pytest.raises(NotFound, match="unknown coworld 'nowhere'"):
        svc.create_league("L2", "nowhere")
    with pytest.raises(LeagueError, match="unknown variant 'huge'"):
        svc.create_league("L2", "orchard", variants=["huge"])
    with pytest.raises(LeagueError, match="variant 'duel' is given more than once"):
        svc.create_league("L2", "orchard", variants=["duel", "four", "duel"])
    with pytest.raises(LeagueError, match="already exists"):
        svc.create_league("L", "orchard")
    with pytest.raises(LeagueError, match="duplicate policy version: random:v1"):
        svc.upload_policy("coworld/orchard:0.1.0", "random", run=["python", "-m", "orchard.players.random"])
    version_id = svc.policies()[0].id  # a name that is an id would be read as that version elsewhere
    with pytest.raises(LeagueError, match="looks like a policy version id"):
        svc.upload_policy("coworld/orchard:0.1.0", version_id, run=["python", "-m", "orchard.players.greedy"])
    for name, why in (("greedy ", "start or end with whitespace"), ("a | b", "separates the seats")):
        with pytest.raises(LeagueError) as refused:
            svc.upload_policy("coworld/orchard:0.1.0", name, run=["python", "-m", "orchard.players.greedy"])
        assert why in refused.value.problems[0]["message"], refused.value.problems
    with pytest.raises(LeagueError, match="2-slot"):
        svc.create_league("L3", "orchard", variants=["four"], commissioner="swiss")
    bad = json.loads(ORCHARD_MANIFEST.read_text())
    bad["variants"][0]["game_config"]["tokens"] = ["x", "y"]
    del bad["game"]["results_schema"]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ContractError) as err:
        svc.upload_coworld(tmp_path / "bad.json")
    assert "$.game.results_schema" in {p.path for p in err.value.problems}
    with pytest.raises(LeagueError) as overrides:
        svc.create_league("L4", "orchard", config_overrides={"max_ticks": 0})
    assert overrides.value.problems and "max_ticks" in overrides.value.problems[0]["path"]
    for name, why in [
        ("a\tb", "control characters"),
        ("ok\x1b[2J", "escape sequences"),
        ("two\nlines", "newlines"),
        (" padded", "whitespace"),
        ("x" * 101, "at most 100 characters"),
        ("a...b", "range of partition keys"),
        # `coworld results a.r1` is round 1 of league `a`: such a league could never be named.
        ("a.r1", "look like a round or episode reference"),
        ("r2", "look like a round or episode reference"),
        ("a.r1.e2", "look like a round or episode reference"),
    ]:
        with pytest.raises(LeagueError, match=f"bad league name .*{why}"):
            svc.create_league(name, "orchard")
    for settings, why in [
        ({"interval_minutes": float("nan")}, "--interval-minutes must be more than 0"),
        ({"interval_minutes": float("inf")}, "at most 527,040 \\(a year\\)"),
        ({"failure_policy": {"episode_timeout_seconds": float("inf")}}, "episode timeout must be from 1"),
        ({"failure_policy": {"episode_timeout_seconds": "soon"}}, "episode timeout must be from 1"),
        ({"commissioner_config": {"episodes_per_pair": 5000}}, "episodes_per_pair must be an integer"),
        # Counts past what the platform stores or compares (once stored as given, 10**20 included).
        ({"failure_policy": {"quarantine_after": 10**20}}, "quarantine_after must be a whole number from 1"),
        ({"failure_policy": {"infra_retries": -1}}, "infra_retries must be a whole number from 0 to 100"),
        ({"failure_policy": {"failed_slot_budget": 2.5}}, "failed_slot_budget must be a whole number"),
        ({"failure_policy": {"quarantine_after": True}}, "quarantine_after must be a whole number"),
        ({"commissioner_config": {"streak_length": 10**20}}, "streak_length must be a whole number from 1"),
    ]:
        with pytest.raises(LeagueError, match=why):
            svc.create_league("L6", "orchard", **settings)
    assert svc.counts() == before
    # What stays allowed: names are printed as text everywhere (markup, dots, unicode, spaces).
    for name in ("[bold]x[/]", "a.b", "ünï league", "r2d2", "league.r1x"):
        assert svc.create_league(name, "orchard").name == name


def test_secret_env_encrypted_at_rest_and_never_shown(svc: LeagueService, db_url: str):
    orchard_league(svc, "L", players=("random", "greedy"))
    out = svc.upload_policy(
        "img",
        "secretive",
        run=["python", "-m", "orchard.players.random"],
        secret_env={"API_TOKEN": "hunter2-very-secret"},
    )
    assert out.secret_env_keys == ("API_TOKEN",) and "hunter2" not in json.dumps(out.to_json())
    svc.submit("secretive", "L")
    rid = svc.open_round(svc.resolve_league_id("L")).round_id
    ereq = next(e for e in svc.pending_episodes(rid) if out.id in svc.episode(e).policy_version_ids)
    prepared, status = svc.claim_and_prepare(ereq)
    assert status == "running" and prepared is not None
    slot = svc.episode(ereq).policy_version_ids.index(out.id)
    assert prepared.secrets == {slot: {"API_TOKEN": "hunter2-very-secret"}}
    assert "hunter2" not in repr(prepared)
    assert all("API_TOKEN" not in p.env for p in prepared.request.players)
    engine = create_engine(db_url)
    with engine.connect() as conn:
        dump = json.dumps(
            [
                list(map(str, r))
                for t in ("policy_versions", "events")
                for r in conn.execute(text(f"SELECT * FROM {t}"))
            ]
        )
    engine.dispose()
    assert "hunter2" not in dump and "API_TOKEN" in dump
    assert "hunter2" not in json.dumps([v.to_json() for v in [*svc.policies(), *svc.events(limit=1000)]])


def test_commissioner_schedule_is_validated(svc: LeagueService):
    orchard_league(svc, "L")
    rid = svc.open_round(svc.resolve_league_id("L")).round_id
    pvs = [m.policy_version.id for m in svc.memberships("L")]
    before = svc.counts()
    answers = svc.commissioner_message(
        rid,
        {
            "type": "schedule_episodes",
            "episodes": [
                {"request_id": "x1", "variant_id": "duel", "policy_version_ids": pvs},  # 3 seats for 2 slots
                {"request_id": "x2", "variant_id": "four", "policy_version_ids": pvs[:2]},
                {
                    "request_id": "x3",
                    "variant_id": "duel",
                    "policy_version_ids": [pvs[0], "0" * 8 + "-0000-0000-0000-" + "0" * 12],
                },
                {
                    "request_id": "r1-e1",
                    "variant_id": "duel",
                    "policy_version_ids": pvs[:2],
                },  # id already used
            ],
        },
    )
    assert [a["type"] for a in answers] == ["episodes_rejected"]
    errors = answers[0]["errors"]
    assert "wrong slot count: variant duel has 2 slots, got 3" in errors["x1"]
    assert "unknown variant 'four'" in errors["x2"]
    assert "unknown policy version" in errors["x3"]
    assert "duplicate request_id" in errors["r1-e1"]
    after = svc.counts()
    assert after["episode_requests"] == before["episode_requests"]
    assert after["events"] == before["events"] + 1
    assert svc.events("L", event_type="episodes_rejected")[-1].payload["errors"] == errors
    with pytest.raises(CommissionerProtocolError, match="unknown message type"):
        svc.commissioner_message(rid, {"type": "launch_rockets"})
    ok = svc.commissioner_message(
        rid,
        {
            "type": "schedule_episodes",
            "episodes": [
                {"request_id": "extra", "variant_id": "duel", "policy_version_ids": pvs[:2], "seed": 7}
            ],
        },
    )
    assert ok == [{"type": "episodes_accepted", "request_ids": ["extra"]}]


def test_seat_swap_swaps_credit(svc: LeagueService):
    orchard_league(svc, "L", players=("random", "greedy"))
    lid = svc.resolve_league_id("L")
    rid = svc.open_round(lid).round_id
    runner = scores_by_slot(10, 0)  # slot 0 always wins
    for e in svc.pending_episodes(rid):
        assert svc.execute_episode(e, episode_runner=runner) == "succeeded"
    assert svc.advance_round(rid).done
    eps = svc.episodes(round_ref=rid)
    assert len(eps) == 2
    for ep in eps:
        first = ep.seats[0].policy_version_id
        assert ep.to_json()["scores"][0] == {"position": 0, "policy_version_id": first, "score": 10.0}
    seated_first = {ep.seats[0].label for ep in eps}
    assert seated_first == {"random:v1", "greedy:v1"}  # both sat in the winning seat once...
    table = by_label(svc, "L")
    assert table["random:v1"].wins == table["greedy:v1"].wins == 1  # ...so each won once
    rated = [ev for ev in svc.events("L", event_type="episode_rated")]
    assert {tuple(s["label"] for s in ev.payload["seats"]) for ev in rated} == {
        ("random:v1", "greedy:v1"),
        ("greedy:v1", "random:v1"),
    }


def test_entrant_in_several_seats_is_credited_once(svc: LeagueService):
    orchard_league(svc, "L", players=("random", "greedy", "planner"), variant="four")
    rid = svc.open_round(svc.resolve_league_id("L")).round_id
    runner = scores_by_slot(4, 1, 2, 9)
    for e in svc.pending_episodes(rid):
        svc.execute_episode(e, episode_runner=runner)
    progress = svc.advance_round(rid)
    assert progress.done and progress.counts == {"succeeded": 4}
    table = by_label(svc, "L")
    assert {r.episodes for r in table.values()} == {4}  # 4 episodes, 4 seats each, one credit per entrant
    for ev in svc.events("L", event_type="episode_rated"):
        seats = ev.payload["seats"]
        twice = [s for s in seats if sum(t["label"] == s["label"] for t in seats) == 2]
        assert ev.payload["credited"][twice[0]["label"]] == sum(s["score"] for s in twice) / 2


def test_failures_never_touch_ratings_and_quarantine(svc: LeagueService):
    orchard_league(svc, "L", players=("random", "greedy", "planner"), failure_policy={"quarantine_after": 2})
    lid = svc.resolve_league_id("L")
    crasher = svc.memberships("L", policy_ref="planner")[0].policy_version.id

    def runner(request, workspace, secrets):
        workspace.mkdir(parents=True, exist_ok=True)
        if "planner:v1" in request.policy_names:
            slot = request.policy_names.index("planner:v1")
            return FakeOutcome(workspace, error=EpisodeFailure(ErrorType.PLAYER_CRASHED, "boom", slot=slot))
        return FakeOutcome(workspace, [3.0, 1.0])

    rid = svc.open_round(lid).round_id
    for e in svc.pending_episodes(rid):
        svc.execute_episode(e, episode_runner=runner)
        svc.advance_round(rid)
    progress = svc.advance_round(rid)
    assert progress.done
    counts = progress.counts
    assert counts["failed"] == 2 and counts["succeeded"] == 2 and counts["cancelled"] == 2
    member = svc.memberships("L", policy_ref="planner")[0]
    assert member.status == "quarantined" and "2 consecutive player failures" in str(member.status_reason)
    quarantined = svc.events("L", event_type="policy_quarantined")[0]
    q = quarantined.payload
    assert len(q["failing_episodes"]) == 2 and all(f["log"].endswith(".log") for f in q["failing_episodes"])
    assert "2 pending episode(s) of it cancelled" in quarantined.headline
    # The cancellation is a decision of its own, filed under the round and naming the episodes.
    (cancelled,) = svc.events("L", event_type="episodes_cancelled")
    cancelled_keys = sorted(e.key for e in svc.episodes(round_ref=rid) if e.status == "cancelled")
    assert sorted(cancelled.payload["episodes"]) == cancelled_keys and len(cancelled_keys) == 2
    assert "planner:v1 was quarantined" in cancelled.headline
    assert all(key in cancelled.headline for key in cancelled_keys)
    assert svc.events("L", round_ref=rid, event_type="episodes_cancelled") == [cancelled]
    table = by_label(svc, "L")
    assert table["planner:v1"].episodes == 0 and table["planner:v1"].mu == 25.0
    assert table["random:v1"].episodes == table["greedy:v1"].episodes == 2
    rid2 = svc.open_round(lid).round_id
    scheduled = {pv for e in svc.episodes(round_ref=rid2) for pv in e.policy_version_ids}
    assert crasher not in scheduled and len(scheduled) == 2
    with pytest.raises(LeagueError, match="quarantined"):
        svc.submit("planner", "L")


def test_infrastructure_failure_retried_then_recorded(svc: LeagueService):
    orchard_league(svc, "L", players=("random", "greedy"))
    lid = svc.resolve_league_id("L")
    calls = []

    def runner(request, workspace, secrets):
        calls.append(workspace)
        workspace.mkdir(parents=True, exist_ok=True)
        (workspace / "error_info.json").write_text("{}")
        return FakeOutcome(workspace, error=EpisodeFailure(ErrorType.IMAGE_MISSING, "no such image"))

    rid = svc.open_round(lid).round_id
    first = svc.pending_episodes(rid)[0]
    statuses = [svc.execute_episode(first, episode_runner=runner) for _ in range(4)]
    assert statuses == ["pending", "pending", "failed", "failed"]  # 1 try + 2 retries; then never again
    assert len(calls) == 3
    ep = svc.episode(first)
    assert ep.attempts == 3 and ep.error_type == "image_missing"
    assert (Path(ep.workspace) / "previous_attempts" / "attempt-1" / "error_info.json").exists()
    assert len(svc.events("L", event_type="episode_retried")) == 2
    assert all(r.episodes == 0 for r in by_label(svc, "L").values())


def test_claims_and_late_results_are_idempotent(svc: LeagueService):
    orchard_league(svc, "L", players=("random", "greedy", "planner"))
    rid = svc.open_round(svc.resolve_league_id("L")).round_id
    e = svc.pending_episodes(rid)[0]
    runner = scores_by_slot(2, 1)
    assert svc.execute_episode(e, episode_runner=runner) == "succeeded"
    assert svc.execute_episode(e, episode_runner=runner) == "succeeded"
    assert len(runner.calls) == 1
    ws = svc.episode_workspace(e)
    late = EpisodeOutcome.of(FakeOutcome(ws, [0.0, 5.0]), ws)
    assert svc.record_outcome(e, 1, late).status == "succeeded"  # duplicate writer: ignored
    assert svc.episode(e).scores == [2.0, 1.0]
    assert svc.events("L", event_type="late_result_ignored")
    # a claimed row whose worker vanished is re-queued once it is stale, and its late result ignored
    other = svc.pending_episodes(rid)[0]
    prepared, _ = svc.claim_and_prepare(other)
    assert prepared is not None and svc.claim_and_prepare(other) == (None, "running")
    assert svc.requeue_stale(older_than_seconds=3600) == []
    assert svc.requeue_stale(older_than_seconds=-1) == [other]
    lost = EpisodeOutcome.of(FakeOutcome(ws, [1.0, 1.0]), ws)
    assert svc.record_outcome(other, prepared.attempt, lost).status == "pending"
    assert svc.execute_episode(other, episode_runner=runner) == "succeeded"
    third = svc.pending_episodes(rid)[0]
    svc.claim_and_prepare(third)
    assert svc.requeue_episodes([f"ereq_{third}", f"ereq_{other}"], "run worker died") == [f"ereq_{third}"]
    assert svc.episode(third).attempt_errors[0]["message"] == "run worker died (attempt 1)"
    assert svc.execute_episode(third, episode_runner=runner) == "succeeded"
    assert sum(r.episodes for r in by_label(svc, "L").values()) == 6


def test_open_round_refusals_are_events(svc: LeagueService):
    orchard_league(svc, "L", players=("random",))
    lid = svc.resolve_league_id("L")
    refused = svc.open_round(lid, "test")
    assert refused.round_id is None and "fewer than 2 eligible" in str(refused.refused)
    assert "fewer than 2 eligible" in svc.events("L", event_type="round_refused")[-1].headline
    svc.upload_policy("img", "greedy", run=["python", "-m", "orchard.players.greedy"])
    svc.submit("greedy", "L")
    svc.set_paused("L", True)
    assert svc.open_round(lid).refused == "league is paused"
    assert svc.events("L", event_type="round_refused")[-1].payload["reason"] == "league is paused"
    svc.set_paused("L", False)
    assert svc.open_round(lid).opened
    assert "still open" in str(svc.open_round(lid).refused)
    assert "still open" in svc.events("L", event_type="round_refused")[-1].headline
    svc.nothing_to_do("L", "a round is already open")
    assert svc.events("L", event_type="nothing_to_do")


def test_due_leagues_and_stalled_commissioner(svc: LeagueService):
    orchard_league(svc, "L", players=("random", "greedy"), interval_minutes=5)
    lid = svc.resolve_league_id("L")
    assert svc.due_leagues() == [lid]
    rid = svc.open_round(lid, "schedule").round_id
    assert svc.due_leagues() == []
    svc.run_round("L", episode_runner=scores_by_slot(1, 0))
    assert svc.round(rid).status == "completed"
    assert svc.due_leagues() == []
    from datetime import timedelta

    from coworld_pipeline.league.models import utcnow

    assert svc.due_leagues(utcnow() + timedelta(minutes=6)) == [lid]
    # A schedule tick a few seconds short of the cadence still opens the next round (no skipped minute).
    assert svc.due_leagues(utcnow() + timedelta(minutes=5) - timedelta(seconds=5)) == [lid]
    svc.set_paused("L", True)
    (decision,) = svc.schedule_decisions()
    assert not decision.due and decision.reason == "paused"


def test_standings_recompute_matches_incremental(svc: LeagueService):
    orchard_league(svc, "L", players=("random", "greedy", "planner"))
    strength = {"random:v1": 1.0, "greedy:v1": 2.0, "planner:v1": 3.0}

    def runner(request, workspace, secrets):
        return FakeOutcome(
            workspace, [strength[n] + (0.5 if i == 0 else 0) for i, n in enumerate(request.policy_names)]
        )

    for _ in range(3):
        run = svc.run_round("L", parallel=2, episode_runner=runner)
        assert run.progress is not None and run.progress.status == "completed"
    table = by_label(svc, "L")
    assert [r.label for r in sorted(table.values(), key=lambda r: r.rank)] == [
        "planner:v1",
        "greedy:v1",
        "random:v1",
    ]
    # Confidence: an interval per entrant and P(really stronger than the next) per adjacent pair.
    ranked = sorted(table.values(), key=lambda r: r.rank)
    for upper, lower in itertools.pairwise(ranked):
        assert upper.p_above_next is not None and 0.5 <= upper.p_above_next <= 1.0
        assert upper.skill_low is not None and upper.skill_low < upper.mu < (upper.skill_high or 0)
        assert upper.settled in (True, False) and lower.section == "ranked"
    assert ranked[-1].p_above_next is None and ranked[-1].to_json()["skill_interval"] is not None
    fresh = svc.recompute_standings("L")
    for row in table.values():
        st = next(v for (d, pv), v in fresh.items() if pv == row.policy_version_id)
        assert st.mu == pytest.approx(row.mu, abs=1e-12) and st.episodes == row.episodes == 12
    assert len(svc.rounds(league_ref="L").entries) == 3


def test_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'league.db'}"
    LeagueService(url, tmp_path).close()
    assert (tmp_path / "league.db").stat().st_mode & 0o777 == 0o600


def test_episode_timeout_defaults_to_the_manifests_own(svc: LeagueService, tmp_path: Path):
    from tests.league.conftest import orchard_copy

    path = orchard_copy(tmp_path / "timed")
    manifest = json.loads(path.read_text())
    manifest["episode_timeout_minutes"] = 3
    manifest["game"]["version"] = "0.1.1"
    path.write_text(json.dumps(manifest))
    cw = svc.upload_coworld(path)
    assert svc.create_league("T", cw.id).failure_policy["episode_timeout_seconds"] == 180.0
    explicit = {"episode_timeout_seconds": 30.0}
    assert svc.create_league("T2", cw.id, failure_policy=explicit).failure_policy == {
        **DEFAULT_FAILURE_POLICY,
        **explicit,
    }


def test_a_round_beyond_the_bounds_fails_saying_why(svc: LeagueService, monkeypatch: pytest.MonkeyPatch):
    """A config stored before a bound existed fails its round with the reason (no round of a billion
    episodes); whatever a commissioner schedules beyond a round's limit is rejected, with the reason."""
    orchard_league(svc, "Huge", players=("random", "greedy", "planner"))
    with svc.engine.begin() as conn:
        conn.execute(
            text("UPDATE leagues SET commissioner_config = :c WHERE name = 'Huge'"),
            {"c": json.dumps({"strategy": "round-robin", "episodes_per_pair": 10**9})},
        )
    opening = svc.open_round("Huge")
    assert svc.round(opening.round_id).status == "failed"
    [failed] = svc.events("Huge", event_type="round_failed")
    assert (
        "commissioner config is invalid: episodes_per_pair must be an integer from 1 to 1000"
        in failed.headline
    )

    from coworld_pipeline.league import dialogue

    monkeypatch.setattr(dialogue, "MAX_ROUND_EPISODES", 4)  # a commissioner that asks for more than allowed
    svc.create_league("Capped", "orchard", variants=["duel"])
    for player in ("random", "greedy", "planner"):  # round-robin: 6 episodes
        svc.submit(player, "Capped")
    svc.open_round("Capped")
    [rejected] = svc.events("Capped", event_type="episodes_rejected")
    assert set(rejected.payload["errors"].values()) == {
        "the round already has 4 episodes, the most a round may schedule"
    }
    assert len(rejected.payload["errors"]) == 2


def test_overview_says_how_many_failures_it_leaves_out(svc: LeagueService, monkeypatch):
    """The overview lists the newest failures only; its title says how many there are in all and how
    to list them, in the CLI and in the Dagster markdown (which also shows names literally)."""
    from coworld_pipeline.defs.league.overview_metadata import overview_markdown, overview_metadata
    from coworld_pipeline.league import overview

    monkeypatch.setattr(overview, "MAX_FAILURES", 2)
    orchard_league(svc, "L", players=("random", "greedy", "planner"), failure_policy={"infra_retries": 0})

    def runner(request, workspace, secrets):
        workspace.mkdir(parents=True, exist_ok=True)
        return FakeOutcome(workspace, error=EpisodeFailure(ErrorType.GAME_CRASHED, "**boom** <b>x</b>"))

    rid = svc.open_round(svc.resolve_league_id("L")).round_id
    for e in svc.pending_episodes(rid)[:3]:
        svc.execute_episode(e, episode_runner=runner)
    o = svc.overview("L")
    assert len(o.failures) == 2 and o.failures_total == 3 and o.to_json()["failures_total"] == 3
    assert o.failures_title == (
        "failed episodes (last 2 rounds: 2 of 3 shown; coworld episodes --league L --status failed lists all)"
    )
    markdown = overview_markdown(o)
    assert "2 of 3 shown" in markdown
    assert r"\*\*boom\*\* &lt;b&gt;x&lt;/b&gt;" in markdown and "<b>" not in markdown
    meta = overview_metadata(o)
    assert meta["failed_episodes"] == 3 and meta["failed_episodes_recent_rounds"] == 3
