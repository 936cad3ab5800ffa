"""Write a local run's state to disk as it changes, in HTCondor's formats, and its attempts to the stats DB.

- the nodes' job event log (``dataset.dag.nodes.log``): submit, execute, terminated and POST script events,
  as condor_dagman's node jobs produce them, read back by ``htcondor2.JobEventLog``;
- the jobstate log (JOBSTATE_LOG lines) and the node status file (rewritten at most every few seconds);
- one job ClassAd per finished attempt in ``history/`` (``condor_history -long``), one stats record per
  attempt in ``stats/`` (the pilot writes its own; hand-written jobs get one made from ``wait4``);
- the attempts in the stats database, in one transaction per scheduling round: durable once a round ends;
  an attempt shows as running (host, start) from the round it starts in, so pages show it going on.

Files are flushed every round (so ``kill -9`` loses nothing written); resume reads them back (resume.py).
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from iceprod_dag.common import names
from iceprod_dag.common.states import FailureCategory, NodeStatus
from iceprod_dag.dagman.engine.executor import Exit, Launch
from iceprod_dag.dagman.engine.nodestate import NodeState, RunView
from iceprod_dag.dagman.engine.recorder import Recorder
from iceprod_dag.dagman.eventlog import EventLogWriter, Usage
from iceprod_dag.dagman.jobstate import JobstateLogWriter, read_jobstate
from iceprod_dag.dagman.model import Dag, Node
from iceprod_dag.dagman.nodestatus import DagStatusReport, NodeEntry, write_node_status
from iceprod_dag.stats import classads

logger = logging.getLogger(__name__)


#: the engine's node states are DAGMan's, by name
_NODE_STATUS = {state: NodeStatus[state.name] for state in NodeState}
#: StatusDetails of a node whose job runs (DAGMan's word; "idle" would be a job waiting in a queue)
RUNNING_DETAILS = "not_idle"


def status_report(engine: RunView, interval: float) -> DagStatusReport:
    """The engine's view of every node as DAGMan's NODE_STATUS_FILE reports it (the local engine's node
    states are DAGMan's, by name)."""
    nodes = []
    submitted = NodeStatus.SUBMITTED
    for name, run in engine.runs.items():
        status = _NODE_STATUS[run.state]
        running = status is submitted
        nodes.append(NodeEntry(name, status, RUNNING_DETAILS if running else "", run.retries, int(running)))
    if not engine.finished:
        dag_status, note, next_update = submitted, "", int(time.time() + interval)
    elif engine.exit_status == 0:
        dag_status, note, next_update = NodeStatus.DONE, "success", 0
    else:
        dag_status, note, next_update = NodeStatus.ERROR, "failed", 0
    return DagStatusReport([str(engine.dag.path)], dag_status, note, nodes, next_update=next_update)


class RunRecorder(Recorder):
    """The engine's Recorder: event log, jobstate log, node status, history ads, stats records and DB."""

    def __init__(
        self,
        dag: Dag,
        run_dir: Path,
        db: Any | None,
        dag_cluster: int,
        records: dict[str, dict[str, Any]],
        status_interval: float = 5.0,
        site: str = "local",
    ) -> None:
        self.dag = dag
        self.run_dir = run_dir
        self.db = db
        self.site = site
        self.dag_cluster = dag_cluster
        self.records = records  # pilot records by executor key (LocalExecutor.records)
        dag_file = str(dag.path)
        self.events = EventLogWriter(names.nodes_log(dag_file))
        jobstate = str(dag.directory / dag.jobstate_log) if dag.jobstate_log else names.jobstate_log(dag_file)
        self.jobstate = JobstateLogWriter(jobstate)
        if os.path.exists(jobstate):
            self.jobstate.resume_sequence(read_jobstate(jobstate))  # a resumed run appends to the same log
        self.status_path = (
            str(dag.directory / dag.node_status_file) if dag.node_status_file else names.status_file(dag_file)
        )
        self.status_interval = float(dag.node_status_interval or status_interval)
        self._last_status = 0.0
        self._pending_records: list[dict[str, Any]] = []
        self._pending_ads: list[tuple[str, int, str]] = []
        self._pending_started: list[tuple[str, int, str | None, float]] = []
        self.host = socket.gethostname()
        self.owner = getpass.getuser()
        (run_dir / names.HISTORY_DIR).mkdir(exist_ok=True)
        (run_dir / names.STATS_DIR).mkdir(exist_ok=True)
        self.recorded = 0
        self.batch_s = 1.0
        self.batch_max = 2000
        self._last_commit = 0.0
        self.on_round: Any = None  # called at the end of every round (the progress display)

    # ---- Recorder -------------------------------------------------------------------------------------------

    def pre_started(self, node: Node, retry: int) -> None:
        self.jobstate.pre_script_started(node.name)

    def pre_finished(self, node: Node, ex: Exit) -> None:
        self.jobstate.pre_script_result(node.name, ex.value)

    def job_started(self, node: Node, attempt: int, cluster: int, launch: Launch) -> None:
        now = time.time()
        self.events.submit(cluster, 0, node.name, now)
        props: dict[str, object] = {"Cpus": launch.cpus, "Memory": launch.memory_mb}
        self.events.execute(cluster, 0, slot=f"slot1@{self.host}", props=props, when=now)
        self.jobstate.submit(node.name, cluster)
        self.jobstate.job_event(node.name, "EXECUTE", cluster)
        self._pending_started.append((node.name, attempt, self.host, now))

    def job_finished(self, node: Node, attempt: int, cluster: int, launch: Launch, ex: Exit) -> None:
        record = self.records.pop(launch.key, None)
        if record is None:
            record = self._make_record(node, attempt, launch, ex)
        peak_mb = record.get("peak_rss_mb") or ex.maxrss_kb / 1024.0
        usage = Usage(
            user_cpu_s=ex.user_cpu,
            sys_cpu_s=ex.sys_cpu,
            cpus_request=launch.cpus,
            memory_mb_usage=int(peak_mb + 0.999),
            memory_mb_request=launch.memory_mb or None,
            time_execute_s=int(ex.end - ex.start),
        )
        if ex.exit_code is not None:
            self.events.terminated(cluster, 0, return_value=ex.exit_code, usage=usage, when=ex.end)
        elif ex.signal is not None:
            self.events.terminated(cluster, 0, signal=ex.signal, usage=usage, when=ex.end)
        else:  # it never started
            self.events.aborted(cluster, 0, ex.error or "the job could not be started", when=ex.end)
        self.jobstate.job_event(node.name, "JOB_TERMINATED", cluster)
        self.jobstate.job_result(node.name, ex.value)
        ad = self._job_ad(node, attempt, cluster, launch, ex, record)
        text = classads.format_ad(ad)
        (self.run_dir / names.job_ad(node.name, attempt)).write_text(text)
        self._pending_records.append(record)
        # ingest parses the text again; its parser refuses the blank line that ends an ad in a file
        self._pending_ads.append((node.name, attempt, text.rstrip("\n") + "\n"))

    def post_started(self, node: Node, cluster: int) -> None:
        self.jobstate.post_script_started(node.name, cluster)

    def post_finished(self, node: Node, cluster: int, ex: Exit) -> None:
        self.events.post_script_terminated(cluster, 0, node.name, ex.exit_code, ex.signal, when=ex.end)
        self.jobstate.job_event(node.name, "POST_SCRIPT_TERMINATED", cluster)
        self.jobstate.post_script_result(node.name, ex.value, cluster)

    def node_finished(self, node: Node, ok: bool) -> None:
        pass  # the events above already say it; the status file is rewritten by flush()

    def flush(self, engine: RunView, force: bool = False) -> None:
        """End of a scheduling round: flush the logs, commit the round's attempts, maybe rewrite the status."""
        now = time.time()
        # one transaction per round, but rounds of one job each would make the DB the bottleneck: commit
        # when the batch is big or old enough. Stats records are on disk already; resume re-ingests them.
        pending = len(self._pending_records) + len(self._pending_started)
        if force or pending >= self.batch_max or now - self._last_commit >= self.batch_s:
            self.commit()
            self._last_commit = now
        if force or now - self._last_status >= self.status_interval:
            write_node_status(self.status_path, status_report(engine, self.status_interval))
            # a big DAG's status file costs more to write: keep it under ~5% of the run's time
            self._last_status = time.time() + 20 * (time.time() - now)
        if self.on_round is not None:
            self.on_round()

    def commit(self) -> None:
        if not self._pending_records and not self._pending_started:
            return
        records, ads, started = self._pending_records, self._pending_ads, self._pending_started
        self._pending_records, self._pending_ads, self._pending_started = [], [], []
        self.recorded += len(records)
        if self.db is None:
            return
        from iceprod_dag.stats.ingest import ingest_job_ads, ingest_records, record_attempts_started

        # attempts that also ended in this batch need no running row: their records say it all
        ended = {(r.get("node"), r.get("attempt")) for r in records}
        started = [s for s in started if (s[0], s[1]) not in ended]
        record_attempts_started(
            self.db, run_dir=self.run_dir, site=self.site, started=started, dataset=self.dag.path.stem
        )
        if not records:
            return
        ingest_records(self.db, records, run_dir=self.run_dir, site=self.site, on_stale="skip")
        name = records[0].get("dataset")
        ingest_job_ads(self.db, ads, run_dir=self.run_dir, site=self.site, dataset=name, on_stale="skip")

    def close(self) -> None:
        self.events.close()
        self.jobstate.close()

    # ---- records --------------------------------------------------------------------------------------------

    def _make_record(self, node: Node, attempt: int, launch: Launch, ex: Exit) -> dict[str, Any]:
        """A stats record (docs/contracts.md) for a job that is not our pilot, from what wait4 reported."""
        split = names.split_node_name(node.name)
        wall = max(0.0, ex.end - ex.start)
        cpu = ex.user_cpu + ex.sys_cpu
        failure = None
        if ex.error is not None or ex.signal is not None:
            failure = (
                FailureCategory.KILLED.value if ex.signal is not None else FailureCategory.PILOT_ERROR.value
            )
        elif ex.exit_code:
            failure = FailureCategory.TASK_FAILED.value
        rel = os.path.relpath
        record = {
            "format": 1,
            "dataset": self.dag.path.stem,
            "task": split[0] if split else node.name,
            "job": split[1] if split else None,
            "node": node.name,
            "attempt": attempt,
            "site": self.site,
            "host": self.host,
            "start": ex.start,
            "end": ex.end,
            "wall_s": wall,
            "cpu_user_s": ex.user_cpu,
            "cpu_sys_s": ex.sys_cpu,
            "cpu_efficiency": (cpu / (wall * launch.cpus)) if wall > 0 else None,
            "request": {"cpus": launch.cpus, "memory_mb": launch.memory_mb or None},
            "peak_rss_mb": ex.maxrss_kb / 1024.0,
            "exit_code": ex.exit_code,
            "signal": ex.signal,
            "pilot_exit_code": ex.value if ex.exit_code is not None else None,
            "failure": failure,
            "logs": {
                "stdout": rel(launch.stdout, self.run_dir) if launch.stdout else None,
                "stderr": rel(launch.stderr, self.run_dir) if launch.stderr else None,
            },
        }
        path = self.run_dir / names.stats_record(node.name, attempt)
        path.write_text(json.dumps(record))
        return record

    def _job_ad(
        self, node: Node, attempt: int, cluster: int, launch: Launch, ex: Exit, record: dict[str, Any]
    ) -> dict[str, Any]:
        wall = max(0.0, ex.end - ex.start)
        rss_kb = int((record.get("peak_rss_mb") or ex.maxrss_kb / 1024.0) * 1024)
        return {
            "ClusterId": cluster,
            "ProcId": 0,
            "GlobalJobId": f"{self.host}#{cluster}.0#{int(ex.start)}",
            "DAGNodeName": node.name,
            "DAGManJobId": self.dag_cluster,
            "DAGParentNodeNames": ",".join(node.parents),
            "Cmd": launch.info.get("Cmd", launch.argv[0]),
            "Args": launch.info.get("Args", ""),
            "Iwd": launch.cwd,
            "Out": launch.stdout or "/dev/null",
            "Err": launch.stderr or "/dev/null",
            "Owner": self.owner,
            "User": f"{self.owner}@{self.host}",
            "JobUniverse": 5,
            "JobStatus": 4,  # Completed: condor_history shows finished jobs, whatever their exit code
            "ExitBySignal": ex.signal is not None,
            "ExitCode": ex.exit_code if ex.exit_code is not None else None,
            "ExitSignal": ex.signal,
            "QDate": int(ex.start),
            "JobStartDate": int(ex.start),
            "JobCurrentStartDate": int(ex.start),
            "EnteredCurrentStatus": int(ex.end),
            "CompletionDate": int(ex.end),
            "RemoteWallClockTime": float(round(wall, 3)),
            "CumulativeRemoteUserCpu": float(ex.user_cpu),
            "CumulativeRemoteSysCpu": float(ex.sys_cpu),
            "RemoteUserCpu": float(ex.user_cpu),
            "RemoteSysCpu": float(ex.sys_cpu),
            "MemoryUsage": (rss_kb + 1023) // 1024,
            "ResidentSetSize": rss_kb,
            "ResidentSetSize_RAW": rss_kb,
            "RequestMemory": int(launch.memory_mb or 0),
            "RequestCpus": int(launch.cpus),
            "NumJobStarts": 1,
            "JobRunCount": 1,
            "LastRemoteHost": f"slot1@{self.host}",
            "DAGManNodesLog": str(self.events.path),
            "IceProdAttempt": attempt,
            "IceProdFailure": record.get("failure"),
        }
