"""The job listing's keyset pages: every filter combination and both sorts give, page after page, exactly the
jobs a plain filter and sort give, with ties in the sort value and a scan window smaller than the data."""

from __future__ import annotations

import itertools
import random

import pytest
from sqlalchemy import insert

from iceprod_dag.stats.db import init_db
from iceprod_dag.stats.models import Dataset, Job
from iceprod_dag.webui.services import queries
from iceprod_dag.webui.services.accounts import Principal

ADMIN = Principal(user_id=1, name="root", role="admin")
VALUES = {
    "state": ("done", "failed", "running", "pending"),
    "task": ("gen", "sim", "merge"),
    "site": ("local", "condor", None),
    "host": ("h1", "h2", "h3", None),
    "failure": ("task_failed", "over_memory", None),
}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    engine = init_db(f"sqlite:///{tmp_path_factory.mktemp('listing') / 'stats.sqlite'}")
    rnd = random.Random(7)
    rows = []
    with engine.begin() as conn:
        for name in ("a", "b"):
            pk = conn.execute(
                insert(Dataset).values(name=name, site="local", run_dir=f"/runs/{name}", state="running")
            ).inserted_primary_key[0]
            for i in range(140):
                # few distinct times: large tie groups, like a dataset's jobs at submit
                row = {"dataset_pk": pk, "node": f"n{i:03d}", "job_index": i, "attempts": 1, "last_attempt": 0,
                       "updated_at": float(rnd.choice((100, 100, 100, 200, 300, 300, 400)))}  # fmt: skip
                row.update({k: rnd.choice(v) for k, v in VALUES.items()})
                row["last_failure"] = row.pop("failure")
                rows.append(row)
        conn.execute(insert(Job), rows)
    with engine.connect() as conn:
        stored = [dict(r._mapping) for r in conn.execute(Job.__table__.select())]
    yield engine, stored
    engine.dispose()


def expected(stored, filters, sort, desc):
    column = {"dataset": "dataset_pk", "failure": "last_failure"}
    match = [r for r in stored if all(r[column.get(k, k)] == v for k, v in filters.items())]
    key = "updated_at" if sort == "updated" else "node"
    return [r["id"] for r in sorted(match, key=lambda r: (r[key], r["id"]), reverse=desc)]


def all_pages(conn, filters, sort, desc, limit):
    ids, after, partials = [], None, 0
    for _ in range(1000):
        page = queries.list_jobs(conn, ADMIN, filters, sort=sort, desc=desc, after=after, limit=limit)
        assert len(page.rows) <= limit
        ids += [r["id"] for r in page.rows]
        partials += page.partial
        if page.cursor is None:
            return ids, partials
        after = page.cursor
    raise AssertionError("the pages never ended")


def combinations():
    keys = ["dataset", *VALUES]
    for n in range(3):
        yield from itertools.combinations(keys, n)


@pytest.mark.parametrize("sort", ["updated", "node"])
def test_pages_equal_a_plain_filter_and_sort(db, sort, monkeypatch):
    engine, stored = db
    monkeypatch.setattr(queries, "SCAN_LIMIT", 23)  # far below the data: most pages go through the window
    dataset_pk = stored[0]["dataset_pk"]
    scanned = 0
    with engine.connect() as conn:
        for combo in combinations():
            if sort == "node" and "dataset" not in combo:
                continue
            filters = {k: dataset_pk if k == "dataset" else VALUES[k][0] for k in combo}
            for desc, limit in ((True, 7), (False, 10)):
                ids, partials = all_pages(conn, filters, sort, desc, limit)
                assert ids == expected(stored, filters, sort, desc), (filters, desc)
                scanned += partials
    assert scanned  # some filters were checked over the window, and their pages went on past it


def test_node_sort_needs_a_dataset(db):
    engine, _ = db
    with engine.connect() as conn, pytest.raises(ValueError, match="field 'sort'.*dataset"):
        queries.list_jobs(conn, ADMIN, {}, sort="node")


def test_a_scan_that_ends_short_says_so(db, monkeypatch):
    engine, stored = db
    monkeypatch.setattr(queries, "SCAN_LIMIT", 5)
    with engine.connect() as conn:
        page = queries.list_jobs(conn, ADMIN, {"host": "no-such-host"}, limit=10)
        assert page.rows == [] and page.partial and page.cursor
        # the cursor continues right after the five jobs the window checked
        newest = expected(stored, {}, "updated", True)
        nxt = queries.list_jobs(conn, ADMIN, {}, after=page.cursor, limit=1)
        assert nxt.rows[0]["id"] == newest[5]


def test_seeks_use_an_index_in_page_order(db):
    """Each seekable filter set pages straight off an index: no sort of the matching rows."""
    engine, _ = db
    from sqlalchemy import select

    with engine.connect() as conn:
        for sort, sets in queries._SEEKABLE.items():
            col = queries.JOB_SORTS[sort]
            for keys in sets:
                where = [queries._FILTER_COLUMNS[k] == (1 if k == "dataset" else "x") for k in keys]
                q = select(col, queries.Job.id).where(*where).order_by(col.desc(), queries.Job.id.desc())
                sql = str(q.compile(engine, compile_kwargs={"literal_binds": True}))
                plan = " ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
                assert "INDEX" in plan and "TEMP B-TREE" not in plan, (sort, keys, plan)
