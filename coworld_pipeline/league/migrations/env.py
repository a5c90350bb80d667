"""Alembic environment for the league database.

Run programmatically by `coworld_pipeline.league.db.migrate`, which passes an open connection in
`config.attributes["connection"]`; `alembic -c <ini>` from the command line also works with
`sqlalchemy.url` set.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from coworld_pipeline.league.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        _run(conn)
