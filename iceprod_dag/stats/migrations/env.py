"""Alembic environment: runs migrations on the engine handed over by iceprod_dag.stats.migrations."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from iceprod_dag.stats.models import Base

try:  # the web UI's account tables live on the same Base and in this migration history
    import iceprod_dag.webui.accounts_models  # noqa: F401
except ImportError:  # pragma: no cover - the web UI is part of the package; tolerate a partial install
    pass

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))
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
