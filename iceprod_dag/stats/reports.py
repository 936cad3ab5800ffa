"""Pilot stats reports (the web server's report path), on SQLite through the DB-API directly: the rules of ``ingest.ingest_records``, a tenth
of the cost.

A single-record report is mostly fixed cost: through SQLAlchemy Core each of its five statements costs
more to build and compile than SQLite takes to run it, which put a report at ~10x a bare one-row insert.
Here the same statements are plain SQL on the pooled connection (sqlite3 caches them prepared), in one
``BEGIN IMMEDIATE`` transaction. The record validation and the row a record becomes (``attempt_values``, with
its content hash) are ingest's own functions; the rules (unchanged repeat, stale attempt, different final
report) are ingest's too and ``tests/test_stats_reports.py`` checks both give identical tables.

Other databases go to ``ingest.ingest_records``.
"""

from __future__ import annotations

import itertools
import json
import logging
import operator
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, text

from iceprod_dag.common.states import JobState
from iceprod_dag.stats import ingest
from iceprod_dag.stats.db import writer
from iceprod_dag.stats.ingest import IngestResult
from iceprod_dag.stats.records import ATTEMPT_COLUMNS, attempt_values

log = logging.getLogger(__name__)

CHUNK = 500
#: job states that are not final
UNFINISHED = tuple(s.value for s in JobState if not s.finished)

# Writers of this process take turns here before BEGIN IMMEDIATE: a thread that meets another's write lock
# inside SQLite sleeps in SQLite's busy handler (1, 2, 5, 10... ms steps), far longer than a single report or
# a drain holds it; this lock wakes it the moment the other commits. Other processes still meet the handler.
WRITE_LOCK = threading.Lock()
_JOB_FIELDS = ("state", "attempts", "last_attempt", "last_failure", "exit_code", "updated_at", "site", "host")


def report(
    engine: Engine, dataset: Mapping[str, Any], records: Sequence[Mapping[str, Any]], connection: Any = None
) -> IngestResult:
    """Record stats records of one dataset; stale ones, and those of nodes the dataset does not have, are
    skipped and listed in ``rejected`` (the latter also counted in ``unknown``).

    Reports queued in the inbox before this call are applied first, in the same transaction: a queued report
    was accepted earlier, so it is judged before this one, as if it had been applied when accepted.

    ``connection``: a DB-API connection of this thread to use (``stats.inbox.Drainer.connection``), else one
    comes from the engine's pool."""
    if engine.dialect.name != "sqlite":
        return _fallback(engine, dataset, records)
    for rec in records:
        ingest.validate_record(rec)
    raw = connection if connection is not None else engine.raw_connection()
    try:
        cur = raw.cursor()
        with WRITE_LOCK:
            cur.execute("BEGIN IMMEDIATE")
            try:
                apply_queued_first(cur)
                result = ingest_on_cursor(cur, int(dataset["id"]), records)
                if result.inserted or result.updated:
                    cur.execute(SETTLE_SQL, {"pk": int(dataset["id"]), "now": time.time()})
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
    finally:
        if connection is None:
            raw.close()
    return result


def _fallback(
    engine: Engine, dataset: Mapping[str, Any], records: Sequence[Mapping[str, Any]]
) -> IngestResult:
    result = ingest.ingest_records(
        engine,
        list(records),
        run_dir=dataset["run_dir"],
        site=dataset["site"],
        on_stale="skip",
        known_nodes_only=True,
    )
    with writer(engine).begin() as conn:
        conn.execute(text(SETTLE_SQL), {"pk": int(dataset["id"]), "now": time.time()})
    return result


#: a server dataset whose jobs have all finished is done (or failed, if one failed): its pilots stop
SETTLE_SQL = (
    "UPDATE datasets SET updated_at = :now, state = CASE WHEN EXISTS "
    "(SELECT 1 FROM jobs WHERE dataset_pk = :pk AND state = 'failed') THEN 'failed' ELSE 'done' END "
    "WHERE id = :pk AND site = 'server' AND state IN ('submitted', 'running') AND NOT EXISTS "
    f"(SELECT 1 FROM jobs WHERE dataset_pk = :pk AND state IN ({', '.join(repr(s) for s in UNFINISHED)}))"
)


# ---------------------------------------------------------------- the report inbox (stats.inbox)

#: queued reports applied per transaction
QUEUED_BATCH = 20_000


