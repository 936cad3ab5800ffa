"""Write what runs produce into the stats database: datasets, attempt starts, stats records, job ClassAds.

Every call is one transaction, committed before it returns (durable per call), and idempotent by
``(dataset, node, attempt)``: the same stats record reported twice is recorded once. Rows are written with
Core ``insert()``/``update()`` executemany, never the ORM unit of work, so a batch of 10,000 records takes a
fraction of a second on SQLite.

A stale update is rejected with :class:`StaleUpdateError` and not applied: a report for an attempt lower than
one already started for that node, or a second final report for the same attempt with different content.

A dataset is identified by ``(site, run_dir)``; ``run_dir`` is made absolute. Every call that writes a row
of a dataset also moves that dataset's ``updated_at``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from iceprod_dag.common.exceptions import StaleUpdateError, StatsError
from iceprod_dag.common.names import split_node_name
from iceprod_dag.common.states import JobState
from iceprod_dag.stats.db import writer
from iceprod_dag.stats.models import Attempt, Dataset, Job, JobAd
from iceprod_dag.stats.records import attempt_row, load_record, record_hash, same_record, validate_record

__all__ = [
    "IngestResult",
    "attempt_row",
    "ingest_job_ads",
    "ingest_records",
    "load_record",
    "record_attempt_started",
    "record_attempts_started",
    "record_hash",
    "register_dataset",
    "set_dataset_state",
    "set_node_states",
    "validate_record",
]

log = logging.getLogger(__name__)

CHUNK = 500  # rows per IN (...) lookup: far below every backend's bound-parameter limit
WHOLE_DATASET = 1000  # above this many nodes, read the dataset's rows instead of IN (...) lookups


@dataclasses.dataclass
class IngestResult:
    """What one ingest call did."""

    inserted: int = 0  #: new attempt (or ad) rows
    updated: int = 0  #: started attempts completed by their record
    unchanged: int = 0  #: repeats of something already recorded
    rejected: list[tuple[str, int, str]] = dataclasses.field(default_factory=list)  #: (node, attempt, why)
    unknown: int = 0  #: of the rejected, those for nodes the dataset does not have (``known_nodes_only``)

    def __iadd__(self, other: IngestResult) -> IngestResult:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.unknown += other.unknown
        self.rejected.extend(other.rejected)
        return self


UNCHANGED = "unchanged"


def unknown_node(dataset_pk: int, node: str) -> str:
    """Why a report of a node its dataset does not have is refused."""
    return f"field 'node': dataset {dataset_pk} has no node {node!r}"


def judge_report(
    seen: tuple[int, str | None] | None,
    last_attempt: int,
    attempt: int,
    record_hash: str,
    record: Mapping[str, Any] | None = None,
) -> str | None:
    """The one rule for a stats report: None to apply it, UNCHANGED for a repeat, else why it is stale.

    ``seen`` is (row id, stored hash) of the attempt when already recorded; ``last_attempt`` the node's newest;
    ``record`` the report itself, to recognise a hash stored under the legacy scheme.
    """
    if seen is not None and same_record(seen[1], record_hash, record):
        return UNCHANGED
    if last_attempt > attempt:
        return f"attempt {last_attempt} already started"
    if seen is not None and seen[1] is not None:
        return "a different final report was already recorded"
    return None


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ---------------------------------------------------------------- datasets and jobs


def _dataset_pk(conn: Connection, site: str, run_dir: str, create: Mapping[str, Any] | None = None) -> int:
    pk = conn.scalar(select(Dataset.id).where(Dataset.site == site, Dataset.run_dir == run_dir))
    if pk is not None:
        return pk
    if create is None:
        raise StatsError(f"no dataset recorded for site {site!r}, run folder {run_dir}")
    now = time.time()
    values = {"name": Path(run_dir).name, "state": "running", "submitted_at": now, **create}
    values.update(site=site, run_dir=run_dir, updated_at=now)
    return conn.execute(insert(Dataset).values(**values).returning(Dataset.id)).scalar_one()


def _job_values(
    dataset_pk: int, node: str, task: str | None = None, job: int | None = None
) -> dict[str, Any]:
    if task is None:
        split = split_node_name(node)
        if split:
            task, job = split
    return {
        "dataset_pk": dataset_pk,
        "node": node,
        "task": task,
        "job_index": job,
        "state": JobState.PENDING.value,
        "attempts": 0,
        "last_attempt": -1,
        "updated_at": time.time(),
    }


_JOB_COLS = (Job.id, Job.node, Job.task, Job.state, Job.attempts, Job.last_attempt)


def _find_jobs(conn: Connection, dataset_pk: int, nodes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """node -> job row (as a dict) for the nodes that exist."""
    found: dict[str, dict[str, Any]] = {}
    if len(nodes) > WHOLE_DATASET:
        # one index range scan beats many long IN lists (which PostgreSQL may test row by row)
        wanted = set(nodes)
        rows = conn.execute(select(*_JOB_COLS).where(Job.dataset_pk == dataset_pk))
        return {r.node: dict(r._mapping) for r in rows if r.node in wanted}
    for chunk in _chunks(nodes):
        rows = conn.execute(select(*_JOB_COLS).where(Job.dataset_pk == dataset_pk, Job.node.in_(chunk)))
        found.update({r.node: dict(r._mapping) for r in rows})
    return found


def _insert_jobs(conn: Connection, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Insert job rows (executemany) and read back their ids."""
    if not rows:
        return {}
    conn.execute(insert(Job), rows)
    return _find_jobs(conn, rows[0]["dataset_pk"], [r["node"] for r in rows])


