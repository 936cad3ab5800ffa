"""The submit-side watcher of a batch run: the DAG engine (iceprod_dag.dagman.engine) over a BatchExecutor.

A batch site thus gets exactly the local site's DAG semantics (ready sets, RETRY, PRE/POST scripts run here
on the submit host, categories, ABORT-DAG-ON, FINAL, the halt file, the rescue DAG). The run's state file
(plugins/batch/state.py) is rewritten as it changes, so a resubmit skips done nodes and continues attempt
numbers. Run detached as ``python -m iceprod_dag.plugins.batch.watcher RUNDIR``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from pathlib import Path

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import IceprodDagError, SiteError
from iceprod_dag.dagman.engine.engine import DagEngine
from iceprod_dag.dagman.model import Dag
from iceprod_dag.dagman.parser import load_rescue
from iceprod_dag.plugins.batch import state as st
from iceprod_dag.plugins.batch.executor import BatchExecutor
from iceprod_dag.plugins.batch.jobs import BatchJobBuilder
from iceprod_dag.plugins.batch.recorder import BatchRecorder
from iceprod_dag.plugins.batch.system import BatchSystem
from iceprod_dag.sites.runinfo import update_run_info

log = logging.getLogger(__name__)

#: seconds a stopped watcher waits for the batch system to confirm its cancelled jobs are recorded
DRAIN_S = 10.0


class Watcher:
    """Follows one run folder's DAG on one batch site."""

    def __init__(self, site: BatchSystem, run_dir: Path) -> None:
        self.site = site
        self.run_dir = Path(run_dir)
        self.dag_file = site.options.get("dag_file") or names.find_dag_file(str(self.run_dir))
        self.dag: Dag = load_rescue(self.dag_file)
        self.halt_file = Path(names.halt_file(str(self.dag_file)))
        self.state = st.load(self.run_dir) or st.RunState(site=site.name)
        self.engine: DagEngine | None = None

    def prepare(self) -> None:
        """Start (or restart) the run: done nodes stay done, the rest get their full RETRY budget again."""
        if self.state.site != self.site.name:
            raise SiteError(f"{self.run_dir} runs on site {self.state.site!r}, not {self.site.name!r}")
        if st.watcher_alive(self.state) and self.state.watcher_pid != os.getpid():
            raise SiteError(f"{self.run_dir} is already followed by watcher pid {self.state.watcher_pid}")
        self.state.options = dict(self.site.options)
        # as condor_submit_dag does: a (re)submitted DAG starts unhalted
        self.halt_file.unlink(missing_ok=True)
        self.state.finished, self.state.exit_code = False, None
        self.state.submissions += 1
        leftover = [s.job_id for s in self.state.nodes.values() if s.status == st.QUEUED and s.job_id]
        if leftover:  # a watcher that died (kill -9, reboot) left jobs queued: their nodes run again
            log.warning("removing %d job(s) left queued by an earlier watcher", len(leftover))
            self.site.cancel_jobs(sorted({self.site.array_id(j) for j in leftover}))
        for name, node in self.dag.nodes.items():
            ns = self.state.node(name)
            if node.done:
                ns.status = st.DONE
            if ns.status != st.DONE:
                ns.status, ns.job_id = st.WAITING, None
        self.adopt(os.getpid())

    def adopt(self, pid: int) -> None:
        """Record which process follows the run."""
        self.state.watcher_pid, self.state.watcher_host = pid, socket.gethostname()
        st.save(self.run_dir, self.state)

    def run(self) -> int:
        """Run the DAG to its end (or SIGTERM: the queued jobs are removed); return DAGMan's exit status."""
        self.adopt(os.getpid())
        done = [n for n, s in self.state.nodes.items() if s.status == st.DONE]
        # attempt numbers continue across resubmits, so stats records and accounting never collide
        attempts = {n: 1 + max(map(int, s.jobs)) for n, s in self.state.nodes.items() if s.jobs}
        executor = BatchExecutor(self.site, self.run_dir)
        jobs = BatchJobBuilder(self.dag, self.run_dir, self.site.name)
        engine = self.engine = DagEngine(
            self.dag,
            executor,
            BatchRecorder(self.run_dir, self.state),
            jobs,
            done=done,
            attempts=attempts,
            halt_file=str(self.halt_file),
        )
        jobs.dag_state = lambda: (int(engine.status), len(engine.failed))
        engine.on_halt_exit = lambda: update_run_info(self.run_dir, halted=True)
        update_run_info(self.run_dir, halted=False)
        stopped: list[int] = []

        def on_term(signum: int, frame: object) -> None:
            stopped.append(signum)
            engine.stop()  # the jobs are removed below, outside the handler

        previous = signal.signal(signal.SIGTERM, on_term)
        try:
            status = engine.run()
            if stopped:
                executor.kill_all()
                engine.drain(DRAIN_S)
        finally:
            signal.signal(signal.SIGTERM, previous)
            executor.close()
        if stopped or status != 0:
            engine.write_rescue()
        if not stopped:
            self.state.finished, self.state.exit_code = True, status
            log.info("DAG finished with status %d", status)
        st.save(self.run_dir, self.state)
        return status


def main(argv: list[str] | None = None) -> int:
    """Entry of the detached watcher process: follow RUNDIR with the site and options its state names."""
    from iceprod_dag.sites.registry import load_site

    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_dir = Path(args[0]).resolve()
    saved = st.load(run_dir)
    if saved is None:
        log.error("%s has no %s", run_dir, names.BATCH_STATE)
        return 2
    site = load_site(saved.site, saved.options)
    if not isinstance(site, BatchSystem):
        log.error("%s: site %r is not a batch site", run_dir, saved.site)
        return 2
    try:
        return Watcher(site, run_dir).run()
    except IceprodDagError as exc:
        log.error("watcher stopped: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
