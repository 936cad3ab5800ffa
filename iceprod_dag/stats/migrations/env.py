"""Alembic environment: runs migrations on the engine handed over by iceprod_dag.stats.migrations."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from iceprod_dag.stats.migrations import load_models
from iceprod_dag.stats.models import Base

load_models(strict=False)  # only autogenerate needs them
config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things: batch mode copies the table
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
