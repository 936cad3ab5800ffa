"""Set up and run one local DAG: resume state, signal handlers, run.json, the stats database, progress.

Resume: the newest rescue DAG marks nodes DONE (parser.load_rescue), and the node event log adds the nodes
that finished after it was written (a ``kill -9`` writes no rescue DAG). Attempt numbers continue after the
highest one seen in the event log or in ``stats/``, so a rerun never overwrites an earlier attempt's record,
and every stats record on disk is (re)ingested idempotently before the run starts: none is lost or doubled.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from iceprod_dag.common import names
from iceprod_dag.dagman.engine.engine import DagEngine
from iceprod_dag.dagman.model import Dag
from iceprod_dag.dagman.parser import load_rescue
from iceprod_dag.plugins.local.executor import LocalExecutor
from iceprod_dag.plugins.local.jobs import JobFactory
from iceprod_dag.plugins.local.state import RunRecorder
from iceprod_dag.sites.runinfo import update_run_info
from iceprod_dag.sites.runlock import ENDING_WAIT_S, RunLock

logger = logging.getLogger(__name__)

_EVENT_RE = re.compile(r"^(\d{3}) \((\d+)\.\d+\.\d+\) ")
_RETURN_RE = re.compile(r"\(return value (-?\d+)\)")


def read_run_info(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / names.RUN_INFO).read_text())
    except (OSError, ValueError):
        return {}


def scan_event_log(path: str, dag: Dag) -> tuple[set[str], dict[str, int], int]:
    """(nodes that succeeded, node -> attempts submitted, highest cluster id) from a node job event log."""
    node_of: dict[int, str] = {}
    attempts: dict[str, int] = {}
    job_ok: dict[str, bool] = {}
    post_ok: dict[str, bool] = {}
    max_cluster = 0
    if not os.path.exists(path):
        return set(), attempts, 0
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    for chunk in text.split("...\n"):
        m = _EVENT_RE.match(chunk)
        if not m:
            continue  # a torn last event (kill -9 mid-write) is ignored
        code, cluster = int(m.group(1)), int(m.group(2))
        max_cluster = max(max_cluster, cluster)
        if code == 0:
            node = chunk.rpartition("DAG Node: ")[2].strip()
            node_of[cluster] = node
            attempts[node] = attempts.get(node, 0) + 1
            job_ok.pop(node, None)
            post_ok.pop(node, None)
        elif code == 5:
            node = node_of.get(cluster, "")
            r = _RETURN_RE.search(chunk)
            job_ok[node] = r is not None and r.group(1) == "0"
        elif code == 16:
            node = chunk.rpartition("DAG Node: ")[2].strip()
            r = _RETURN_RE.search(chunk)
            post_ok[node] = r is not None and r.group(1) == "0"
    done = set()
    for name, spec in dag.nodes.items():
        if spec.final:
            continue
        if spec.post is not None:
            if post_ok.get(name):
                done.add(name)
        elif job_ok.get(name):
            done.add(name)
    return done, attempts, max_cluster


def stats_attempts(run_dir: Path) -> dict[str, int]:
    """node -> 1 + highest attempt with a stats record in stats/."""
    out: dict[str, int] = {}
    folder = run_dir / names.STATS_DIR
    if not folder.is_dir():
        return out
    for entry in os.scandir(folder):
        stem, _, ext = entry.name.rpartition(".")
        node, _, attempt = stem.rpartition(".")
        if ext == "json" and attempt.isdigit():
            out[node] = max(out.get(node, 0), int(attempt) + 1)
    return out


def open_db(db_url: str | None) -> Any:
    from iceprod_dag.stats.db import init_db

    return init_db(db_url)


def collect_records(run_dir: Path, db_url: str | None, db: Any = None) -> int:
    """Ingest every stats record and job ad on disk (idempotent); returns how many records were new."""
    from iceprod_dag.stats.ingest import ingest_job_ads, ingest_records, load_record

    db = db if db is not None else open_db(db_url)
    folder = run_dir / names.STATS_DIR
    records = [load_record(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    if not records:
        return 0
    result = ingest_records(db, records, run_dir=run_dir, site="local", on_stale="skip")
    ads = []
    for rec in records:
        path = run_dir / names.job_ad(rec["node"], rec["attempt"])
        if path.exists():
            ads.append((rec["node"], rec["attempt"], path.read_text().strip() + "\n"))
    if ads:
        ingest_job_ads(db, ads, run_dir=run_dir, site="local", dataset=records[0]["dataset"], on_stale="skip")
    return result.inserted


def lock_run(run_dir: Path, handing_over: bool = False) -> RunLock:
    """Take the run folder's lock (RunLockedError if another process runs it). An engine that has recorded
    its end (run.json has its exit status) is given a moment to exit: a resume follows it at once.
    handing_over: the lock goes to a detached engine (RunLock.acquire)."""
    ended = read_run_info(run_dir).get("exit_code") is not None
    return RunLock(run_dir).acquire(wait_s=ENDING_WAIT_S if ended else 0.0, handing_over=handing_over)


def run_dag(
    run_dir: Path,
    cpus: int | None = None,
    memory_mb: int | None = None,
    db_url: str | None = None,
    progress: bool = False,
    use_pilot: bool = True,
    pilot_procs: int | None = None,
    dag_file: str | None = None,
    lock: RunLock | None = None,
) -> int:
    """Run (or resume) the DAG of a run folder in this process, holding its lock (taken here unless given);
    returns DAGMan's exit status."""
    run_dir = Path(run_dir).resolve()
    with lock or lock_run(run_dir):
        return _run_dag(run_dir, cpus, memory_mb, db_url, progress, use_pilot, pilot_procs, dag_file)


