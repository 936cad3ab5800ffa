"""The Alembic history creates exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from iceprod_dag.stats.db import init_db, make_engine
from iceprod_dag.stats.migrations import alembic_config, load_models
from iceprod_dag.stats.models import Base


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'stats.sqlite'}"
    return request.getfixturevalue("postgres_db")


def diff(engine) -> list:
    load_models()  # every table on Base (the web UI's too): the history must create exactly those
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)


def test_migrations_match_models(url):
    engine = init_db(url)
    assert diff(engine) == []
    assert {"datasets", "jobs", "attempts", "job_ads"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_upgrade_twice_and_down_and_up_again(url):
    engine = init_db(url)
    init_db(engine)  # already at head: nothing to do, no error
    command.downgrade(alembic_config(engine), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    init_db(engine)
    assert diff(engine) == []
    engine.dispose()


def test_sqlite_connections_use_wal_and_a_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x' / 'stats.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_default_url_follows_the_environment(monkeypatch, tmp_path):
    from iceprod_dag.stats import db

    monkeypatch.delenv("ICEPROD_DAG_DB", raising=False)
    monkeypatch.delenv("ICEPROD_DAG_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert db.resolve_url() == f"sqlite:///{tmp_path}/xdg/iceprod-dag/stats.sqlite"
    monkeypatch.setenv("ICEPROD_DAG_HOME", str(tmp_path / "home"))
    assert db.resolve_url() == f"sqlite:///{tmp_path}/home/stats.sqlite"
    monkeypatch.setenv("ICEPROD_DAG_DB", "sqlite:////elsewhere.sqlite")
    assert db.resolve_url() == "sqlite:////elsewhere.sqlite"
    assert db.resolve_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"
