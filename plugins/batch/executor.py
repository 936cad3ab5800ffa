"""The engine's executor on a batch system: node jobs go to the batch queue, PRE/POST scripts run here.

Jobs the engine starts in one round are submitted together at its next wait(): grouped into array jobs by
shape (plugins/batch/translate.py), one submit command per group. Their ends are seen by polling: one batched
query of the queue plus the exit markers the job scripts write on the shared file system. A failed submit
command is tried again with a growing delay, as DAGMan does (DAGMAN_MAX_SUBMIT_ATTEMPTS, 6 tries), after which
the attempt fails. Scripts run as local processes on the submit host, as DAGMan runs them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import IceprodDagError
from iceprod_dag.common.states import JobState
from iceprod_dag.dagman.engine.executor import Executor, Exit, Launch
from iceprod_dag.dagman.engine.processes import ProcessExecutor
from iceprod_dag.plugins.batch import state as st
from iceprod_dag.plugins.batch.jobdesc import JobRequest
from iceprod_dag.plugins.batch.system import BatchSystem
from iceprod_dag.plugins.batch.translate import group_requests

log = logging.getLogger(__name__)

#: polls a job may be gone from the queue without an exit marker before it counts as lost
MISSING_POLLS = 3
#: seconds between polls right after something changed; doubles up to the site's poll interval when quiet
FAST_POLL_S = 0.5
#: seconds an ended job may lack its exit marker (shared file system lag) before it counts as lost
MARKER_GRACE_S = 5.0
#: DAGMan's DAGMAN_MAX_SUBMIT_ATTEMPTS: tries of a failing submit command before the attempt fails
SUBMIT_ATTEMPTS = 6


@dataclasses.dataclass
class _Job:
    launch: Launch
    request: JobRequest
    start: float
    job_id: str = ""
    missing_polls: int = 0
    missing_since: float | None = None


class BatchExecutor(Executor):
    """Submits node jobs to a batch site in arrays and follows them with one batched query per poll."""

    def __init__(self, site: BatchSystem, run_dir: Path) -> None:
        self.site = site
        self.run_dir = Path(run_dir)
        self.scripts = ProcessExecutor()
        self._to_submit: list[_Job] = []
        self._queued: dict[str, _Job] = {}  # launch key -> job in the batch system
        self._pending: list[Exit] = []  # ended without a poll (killed, never submitted)
        self._submit_failures = 0
        self._next_submit = 0.0
        self._delay = FAST_POLL_S
        self._next_poll = 0.0
        self.exit_dir = self.run_dir / names.BATCH_EXIT_DIR
        for sub in (names.BATCH_EXIT_DIR, names.BATCH_SCRIPTS_DIR, names.BATCH_OUT_DIR):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)

    # ---- Executor -------------------------------------------------------------------------------------------

    def fits(self, cpus: int, memory_mb: int) -> bool:
        return True  # the batch system queues what does not fit yet

    def start(self, launch: Launch) -> None:
        if launch.script:
            self.scripts.start(launch)
            return
        request = launch.info["request"]
        assert isinstance(request, JobRequest)
        # set_cluster may have substituted $(Cluster) in the arguments
        request = dataclasses.replace(request, argv=tuple(launch.argv))
        self._to_submit.append(_Job(launch, request, time.time()))

    def active(self) -> int:
        return self.scripts.active() + len(self._to_submit) + len(self._queued) + len(self._pending)

    def wait(self, timeout: float | None) -> list[Exit]:
        now = time.time()
        if self._to_submit and now >= self._next_submit:
            self._submit()
        done, self._pending = self._pending, []
        if self._queued and now >= self._next_poll:
            ended = self._poll()
            done += ended
            # poll again soon while things move (a layer ending releases the next), back off when quiet
            self._delay = FAST_POLL_S if ended else min(self._delay * 2, self.site.watch_interval)
            self._next_poll = time.time() + self._delay
        wake = [
            t for t, due in ((self._next_poll, self._queued), (self._next_submit, self._to_submit)) if due
        ]
        if done:
            timeout = 0
        elif wake:
            until = max(0.0, min(wake) - time.time())
            timeout = until if timeout is None else min(timeout, until)
        return done + self.scripts.wait(timeout)

    def kill_all(self) -> None:
        self.scripts.kill_all()
        now = time.time()
        ids = [job.job_id for job in self._queued.values() if job.job_id]
        if ids:
            # each array once by its id (one argument for 1,000 elements; all its elements are ours)
            self.site.cancel_jobs(sorted({self.site.array_id(j) for j in ids}))
        for job in [*self._queued.values(), *self._to_submit]:
            self._pending.append(Exit(job.launch.key, 0, None, 9, job.start, now, error="removed"))
        self._queued.clear()
        self._to_submit.clear()

    def close(self) -> None:
        self.scripts.close()

    # ---- submission -----------------------------------------------------------------------------------------

    def _submit(self) -> None:
        jobs, self._to_submit = self._to_submit, []
        by_key = {job.launch.key: job for job in jobs}
        key_of = {(job.request.node, job.request.attempt): job.launch.key for job in jobs}
        cwd = {j.request.node: str(j.launch.info["cwd"]) for j in jobs if j.launch.info.get("cwd")}
        groups = group_requests(
            [(job.request, (), ()) for job in jobs],
            str(self.run_dir),
            max_array=int(self.site.options.get("max_array", 1000)),
            python=str(self.site.options.get("python", "python3")),
            cwd=cwd,
        )
        stale = set(os.listdir(self.exit_dir))  # left by an attempt that never reported (watcher killed)
        for job in jobs:
            if f"{job.request.node}.{job.request.attempt}" in stale:
                st.exit_marker(self.run_dir, job.request.node, job.request.attempt).unlink(missing_ok=True)
        failed: list[_Job] = []
        for group in groups:
            members = [by_key[key_of[(r.node, r.attempt)]] for r in group.requests]
            script = self.run_dir / names.BATCH_SCRIPTS_DIR / f"{group.name}.sh"
            script.write_text(self.site.script(group))
            try:
                out = self.site.command(
                    self.site.submit_argv(group, script),
                    input=self.site.submit_input(group, script),
                    cwd=str(self.run_dir),
                )
                ids = self.site.parse_submit(out, group)
            except IceprodDagError as exc:
                log.error("submitting %s failed: %s", group.name, exc)
                for job in members:
                    job.launch.info["submit_error"] = str(exc)
                failed += members
                continue
            for job, job_id in zip(members, ids, strict=True):
                job.job_id = job_id
                job.launch.info["job_id"] = job_id
                self._queued[job.launch.key] = job
            log.info("submitted %s: %d node(s) as %s", group.name, len(ids), self.site.array_id(ids[0]))
        if self._queued:  # first look soon, but not at once: nothing submitted just now has ended
            soon = time.time() + FAST_POLL_S
            self._next_poll = soon if self._next_poll <= time.time() else min(self._next_poll, soon)
        if not failed:
            self._submit_failures = 0
            return
        self._submit_failures += 1
        if self._submit_failures >= SUBMIT_ATTEMPTS:
            self._submit_failures = 0
            now = time.time()
            for job in failed:
                why = f"submit failed {SUBMIT_ATTEMPTS} times: {job.launch.info['submit_error']}"
                self._pending.append(Exit(job.launch.key, 0, None, None, job.start, now, error=why))
            return
        self._to_submit = failed + self._to_submit
        self._next_submit = time.time() + 2 ** (self._submit_failures - 1)

    # ---- polling --------------------------------------------------------------------------------------------

    def _poll(self) -> list[Exit]:
        try:
            live = self.site.query_jobs(sorted({job.job_id for job in self._queued.values()}))
        except IceprodDagError as exc:  # the scheduler is briefly unreachable: try at the next poll
            log.warning("polling the batch queue failed: %s", exc)
            return []
        markers = set(os.listdir(self.exit_dir))
        grace = float(self.site.options.get("marker_grace_s", MARKER_GRACE_S))
        out: list[Exit] = []
        stale: list[str] = []
        now = time.time()
        for key, job in list(self._queued.items()):
            req = job.request
            rc, acct_id = None, ""
            if f"{req.node}.{req.attempt}" in markers:
                rc, acct_id = st.read_exit(self.run_dir, req.node, req.attempt)
            found = live.get(job.job_id)
            if rc is None:
                if found is not None and not found[0].finished:
                    job.missing_polls, job.missing_since = 0, None
                    continue
                # a shared file system may show the marker a little late: give it a few polls and seconds
                job.missing_polls += 1
                job.missing_since = job.missing_since or now
                if job.missing_polls < MISSING_POLLS or now - job.missing_since < grace:
                    continue
                why = f"job {job.job_id} ended without an exit code ({found[1] if found else 'gone'})"
                out.append(Exit(key, 0, None, None, job.start, now, error=why))
            else:
                if rc != 0 and found is not None and found[0] is JobState.HELD:
                    # Grid Engine keeps a failed (exit 100) job in error state: remove it
                    stale.append(job.job_id)
                if acct_id:
                    job.launch.info["acct_id"] = acct_id
                out.append(Exit(key, 0, rc, None, job.start, now))
            del self._queued[key]
        if stale:
            self.site.cancel_jobs(stale)
        return out
