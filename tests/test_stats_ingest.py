"""The stats database: ingest of stats records and ClassAds, idempotence, stale updates, bulk speed.

Every test runs on SQLite and on a real PostgreSQL (``postgres`` marker, skipped if it cannot start).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from iceprod_dag.common.exceptions import StaleUpdateError, StatsError
from iceprod_dag.stats import ingest
from iceprod_dag.stats.db import init_db
from iceprod_dag.stats.models import Attempt, Dataset, Job, JobAd


def make_record(node: str = "generate_3", attempt: int = 0, **over: object) -> dict:
    """A stats record as docs/contracts.md shows it."""
    task, job = node.rsplit("_", 1)
    rec = {
        "format": 1,
        "dataset": "demo",
        "dataset_id": 20001,
        "task": task,
        "job": int(job),
        "node": node,
        "attempt": attempt,
        "site": "local",
        "host": "worker1",
        "os": "Linux-6.1-x86_64",
        "python": "3.11.7",
        "start": 1732500000.0,
        "end": 1732500012.5,
        "wall_s": 12.5,
        "cpu_user_s": 10.1,
        "cpu_sys_s": 0.4,
        "cpu_efficiency": 0.84,
        "request": {"cpus": 1, "memory_mb": 1024, "disk_mb": 1024, "gpus": 0, "walltime_s": 3600},
        "memory_limit_mb": 1280,
        "peak_rss_mb": 800.2,
        "peak_pss_mb": 780.0,
        "avg_rss_mb": 500.1,
        "peak_disk_mb": 12.0,
        "peak_gpu_mem_mb": None,
        "avg_gpu_util": None,
        "exit_code": 0,
        "signal": None,
        "pilot_exit_code": 0,
        "failure": None,
        "transfers": [
            {
                "url": "http://127.0.0.1/x",
                "local": "in.dat",
                "direction": "input",
                "bytes": 1024,
                "seconds": 0.01,
                "checksum": "sha256:00",
                "ok": True,
                "error": None,
            }
        ],
        "stderr_tail": ["last", "lines"],
        "logs": {
            "stdout": f"logs/{node}/{attempt}/stdout",
            "stderr": f"logs/{node}/{attempt}/stderr",
            "pilot": f"logs/{node}/{attempt}/pilot.log",
        },
        "next_memory_mb": None,
    }
    rec.update(over)
    return rec


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path: Path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'stats.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_db")
    eng = init_db(url)
    yield eng
    eng.dispose()


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table))


def test_record_lands_in_every_table_column(engine, tmp_path):
    result = ingest.ingest_records(engine, [make_record()], run_dir=tmp_path)
    assert (result.inserted, result.unchanged, result.rejected) == (1, 0, [])
    with engine.connect() as conn:
        ds = conn.execute(select(Dataset)).one()
        job = conn.execute(select(Job)).one()
        att = conn.execute(select(Attempt)).one()
    assert (ds.name, ds.dataset_id, ds.site, ds.run_dir) == ("demo", 20001, "local", str(tmp_path))
    assert (job.node, job.task, job.job_index, job.state, job.attempts) == (
        "generate_3",
        "generate",
        3,
        "done",
        1,
    )
    assert (att.attempt, att.state, att.wall_s, att.peak_rss_mb, att.request_memory_mb) == (
        0,
        "done",
        12.5,
        800.2,
        1024,
    )
    assert att.stderr_tail == "last\nlines" and att.log_pilot == "logs/generate_3/0/pilot.log"
    assert att.transfers[0]["bytes"] == 1024 and att.dataset_pk == ds.id and att.task == "generate"


def test_same_record_twice_is_recorded_once(engine, tmp_path):
    ingest.ingest_records(engine, [make_record()], run_dir=tmp_path)
    again = ingest.ingest_records(engine, [make_record()], run_dir=tmp_path)
    assert (again.inserted, again.unchanged) == (0, 1)
    assert count(engine, Attempt) == 1 and count(engine, Job) == 1 and count(engine, Dataset) == 1


def test_retries_are_rows_and_the_job_follows_the_latest(engine, tmp_path):
    failed = make_record(
        attempt=0, failure="over_memory", pilot_exit_code=5, exit_code=None, signal=9, next_memory_mb=1200.3
    )
    ingest.ingest_records(engine, [failed], run_dir=tmp_path)
    with engine.connect() as conn:
        job = conn.execute(select(Job)).one()
    assert (job.state, job.last_failure, job.attempts) == ("failed", "over_memory", 1)
    ingest.ingest_records(engine, [make_record(attempt=1)], run_dir=tmp_path)
    with engine.connect() as conn:
        job = conn.execute(select(Job)).one()
        attempts = conn.execute(
            select(Attempt.attempt, Attempt.state, Attempt.next_memory_mb).order_by(Attempt.attempt)
        ).all()
    assert (job.state, job.last_failure, job.attempts, job.last_attempt) == ("done", None, 2, 1)
    assert [tuple(a) for a in attempts] == [(0, "failed", 1200.3), (1, "done", None)]


def test_old_attempt_reporting_after_a_newer_started_is_rejected(engine, tmp_path):
    ingest.record_attempt_started(engine, run_dir=tmp_path, site="local", node="generate_3", attempt=0)
    ingest.record_attempt_started(
        engine, run_dir=tmp_path, site="local", node="generate_3", attempt=1, host="w2"
    )
    with engine.connect() as conn:
        assert conn.execute(select(Job.state, Job.attempts)).one() == ("running", 2)
    with pytest.raises(StaleUpdateError, match="attempt 1 already started"):
        ingest.ingest_records(engine, [make_record(attempt=0, failure="killed")], run_dir=tmp_path)
    with engine.connect() as conn:  # not applied: attempt 0 is still the running row it was
        assert conn.scalar(select(Attempt.state).where(Attempt.attempt == 0)) == "running"
        assert conn.execute(select(Job.state, Job.last_attempt)).one() == ("running", 1)
    with pytest.raises(StaleUpdateError):
        ingest.record_attempt_started(engine, run_dir=tmp_path, site="local", node="generate_3", attempt=0)
    # the running row of attempt 1 is completed by its record
    result = ingest.ingest_records(engine, [make_record(attempt=1)], run_dir=tmp_path)
    assert (result.inserted, result.updated) == (0, 1)
    with engine.connect() as conn:
        assert conn.execute(select(Job.state, Job.attempts)).one() == ("done", 2)


def test_second_final_report_with_other_content_is_rejected(engine, tmp_path):
    ingest.ingest_records(engine, [make_record()], run_dir=tmp_path)
    changed = make_record(peak_rss_mb=1.0)
    with pytest.raises(StaleUpdateError, match="different final report"):
        ingest.ingest_records(engine, [changed, make_record("generate_4")], run_dir=tmp_path)
    assert count(engine, Attempt) == 1  # the whole call was refused, generate_4 included
    skipped = ingest.ingest_records(
        engine, [changed, make_record("generate_4")], run_dir=tmp_path, on_stale="skip"
    )
    assert skipped.inserted == 1 and skipped.rejected[0][:2] == ("generate_3", 0)
    with engine.connect() as conn:
        assert (
            conn.scalar(select(Attempt.peak_rss_mb).where(Attempt.task == "generate").order_by(Attempt.id))
            == 800.2
        )


def test_bad_records_name_the_field(engine, tmp_path):
    with pytest.raises(StatsError, match="'attempt'"):
        ingest.ingest_records(engine, [make_record(attempt="zero")], run_dir=tmp_path)
    with pytest.raises(StatsError, match="'failure'"):
        ingest.ingest_records(engine, [make_record(failure="oops")], run_dir=tmp_path)
    path = tmp_path / "generate_3.0.json"
    path.write_text("{not json")
    with pytest.raises(StatsError, match="generate_3.0.json"):
        ingest.load_record(path)


def test_register_dataset_then_node_states(engine, tmp_path):
    nodes = [("generate_0", "generate", 0), ("generate_1", "generate", 1), "FINAL"]
    pk = ingest.register_dataset(
        engine,
        run_dir=tmp_path,
        site="local",
        name="demo",
        owner="alice",
        jobs=2,
        config={"tasks": []},
        nodes=nodes,
    )
    again = ingest.register_dataset(
        engine, run_dir=tmp_path, site="local", name="demo", owner="alice", nodes=nodes, state="running"
    )
    assert pk == again and count(engine, Job) == 3
    ingest.set_node_states(engine, run_dir=tmp_path, site="local", states={"generate_1": "held"})
    ingest.set_dataset_state(engine, run_dir=tmp_path, site="local", state="done")
    with engine.connect() as conn:
        rows = dict(conn.execute(select(Job.node, Job.state)).all())
        assert conn.scalar(select(Dataset.state)) == "done"
        # registering again without jobs/config kept them
        assert conn.execute(select(Dataset.jobs, Dataset.config)).one() == (2, {"tasks": []})
        assert conn.scalar(select(Job.task).where(Job.node == "FINAL")) is None
    assert rows == {"generate_0": "pending", "generate_1": "held", "FINAL": "pending"}


def test_job_ads_are_stored_once_with_their_attributes(engine, tmp_path):
    ad = {
        "ClusterId": 41,
        "ProcId": 0,
        "DAGNodeName": "generate_3",
        "Cmd": "/bin/sh",
        "ExitCode": 0,
        "RemoteWallClockTime": 12.0,
        "Args": "-c 'echo hi'",
    }
    res = ingest.ingest_job_ads(
        engine, [("generate_3", 0, ad)], run_dir=tmp_path, site="local", dataset="demo"
    )
    again = ingest.ingest_job_ads(engine, [("generate_3", 0, ad)], run_dir=tmp_path, site="local")
    assert (res.inserted, again.unchanged) == (1, 1)
    with engine.connect() as conn:
        row = conn.execute(select(JobAd)).one()
    assert (row.cluster_id, row.proc_id, row.attempt) == (41, 0, 0)
    assert row.attributes["Args"] == "-c 'echo hi'" and 'DAGNodeName = "generate_3"' in row.ad_text
    with pytest.raises(StaleUpdateError):
        ingest.ingest_job_ads(
            engine, [("generate_3", 0, {**ad, "ExitCode": 1})], run_dir=tmp_path, site="local"
        )


def test_ten_thousand_records_in_one_call_then_again_changes_nothing(engine, tmp_path):
    # speed is a benchmark matter; here: one bulk call lands every row, and a repeat is recognised
    records = [make_record(f"generate_{i}", attempt=0) for i in range(10_000)]
    result = ingest.ingest_records(engine, records, run_dir=tmp_path)
    assert result.inserted == 10_000 and count(engine, Attempt) == 10_000 and count(engine, Job) == 10_000
    again = ingest.ingest_records(engine, records, run_dir=tmp_path)
    assert again.unchanged == 10_000 and count(engine, Attempt) == 10_000


def test_concurrent_writer_processes_on_one_sqlite_file(tmp_path):
    """The local engine and an import can write at once: BEGIN IMMEDIATE + busy timeout, no 'database is locked'."""
    import subprocess
    import sys
    import textwrap

    url = f"sqlite:///{tmp_path / 'stats.sqlite'}"
    init_db(url).dispose()
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_stats_ingest import make_record
        from iceprod_dag.stats import ingest
        from iceprod_dag.stats.db import make_engine
        engine = make_engine({url!r})
        worker = int(sys.argv[1])
        for i in range(40):
            node = f"w{{worker}}_{{i}}"
            ingest.record_attempt_started(engine, run_dir={str(tmp_path)!r}, site="local", node=node, attempt=0,
                                          dataset="demo")
            ingest.ingest_records(engine, [make_record(node)], run_dir={str(tmp_path)!r})
        """)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(w)], stderr=subprocess.PIPE, text=True)
        for w in range(3)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    engine = init_db(url)
    assert count(engine, Attempt) == 120 and count(engine, Dataset) == 1
    with engine.connect() as conn:
        assert set(conn.scalars(select(Job.state))) == {"done"}
    engine.dispose()


def test_a_record_survives_kill_9_right_after_the_call(tmp_path):
    """Durable per call: once ingest_records returns, a SIGKILL of the writer loses nothing."""
    import subprocess
    import sys
    import textwrap

    url = f"sqlite:///{tmp_path / 'stats.sqlite'}"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_stats_ingest import make_record
        from iceprod_dag.stats import ingest
        from iceprod_dag.stats.db import init_db
        engine = init_db({url!r})
        ingest.ingest_records(engine, [make_record("generate_{{}}".format(i)) for i in range(50)],
                              run_dir={str(tmp_path)!r})
        os.kill(os.getpid(), signal.SIGKILL)  # the engine is never disposed, the WAL never checkpointed
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    engine = init_db(url)
    assert count(engine, Attempt) == 50
    engine.dispose()