def apply_queued_first(cur: Any) -> None:
    """Inside a writer's transaction, before its own change: apply every queued report, so that they are judged
    before it. A failure leaves them queued (for the drainer to retry and log) and the writer goes on."""
    if cur.execute("SELECT 1 FROM report_inbox LIMIT 1").fetchone() is None:
        return
    cur.execute("SAVEPOINT queued_reports")
    try:
        while apply_queued(cur) >= QUEUED_BATCH:
            pass
    except Exception:
        cur.execute("ROLLBACK TO queued_reports")
        log.exception("applying the queued reports failed: they stay queued")
    cur.execute("RELEASE queued_reports")


def apply_queued(cur: Any, limit: int = QUEUED_BATCH) -> int:
    """Apply the oldest queued reports (``report_inbox``) inside the caller's write transaction; returns how
    many. A report refused now (a writer outside the web server went past it) is moved to
    ``report_refusals`` with its reason, where its pilot and the operator see it, and logged."""
    if cur.execute("SELECT 1 FROM report_inbox LIMIT 1").fetchone() is None:
        return 0
    rows = cur.execute(
        "SELECT id, dataset_pk, record, record_hash, received_at FROM report_inbox ORDER BY id LIMIT ?",
        (limit,),
    ).fetchall()
    by_dataset: dict[int, list[tuple[Any, dict[str, Any]]]] = {}
    for row in rows:
        by_dataset.setdefault(row[1], []).append((row, json.loads(row[2])))
    refused: list[tuple[Any, ...]] = []
    now = time.time()
    for pk, items in by_dataset.items():
        # accept() hashed each record as it came: no need to hash it again
        records, digests = [rec for _, rec in items], [row[3] for row, _ in items]
        result = ingest_on_cursor(cur, pk, records, digests)
        if result.inserted or result.updated:
            cur.execute(SETTLE_SQL, {"pk": pk, "now": now})
        why = {(node, attempt): reason for node, attempt, reason in result.rejected}
        for (_, _, text_, digest, received), rec in items:
            reason = why.get((rec["node"], rec["attempt"]))
            if reason is not None:
                refused.append((pk, rec["node"], rec["attempt"], digest, text_, received, now, reason))
                log.warning(
                    "dataset %s: queued report of %s attempt %s refused: %s",
                    pk,
                    rec["node"],
                    rec["attempt"],
                    reason,
                )
    if refused:
        cur.executemany(
            "INSERT INTO report_refusals (dataset_pk, node, attempt, record_hash, record, received_at, "
            "refused_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            refused,
        )
    cur.execute("DELETE FROM report_inbox WHERE id <= ?", (rows[-1][0],))
    return len(rows)


def _in(n: int) -> str:
    return ",".join("?" * n)


