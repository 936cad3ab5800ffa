"""`sync`: pushing a site's SQLite stats database into a central one, idempotently and crash-safely."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select
from test_stats_ingest import make_record

from iceprod_dag.stats import ingest
from iceprod_dag.stats.db import init_db
from iceprod_dag.stats.models import Attempt, Dataset, Job, JobAd
from iceprod_dag.stats.sync import sync


def fill(engine, base: Path, jobs: int = 120) -> None:
    """Two dataset runs: retries, a running attempt, a node with no attempt, ClassAds."""
    for name in ("demo", "other"):
        run = base / name
        ingest.register_dataset(
            engine,
            run_dir=run,
            site="local",
            name=name,
            config={"tasks": [name]},
            nodes=[f"gen_{i}" for i in range(jobs)] + ["FINAL"],
        )
        recs = [make_record(f"gen_{i}", attempt=0, dataset=name) for i in range(jobs)]
        recs += [
            make_record(f"gen_{i}", attempt=1, dataset=name, peak_rss_mb=i * 1.5) for i in range(0, jobs, 7)
        ]
        ingest.ingest_records(engine, recs, run_dir=run, site="local")
        ingest.record_attempt_started(engine, run_dir=run, site="local", node="gen_3", attempt=2, host="w9")
        ads = [
            (f"gen_{i}", 0, {"ClusterId": 100 + i, "ProcId": 0, "DAGNodeName": f"gen_{i}"}) for i in range(20)
        ]
        ingest.ingest_job_ads(engine, ads, run_dir=run, site="local")


def dump(engine) -> dict:
    """Every row by natural key, without the database-local ids."""
    out: dict = {}
    with engine.connect() as conn:
        ds = {r.id: (r.site, r.run_dir) for r in conn.execute(select(Dataset))}
        jobs = {r.id: (ds[r.dataset_pk], r.node) for r in conn.execute(select(Job))}
        for table, key in (
            (Dataset, lambda r: ds[r.id]),
            (Job, lambda r: jobs[r.id]),
            (Attempt, lambda r: (jobs[r.job_pk], r.attempt)),
            (JobAd, lambda r: (jobs[r.job_pk], r.attempt)),
        ):
            for row in conn.execute(select(table)):
                values = {k: v for k, v in row._mapping.items() if k not in ("id", "dataset_pk", "job_pk")}
                out[(table.__tablename__, key(row))] = values
    return out


@pytest.fixture
def source(tmp_path):
    engine = init_db(f"sqlite:///{tmp_path / 'site.sqlite'}")
    fill(engine, tmp_path / "runs")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'central.sqlite'}"
    return request.getfixturevalue("postgres_db")


def row_versions(engine) -> dict:
    """PostgreSQL's xmin of every row: it changes whenever a row is rewritten, even with equal values."""
    out = {}
    with engine.connect() as conn:
        for table in ("datasets", "jobs", "attempts", "job_ads"):
            out[table] = conn.exec_driver_sql(f"SELECT id, xmin::text FROM {table} ORDER BY id").all()
    return out


def test_sync_copies_everything_and_twice_changes_nothing(source, target_url):
    target = init_db(target_url)
    first = sync(source, target, batch_size=50)
    assert (first.datasets, first.jobs, first.attempts, first.job_ads) == (2, 242, 2 * (120 + 18 + 1), 40)
    assert dump(target) == dump(source)
    before = row_versions(target) if target.dialect.name == "postgresql" else dump(target)
    second = sync(source, target, batch_size=50)
    assert second.changed == 0
    after = row_versions(target) if target.dialect.name == "postgresql" else dump(target)
    assert after == before
    target.dispose()


def test_sync_carries_later_changes(source, target_url, tmp_path):
    target = init_db(target_url)
    sync(source, target)
    run = tmp_path / "runs" / "demo"
    ingest.ingest_records(
        source,
        [make_record("gen_3", attempt=2, dataset="demo", failure="over_time", pilot_exit_code=6)],
        run_dir=run,
        site="local",
    )
    again = sync(source, target)
    assert (again.datasets, again.jobs, again.attempts, again.job_ads) == (1, 1, 1, 0)
    assert dump(target) == dump(source)
    with target.connect() as conn:
        assert (
            conn.scalar(select(Job.last_failure).where(Job.node == "gen_3", Job.state == "failed"))
            == "over_time"
        )
    target.dispose()


def test_killed_mid_sync_loses_nothing(source, target_url, tmp_path):
    init_db(target_url).dispose()
    script = textwrap.dedent(f"""
        import os, signal
        from iceprod_dag.stats.db import make_engine
        from iceprod_dag.stats.sync import sync

        def die(result):
            if result.batches == 3:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no rollback handler, like kill -9

        sync(make_engine({str(source.url)!r}), make_engine({target_url!r}), batch_size=40, on_batch=die)
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    target = init_db(target_url)
    partial = dump(target)
    assert 0 < sum(1 for table, _ in partial if table == "jobs") < 242
    rest = sync(source, target, batch_size=40)
    assert 0 < rest.jobs < 242
    assert dump(target) == dump(source)
    assert sync(source, target).changed == 0
    target.dispose()


def run_main(monkeypatch, capsys, *args: str) -> subprocess.CompletedProcess:
    """`iceprod-dag ARGS` in this process through main(), exit code and error printing included."""
    from iceprod_dag.cli.main import main

    capsys.readouterr()
    monkeypatch.setattr("sys.argv", ["iceprod-dag", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def test_cli_sync_twice(source, tmp_path, monkeypatch, capsys):
    # the command line on SQLite; the PostgreSQL side of sync is covered by the tests above
    target_url = f"sqlite:///{tmp_path / 'central.sqlite'}"
    env = {**os.environ, "ICEPROD_DAG_DB": str(source.url)}
    cmd = ["iceprod-dag", "-q", "sync", "--to", target_url]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)  # the installed command
    assert first.returncode == 0, first.stderr
    assert "2 datasets, 242 jobs" in first.stdout
    monkeypatch.setenv("ICEPROD_DAG_DB", str(source.url))
    second = run_main(monkeypatch, capsys, *cmd[1:])
    assert (
        second.returncode == 0 and "0 datasets, 0 jobs, 0 attempts, 0 job ClassAds written" in second.stdout
    )
    missing = run_main(
        monkeypatch, capsys, "sync", "--from", "sqlite:////nonexistent/x.sqlite", "--to", target_url
    )
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    monkeypatch.delenv("ICEPROD_DAG_CENTRAL_DB", raising=False)
    no_target = run_main(monkeypatch, capsys, "sync")
    assert no_target.returncode == 2 and "--to" in no_target.stderr
