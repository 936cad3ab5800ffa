"""Pilot mode: run several jobs at once inside a resource envelope, taking them from a WorkSource.

Jobs are packed by their requests (cpus, gpus, disk) and by the memory the running jobs hold (their usage
or their request, whichever is larger, so borrowed memory is not handed out twice). Each job runs in its own
thread through JobRun; one Supervisor samples them all, holds each to its own limit (lending unused envelope
memory beyond it only with ``lend_memory``, where a site allows it) and kills the most-over job first when
the envelope is exhausted (see limits.py).
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.pilot import runjob
from iceprod_dag.pilot.spec import JobSpec, Resources, load_spec, resolve_job
from iceprod_dag.pilot.supervisor import Supervisor
from iceprod_dag.pilot.worksource import WorkItem, WorkSource

log = logging.getLogger(__name__)


def _meminfo_mb(field: str) -> Optional[float]:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def detect_envelope(scratch: Optional[str] = None) -> Resources:
    """This node's resources when the pilot is not told: all cpus, available memory, free scratch disk."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        disk = shutil.disk_usage(scratch or runjob.scratch_dir()).free / (1024.0 * 1024.0)
    except OSError:
        disk = None
    return Resources(cpus=cpus, memory_mb=_meminfo_mb("MemAvailable"), disk_mb=disk, gpus=0, walltime_s=None)


