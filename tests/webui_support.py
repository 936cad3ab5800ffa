"""Shared set-up of the web UI tests: a real SQLite stats database holding a compiled demo dataset whose
jobs ran (done ones, a failed one with a stderr log, a ClassAd), users of every role, logged-in clients."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from iceprod_dag.common import names
from iceprod_dag.compile.compiler import compile_dataset
from iceprod_dag.dataset.loader import dataset_to_json, load_dataset
from iceprod_dag.stats import ingest

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "config" / "examples" / "demo.yaml"
PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "prod": "prod-pw-3", "root": "root-pw-4"}
ROLES = {"alice": "user", "bob": "user", "prod": "production", "root": "admin"}
STDERR_LINES = [f"stderr line {i}" for i in range(1, 200)] + ["Traceback: detector exploded", "the end"]


def record(node: str, attempt: int, failed: bool = False, **extra: Any) -> dict[str, Any]:
    """A pilot stats record (docs/contracts.md) for one attempt."""
    task, job = names.split_node_name(node) or (node, 0)
    start = time.time() - 600 + job
    rec = {
        "format": 1,
        "dataset": "demo-sim",
        "dataset_id": 20001,
        "task": task,
        "job": job,
        "node": node,
        "attempt": attempt,
        "site": "local",
        "host": f"worker{job % 3}",
        "os": "Linux",
        "python": "3.11",
        "start": start,
        "end": start + 10 + job,
        "wall_s": 10.0 + job,
        "cpu_user_s": 8.0,
        "cpu_sys_s": 0.5,
        "cpu_efficiency": 0.85 - job / 100,
        "request": {"cpus": 1, "memory_mb": 256, "disk_mb": 100, "gpus": 0, "walltime_s": 300},
        "memory_limit_mb": 320,
        "peak_rss_mb": 100.0 + 10 * job,
        "peak_pss_mb": 90.0,
        "avg_rss_mb": 60.0,
        "peak_disk_mb": 1.0,
        "peak_gpu_mem_mb": None,
        "avg_gpu_util": None,
        "exit_code": 1 if failed else 0,
        "signal": None,
        "pilot_exit_code": 1 if failed else 0,
        "failure": "task_failed" if failed else None,
        "transfers": [],
        "stderr_tail": STDERR_LINES[-5:] if failed else [],
        "logs": {
            "stdout": f"logs/{node}/{attempt}/stdout",
            "stderr": f"logs/{node}/{attempt}/stderr",
            "pilot": f"logs/{node}/{attempt}/pilot.log",
        },
        "next_memory_mb": None,
    }
    rec.update(extra)
    return rec


def write_logs(run_dir: Path, node: str, attempt: int, stderr: list[str]) -> None:
    folder = run_dir / names.attempt_log_dir(node, attempt)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / names.STDOUT).write_text(f"output of {node}\n", encoding="utf-8")
    (folder / names.STDERR).write_text("\n".join(stderr) + "\n", encoding="utf-8")
    (folder / names.PILOT_LOG).write_text(f"pilot ran {node}\n", encoding="utf-8")


def fill_demo(engine: Any, run_dir: Path, owner: str = "alice", site: str = "local") -> int:
    """Compile the demo into run_dir, record it, and ingest what a run produced; returns the dataset id.

    generate_0..7 done, detector_0 failed (with stderr) then nothing else, background_1 done.
    """
    import json

    dataset = load_dataset(DEMO)
    compile_dataset(dataset, run_dir, with_pilot=False)
    nodes = [
        (names.node_name(t.name, j), t.name, j)
        for t in dataset.topological_tasks()
        for j in range(dataset.jobs)
    ]
    pk = ingest.register_dataset(
        engine,
        run_dir=run_dir,
        site=site,
        name=dataset.name,
        dataset_id=dataset.dataset_id,
        owner=owner,
        description=dataset.description,
        jobs=dataset.jobs,
        config=json.loads(dataset_to_json(dataset)),
        state="running",
        nodes=nodes,
    )
    recs = [record(f"generate_{j}", 0) for j in range(dataset.jobs)]
    recs.append(record("detector_0", 0, failed=True))
    recs.append(record("background_1", 0))
    for rec in recs:
        write_logs(run_dir, rec["node"], rec["attempt"], STDERR_LINES if rec["failure"] else ["ok"])
    ingest.ingest_records(engine, recs, run_dir=run_dir, site=site)
    # as condor_history -long prints it
    ad = (
        f'ClusterId = 42\nProcId = 0\nOwner = "{owner}"\nJobStatus = 4\nExitCode = 0\nRequestMemory = 256\n'
        'Cmd = "pilot.pyz"\nMachineAttrGLIDEIN_Site0 = "local"\nDAGNodeName = "generate_0"\n'
    )
    ingest.ingest_job_ads(engine, [("generate_0", 0, ad)], run_dir=run_dir, site=site)
    return pk


def login(client: Any, name: str, password: str | None = None) -> Any:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/login", data={"username": name, "password": password or PASSWORDS[name], "csrf_token": token}
    )


def csrf_of(client: Any) -> str:
    page = client.get("/tokens")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from iceprod_dag.webui import create_app
    from iceprod_dag.webui.services import accounts

    monkeypatch.setenv("ICEPROD_DAG_HOME", str(tmp_path / "home"))
    # cheap hashes keep the tests fast; test_webui_auth checks the real default is scrypt
    monkeypatch.setattr(accounts, "PASSWORD_METHOD", "pbkdf2:sha256:1000")
    accounts.TOKEN_CACHE.clear()
    application = create_app(
        {
            "DB": f"sqlite:///{tmp_path / 'stats.sqlite'}",
            "COOKIE_SECURE": False,
            "RUNS_DIR": str(tmp_path / "runs"),
            "TESTING": True,
        }
    )
    engine = application.extensions["iceprod_dag_engine"]
    for name, role in ROLES.items():
        accounts.add_user(engine, name, role, PASSWORDS[name])
    application.config["DEMO_PK"] = fill_demo(engine, tmp_path / "run-alice", owner="alice")
    application.config["DEMO_RUN"] = str(tmp_path / "run-alice")
    yield application
    engine.dispose()


@pytest.fixture
def engine(app: Any) -> Any:
    return app.extensions["iceprod_dag_engine"]


@pytest.fixture
def demo(app: Any) -> int:
    return int(app.config["DEMO_PK"])


def client_for(app: Any, name: str) -> Any:
    client = app.test_client()
    response = login(client, name)
    assert response.status_code == 302, response.text
    return client


@pytest.fixture
def alice(app: Any) -> Any:
    return client_for(app, "alice")


@pytest.fixture
def bob(app: Any) -> Any:
    return client_for(app, "bob")


@pytest.fixture
def admin(app: Any) -> Any:
    return client_for(app, "root")


@pytest.fixture
def anon(app: Any) -> Any:
    return app.test_client()