def _jobs(
    conn: Connection, dataset_pk: int, nodes: Mapping[str, tuple[str | None, int | None]]
) -> dict[str, dict[str, Any]]:
    """node -> job row (as a dict) for these nodes, inserting the missing ones as pending."""
    found = _find_jobs(conn, dataset_pk, list(nodes))
    missing = [_job_values(dataset_pk, n, *nodes[n]) for n in nodes if n not in found]
    found.update(_insert_jobs(conn, missing))
    return found


def _abs(run_dir: str | Path) -> str:
    return os.path.abspath(os.fspath(run_dir))


def register_dataset(
    engine: Engine,
    *,
    run_dir: str | Path,
    site: str,
    name: str,
    dataset_id: int | None = None,
    owner: str | None = None,
    description: str | None = None,
    jobs: int | None = None,
    config: Mapping[str, Any] | None = None,
    state: str = "submitted",
    submitted_at: float | None = None,
    nodes: Iterable[str | tuple[str, str | None, int | None]] = (),
) -> int:
    """Record a dataset run and its nodes as pending jobs; returns its id.

    Registering a known run again refreshes the fields given (None leaves a field as it is) and adds the
    nodes it lacks; jobs already recorded keep their state.
    """
    meta = {
        "name": name,
        "dataset_id": dataset_id,
        "owner": owner,
        "description": description,
        "jobs": jobs,
        "config": dict(config) if config is not None else None,
        "state": state,
    }
    run = _abs(run_dir)
    with writer(engine).begin() as conn:
        create = {**meta, "description": description or "", "submitted_at": submitted_at or time.time()}
        pk = _dataset_pk(conn, site, run, create)
        given = {k: v for k, v in meta.items() if v is not None}
        conn.execute(update(Dataset).where(Dataset.id == pk).values(**given, updated_at=time.time()))
        wanted: dict[str, tuple[str | None, int | None]] = {}
        for item in nodes:
            node, task, job = (item, None, None) if isinstance(item, str) else item
            wanted[node] = (task, job)
        _jobs(conn, pk, wanted)
    return pk


def set_dataset_state(engine: Engine, *, run_dir: str | Path, site: str, state: str) -> None:
    """Change a dataset run's state (submitted, running, done, failed, suspended, cancelled)."""
    with writer(engine).begin() as conn:
        pk = _dataset_pk(conn, site, _abs(run_dir))
        conn.execute(update(Dataset).where(Dataset.id == pk).values(state=state, updated_at=time.time()))