class Pilot:
    """Runs WorkItems from ``source`` concurrently within ``envelope`` until the source is finished."""

    def __init__(
        self,
        source: WorkSource,
        envelope: Resources,
        site: Optional[str] = None,
        sample_interval_s: float = 1.0,
        poll_s: float = 0.5,
        use_psutil: Optional[bool] = None,
        base_dir: Optional[str] = None,
        scratch: Optional[str] = None,
        idle_timeout_s: Optional[float] = None,
        lend_memory: bool = False,
    ) -> None:
        self.source = source
        #: let a job past its own memory limit while the envelope has room (only where the site says so)
        self.lend_memory = lend_memory
        self.idle_timeout_s = idle_timeout_s
        self.envelope = envelope
        self.site = site
        self.sample_interval_s = sample_interval_s
        self.poll_s = poll_s
        self.use_psutil = use_psutil
        self.base_dir = base_dir or os.getcwd()
        self.scratch = scratch
        self.records: List[Dict[str, Any]] = []
        self._specs: Dict[str, Any] = {}
        self._running: Dict[str, Tuple[WorkItem, JobSpec]] = {}
        self._done: "queue.Queue[Optional[Tuple[str, WorkItem, Dict[str, Any]]]]" = queue.Queue()
        self._supervisor: Optional[Supervisor] = None
        self._stopping = False
        # GPUs are handed out by id (CUDA_VISIBLE_DEVICES), not just counted, so jobs do not share one
        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        self._free_gpus = visible if len(visible) >= envelope.gpus else [str(i) for i in range(envelope.gpus)]
        self._gpus_of: Dict[str, List[str]] = {}
        self._workdirs: List[str] = []
        self._all_workdirs: List[str] = []
        self._started = 0.0

    def _new_workdir(self) -> str:
        scratch = self.scratch or runjob.scratch_dir()
        workdir = tempfile.mkdtemp(prefix=f"pilot{os.getpid()}-", dir=scratch)
        self._all_workdirs.append(workdir)
        return workdir

    def stop(self, reason: str = "the pilot was told to stop") -> None:
        """Claim no more work and kill the running jobs (recorded as "killed"); run() then returns."""
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.terminate(reason)
        self.wake()

    def wake(self) -> None:
        """Claim at once instead of at the next poll (thread-safe: a WorkSource calls it when work arrives)."""
        self._done.put(None)

    def signal_jobs(self, sig: int) -> int:
        """Send ``sig`` to every running module's process group (e.g. the site cancels the run)."""
        return self._supervisor.signal_all(sig) if self._supervisor is not None else 0

    def _resolve(self, item: WorkItem) -> JobSpec:
        path = item.spec if os.path.isabs(item.spec) else os.path.join(self.base_dir, item.spec)
        if path not in self._specs:  # many jobs share one spec: read and parse it once
            self._specs[path] = load_spec(path)
        job = resolve_job(self._specs[path], item.job, item.attempt, source=item.spec)
        runjob.learn_from_previous(job, item.stats, self.base_dir)
        if item.memory_mb is not None:
            job.request.memory_mb = item.memory_mb
        return job

    def _remaining_s(self) -> Optional[float]:
        if self.envelope.walltime_s is None:
            return None
        return self.envelope.walltime_s - (time.monotonic() - self._started)

    def free(self, supervisor: Supervisor) -> Resources:
        """What is left of the envelope for the next job."""
        env, requests = self.envelope, [job.request for _, job in self._running.values()]
        # a job holds its request, or what it uses beyond it (borrowed memory is not handed out twice)
        held = sum(
            max(job.request.memory_mb or 0.0, supervisor.memory_mb(key))
            for key, (_, job) in self._running.items()
        )
        return Resources(
            cpus=env.cpus - sum(r.cpus for r in requests),
            memory_mb=None if env.memory_mb is None else env.memory_mb - held,
            disk_mb=None if env.disk_mb is None else env.disk_mb - sum(r.disk_mb or 0 for r in requests),
            gpus=env.gpus - sum(r.gpus for r in requests),
            walltime_s=self._remaining_s(),
        )

    def _start(self, item: WorkItem, job: JobSpec, supervisor: Supervisor) -> None:
        key = f"{job.node}.{job.attempt}"
        # work dirs are reused: making and removing a dir per job is a large part of the per-job cost on
        # some file systems (rmdir with online discard takes milliseconds)
        workdir = self._workdirs.pop() if self._workdirs else self._new_workdir()
        remaining = self._remaining_s()
        count = min(int(job.request.gpus), len(self._free_gpus))
        gpus = self._gpus_of[key] = [self._free_gpus.pop(0) for _ in range(count)]
        env = {"CUDA_VISIBLE_DEVICES": ",".join(gpus)} if job.request.gpus else {}
        run = runjob.JobRun(
            job,
            supervisor,
            self.site,
            item.stats,
            item.logdir,
            self.base_dir,
            remaining,
            self.scratch,
            workdir,
            env,
            item.submitted,
        )
        self._running[key] = (item, job)
        log.info("starting %s (%s)", key, job.request)

        def target() -> None:
            try:
                rec = run.run()
            except BaseException as exc:  # run() records its own failures; this is a last resort
                log.exception("%s: job thread failed", key)
                error = repr(exc)
                rec = runjob.config_failure(
                    item.spec, item.job, item.attempt, error, self.site, item.stats, "pilot_error"
                )
            if not job.settings.keep_workdir and runjob.empty_dir(workdir):
                self._workdirs.append(workdir)  # list.append is atomic: no lock needed
            self._done.put((key, item, rec))

        threading.Thread(target=target, name=f"job-{key}", daemon=True).start()

    def _fail(self, item: WorkItem, error: str, category: str = "config") -> None:
        rec = runjob.config_failure(item.spec, item.job, item.attempt, error, self.site, item.stats, category)
        self._report(item, rec)

    def _report(self, item: WorkItem, rec: Dict[str, Any]) -> None:
        self.records.append(rec)
        try:
            self.source.report(item, rec)
        except Exception:  # the record is on disk anyway; keep the other jobs going
            log.exception("work source refused the record of %s", rec.get("node"))

    def _fill(self, supervisor: Supervisor, pending: Optional[Tuple[WorkItem, JobSpec]]) -> Any:
        """Start the pending job and claim more while they fit; returns the job still waiting, if any."""
        while True:
            free = self.free(supervisor)
            if pending is not None:
                if not pending[1].request.fits_in(free):
                    return pending
                self._start(pending[0], pending[1], supervisor)
                pending = None
                continue
            remaining = self._remaining_s()
            if self._stopping or (remaining is not None and remaining <= 0):
                return None
            item = self.source.claim(free)
            if item is None:
                return None
            try:
                job = self._resolve(item)
            except ConfigError as exc:
                self._fail(item, str(exc))
                continue
            if not job.request.fits_in(Resources(self.envelope.cpus, self.envelope.memory_mb,
                                                 self.envelope.disk_mb, self.envelope.gpus, remaining)):  # fmt: skip
                self._fail(item, f"{job.node} requests {job.request}, more than the pilot's {self.envelope}")
                continue
            pending = (item, job)

    def run(self) -> List[Dict[str, Any]]:
        """Run until the source is finished and every job is done (or the envelope's time is up)."""
        self._started = time.monotonic()
        pending = None
        idle_since: Optional[float] = None
        with Supervisor(
            self.sample_interval_s, self.envelope.memory_mb, self.use_psutil, self.lend_memory
        ) as supervisor:
            self._supervisor = supervisor
            while True:
                pending = self._fill(supervisor, pending)
                if self._running:
                    idle_since = None
                else:
                    remaining = self._remaining_s()
                    if self._stopping or (pending is None and self.source.finished()):
                        break
                    if remaining is not None and remaining <= 0:
                        break
                    idle_since = idle_since or time.monotonic()
                    if (
                        self.idle_timeout_s is not None
                        and time.monotonic() - idle_since >= self.idle_timeout_s
                    ):
                        log.info("no work for %.1f s: the pilot exits", self.idle_timeout_s)
                        break
                try:
                    done = self._done.get(timeout=self.poll_s)
                except queue.Empty:
                    continue
                while True:  # report every job that finished meanwhile before claiming again
                    if done is not None:  # None: wake() was called
                        key, item, rec = done
                        self._running.pop(key, None)
                        self._free_gpus.extend(self._gpus_of.pop(key, []))
                        self._report(item, rec)
                    try:
                        done = self._done.get_nowait()
                    except queue.Empty:
                        break
        for workdir in self._all_workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
        if pending is not None:
            self._fail(pending[0], "the pilot's envelope ended before this job could start", "pilot_error")
        log.info("pilot done: %d jobs", len(self.records))
        return self.records
