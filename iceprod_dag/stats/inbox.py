"""Single pilot reports on SQLite: checked, then committed to an append-only inbox; a drainer moves them into
the stats tables in batches.

Why: applying one stats record rewrites a job row whose table carries ten indexes, so its commit writes ~20
pages; an inbox row writes two. The report is durable when the pilot gets its answer (same guarantee as
any other commit here), and the stale checks run before it is accepted, so a superseded attempt is still
refused with 409: its node already started a higher attempt (in ``jobs`` or in the inbox), or the same
attempt already has a different final report (in ``attempts`` or in the inbox), and a report of a node the
dataset does not have is refused with 404. Every other writer of reports (the direct path, work claims) first
applies what is queued, in its own transaction, so a queued report is judged as if applied when accepted.
The drain applies ``ingest``'s rules once more (``reports.apply_queued``): what it still refuses (a writer
outside the web server went past it) is kept in ``report_refusals`` with its reason, which the pilot
(``report_state``) and the operator (``refusals``) can read, and logged.

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

from sqlalchemy import Engine, Float, ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from iceprod_dag.common.exceptions import StaleUpdateError, StatsError, UnknownNodeError
from iceprod_dag.common.gcpause import gc_paused
from iceprod_dag.stats import ingest, reports, work
from iceprod_dag.stats.models import Attempt, Base, Job
from iceprod_dag.stats.records import attempt_values, same_record

log = logging.getLogger(__name__)

DRAIN_INTERVAL_S = 0.25
DRAIN_BATCH = reports.QUEUED_BATCH


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


class ReportRefusal(Base):
    """A queued report the drain refused after it was accepted: kept so that its pilot and the operator see it."""

    __tablename__ = "report_refusals"
    __table_args__ = (Index("ix_report_refusals_node", "dataset_pk", "node", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_pk: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    node: Mapped[str] = mapped_column(String(255))
    attempt: Mapped[int] = mapped_column(Integer)
    record_hash: Mapped[str] = mapped_column(String(64))
    #: the stats record as JSON text, as received
    record: Mapped[str] = mapped_column(Text)
    received_at: Mapped[float] = mapped_column(Float)
    refused_at: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)


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
    StaleUpdateError naming why it is refused (UnknownNodeError for a node the dataset does not have).

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
    node, attempt = rec["node"], rec["attempt"]
    with reports.WRITE_LOCK:
        cur.execute("BEGIN IMMEDIATE")
        try:
            # one statement for the common case (the job exists): its latest attempt, the hash recorded for
            # this attempt, and what the inbox already holds for the node
            inbox_args = (dataset_pk, node, dataset_pk, node, attempt)
            found = cur.execute(_CHECK_SQL, (attempt, *inbox_args, dataset_pk, node)).fetchone()
            if found is None:
                raise UnknownNodeError(ingest.unknown_node(dataset_pk, node))
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
            cur.execute("BEGIN IMMEDIATE")
            try:
                done = reports.apply_queued(cur, limit)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
        return done
    finally:
        raw.close()


def report_state(engine: Engine, dataset_pk: int, node: str, attempt: int) -> dict[str, Any]:
    """Where a pilot's report of one attempt is: ``applied``, ``queued``, ``refused`` (with its reason), or
    ``none`` (never received, or received and still running)."""
    with engine.connect() as conn:
        refused = conn.execute(
            select(ReportRefusal.reason, ReportRefusal.refused_at)
            .where(
                ReportRefusal.dataset_pk == dataset_pk,
                ReportRefusal.node == node,
                ReportRefusal.attempt == attempt,
            )
            .order_by(ReportRefusal.id.desc())
        ).first()
        queued = conn.scalar(
            select(ReportInbox.id).where(
                ReportInbox.dataset_pk == dataset_pk, ReportInbox.node == node, ReportInbox.attempt == attempt
            )
        )
        applied = conn.scalar(
            select(Attempt.record_hash)
            .join(Job, Job.id == Attempt.job_pk)
            .where(Job.dataset_pk == dataset_pk, Job.node == node, Attempt.attempt == attempt)
        )
    answer: dict[str, Any] = {"node": node, "attempt": attempt, "state": "none", "reason": None}
    if queued is not None:
        answer["state"] = "queued"
    elif applied is not None:
        answer["state"] = "applied"
    elif refused is not None:
        answer.update(state="refused", reason=refused.reason, refused_at=refused.refused_at)
    return answer


def refusals(engine: Engine, dataset_pk: int, limit: int = 1000) -> list[dict[str, Any]]:
    """The queued reports of a dataset the drain refused, newest first."""
    cols = (ReportRefusal.node, ReportRefusal.attempt, ReportRefusal.reason, ReportRefusal.received_at,
            ReportRefusal.refused_at)  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(
            select(*cols)
            .where(ReportRefusal.dataset_pk == dataset_pk)
            .order_by(ReportRefusal.id.desc())
            .limit(limit)
        )
        return [dict(r._mapping) for r in rows]


class Drainer:
    """A daemon thread of the web server: drains the inbox every DRAIN_INTERVAL_S (SQLite), and once pilots
    claim work, settles their lost attempts (``work.settle_lost``) every LOST_CHECK_S."""

    LOST_CHECK_S = 30.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._local = threading.local()
        self.lost_after_s: float | None = None
        self._lost_checked = 0.0

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

    def poke(self, lost_after_s: float | None = None) -> None:
        """Make sure the thread runs (started on the first queued report or claim); ``lost_after_s``: the
        heartbeat timeout after which a running attempt is lost."""
        if lost_after_s is not None:
            self.lost_after_s = lost_after_s
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="report-inbox", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        sqlite = usable(self.engine)
        while True:
            if sqlite:
                try:
                    while drain(self.engine) >= DRAIN_BATCH:
                        pass
                except Exception:  # keep draining later: a locked database or a bad row must not stop it
                    log.exception("draining the report inbox failed; retrying")
                self._checkpoint()
            self._settle_lost()
            time.sleep(DRAIN_INTERVAL_S)

    def _settle_lost(self) -> None:
        if self.lost_after_s is None or time.monotonic() - self._lost_checked < self.LOST_CHECK_S:
            return
        self._lost_checked = time.monotonic()
        try:
            lost = work.settle_lost(self.engine, self.lost_after_s)
        except Exception:
            log.exception("settling lost pilot attempts failed; retrying")
            return
        if lost:
            log.warning("%d attempts lost their pilot (no heartbeat for %s s): failed, jobs pending", lost,
                        self.lost_after_s)  # fmt: skip

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