def set_node_states(
    engine: Engine, *, run_dir: str | Path, site: str, states: Mapping[str, str], at: float | None = None
) -> None:
    """Set the state of nodes as the engine sees them (idle, held, or a POST script's verdict)."""
    now = at or time.time()
    with writer(engine).begin() as conn:
        pk = _dataset_pk(conn, site, _abs(run_dir), {})
        jobs = _jobs(conn, pk, {n: (None, None) for n in states})
        params = [{"b_id": jobs[n]["id"], "state": s, "updated_at": now} for n, s in states.items()]
        if params:
            conn.execute(update(Job).where(Job.id == bindparam("b_id")), params)
            conn.execute(update(Dataset).where(Dataset.id == pk).values(updated_at=time.time()))


# ---------------------------------------------------------------- attempts


def record_attempt_started(
    engine: Engine,
    *,
    run_dir: str | Path,
    site: str,
    node: str,
    attempt: int,
    host: str | None = None,
    started_at: float | None = None,
    dataset: str | None = None,
) -> None:
    """Record that an attempt of a node started (a running row). Raises StaleUpdateError if stale."""
    now = started_at or time.time()
    create = {"name": dataset} if dataset else {}
    with writer(engine).begin() as conn:
        pk = _dataset_pk(conn, site, _abs(run_dir), create)
        job = _jobs(conn, pk, {node: (None, None)})[node]
        if job["last_attempt"] > attempt:
            raise StaleUpdateError(f"{node}: attempt {attempt} started after attempt {job['last_attempt']}")
        existing = conn.execute(
            select(Attempt.id, Attempt.record_hash).where(
                Attempt.job_pk == job["id"], Attempt.attempt == attempt
            )
        ).first()
        if existing is not None:
            if existing.record_hash is not None:
                raise StaleUpdateError(f"{node}: attempt {attempt} already finished; it cannot start again")
            return
        _start_attempts(conn, pk, [(job, attempt, host, now)], site)


def record_attempts_started(
    engine: Engine,
    *,
    run_dir: str | Path,
    site: str,
    started: Sequence[tuple[str, int, str | None, float]],
    dataset: str | None = None,
) -> None:
    """Record (node, attempt, host, started_at) attempts as running, in one transaction (an engine's round);
    attempts the database already has, or that an attempt after them superseded, are skipped."""
    if not started:
        return
    create = {"name": dataset} if dataset else {}
    with writer(engine).begin() as conn:
        pk = _dataset_pk(conn, site, _abs(run_dir), create)
        jobs = _jobs(conn, pk, {node: (None, None) for node, _, _, _ in started})
        fresh = [(jobs[n], a, h, t) for n, a, h, t in started if jobs[n]["last_attempt"] < a]
        _start_attempts(conn, pk, fresh, site)


def _start_attempts(
    conn: Connection, pk: int, items: Sequence[tuple[dict[str, Any], int, str | None, float]], site: str
) -> None:
    """Insert running attempts and mark their jobs running on host since their start."""
    if not items:
        return
    now = time.time()
    running = JobState.RUNNING.value
    rows = [
        {"job_pk": job["id"], "dataset_pk": pk, "task": job["task"], "attempt": attempt, "state": running,
         "started_at": at, "host": host, "site": site, "updated_at": now}
        for job, attempt, host, at in items
    ]  # fmt: skip
    conn.execute(insert(Attempt), rows)
    jobs = [
        {"b_id": job["id"], "b_attempts": job["attempts"] + 1, "b_attempt": attempt, "b_at": at, "b_host": host}
        for job, attempt, host, at in items
    ]  # fmt: skip
    values = {"state": running, "attempts": bindparam("b_attempts"), "last_attempt": bindparam("b_attempt"),
              "updated_at": bindparam("b_at"), "host": bindparam("b_host"), "site": site}  # fmt: skip
    conn.execute(update(Job).where(Job.id == bindparam("b_id")).values(**values), jobs)
    conn.execute(update(Dataset).where(Dataset.id == pk).values(updated_at=now))


