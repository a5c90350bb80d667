"""Archiving old episode partitions (defs/league/archive.py): beyond the threshold the oldest closed
round's keys leave the dynamic partitions, and nothing of their history is lost."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from coworld_pipeline.defs.league.sensors import commissioner_tick
from coworld_pipeline.defs.league.settings import OrchestrationSettings
from coworld_pipeline.demo import ensure_demo_league
from coworld_pipeline.league import LeagueService
from coworld_pipeline.runtime.artifacts import LocalArtifactStore
from tests.defs.test_commissioner import EPISODES, apply_partition_requests, drive, make_defs


def test_old_closed_rounds_partitions_are_archived_and_their_history_kept(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("COWORLD_ARCHIVE_PARTITIONS_ABOVE", "3")
    home = tmp_path / "home"
    service = LeagueService(home=home)
    league = ensure_demo_league(service, name="arch", episodes_per_pair=1, kick_off=True)
    defs = make_defs(home)
    settings = OrchestrationSettings(episodes_per_run=8, parallelism=3)
    store = LocalArtifactStore(home)
    with dg.instance_for_test() as instance:
        drive(defs, instance, service, settings)  # round 1: 3 episodes, closed by its run
        first = sorted(instance.get_dynamic_partitions("episodes"))
        assert first == ["arch.r1.e1", "arch.r1.e2", "arch.r1.e3"]

        # Round 2 opens: 6 keys > 3. Its own keys are never archived while it is open; round 1's are.
        assert service.open_round(league.id, "test").opened
        swept: set[str] = set()
        result, report = commissioner_tick(instance, service, settings, store, swept)
        apply_partition_requests(instance, result)
        assert report.archived == 3, report.summary()
        assert "archived 3 old episode partition(s)" in report.summary()
        assert sorted(instance.get_dynamic_partitions("episodes")) == [
            "arch.r2.e1",
            "arch.r2.e2",
            "arch.r2.e3",
        ]

        # History kept: Dagster's materialization events, the league's episodes, and an event saying why.
        for key in first:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=EPISODES, asset_partitions=[key]), limit=5
            ).records
            assert (
                len(records) == 1 and records[0].asset_materialization.metadata["status"].value == "succeeded"
            )
            assert service.episode(key).status == "succeeded"
        events = service.events(league.id, event_type="partitions_archived")
        assert [(sorted(e.payload["keys"]), e.payload["count"]) for e in events] == [(first, 3)]

        drive(defs, instance, service, settings)  # round 2 plays to the end: 3 keys left, none archived
        assert len(instance.get_dynamic_partitions("episodes")) == 3
        assert len(service.events(league.id, event_type="partitions_archived")) == 1
        assert service.rounds(league_ref=league.id, limit=1).entries[0].episodes == {"succeeded": 3}
