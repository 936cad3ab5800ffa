"""The DAG engine: walk a parsed DAG with DAGMan's semantics, one event at a time, on any executor.

Cost per event is O(log n) whatever the DAG's size: every node keeps a counter of unfinished parents, ready
jobs wait in a heap ordered by PRIORITY, and a CATEGORY at its MAXJOBS parks its jobs in a heap of its own
until one of its jobs ends. Jobs and scripts are started and reaped by the executor (local processes, or batch
jobs with the scripts run on the submit host, as DAGMan runs them); everything worth keeping is written
through the recorder as it happens, and made durable once per scheduling round.

Semantics follow condor_dagman where its manual leaves a doubt:

- a PRE script that fails fails the node without running the job or the POST script (DAGMAN_ALWAYS_RUN_POST
  is False by default), unless its exit code is the node's PRE_SKIP value, which makes the node succeed;
- a script exiting with its DEFER status is run again after the DEFER time, without using a retry;
- the POST script decides success; $RETURN is the job's exit code, or minus the signal that killed it;
- RETRY n UNLESS-EXIT v retries the whole node (PRE, job, POST) unless the node's return value is v;
- ABORT-DAG-ON is checked before RETRY; the DAG's exit status is its RETURN value, or the node's value;
- the FINAL node runs last, even after a failure or an abort, with $DAG_STATUS, and its outcome is the DAG's;
- while the halt file (``<dag>.halt``) exists no job is started and no PRE script run; running jobs finish and
  their POST scripts run. Once nothing runs, the DAG ends halted ($DAG_STATUS 6, FINAL node, rescue DAG);
  removing the halt file before that resumes it in place (condor_dagman's halt file, checked every round).
"""

from __future__ import annotations

import heapq
import logging
import os
import time
from collections.abc import Callable, Iterable

from iceprod_dag.dagman.engine.executor import Executor, Exit, JobBuilder, Launch
from iceprod_dag.dagman.engine.knobs import Knobs, read_knobs
from iceprod_dag.dagman.engine.nodestate import PRE_FAILED_RETURN, DagStatus, JobEnd, NodeRun, NodeState
from iceprod_dag.dagman.engine.recorder import Recorder
from iceprod_dag.dagman.engine.scripts import ScriptSlots, dag_macros, script_launch
from iceprod_dag.dagman.model import Dag, Script
from iceprod_dag.dagman.rescue import write_rescue

__all__ = ["DagEngine", "DagStatus", "NodeState"]

logger = logging.getLogger(__name__)


