"""Listing queries of the stats database: results, keyset paging, and that every listing is index-served."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from test_stats_ingest import engine, make_record  # noqa: F401  (engine: SQLite and PostgreSQL fixture)

from iceprod_dag.stats import ingest, query
from iceprod_dag.stats.models import Job


@pytest.fixture
def filled(engine, tmp_path):  # noqa: F811
    run = tmp_path / "demo"
    ingest.register_dataset(
        engine,
        run_dir=run,
        site="local",
        name="demo",
        owner="alice",
        nodes=[f"gen_{i}" for i in range(30)] + [f"sim_{i}" for i in range(30)],
    )
    recs = []
    for i in range(30):
        recs.append(make_record(f"gen_{i}", end=1000.0 + i, host=f"w{i % 3}"))
        if i < 10:
            recs.append(
                make_record(
                    f"sim_{i}",
                    end=2000.0 + i,
                    failure="over_memory",
                    pilot_exit_code=5,
                    peak_rss_mb=2000.0 + i,
                    wall_s=100.0,
                )
            )
    ingest.ingest_records(engine, recs, run_dir=run)
    other = ingest.register_dataset(
        engine, run_dir=tmp_path / "other", site="slurm", name="other", nodes=["a_0"]
    )
    with engine.connect() as conn:
        pk = conn.scalar(select(Job.dataset_pk).where(Job.node == "gen_0"))
    return engine, pk, other


def test_datasets_with_state_counts(filled):
    eng, pk, other = filled
    with eng.connect() as conn:
        rows = query.datasets(conn)
        assert [r["name"] for r in rows] == ["other", "demo"]
        assert rows[1]["counts"] == {"done": 30, "failed": 10, "pending": 20}
        assert rows[0]["counts"] == {"pending": 1}
        assert [r["name"] for r in query.datasets(conn, site="slurm")] == ["other"]
        assert [r["name"] for r in query.datasets(conn, owner="alice")] == ["demo"]


def test_job_filters_and_keyset_pages(filled):
    eng, pk, _ = filled
    with eng.connect() as conn:
        failed = query.jobs(conn, dataset_pk=pk, state="failed", limit=4)
        assert [r["node"] for r in failed.rows] == ["sim_9", "sim_8", "sim_7", "sim_6"]
        seen, page = [], failed
        while True:
            seen += [r["node"] for r in page.rows]
            if page.next_cursor is None:
                break
            page = query.jobs(conn, dataset_pk=pk, state="failed", limit=4, after=page.next_cursor)
        assert seen == [f"sim_{i}" for i in range(9, -1, -1)]
        assert len(query.jobs(conn, host="w1", limit=100).rows) == 10
        assert {r["task"] for r in query.jobs(conn, task="gen", limit=100).rows} == {"gen"}
        assert len(query.jobs(conn, failure="over_memory", limit=100).rows) == 10
        assert len(query.jobs(conn, site="local", state="done", limit=100).rows) == 30
        by_offset = query.jobs(conn, dataset_pk=pk, state="failed", limit=4, offset=4)
        assert [r["node"] for r in by_offset.rows] == ["sim_5", "sim_4", "sim_3", "sim_2"]
        job = conn.scalar(select(Job.id).where(Job.node == "sim_3"))
        assert [a["attempt"] for a in query.attempts(conn, job)] == [0]


def test_task_stats(filled):
    eng, pk, _ = filled
    with eng.connect() as conn:
        stats = query.task_stats(conn, pk)
    assert stats["gen"]["attempts"] == 30 and stats["gen"]["done"] == 30 and stats["gen"]["failures"] == {}
    assert stats["sim"]["failed"] == 10 and stats["sim"]["failures"] == {"over_memory": 10}
    assert stats["sim"]["peak_rss_max_mb"] == 2009.0 and stats["sim"]["wall_avg_s"] == 100.0


LISTINGS = [
    {},
    {"dataset_pk": 1},
    {"dataset_pk": 1, "state": "failed"},
    {"dataset_pk": 1, "task": "gen"},
    {"state": "running"},
    {"task": "gen"},
    {"site": "local"},
    {"site": "local", "state": "running"},
    {"host": "w1"},
    {"failure": "over_memory"},
]


@pytest.mark.parametrize("filters", LISTINGS, ids=lambda f: "+".join(f) or "all")
def test_job_listings_are_index_served_without_a_sort_on_sqlite(tmp_path, filters):
    from iceprod_dag.stats.db import init_db

    eng = init_db(f"sqlite:///{tmp_path / 'plan.sqlite'}")
    captured = {}
    with eng.connect() as conn:
        # compile the real query the function runs, then ask SQLite how it would run it
        from sqlalchemy import event

        @event.listens_for(conn, "before_cursor_execute")
        def grab(conn_, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("SELECT"):
                captured.setdefault("sql", (statement, parameters))

        query.jobs(conn, after=(1.0, 1) if filters.get("state") else None, **filters)
        sql, params = captured["sql"]
        plan = " | ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
    assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # no sort: the index gives the order
    for name in filters:  # every filter is a bound of the index range, not a scan
        column = {"failure": "last_failure"}.get(name, name)
        assert plan.startswith("SEARCH jobs") and f"{column}=?" in plan, plan
    eng.dispose()
