"""`alembic_heads`: Dagster's migration scripts are read once per process; each database's own
revision is still read, so an outdated database is still noticed."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import dagster._core.storage.event_log.sqlite.sqlite_event_log as sqlite_event_log
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from dagster._core.storage import sql

from coworld_pipeline.defs import alembic_heads


def test_the_scripts_are_read_once_and_each_database_revision_is_still_read(tmp_path: Path):
    assert alembic_heads.install() and alembic_heads.install()  # idempotent
    config = sql.get_alembic_config(sqlite_event_log.__file__)
    assert sql.ScriptDirectory.from_config(config) is sql.ScriptDirectory.from_config(config)
    real_head = ScriptDirectory.from_config(config).as_revision_number("head")

    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        with storage._connect("some_run") as conn:  # a new run shard: created and stamped at head
            assert sql.check_alembic_revision(config, conn) == (real_head, real_head)
            conn.execute(sa.text("UPDATE alembic_version SET version_num = 'older'"))
            sql.safe_commit(conn)
        with storage._connect("some_run") as conn:
            assert sql.check_alembic_revision(config, conn) == ("older", real_head)