class DagEngine:
    """Runs one DAG to its end and returns DAGMan's exit status."""

    def __init__(
        self,
        dag: Dag,
        executor: Executor,
        recorder: Recorder,
        build_job: JobBuilder,
        *,
        done: Iterable[str] = (),
        attempts: dict[str, int] | None = None,
        first_cluster: int = 1,
        dag_cluster: int = 0,
        tick: float = 1.0,
        halt_file: str | None = None,
        knobs: Knobs | None = None,
    ) -> None:
        self.dag = dag
        self.executor = executor
        self.recorder = recorder
        self.build_job = build_job
        self.dag_cluster = dag_cluster
        self.tick = tick
        self.knobs = knobs if knobs is not None else read_knobs(dag)
        self._slots = ScriptSlots(self.knobs.max_pre_scripts, self.knobs.max_post_scripts)
        self.runs: dict[str, NodeRun] = {name: NodeRun(node) for name, node in dag.nodes.items()}
        self._next_cluster = first_cluster
        self._seq = 0
        self._ready: list[tuple[int, int, str]] = []  # (-priority, seq, node) jobs waiting for a slot
        self._blocked: dict[str, list[tuple[int, int, str]]] = {}  # category at MAXJOBS -> its waiting jobs
        self._cat_running: dict[str, int] = {}
        self._timers: list[tuple[float, int, str, str]] = []  # (due, seq, node, PRE|POST) deferred scripts
        self._by_key: dict[str, NodeRun] = {}  # executor key -> node run
        self.done_count = 0
        self.failed: list[str] = []
        self.running_jobs = 0
        self.status = DagStatus.OK
        self.exit_code: int | None = None
        self.aborting = False
        self.stopping = False  # SIGINT/SIGTERM: leave quietly, resumable
        self.halt_file = halt_file
        self.halted = False  # the halt file exists: start nothing new
        self.halt_exit = False  # halted with nothing running: the DAG is ending halted
        self._held_pres: list[NodeRun] = []  # nodes whose PRE script waits for the halt to end
        self.on_halt_exit: Callable[[], None] | None = None  # told when the DAG starts ending halted
        self.started = time.time()
        self.finished_jobs = 0
        self.finished = False
        self.exit_status: int | None = None
        final = dag.final
        self._final = self.runs[final] if final else None
        for name in done:
            run = self.runs.get(name)
            if run is not None:
                run.state = NodeState.DONE
        for name, node in dag.nodes.items():
            if node.done:
                self.runs[name].state = NodeState.DONE
        for name, n in (attempts or {}).items():
            if name in self.runs:
                self.runs[name].attempt_base = n

    # ---- public -------------------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until every node is done or can never run, then the FINAL node; return the exit status."""
        self._start_roots()
        while True:
            self._check_halt()
            self._dispatch()
            if self.stopping:
                break
            if self._holding() and not self._by_key:
                self._end_halted()
            if not self._busy():
                if (
                    self._final is not None
                    and self._final.state is NodeState.NOT_READY
                    and self._may_finish()
                ):
                    self._start_final()
                    continue
                break
            timeout = self.tick
            if self._timers:
                timeout = max(0.0, min(timeout, self._timers[0][0] - time.time()))
            for ex in self.executor.wait(timeout):
                self.handle_exit(ex)
            self._fire_timers()
            self.recorder.flush(self)
        if not self.stopping:
            for run in self.runs.values():
                if run.state is NodeState.NOT_READY and self.status not in (DagStatus.OK, DagStatus.HALTED):
                    run.state = NodeState.FUTILE  # a parent failed, or the DAG was aborted
        self.exit_status = self._exit_status()
        self.finished = not self.stopping
        self.recorder.flush(self, force=True)
        return self.exit_status

    def stop(self) -> None:
        """Stop at the next round (signal handler): kill what runs, leave the rest for a resubmit."""
        self.stopping = True

    def drain(self, grace_s: float) -> None:
        """After a stop and the executor's kill_all: wait up to grace_s for the killed launches, so that their
        attempts are recorded, not lost (the stopping flag keeps their nodes undone)."""
        deadline = time.time() + grace_s
        while self._by_key and time.time() < deadline:
            for ex in self.executor.wait(0.2):
                self.handle_exit(ex)
        self.recorder.flush(self, force=True)

    # ---- scheduling -----------------------------------------------------------------------------------------

    # ---- halt file ------------------------------------------------------------------------------------------

    def _holding(self) -> bool:
        return self.halted and not self.halt_exit

    def _check_halt(self) -> None:
        if self.halt_file is None or self.halt_exit:
            return
        halted = os.path.exists(self.halt_file)
        if halted == self.halted:
            return
        self.halted = halted
        logger.warning("%s: %s", self.halt_file, "halted" if halted else "halt file gone, resuming")
        if not halted:
            held, self._held_pres = self._held_pres, []
            for run in held:
                self._start_script(run, run.node.pre)  # type: ignore[arg-type]

    def _end_halted(self) -> None:
        """DAGMan's halted exit: nothing runs any more, so end with $DAG_STATUS 6 (FINAL node, rescue DAG)."""
        logger.warning("the DAG is halted and nothing runs: ending it halted (resubmit to continue)")
        self.halt_exit = True
        self.status = DagStatus.HALTED
        if self.on_halt_exit is not None:
            self.on_halt_exit()
        self._ready.clear()
        self._blocked.clear()
        self._timers.clear()
        for run in [*self._held_pres, *self._slots.drop("PRE")]:
            run.state = NodeState.NOT_READY
        self._held_pres = []

    def _busy(self) -> bool:
        return (
            bool(self._by_key or self._ready or self._timers or self._slots.waiting()) and not self.stopping
        )

    def _may_finish(self) -> bool:
        return not self._by_key and not self._timers and not self._slots.waiting()

    def _start_roots(self) -> None:
        # DONE nodes count as finished parents for their children
        for run in self.runs.values():
            if run.state is NodeState.DONE:
                self.done_count += 1
                for child in run.node.children:
                    self.runs[child].waiting -= 1
        for run in self.runs.values():
            if run.state is NodeState.NOT_READY and run.waiting == 0 and not run.node.final:
                self._make_ready(run)

    def _make_ready(self, run: NodeRun) -> None:
        if self.aborting or self.stopping:
            return
        run.state = NodeState.READY
        if run.node.pre is not None and self._holding():
            self._held_pres.append(run)  # DAGMan runs no PRE script while halted
        elif run.node.pre is not None:
            self._start_script(run, run.node.pre)
        else:
            self._queue_job(run)

    def _queue_job(self, run: NodeRun) -> None:
        run.state = NodeState.READY
        self._seq += 1
        heapq.heappush(self._ready, (-run.node.priority, self._seq, run.node.name))

    def _dispatch(self) -> None:
        """Start queued jobs in priority order while their category and the machine have room."""
        if self.aborting or self.stopping:
            self._ready.clear()
            self._blocked.clear()
            return
        if self._holding():
            return  # queued jobs wait for the halt file to go
        max_jobs = self.dag.max_jobs
        max_submitted = self.knobs.max_jobs_submitted
        while self._ready:
            if max_submitted and self.running_jobs >= max_submitted:
                break  # DAGMAN_MAX_JOBS_SUBMITTED: the rest waits for a job to end
            prio, seq, name = self._ready[0]
            run = self.runs[name]
            cat = run.node.category
            if cat is not None and cat in max_jobs and self._cat_running.get(cat, 0) >= max_jobs[cat]:
                heapq.heappop(self._ready)
                heapq.heappush(self._blocked.setdefault(cat, []), (prio, seq, name))
                continue
            if run.node.noop:
                heapq.heappop(self._ready)
                self._noop(run)
                continue
            launch = run.launch or self.build_job(run.node, run.attempt)
            if not self.executor.fits(launch.cpus, launch.memory_mb):
                run.launch = launch
                break
            heapq.heappop(self._ready)
            run.launch = None
            self._start_job(run, launch)

    def _noop(self, run: NodeRun) -> None:
        # NOOP: the job is never run; scripts still are, and $RETURN is 0
        run.job_rc = 0
        run.job_end = JobEnd.EXIT
        self._after_job(run, 0)

    def _start_job(self, run: NodeRun, launch: Launch) -> None:
        run.state = NodeState.SUBMITTED
        run.cluster = self._next_cluster
        self._next_cluster += 1
        cat = run.node.category
        if cat is not None:
            self._cat_running[cat] = self._cat_running.get(cat, 0) + 1
        self.running_jobs += 1
        launch.key = f"J{run.cluster}"
        launch.set_cluster(run.cluster)
        self._by_key[launch.key] = run
        run.launch = launch
        self.recorder.job_started(run.node, run.attempt, run.cluster, launch)
        self.executor.start(launch)

    def _release_category(self, run: NodeRun) -> None:
        cat = run.node.category
        if cat is None:
            return
        self._cat_running[cat] -= 1
        blocked = self._blocked.get(cat)
        if blocked:
            heapq.heappush(self._ready, heapq.heappop(blocked))

    # ---- scripts --------------------------------------------------------------------------------------------

    def _start_script(self, run: NodeRun, script: Script) -> None:
        if not self._slots.take(script.kind):
            self._slots.park(script.kind, run)  # DAGMAN_MAX_PRE_SCRIPTS / MAX_POST_SCRIPTS
            return
        launch = script_launch(self.dag, run, script, lambda command: dag_macros(self, command))
        self._by_key[launch.key] = run
        if script.kind == "PRE":
            run.state = NodeState.PRERUN
            self.recorder.pre_started(run.node, run.retries)
        else:
            run.state = NodeState.POSTRUN
            self.recorder.post_started(run.node, run.cluster)
        self.executor.start(launch)

    def _next_script(self, kind: str) -> None:
        """A script ended: start the one waiting for its slot, if any (PRE scripts wait out a halt)."""
        run = self._slots.release(kind)
        if run is None or self.aborting or self.stopping:
            return
        if kind == "PRE" and self._holding():
            self._held_pres.append(run)
            return
        self._start_script(run, run.node.pre if kind == "PRE" else run.node.post)  # type: ignore[arg-type]

    def _fire_timers(self) -> None:
        now = time.time()
        while self._timers and self._timers[0][0] <= now:
            _, _, name, kind = heapq.heappop(self._timers)
            run = self.runs[name]
            if self.aborting or self.stopping:
                continue
            if kind == "PRE" and self._holding():
                self._held_pres.append(run)
                continue
            self._start_script(run, run.node.pre if kind == "PRE" else run.node.post)  # type: ignore[arg-type]

    def _deferred(self, run: NodeRun, script: Script, rc: int) -> bool:
        if script.defer_status is None or rc != script.defer_status:
            return False
        self._seq += 1
        heapq.heappush(
            self._timers, (time.time() + (script.defer_time or 0), self._seq, run.node.name, script.kind)
        )
        logger.info("%s script of %s deferred %ss", script.kind, run.node.name, script.defer_time)
        return True

    # ---- events ---------------------------------------------------------------------------------------------

    def handle_exit(self, ex: Exit) -> None:
        """One process of the run ended: move its node on."""
        run = self._by_key.pop(ex.key)
        kind = ex.key.partition(":")[0]
        if kind in ("PRE", "POST"):
            self._next_script(kind)
        if kind == "PRE":
            self._on_pre(run, ex)
        elif kind == "POST":
            self._on_post(run, ex)
        else:
            self._on_job(run, ex)

    def _on_pre(self, run: NodeRun, ex: Exit) -> None:
        self.recorder.pre_finished(run.node, ex)
        if self.stopping or self.aborting:
            return
        rc = ex.value
        pre = run.node.pre
        assert pre is not None
        if self._deferred(run, pre, rc):
            return
        run.pre_rc = rc
        if rc == 0:
            self._queue_job(run)
        elif run.node.pre_skip is not None and rc == run.node.pre_skip:
            self._node_succeeded(run)
        elif self.knobs.always_run_post and run.node.post is not None:
            # DAGMAN_ALWAYS_RUN_POST: the job is not run, the POST script decides with $RETURN -1004
            run.job_rc, run.job_end = PRE_FAILED_RETURN, JobEnd.NONE
            self._start_script(run, run.node.post)
        else:
            self._node_failed(run, rc)

    def _on_job(self, run: NodeRun, ex: Exit) -> None:
        self.running_jobs -= 1
        self.finished_jobs += 1
        self._release_category(run)
        launch = run.launch
        assert launch is not None
        run.launch = None
        self.recorder.job_finished(run.node, run.attempt, run.cluster, launch, ex)
        run.job_rc = ex.value
        run.job_end = JobEnd.ABORTED if ex.error is not None else JobEnd.EXIT
        if self.stopping or self.aborting:
            return  # removed by an abort or an interrupt: the node stays undone
        self._after_job(run, ex.value)

    def _after_job(self, run: NodeRun, value: int) -> None:
        if run.node.post is not None:
            self._start_script(run, run.node.post)
        elif value == 0:
            self._node_succeeded(run)
        else:
            self._node_failed(run, value)

    def _on_post(self, run: NodeRun, ex: Exit) -> None:
        self.recorder.post_finished(run.node, run.cluster, ex)
        if self.stopping or self.aborting:
            return
        post = run.node.post
        assert post is not None
        if self._deferred(run, post, ex.value):
            return
        if ex.value == 0:
            self._node_succeeded(run)
        else:
            self._node_failed(run, ex.value)

    def _node_succeeded(self, run: NodeRun) -> None:
        node = run.node
        if self._check_abort(run, 0):
            return
        run.state = NodeState.DONE
        self.done_count += 1
        self.recorder.node_finished(node, True)
        for child in node.children:
            crun = self.runs[child]
            crun.waiting -= 1
            if crun.waiting == 0 and crun.state is NodeState.NOT_READY and not crun.node.final:
                self._make_ready(crun)

    def _node_failed(self, run: NodeRun, value: int) -> None:
        node = run.node
        if self._check_abort(run, value):
            return
        if (
            run.retries < node.retry
            and not (node.unless_exit is not None and value == node.unless_exit)
            and not self.aborting
            and not self.stopping
            and not node.final
        ):
            run.retries += 1
            logger.info("retrying %s (%d of %d) after exit %d", node.name, run.retries, node.retry, value)
            run.job_rc = 0
            run.pre_rc = -1
            self._make_ready(run)
            return
        self._mark_failed(run)

    def _mark_failed(self, run: NodeRun) -> None:
        run.state = NodeState.ERROR
        self.failed.append(run.node.name)
        if self.status is DagStatus.OK:
            self.status = DagStatus.NODE_FAILED
        self.recorder.node_finished(run.node, False)

    def _check_abort(self, run: NodeRun, value: int) -> bool:
        abort = run.node.abort_dag_on
        if abort is None or value != abort[0] or run.node.final:
            return False
        logger.warning("node %s exited %d: ABORT-DAG-ON aborts the DAG", run.node.name, value)
        if value != 0:
            self._mark_failed(run)
        else:
            run.state = NodeState.DONE
            self.done_count += 1
            self.recorder.node_finished(run.node, True)
        self.status = DagStatus.ABORT
        self.exit_code = abort[1] if abort[1] is not None else value
        self.aborting = True
        self._ready.clear()
        self._blocked.clear()
        self._timers.clear()
        self._slots.drop("PRE")
        self._slots.drop("POST")
        self.executor.kill_all()
        return True

    def _start_final(self) -> None:
        run = self._final
        assert run is not None
        logger.info("running FINAL node %s with DAG_STATUS %d", run.node.name, int(self.status))
        self.aborting = False  # the FINAL node runs even after an abort
        self._make_ready(run)

    def _exit_status(self) -> int:
        if self.stopping:
            return 1
        final = self._final
        if final is not None and final.state in (NodeState.DONE, NodeState.ERROR):
            # DAGMan: the FINAL node's outcome overrides every earlier status, ABORT-DAG-ON's included
            return 0 if final.state is NodeState.DONE else 1
        if self.status is DagStatus.ABORT:
            return self.exit_code if self.exit_code is not None else 1
        if self.failed or self.status is not DagStatus.OK:
            return 1
        undone = sum(1 for r in self.runs.values() if r.state is not NodeState.DONE)
        return 0 if undone == 0 else 1

    # ---- for the recorder -----------------------------------------------------------------------------------

    def done_nodes(self) -> list[str]:
        return [name for name, run in self.runs.items() if run.state is NodeState.DONE]

    def write_rescue(self) -> None:
        """DAGMan's rescue DAG, when the run ended with nodes undone (failed, halted, stopped)."""
        undone = [n for n, r in self.runs.items() if r.state is not NodeState.DONE and not r.node.final]
        if self.status is DagStatus.ABORT and self.exit_code == 0:
            undone = []  # DAGMan: ABORT-DAG-ON ... RETURN 0 ends the DAG as a success, with no rescue DAG
        final_failed = self._final is not None and self._final.state is NodeState.ERROR
        if undone or final_failed:  # DAGMan writes one when only the FINAL node failed too
            retries = {n: r.retries for n, r in self.runs.items()}
            write_rescue(self.dag, self.done_nodes(), self.failed, retries_used=retries)
