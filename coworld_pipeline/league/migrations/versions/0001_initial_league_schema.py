"""initial league schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 07:46:56.779251
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "coworld_versions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("content_hash", sa.String(length=80), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("source_dir", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("content_hash"),
    )
    with op.batch_alter_table("coworld_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_coworld_versions_name"), ["name"], unique=False)

    op.create_table(
        "events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
        sa.Column("league_id", sa.String(length=36), nullable=True),
        sa.Column("division_id", sa.String(length=36), nullable=True),
        sa.Column("round_id", sa.String(length=36), nullable=True),
        sa.Column("ereq_id", sa.String(length=36), nullable=True),
        sa.Column("policy_version_id", sa.String(length=36), nullable=True),
        sa.Column("headline", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_event_type"), ["event_type"], unique=False)
        batch_op.create_index("ix_events_league_id", ["league_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_round_id"), ["round_id"], unique=False)

    op.create_table(
        "policies",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "leagues",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("coworld_version_id", sa.String(length=36), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("commissioner", sa.String(length=50), nullable=False),
        sa.Column("commissioner_config", sa.JSON(), nullable=False),
        sa.Column("config_overrides", sa.JSON(), nullable=False),
        sa.Column("failure_policy", sa.JSON(), nullable=False),
        sa.Column("interval_minutes", sa.Float(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["coworld_version_id"],
            ["coworld_versions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("leagues", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_leagues_coworld_version_id"), ["coworld_version_id"], unique=False
        )

    op.create_table(
        "policy_versions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("policy_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("image", sa.Text(), nullable=False),
        sa.Column("run", sa.JSON(), nullable=False),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.Column("secret_env_keys", sa.JSON(), nullable=False),
        sa.Column("secret_env_encrypted", sa.Text(), nullable=True),
        sa.Column("runnable_hash", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["policies.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("policy_id", "runnable_hash", name="uq_policy_version_runnable"),
        sa.UniqueConstraint("policy_id", "version", name="uq_policy_version_number"),
    )
    with op.batch_alter_table("policy_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_versions_policy_id"), ["policy_id"], unique=False)

    op.create_table(
        "divisions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("league_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("rating_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["league_id"],
            ["leagues.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("league_id", "level", name="uq_division_level"),
        sa.UniqueConstraint("league_id", "name", name="uq_division_name"),
    )
    with op.batch_alter_table("divisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_divisions_league_id"), ["league_id"], unique=False)

    op.create_table(
        "rounds",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("league_id", sa.String(length=36), nullable=False),
        sa.Column("round_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("trigger", sa.String(length=100), nullable=False),
        sa.Column("open_marker", sa.String(length=36), nullable=True),
        sa.Column("commissioner", sa.String(length=50), nullable=False),
        sa.Column("commissioner_state", sa.Text(), nullable=True),
        sa.Column("carry_state", sa.Text(), nullable=True),
        sa.Column("complete_message", sa.JSON(), nullable=True),
        sa.Column("round_display", sa.JSON(), nullable=True),
        sa.Column("failed_slots", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["league_id"],
            ["leagues.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("league_id", "round_number", name="uq_round_number"),
        sa.UniqueConstraint("open_marker"),
    )
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rounds_league_id"), ["league_id"], unique=False)

    op.create_table(
        "submissions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("league_id", sa.String(length=36), nullable=False),
        sa.Column("policy_version_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("membership_id", sa.String(length=36), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["league_id"],
            ["leagues.id"],
        ),
        sa.ForeignKeyConstraint(
            ["policy_version_id"],
            ["policy_versions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_submissions_league_id"), ["league_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_submissions_policy_version_id"), ["policy_version_id"], unique=False
        )

    op.create_table(
        "episode_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("round_id", sa.String(length=36), nullable=False),
        sa.Column("league_id", sa.String(length=36), nullable=False),
        sa.Column("division_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("variant_id", sa.String(length=200), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("game_config", sa.JSON(), nullable=False),
        sa.Column("policy_version_ids", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=True),
        sa.Column("results", sa.JSON(), nullable=True),
        sa.Column("artifacts", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("error_type", sa.String(length=50), nullable=True),
        sa.Column("attempt_errors", sa.JSON(), nullable=False),
        sa.Column("workspace", sa.Text(), nullable=True),
        sa.Column("reported", sa.Boolean(), nullable=False),
        sa.Column("rated_seq", sa.Integer(), nullable=True),
        sa.Column("wall_seconds", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["division_id"],
            ["divisions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["league_id"],
            ["leagues.id"],
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["rounds.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("round_id", "request_id", name="uq_episode_request_id"),
    )
    with op.batch_alter_table("episode_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_episode_requests_division_id"), ["division_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_episode_requests_league_id"), ["league_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_episode_requests_round_id"), ["round_id"], unique=False)
        batch_op.create_index("ix_episode_requests_round_status", ["round_id", "status"], unique=False)
        batch_op.create_index("ix_episode_requests_status_claimed", ["status", "claimed_at"], unique=False)

    op.create_table(
        "memberships",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("league_id", sa.String(length=36), nullable=False),
        sa.Column("division_id", sa.String(length=36), nullable=False),
        sa.Column("policy_version_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("failure_episode_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["division_id"],
            ["divisions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["league_id"],
            ["leagues.id"],
        ),
        sa.ForeignKeyConstraint(
            ["policy_version_id"],
            ["policy_versions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("league_id", "policy_version_id", name="uq_membership_league_pv"),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_memberships_division_id"), ["division_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_memberships_league_id"), ["league_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_memberships_policy_version_id"), ["policy_version_id"], unique=False
        )

    op.create_table(
        "ratings",
        sa.Column("division_id", sa.String(length=36), nullable=False),
        sa.Column("policy_version_id", sa.String(length=36), nullable=False),
        sa.Column("mu", sa.Float(), nullable=False),
        sa.Column("sigma", sa.Float(), nullable=False),
        sa.Column("episodes", sa.Integer(), nullable=False),
        sa.Column("wins", sa.Integer(), nullable=False),
        sa.Column("score_sum", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["division_id"],
            ["divisions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["policy_version_id"],
            ["policy_versions.id"],
        ),
        sa.PrimaryKeyConstraint("division_id", "policy_version_id"),
    )
    op.create_table(
        "round_results",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("round_id", sa.String(length=36), nullable=False),
        sa.Column("division_id", sa.String(length=36), nullable=False),
        sa.Column("policy_version_id", sa.String(length=36), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("result_metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["division_id"],
            ["divisions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["policy_version_id"],
            ["policy_versions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["rounds.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("round_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_round_results_round_id"), ["round_id"], unique=False)

    op.create_table(
        "episode_slots",
        sa.Column("ereq_id", sa.String(length=36), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("policy_version_id", sa.String(length=36), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ereq_id"],
            ["episode_requests.id"],
        ),
        sa.ForeignKeyConstraint(
            ["policy_version_id"],
            ["policy_versions.id"],
        ),
        sa.PrimaryKeyConstraint("ereq_id", "slot"),
    )
    with op.batch_alter_table("episode_slots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_episode_slots_policy_version_id"), ["policy_version_id"], unique=False
        )

    op.create_table(
        "graduation_changes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("round_id", sa.String(length=36), nullable=False),
        sa.Column("membership_id", sa.String(length=36), nullable=False),
        sa.Column("from_division_id", sa.String(length=36), nullable=False),
        sa.Column("to_division_id", sa.String(length=36), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["from_division_id"],
            ["divisions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["membership_id"],
            ["memberships.id"],
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["rounds.id"],
        ),
        sa.ForeignKeyConstraint(
            ["to_division_id"],
            ["divisions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("graduation_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_graduation_changes_round_id"), ["round_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("graduation_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_graduation_changes_round_id"))

    op.drop_table("graduation_changes")
    with op.batch_alter_table("episode_slots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_episode_slots_policy_version_id"))

    op.drop_table("episode_slots")
    with op.batch_alter_table("round_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_round_results_round_id"))

    op.drop_table("round_results")
    op.drop_table("ratings")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_memberships_policy_version_id"))
        batch_op.drop_index(batch_op.f("ix_memberships_league_id"))
        batch_op.drop_index(batch_op.f("ix_memberships_division_id"))

    op.drop_table("memberships")
    with op.batch_alter_table("episode_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_episode_requests_status_claimed")
        batch_op.drop_index("ix_episode_requests_round_status")
        batch_op.drop_index(batch_op.f("ix_episode_requests_round_id"))
        batch_op.drop_index(batch_op.f("ix_episode_requests_league_id"))
        batch_op.drop_index(batch_op.f("ix_episode_requests_division_id"))

    op.drop_table("episode_requests")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submissions_policy_version_id"))
        batch_op.drop_index(batch_op.f("ix_submissions_league_id"))

    op.drop_table("submissions")
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rounds_league_id"))

    op.drop_table("rounds")
    with op.batch_alter_table("divisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_divisions_league_id"))

    op.drop_table("divisions")
    with op.batch_alter_table("policy_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_versions_policy_id"))

    op.drop_table("policy_versions")
    with op.batch_alter_table("leagues", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leagues_coworld_version_id"))

    op.drop_table("leagues")
    op.drop_table("policies")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_round_id"))
        batch_op.drop_index("ix_events_league_id")
        batch_op.drop_index(batch_op.f("ix_events_event_type"))

    op.drop_table("events")
    with op.batch_alter_table("coworld_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coworld_versions_name"))

    op.drop_table("coworld_versions")