def ingest_records(
    engine: Engine,
    records: Iterable[Mapping[str, Any]],
    *,
    run_dir: str | Path,
    site: str | None = None,
    on_stale: str = "raise",
    known_nodes_only: bool = False,
) -> IngestResult:
    """Record pilot stats records (docs/contracts.md) of one run folder, in one transaction.

    ``site`` defaults to each record's ``site``. ``on_stale="raise"`` rejects the whole call with
    StaleUpdateError (nothing applied) if any record is stale; ``"skip"`` applies the others and lists the
    stale ones in ``IngestResult.rejected``. ``known_nodes_only`` treats a record of a node the dataset does
    not have as stale (else its job row is created).
    """
    if on_stale not in ("raise", "skip"):
        raise ValueError(f"on_stale must be 'raise' or 'skip', not {on_stale!r}")
    run = _abs(run_dir)
    by_site: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        validate_record(rec)
        by_site.setdefault(site or str(rec.get("site") or "local"), []).append(rec)
    result = IngestResult()
    with writer(engine).begin() as conn:
        for rec_site, recs in by_site.items():
            result += _ingest_site(conn, rec_site, run, recs, known_nodes_only)
        if result.rejected and on_stale == "raise":
            # leaving the block by an exception rolls the whole transaction back
            raise StaleUpdateError("; ".join(f"{n} attempt {a}: {why}" for n, a, why in result.rejected))
    return result


def _ingest_site(
    conn: Connection, site: str, run: str, recs: list[Mapping[str, Any]], known_only: bool = False
) -> IngestResult:
    first = recs[0]
    pk = _dataset_pk(conn, site, run, {"name": first["dataset"], "dataset_id": first.get("dataset_id")})
    recs = sorted(recs, key=lambda r: (r["node"], r["attempt"]))
    jobs = _find_jobs(conn, pk, list(dict.fromkeys(r["node"] for r in recs)))
    node_of = {job["id"]: node for node, job in jobs.items()}
    known: dict[tuple[str, int], tuple[int, str | None]] = {}  # (node, attempt) -> (attempt id, hash)
    cols = (Attempt.job_pk, Attempt.attempt, Attempt.id, Attempt.record_hash)
    if len(node_of) > WHOLE_DATASET:
        queries = [select(*cols).where(Attempt.dataset_pk == pk)]
    else:
        queries = [select(*cols).where(Attempt.job_pk.in_(chunk)) for chunk in _chunks(list(node_of))]
    for q in queries:
        for r in conn.execute(q):
            if r.job_pk in node_of:
                known[(node_of[r.job_pk], r.attempt)] = (r.id, r.record_hash)

    result = IngestResult()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    new_jobs: dict[str, dict[str, Any]] = {}
    touched: dict[str, dict[str, Any]] = {}
    now = time.time()
    for rec in recs:
        node, attempt = rec["node"], rec["attempt"]
        job = jobs.get(node) or new_jobs.get(node)
        if job is None and known_only:
            result.rejected.append((node, attempt, unknown_node(pk, node)))
            result.unknown += 1
            continue
        if job is None:  # first record of a node never registered: insert its row below, complete
            job = new_jobs[node] = _job_values(pk, node, rec.get("task"), rec.get("job"))
        row = attempt_row(rec)
        seen = known.get((node, attempt))
        verdict = judge_report(seen, job["last_attempt"], attempt, row["record_hash"], rec)
        if verdict == UNCHANGED:
            result.unchanged += 1
            continue
        if verdict:
            result.rejected.append((node, attempt, verdict))
            continue
        row.update(updated_at=now, dataset_pk=pk, task=rec.get("task") or job.get("task"))
        if seen is None:
            inserts.append({**row, "node": node, "attempt": attempt})
            job["attempts"] += 1
        else:
            updates.append({**row, "b_id": seen[0]})
        known[(node, attempt)] = (seen[0] if seen else 0, row["record_hash"])
        job.update(
            state=row["state"],
            last_attempt=attempt,
            last_failure=row["failure"],
            exit_code=row["exit_code"],
            updated_at=row["ended_at"] or now,
            site=row["site"],
            host=row["host"],
        )
        if node in jobs:
            touched[node] = job

    jobs.update(_insert_jobs(conn, list(new_jobs.values())))
    if inserts:
        for row in inserts:
            row["job_pk"] = jobs[row.pop("node")]["id"]
        conn.execute(insert(Attempt), inserts)
        result.inserted += len(inserts)
    if updates:
        conn.execute(update(Attempt).where(Attempt.id == bindparam("b_id")), updates)
        result.updated += len(updates)
    if touched:
        fields = (
            "state",
            "attempts",
            "last_attempt",
            "last_failure",
            "exit_code",
            "updated_at",
            "site",
            "host",
        )
        params = [{"b_id": job["id"], **{f: job[f] for f in fields}} for job in touched.values()]
        conn.execute(update(Job).where(Job.id == bindparam("b_id")), params)
    if inserts or updates:
        conn.execute(update(Dataset).where(Dataset.id == pk).values(updated_at=now))
    return result


