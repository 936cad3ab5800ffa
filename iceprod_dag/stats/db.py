"""Where the stats database is and how to connect to it.

The URL comes from, in order: an explicit argument, the ``ICEPROD_DAG_DB`` environment variable, or one SQLite
file at ``$ICEPROD_DAG_HOME/stats.sqlite`` (``ICEPROD_DAG_HOME`` defaults to ``$XDG_DATA_HOME/iceprod-dag``,
i.e. ``~/.local/share/iceprod-dag``). Every site's runs, the web UI and its accounts share that one default, so
what a user submits anywhere from this account shows in the web UI they serve.

SQLite connections use WAL (readers never block the writer), a busy timeout, foreign keys, and
``synchronous=NORMAL``: a committed transaction survives the death of the process (``kill -9``); set
``synchronous="FULL"`` to also survive a power loss. Writers should use :func:`writer`, which begins SQLite
transactions with ``BEGIN IMMEDIATE`` so that a read-then-write transaction waits for the lock instead of
failing with "database is locked" when another process wrote in between.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from iceprod_dag.common.exceptions import StatsError

log = logging.getLogger(__name__)

ENV_DB = "ICEPROD_DAG_DB"
ENV_HOME = "ICEPROD_DAG_HOME"
DEFAULT_FILE = "stats.sqlite"
BUSY_TIMEOUT_MS = 30_000


def data_home() -> Path:
    """The folder of per-site SQLite files (not created here)."""
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "iceprod-dag"


def default_url() -> str:
    """The SQLite URL of the default database in the data home."""
    return f"sqlite:///{data_home() / DEFAULT_FILE}"


def resolve_url(url: str | None = None) -> str:
    """Explicit URL > $ICEPROD_DAG_DB > the default SQLite file."""
    return url or os.environ.get(ENV_DB) or default_url()


def _sqlite_setup(engine: Engine, synchronous: str) -> None:
    """Pragmas on every new connection, and explicit BEGINs (pysqlite's implicit ones are unreliable)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # let SQLAlchemy's begin event issue BEGIN itself (see the SQLAlchemy pysqlite docs)
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode = WAL")
        cur.execute(f"PRAGMA synchronous = {synchronous}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str | None = None, synchronous: str = "NORMAL", **kwargs: Any) -> Engine:
    """An engine for the stats database; creates the folder of a SQLite file. Does not create tables."""
    final = resolve_url(url)
    try:
        parsed = make_url(final)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError; message names the bad URL
        raise StatsError(f"invalid database URL {final!r}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            _private_file(Path(parsed.database).expanduser())
        engine = create_engine(parsed, **kwargs)
        _sqlite_setup(engine, synchronous.upper())
    else:
        kwargs.setdefault("pool_pre_ping", True)
        engine = create_engine(parsed, **kwargs)
    log.debug("stats database %s", engine.url.render_as_string(hide_password=True))
    return engine


def _private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (it holds password and token hashes); SQLite gives
    its -wal and -shm files the same mode. An existing file keeps its mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def writer(engine: Engine) -> Engine:
    """The same engine, beginning SQLite transactions with BEGIN IMMEDIATE (no effect elsewhere)."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(sqlite_begin="IMMEDIATE")
    return engine


def init_db(url: str | Engine | None = None) -> Engine:
    """Create or upgrade the schema (``alembic upgrade head``) and return an engine for it."""
    from iceprod_dag.stats.migrations import upgrade

    engine = url if isinstance(url, Engine) else make_engine(url)
    upgrade(engine)
    return engine
