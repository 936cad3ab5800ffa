"""Single pilot reports on SQLite: checked, then committed to an append-only inbox; a drainer moves them into
the stats tables in batches.

Why: applying one stats record rewrites a job row whose table carries ten indexes, so its commit writes ~20
pages; an inbox row writes two. The report is durable when the pilot gets its answer (same guarantee as
any other commit here), and the stale checks run before it is accepted, so a superseded attempt is still
refused with 409: its node already started a higher attempt (in ``jobs`` or in the inbox), or the same
attempt already has a different final report (in ``attempts`` or in the inbox). The drainer applies
``ingest``'s rules once more (``reports.ingest_on_cursor``); anything it refuses then is logged.

Readers see a report once drained: at most ``DRAIN_INTERVAL_S`` later, and at once for work claims (claim
drains first).

Costs kept off each request: the record's JSON is stored as received (no re-serializing) with its hash, so
the drain neither re-hashes it; a request thread writes on its own connection (``Drainer.connection``: no
pool checkout) that leaves WAL checkpoints, which fsync, to the drainer thread; and a record SQLite could not
store (checked as the drain will bind it) is refused with 400 here, since once queued it would fail every
drain after it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from iceprod_dag.common.gcpause import gc_paused
from iceprod_dag.stats import ingest, reports
from iceprod_dag.stats.models import Base
from iceprod_dag.stats.records import attempt_values, same_record

log = logging.getLogger(__name__)

DRAIN_INTERVAL_S = 0.25
DRAIN_BATCH = 20_000


class ReportInbox(Base):
    """A pilot's single stats report, accepted and not yet applied to the stats tables."""

    __tablename__ = "report_inbox"
    __table_args__ = (Index("ix_report_inbox_node", "dataset_pk", "node", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_pk: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    node: Mapped[str] = mapped_column(String(255))
    attempt: Mapped[int] = mapped_column(Integer)
    record_hash: Mapped[str] = mapped_column(String(64))
    #: the stats record as JSON text
    record: Mapped[str] = mapped_column(Text)
    received_at: Mapped[float] = mapped_column(Float)


_INBOX_COLS = (
    "(SELECT max(attempt) FROM report_inbox WHERE dataset_pk = ? AND node = ?), "
    "(SELECT group_concat(record_hash) FROM report_inbox WHERE dataset_pk = ? AND node = ? AND attempt = ?)"
)
_CHECK_SQL = (
    "SELECT j.id, j.last_attempt, "
    "(SELECT record_hash FROM attempts WHERE job_pk = j.id AND attempt = ?), "
    + _INBOX_COLS
    + " FROM jobs j WHERE j.dataset_pk = ? AND j.node = ?"
)
_INBOX_SQL = "SELECT " + _INBOX_COLS


def usable(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def accept(
    engine: Engine,
    dataset_pk: int,
    rec: Mapping[str, Any],
    text: str | None = None,
    connection: Any = None,
) -> str | None:
    """Queue one validated record; returns None when accepted, "unchanged" for an exact repeat, or raises
    StaleUpdateError naming why it is refused.

    ``text`` is the record's JSON as received (else it is serialized here); ``connection`` a DB-API
    connection of this thread to use (``Drainer.connection``), else one comes from the engine's pool."""
    digest = ingest.record_hash(rec)
    _check_storable(rec, digest)
    if text is None:
        text = json.dumps(rec, separators=(",", ":"))
    if connection is not None:
        return _accept_on(connection.cursor(), dataset_pk, rec, digest, text)
    raw = engine.raw_connection()
    try:
        return _accept_on(raw.cursor(), dataset_pk, rec, digest, text)
    finally:
        raw.close()


_INT64 = (-(2**63), 2**63 - 1)


def _check_storable(rec: Mapping[str, Any], digest: str) -> None:
    """Refuse now what SQLite could not store later. The direct path fails on such a record when it binds
    it (an integer beyond 64 bits, a lone surrogate, an object where a column wants a value), but a queued
    one would fail every drain after it: so check each value the drain will bind, as attempt_values makes them."""
    from iceprod_dag.common.exceptions import StatsError

    try:
        row = attempt_values(rec, digest)  # the values only: None binds as NULL
    except (AttributeError, TypeError) as exc:  # "request" or "logs" not an object, say
        raise StatsError(f"malformed record: {exc}") from None
    row.pop("transfers", None)  # stored as JSON text
    lo, hi = _INT64
    for key, value in (*row.items(), ("task", rec.get("task")), ("job", rec.get("job"))):
        if value is None or type(value) is float:
            continue
        if isinstance(value, int):
            if not lo <= value <= hi:
                raise StatsError(f"field {key!r}: {value} does not fit in 64 bits")
        elif isinstance(value, str):
            try:
                value.encode()
            except UnicodeEncodeError:
                raise StatsError(f"field {key!r}: not valid Unicode text") from None
        else:
            raise StatsError(f"field {key!r}: expected a number or a string, got {type(value).__name__}")


def _accept_on(cur: Any, dataset_pk: int, rec: Mapping[str, Any], digest: str, text: str) -> str | None:
    from iceprod_dag.common.exceptions import StaleUpdateError

    node, attempt = rec["node"], rec["attempt"]
    with reports.WRITE_LOCK:
        cur.execute("BEGIN IMMEDIATE")
        try:
            # one statement for the common case (the job exists): its latest attempt, the hash recorded for
            # this attempt, and what the inbox already holds for the node
            inbox_args = (dataset_pk, node, dataset_pk, node, attempt)
            found = cur.execute(_CHECK_SQL, (attempt, *inbox_args, dataset_pk, node)).fetchone()
            if found is None:  # a node never registered: the drain creates its job row
                found = (None, -1, None, *cur.execute(_INBOX_SQL, inbox_args).fetchone())
            _, last, recorded, queued, queued_hashes = found
            latest = max(last, queued if queued is not None else -1)
            if latest > attempt:
                raise StaleUpdateError(f"{node} attempt {attempt}: attempt {latest} already started")
            known = {h for h in (recorded, *(queued_hashes or "").split(",")) if h}
            if any(same_record(h, digest, rec) for h in known):
                cur.execute("ROLLBACK")
                return "unchanged"
            if known:
                raise StaleUpdateError(
                    f"{node} attempt {attempt}: a different final report was already recorded"
                )
            cur.execute(
                "INSERT INTO report_inbox (dataset_pk, node, attempt, record_hash, record, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (dataset_pk, node, attempt, digest, text, time.time()),
            )
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
    return None


def drain(engine: Engine, limit: int = DRAIN_BATCH) -> int:
    """Apply queued reports to the stats tables (one transaction per call); returns how many."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if cur.execute("SELECT 1 FROM report_inbox LIMIT 1").fetchone() is None:
            return 0
        with reports.WRITE_LOCK, gc_paused():
            return _drain_locked(cur, limit)
    finally:
        raw.close()


def _drain_locked(cur: Any, limit: int) -> int:
    cur.execute("BEGIN IMMEDIATE")
    try:
        rows = cur.execute(
            "SELECT id, dataset_pk, record, record_hash FROM report_inbox ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        by_dataset: dict[int, tuple[list[dict[str, Any]], list[str]]] = {}
        for _, pk, text, digest in rows:
            records, digests = by_dataset.setdefault(pk, ([], []))
            records.append(json.loads(text))
            digests.append(digest)  # accept() hashed the record as it came: no need to hash it again
        for pk, (records, digests) in by_dataset.items():
            result = reports.ingest_on_cursor(cur, pk, records, digests)
            for node, attempt, why in result.rejected:
                log.warning("dataset %s: queued report of %s attempt %s refused: %s", pk, node, attempt, why)
        if rows:
            cur.execute("DELETE FROM report_inbox WHERE id <= ?", (rows[-1][0],))
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")
    return len(rows)


class Drainer:
    """A daemon thread draining the inbox every DRAIN_INTERVAL_S while the server runs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._local = threading.local()

    def connection(self) -> Any:
        """This thread's own DB-API connection for accept(): a pool checkout and return (with its reset)
        cost as much as the inbox insert itself. Taken out of the pool, it lives as long as its thread."""
        fairy = getattr(self._local, "fairy", None)
        if fairy is None:
            fairy = self._local.fairy = self.engine.raw_connection()
            fairy.detach()
            # checkpoints (copying the WAL into the database, with an fsync) are the drainer's job, off the
            # request threads: one landing in a request cost it ~100 accepts (_run checkpoints every round)
            fairy.cursor().execute("PRAGMA wal_autocheckpoint = 0")
        return fairy

    def poke(self) -> None:
        """Make sure the thread runs (started on the first queued report)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="report-inbox", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                while drain(self.engine) >= DRAIN_BATCH:
                    pass
            except Exception:  # keep draining later: a locked database or a bad row must not stop it
                log.exception("draining the report inbox failed; retrying")
            self._checkpoint()
            time.sleep(DRAIN_INTERVAL_S)

    def _checkpoint(self) -> None:
        """Copy the WAL into the database (PASSIVE: never waits for readers or writers)."""
        try:
            raw = self.engine.raw_connection()
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                raw.close()
        except Exception:
            log.exception("checkpointing the stats database failed; retrying")
