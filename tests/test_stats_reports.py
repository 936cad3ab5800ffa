"""The web server's DB-API report path (stats.reports) applies ingest's rules: the same records through both
give identical rows, the same counts and the same rejections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from webui_support import record

from iceprod_dag.stats import ingest, reports
from iceprod_dag.stats.db import init_db
from iceprod_dag.stats.models import Attempt, Dataset, Job

IGNORED = {"id", "updated_at", "job_pk", "dataset_pk"}


def scenario() -> list[list[dict[str, Any]]]:
    """Calls in order: new records, a repeat, a stale attempt, a different final report, a retry, a batch
    mixing good and stale, failures, and a node the dataset does not have (refused)."""
    first = record("generate_0", 0)
    return [
        [first],
        [dict(first)],
        [record("generate_1", 1, failed=True)],
        [record("generate_1", 0)],
        [{**first, "wall_s": 99.0}],
        [record("generate_1", 2, transfers=[{"url": "u", "ok": True}])],
        [record(f"generate_{j}", 0, failed=j % 2 == 0) for j in range(2, 6)] + [record("generate_1", 1)],
        [record("detector_3", 0, failure="over_memory", next_memory_mb=300.0)],
        [record("unregistered_7", 0)],
    ]


def run(
    tmp_path: Path, calls: list[list[dict[str, Any]]], use_fast: bool
) -> tuple[list[Any], list[Any], list[Any]]:
    engine = init_db(f"sqlite:///{tmp_path / ('fast' if use_fast else 'ingest')}.sqlite")
    run_dir = tmp_path / "run"
    nodes = [(f"{t}_{j}", t, j) for t in ("generate", "detector") for j in range(8)]
    pk = ingest.register_dataset(engine, run_dir=run_dir, site="local", name="demo-sim", nodes=nodes)
    ingest.record_attempt_started(
        engine, run_dir=run_dir, site="local", node="generate_3", attempt=0, host="h"
    )
    with engine.connect() as conn:
        ds = dict(
            conn.execute(select(Dataset.id, Dataset.run_dir, Dataset.site).where(Dataset.id == pk))
            .one()
            ._mapping
        )
    outcomes = []
    for call in calls:
        if use_fast:
            result = reports.report(engine, ds, call)
        else:
            result = ingest.ingest_records(
                engine, call, run_dir=run_dir, site="local", on_stale="skip", known_nodes_only=True
            )
        outcomes.append(
            (result.inserted, result.updated, result.unchanged, result.unknown, sorted(result.rejected))
        )
    with engine.connect() as conn:
        jobs = [
            {k: v for k, v in r._mapping.items() if k not in IGNORED}
            for r in conn.execute(select(Job.__table__).order_by(Job.node))
        ]
        attempts = [
            {k: v for k, v in r._mapping.items() if k not in IGNORED}
            for r in conn.execute(
                select(Attempt.__table__).order_by(Attempt.task, Attempt.attempt, Attempt.started_at)
            )
        ]
    engine.dispose()
    return outcomes, jobs, attempts


def test_fast_path_and_ingest_agree(tmp_path):
    calls = scenario()
    slow = run(tmp_path, calls, use_fast=False)
    fast = run(tmp_path, calls, use_fast=True)
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]
    assert fast[2] == slow[2]
    # the scenario exercised every rule
    outcomes = slow[0]
    assert outcomes[1][2] == 1 and outcomes[3][4] and outcomes[4][4]
    assert outcomes[8][:4] == (0, 0, 0, 1) and "has no node 'unregistered_7'" in outcomes[8][4][0][2]


def test_gc_pause_always_ends_enabled():
    import gc

    from iceprod_dag.common.gcpause import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested (or another thread's) pause
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    # two overlapping pauses ending in the other order
    first, second = gc_paused(), gc_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    assert gc.isenabled()