def ingest_on_cursor(
    cur: Any,
    pk: int,
    records: Sequence[Mapping[str, Any]],
    digests: Sequence[str] | None = None,
) -> IngestResult:
    """The work of ingest._ingest_site, in plain SQL, inside the caller's transaction on a sqlite3 cursor.

    ``digests`` are the records' ``record_hash`` values when the caller has them already (the inbox). A
    record of a node the dataset does not have is refused (``ingest_records(known_nodes_only=True)``)."""
    if digests is None:
        recs = sorted(records, key=lambda r: (r["node"], r["attempt"]))
        hashes: list[str | None] = [None] * len(recs)
    else:
        pairs = sorted(zip(records, digests, strict=True), key=lambda p: (p[0]["node"], p[0]["attempt"]))
        recs, hashes = [p[0] for p in pairs], [p[1] for p in pairs]
    nodes = list(dict.fromkeys(r["node"] for r in recs))
    jobs: dict[str, dict[str, Any]] = {}
    for lo in range(0, len(nodes), CHUNK):
        chunk = nodes[lo : lo + CHUNK]
        cur.execute(
            "SELECT id, node, task, state, attempts, last_attempt FROM jobs "
            f"WHERE dataset_pk = ? AND node IN ({_in(len(chunk))})",
            (pk, *chunk),
        )
        for jid, node, task, state, attempts, last in cur.fetchall():
            jobs[node] = {"id": jid, "task": task, "state": state, "attempts": attempts, "last_attempt": last}
    node_of = {job["id"]: node for node, job in jobs.items()}
    ids = list(node_of)
    known: dict[tuple[str, int], tuple[int, str | None]] = {}
    for lo in range(0, len(ids), CHUNK):
        chunk = ids[lo : lo + CHUNK]
        cur.execute(
            f"SELECT job_pk, attempt, id, record_hash FROM attempts WHERE job_pk IN ({_in(len(chunk))})",
            chunk,
        )
        for job_pk, attempt, aid, digest in cur.fetchall():
            known[(node_of[job_pk], attempt)] = (aid, digest)

    result = IngestResult()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    touched: dict[str, dict[str, Any]] = {}
    now = time.time()
    for rec, digest in zip(recs, hashes, strict=True):
        node, attempt = rec["node"], rec["attempt"]
        job = jobs.get(node)
        if job is None:
            result.rejected.append((node, attempt, ingest.unknown_node(pk, node)))
            result.unknown += 1
            continue
        row = attempt_values(rec, digest)
        seen = known.get((node, attempt))
        verdict = ingest.judge_report(seen, job["last_attempt"], attempt, row["record_hash"], rec)
        if verdict == ingest.UNCHANGED:
            result.unchanged += 1
            continue
        if verdict:
            result.rejected.append((node, attempt, verdict))
            continue
        transfers = row.get("transfers")
        # SQLAlchemy's JSON type stores Python None as JSON 'null' text: do the same so both paths agree
        row["transfers"] = "null" if transfers is None else json.dumps(transfers)
        row["updated_at"], row["dataset_pk"] = now, pk
        task = rec.get("task") or job.get("task")
        if task is not None:
            row["task"] = task
        if seen is None:
            row["node"], row["attempt"] = node, attempt
            inserts.append(row)
            job["attempts"] += 1
        else:
            row["id"] = seen[0]  # last: the WHERE parameter
            updates.append(row)
        known[(node, attempt)] = (seen[0] if seen else 0, row["record_hash"])
        get = row.get
        job["state"], job["last_attempt"], job["last_failure"] = row["state"], attempt, get("failure")
        job["exit_code"], job["updated_at"] = get("exit_code"), get("ended_at") or now
        job["site"], job["host"] = get("site"), get("host")
        touched[node] = job
    if inserts:
        for r in inserts:
            r["job_pk"] = jobs[r.pop("node")]["id"]
        # in row order: neighbouring B-tree pages, not node-name order (generate_1, generate_10, ...)
        inserts.sort(key=operator.itemgetter("job_pk"))
        _write(cur, inserts, _insert_attempt_sql)
        result.inserted += len(inserts)
    if updates:
        _write(cur, updates, _update_attempt_sql)
        result.updated += len(updates)
    if touched:
        _write(
            cur, map(_job_update, sorted(touched.values(), key=operator.itemgetter("id"))), _update_job_sql
        )
    if inserts or updates:
        cur.execute("UPDATE datasets SET updated_at = ? WHERE id = ?", (now, pk))
    return result


def _job_update(job: Mapping[str, Any]) -> dict[str, Any]:
    row = {f: job[f] for f in _JOB_FIELDS if job[f] is not None}
    row["id"] = job["id"]  # last: the WHERE parameter
    return row


def _write(cur: Any, rows: Iterable[dict[str, Any]], statement: Callable[[tuple[str, ...]], str]) -> None:
    """executemany over each run of rows with the same columns. A row holds only its columns that have a
    value, and the statement writes the others as NULL literals: sqlite3 binds a None several times slower
    than a number (an adapter lookup per value), and a stats record leaves many columns empty."""
    for cols, run in itertools.groupby(rows, key=tuple):
        cur.executemany(statement(cols), [tuple(r.values()) for r in run])


def _insert_attempt_sql(cols: tuple[str, ...]) -> str:
    return f"INSERT INTO attempts ({', '.join(cols)}) VALUES ({_in(len(cols))})"  # the others are NULL


def _set_clause(cols: tuple[str, ...], every: Iterable[str]) -> str:
    """``col = ?`` for cols but the last (the id), ``col = NULL`` for the rest of every."""
    nulls = [c for c in every if c not in cols]
    return ", ".join([*(c + " = ?" for c in cols[:-1]), *(c + " = NULL" for c in nulls)])


def _update_attempt_sql(cols: tuple[str, ...]) -> str:
    return f"UPDATE attempts SET {_set_clause(cols, (*ATTEMPT_COLUMNS, 'task'))} WHERE id = ?"


def _update_job_sql(cols: tuple[str, ...]) -> str:
    return f"UPDATE jobs SET {_set_clause(cols, _JOB_FIELDS)} WHERE id = ?"
