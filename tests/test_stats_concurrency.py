"""Concurrent pilot reports against real `iceprod-dag serve` processes, one and two of them on one SQLite file:
16 threads of mixed single (queued in the inbox) and batched (applied at once) reports, each with its own pilot
token. Every request is answered below 500, and every record sent ends up in the stats tables exactly once."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webui_support import record

from iceprod_dag.stats import ingest
from iceprod_dag.stats.db import init_db
from iceprod_dag.webui.services import accounts

THREADS = 16
ROUNDS = 12  # per thread: alternately one single report and one batch
BATCH = 8


def _serve(db: str, home: Path) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("iceprod-dag", path=os.path.dirname(sys.executable)) or shutil.which("iceprod-dag")
    assert exe, "iceprod-dag is not installed"
    env = {**os.environ, "ICEPROD_DAG_HOME": str(home)}
    proc = subprocess.Popen(
        [exe, "serve", "--port", "0", "--threads", "8", "--db", db, "--insecure-cookies"],
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        if not line:
            break
        if m := re.search(r"http://127\.0\.0\.1:(\d+)/", line):
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
            return proc, int(m.group(1))
    proc.kill()
    raise RuntimeError("iceprod-dag serve did not start")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[dict[str, Any]]:
    path = tmp_path / "stats.sqlite"
    db = f"sqlite:///{path}"
    engine = init_db(db)
    accounts.PASSWORD_METHOD = "pbkdf2:sha256:1000"
    accounts.add_user(engine, "alice", "user", "alice-pw")
    nodes = [f"gen_{i}" for i in range(THREADS * ROUNDS * BATCH)]
    pk = ingest.register_dataset(
        engine, run_dir=tmp_path / "run", site="server", name="demo-sim", owner="alice", state="running",
        nodes=nodes,
    )  # fmt: skip
    tokens = [accounts.create_token(engine, "alice", kind="pilot", dataset_pk=pk)[1] for _ in range(THREADS)]
    engine.dispose()
    yield {"db": db, "path": path, "pk": pk, "tokens": tokens, "home": tmp_path / "home"}


def _pilot(port: int, pk: int, token: str, first: int, out: list[Any]) -> None:
    """One pilot: its own nodes, single and batched reports in turn, each batch sent twice (a retry)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    path = f"/api/pilot/datasets/{pk}/reports"
    node = first
    for r in range(ROUNDS):
        if r % 2 == 0:
            bodies = [record(f"gen_{n}", 0) for n in range(node, node + BATCH)]
            requests = bodies  # BATCH single reports
        else:
            batch = {"records": [record(f"gen_{n}", 0, failed=n % 5 == 0) for n in range(node, node + BATCH)]}
            requests = [batch, batch]  # the same batch again, as a pilot retrying after a lost answer
        node += BATCH
        for body in requests:
            conn.request("POST", path, body=json.dumps(body), headers=headers)
            response = conn.getresponse()
            out.append((response.status, response.read().decode()[:300]))


def _run(ports: list[int], setup: dict[str, Any]) -> list[tuple[int, str]]:
    answers: list[list[Any]] = [[] for _ in range(THREADS)]
    threads = [
        threading.Thread(
            target=_pilot,
            args=(ports[t % len(ports)], setup["pk"], setup["tokens"][t], t * ROUNDS * BATCH, answers[t]),
        )
        for t in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [a for per in answers for a in per]


def _wait_drained(path: Path) -> None:
    conn = sqlite3.connect(str(path), timeout=60)
    try:
        deadline = time.monotonic() + 120
        while conn.execute("SELECT count(*) FROM report_inbox").fetchone()[0]:
            assert time.monotonic() < deadline, "the servers never applied their queued reports"
            time.sleep(0.05)
        return
    finally:
        conn.close()


@pytest.mark.parametrize("servers", [1, 2])
def test_concurrent_reports_lose_nothing(setup: dict[str, Any], servers: int) -> None:
    procs = [_serve(setup["db"], setup["home"]) for _ in range(servers)]
    try:
        answers = _run([port for _, port in procs], setup)
        _wait_drained(setup["path"])
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(timeout=30)
    errors = [a for a in answers if a[0] != 200]
    assert errors == [], f"{len(errors)} of {len(answers)} requests failed, e.g. {errors[:3]}"
    conn = sqlite3.connect(str(setup["path"]))
    try:
        rows = conn.execute(
            "SELECT j.node, a.attempt, a.state, j.state FROM attempts a JOIN jobs j ON j.id = a.job_pk"
        ).fetchall()
    finally:
        conn.close()
    sent = THREADS * ROUNDS * BATCH
    assert len(rows) == sent  # none lost; (job, attempt) is unique, so none twice
    assert {node for node, *_ in rows} == {f"gen_{i}" for i in range(sent)}
    assert all(attempt == 0 and state == job_state for _, attempt, state, job_state in rows)
