"""The local engine survives its own death: kill -9 or SIGTERM mid-run, then a resubmit finishes the DAG
without rerunning completed nodes and without losing or doubling a stats record."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iceprod_dag.plugins.local.runner import run_dag

N = 8
SUB = (
    "executable = /bin/sh\narguments = \"-c 'sleep 0.3; echo x >> count.$(name)'\"\n"
    "output = out/$(name).out\nerror = out/$(name).err\nqueue\n"
)


def make_chain(tmp_path: Path) -> Path:
    rd = tmp_path / "run"
    rd.mkdir()
    lines = [f"JOB n{i} n.sub" for i in range(N)]
    lines += ['VARS ALL_NODES name="$(JOB)"']
    lines += [f"PARENT n{i} CHILD n{i + 1}" for i in range(N - 1)]
    (rd / "chain.dag").write_text("\n".join(lines) + "\n")
    (rd / "n.sub").write_text(SUB)
    return rd


def counts(rd: Path) -> dict[str, int]:
    return {p.name[6:]: len(p.read_text().splitlines()) for p in rd.glob("count.*")}


def start_engine(rd: Path, db: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "iceprod_dag.plugins.local", str(rd), "--db", db, "--cpus", "1"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(rd: Path, done: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while len(counts(rd)) < done:
        assert time.time() < deadline, "the engine made no progress"
        time.sleep(0.05)


def attempts_in_db(db: str) -> list[tuple[str, int]]:
    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        q = "select j.node, a.attempt from attempts a join jobs j on a.job_pk = j.id order by 1, 2"
        return list(conn.execute(q))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_runner_resumes_without_rerunning_done_nodes(tmp_path: Path, sig: int) -> None:
    rd = make_chain(tmp_path)
    db = f"sqlite:///{tmp_path / 'stats.sqlite'}"
    proc = start_engine(rd, db)
    wait_for(rd, 3)
    time.sleep(0.15)  # mid-way through the next node's job, not in the instant it ends
    os.kill(proc.pid, sig)
    rc = proc.wait(timeout=30)
    time.sleep(0.5)  # let a job orphaned by kill -9 end, as it would on a real machine
    before = counts(rd)
    assert 3 <= len(before) < N
    if sig == signal.SIGTERM:
        assert rc == 128 + signal.SIGTERM
        assert (rd / "chain.dag.rescue001").exists()  # the handler wrote it
        assert json.loads((rd / "run.json").read_text())["exit_code"] is None

    assert run_dag(rd, db_url=db) == 0
    after = counts(rd)
    assert len(after) == N
    for node, n in before.items():
        # nodes done before the kill ran once (the one in flight died with the engine, PR_SET_PDEATHSIG)
        assert after[node] == n, node
    rows = attempts_in_db(db)
    assert len(rows) == len(set(rows))
    records = sorted(p.name for p in (rd / "stats").glob("*.json"))
    assert len(rows) == len(records)  # every attempt on disk is in the database, once
    assert {n for n, _ in rows} == {f"n{i}" for i in range(N)}