# ---------------------------------------------------------------- job ClassAds


def ingest_job_ads(
    engine: Engine,
    ads: Iterable[tuple[str, int, Any]],
    *,
    run_dir: str | Path,
    site: str,
    dataset: str | None = None,
    on_stale: str = "raise",
) -> IngestResult:
    """Record job ClassAds given as (node, attempt, ad); an ad is a classad2.ClassAd, a dict or its text.

    The same ad twice is recorded once; a different ad for an attempt that already has one is stale.
    """
    from iceprod_dag.stats.classads import ad_to_dict, format_ad, parse_ad

    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for node, attempt, ad in ads:
        if isinstance(ad, str):
            text, parsed = ad, parse_ad(ad, f"ad of {node} attempt {attempt}")
        else:
            text = format_ad(ad)
            parsed = parse_ad(text, f"ad of {node} attempt {attempt}")
        attrs = ad_to_dict(parsed)
        rows[(node, attempt)] = {
            "ad_text": text,
            "attributes": attrs,
            "cluster_id": attrs.get("ClusterId") if isinstance(attrs.get("ClusterId"), int) else None,
            "proc_id": attrs.get("ProcId") if isinstance(attrs.get("ProcId"), int) else None,
        }
    result = IngestResult()
    if not rows:
        return result
    now = time.time()
    with writer(engine).begin() as conn:
        pk = _dataset_pk(conn, site, _abs(run_dir), {"name": dataset} if dataset else {})
        jobs = _jobs(conn, pk, {node: (None, None) for node, _ in rows})
        ids = [job["id"] for job in jobs.values()]
        known: dict[tuple[int, int], str] = {}
        for chunk in _chunks(ids):
            q = select(JobAd.job_pk, JobAd.attempt, JobAd.ad_text).where(JobAd.job_pk.in_(chunk))
            known.update({(r.job_pk, r.attempt): r.ad_text for r in conn.execute(q)})
        inserts = []
        for (node, attempt), row in rows.items():
            key = (jobs[node]["id"], attempt)
            if key in known:
                if known[key] == row["ad_text"]:
                    result.unchanged += 1
                else:
                    result.rejected.append((node, attempt, "a different ClassAd was already recorded"))
                continue
            inserts.append({**row, "job_pk": key[0], "attempt": attempt, "updated_at": now})
        if result.rejected and on_stale == "raise":
            raise StaleUpdateError("; ".join(f"{n} attempt {a}: {why}" for n, a, why in result.rejected))
        if inserts:
            conn.execute(insert(JobAd), inserts)
            conn.execute(update(Dataset).where(Dataset.id == pk).values(updated_at=now))
            result.inserted = len(inserts)
    return result