def _run_dag(
    run_dir: Path,
    cpus: int | None,
    memory_mb: int | None,
    db_url: str | None,
    progress: bool,
    use_pilot: bool,
    pilot_procs: int | None,
    dag_file: str | None,
) -> int:
    dag_file = str(Path(dag_file).resolve()) if dag_file else names.find_dag_file(str(run_dir))
    dag = load_rescue(dag_file)
    halt_file = names.halt_file(dag_file)
    if os.path.exists(halt_file):
        # as condor_submit_dag does: a (re)submitted DAG starts unhalted
        logger.info("removing %s left by an earlier halt", halt_file)
        os.unlink(halt_file)
    done, attempts, max_cluster = scan_event_log(names.nodes_log(dag_file), dag)
    for node, n in stats_attempts(run_dir).items():
        attempts[node] = max(attempts.get(node, 0), n)
    db = open_db(db_url)
    if done or attempts:
        new = collect_records(run_dir, db_url, db)
        logger.info("resuming %s: %d nodes done, %d stats records recovered", dag_file, len(done), new)
    _register(db, run_dir, dag)
    dag_cluster = max_cluster + 1
    update_run_info(
        run_dir,
        site="local",
        pid=os.getpid(),
        started=time.time(),
        dag=dag_file,
        exit_code=None,
        cluster=dag_cluster,
        halted=False,
        final_nodes=[n.name for n in dag.nodes.values() if n.final],
    )
    executor = LocalExecutor(
        cpus,
        memory_mb,
        use_pilot=use_pilot,
        pilot_dir=str(run_dir),
        pilot_log=str(run_dir / "local.pilot.log"),
    )
    recorder = RunRecorder(dag, run_dir, db, dag_cluster, executor.records)
    recorder.jobstate.dagman_started(dag_cluster)
    update_run_info(run_dir, status_file=recorder.status_path)
    jobs = JobFactory(dag, run_dir, dagman_job_id=dag_cluster)
    engine = DagEngine(
        dag,
        executor,
        recorder,
        jobs,
        done=done,
        attempts=attempts,
        first_cluster=dag_cluster + 1,
        dag_cluster=dag_cluster,
        halt_file=halt_file,
    )
    jobs.dag_state = lambda: (int(engine.status), len(engine.failed))
    # from here on the run ends halted whatever happens to the halt file: a resume must resubmit it
    engine.on_halt_exit = lambda: update_run_info(run_dir, halted=True)
    stopped: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stopped.append(signum)
        engine.stop()
        executor.kill_all()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    display = _Progress(engine) if progress else None
    status = 1
    try:
        if display is not None:
            recorder.on_round = display.update
            with display:
                status = engine.run()
        else:
            status = engine.run()
        if stopped:
            engine.drain(executor.kill_grace_s + 5)
            status = 128 + stopped[0]
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        recorder.commit()
        if not stopped:
            recorder.jobstate.dagman_finished(status)
        recorder.close()
        executor.close()
    if stopped or engine.failed or engine.status.value != 0 or status != 0:
        engine.write_rescue()
    halted = engine.halt_exit and not stopped
    update_run_info(run_dir, exit_code=None if stopped else status, ended=time.time(), halted=halted)
    from iceprod_dag.stats.ingest import set_dataset_state

    if halted:
        state = "suspended"  # ended halted: a resubmit continues from the rescue DAG
    else:
        state = "cancelled" if stopped else ("done" if status == 0 else "failed")
    set_dataset_state(db, run_dir=run_dir, site="local", state=state)
    return status


def _register(db: Any, run_dir: Path, dag: Dag) -> None:
    """The run and its nodes in the stats database (pending), so listings show what has not run yet."""
    from iceprod_dag.stats.importer import dataset_meta
    from iceprod_dag.stats.ingest import register_dataset

    nodes = []
    for name, node in dag.nodes.items():
        if node.final:
            continue
        split = names.split_node_name(name)
        nodes.append((name, split[0], split[1]) if split else name)
    meta = dataset_meta(run_dir, owner=getpass.getuser()) or {
        "name": dag.path.stem,
        "owner": getpass.getuser(),
    }
    register_dataset(db, run_dir=run_dir, site="local", state="running", nodes=nodes, **meta)


class _Progress:
    """The run's progress line (iceprod_dag.sites.progress, as `watch` shows it), refreshed every round."""

    def __init__(self, engine: DagEngine) -> None:
        from iceprod_dag.sites.progress import ProgressLine

        self.engine = engine
        self.line = ProgressLine()

    def __enter__(self) -> _Progress:
        self.line.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.update()
        self.line.__exit__(*exc)

    def update(self) -> None:
        from iceprod_dag.sites.progress import render_progress

        e = self.engine
        elapsed = max(1e-6, time.time() - e.started)
        counts = {"done": e.done_count, "running": e.running_jobs, "failed": len(e.failed)}
        self.line.show(render_progress(counts, len(e.runs), e.finished_jobs / elapsed, elapsed))
