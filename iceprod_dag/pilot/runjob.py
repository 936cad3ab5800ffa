"""One attempt of one job: work dir in scratch, stage in, run the modules, stage out, write the stats record.

``JobRun.run`` never raises: whatever happens ends as a stats record with a failure category and the pilot
exit code DAGMan acts on. Modules start in their own session so their whole tree can be signalled; the
pilot waits for each with wait4, whose rusage covers the module and every descendant it reaped.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, Optional, Tuple

from iceprod_dag.common import names
from iceprod_dag.pilot import exact, limits, record, staging
from iceprod_dag.pilot.spec import JobSpec, ModuleSpec
from iceprod_dag.pilot.supervisor import Supervisor, Watched

log = logging.getLogger(__name__)

SCRATCH_VARIABLES = ("_CONDOR_SCRATCH_DIR", "TMPDIR", "SLURM_TMPDIR")
#: ru_maxrss is KiB on Linux, bytes on macOS
MAXRSS_MB = 1.0 / (1024 * 1024) if sys.platform == "darwin" else 1.0 / 1024


LOG_KEYS = (("stdout", names.STDOUT), ("stderr", names.STDERR), ("pilot", names.PILOT_LOG))


def scratch_dir() -> str:
    """The batch system's scratch dir (first of _CONDOR_SCRATCH_DIR, TMPDIR, SLURM_TMPDIR), else the cwd."""
    for variable in SCRATCH_VARIABLES:
        value = os.environ.get(variable)
        if value and os.path.isdir(value):
            return value
    return os.getcwd()


def empty_dir(path: str) -> bool:
    """Remove everything inside ``path`` (best effort); True if it is empty afterwards."""
    try:
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass
        return not os.listdir(path)
    except OSError:
        return False


class _JobLogHandler(logging.FileHandler):
    """pilot.log of one job: records logged by its thread, or by the supervisor about it (extra node=)."""

    def __init__(self, path: str, key: str) -> None:
        super().__init__(path, encoding="utf-8")
        self.key = key
        self.thread = threading.get_ident()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def filter(self, rec: logging.LogRecord) -> bool:
        return rec.thread == self.thread or getattr(rec, "node", None) == self.key


def _wait(pid: int) -> Tuple[int, Any]:
    """Wait for ``pid`` without reaping it first (so its pid cannot be reused while we still signal it)."""
    if hasattr(os, "waitid"):
        while True:
            try:
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
                break
            except InterruptedError:
                continue
    _, status, usage = os.wait4(pid, 0)
    return status, usage


class JobRun:
    """Runs one JobSpec under a supervisor; ``run()`` returns the stats record it wrote."""

    def __init__(
        self,
        job: JobSpec,
        supervisor: Supervisor,
        site: Optional[str] = None,
        stats_path: Optional[str] = None,
        logdir: Optional[str] = None,
        base_dir: Optional[str] = None,
        walltime_s: Optional[float] = None,
        scratch: Optional[str] = None,
        workdir: Optional[str] = None,
        extra_env: Optional[Dict[str, str]] = None,
        submitted: Optional[float] = None,
    ) -> None:
        self.job = job
        self.submitted = submitted
        self.extra_env = extra_env or {}
        #: an empty dir lent by a multi-job pilot (emptied, not removed, afterwards); else one is made
        self.lent_workdir = workdir
        self.supervisor = supervisor
        self.base_dir = base_dir or os.getcwd()
        self.stats_path = stats_path or os.path.join(self.base_dir, names.stats_record(job.node, job.attempt))
        self.logdir = logdir or os.path.join(self.base_dir, names.attempt_log_dir(job.node, job.attempt))
        self.walltime_s = walltime_s
        self.scratch = scratch or scratch_dir()
        self.key = f"{job.node}.{job.attempt}"
        self.rec = record.new_record(job.dataset, job.dataset_id, job.task, job.job, job.attempt, site)
        self.cpu = [0.0, 0.0]
        #: the kernel's peaks over the modules: exact ones, and upper bounds (see exact.py)
        self.exact_mb: Optional[float] = None
        self.maxrss_mb = 0.0
        self.bound_mb: Optional[float] = None
        self.peak_source: Optional[str] = None

    def _shown(self, path: str) -> str:
        """A log path as the record shows it: relative to where the pilot started (it travels back there)."""
        relative = os.path.relpath(path, self.base_dir)
        return path if relative.startswith("..") else relative

    def run(self) -> Dict[str, Any]:
        job, rec = self.job, self.rec
        start, t0 = time.time(), time.monotonic()
        rec["start"] = start
        rec["submitted"] = self.submitted
        rec["request"] = job.request.to_dict()
        os.makedirs(self.logdir, exist_ok=True)
        paths = {
            kind: os.path.join(self.logdir, kind) for kind in (names.STDOUT, names.STDERR, names.PILOT_LOG)
        }
        rec["logs"] = {key: self._shown(paths[name]) for key, name in LOG_KEYS}
        handler = _JobLogHandler(paths[names.PILOT_LOG], self.key)
        package_log = logging.getLogger("iceprod_dag")
        package_log.addHandler(handler)
        if package_log.getEffectiveLevel() > logging.INFO:
            package_log.setLevel(logging.INFO)
        watched: Optional[Watched] = None
        failure: Optional[str] = None
        error: Optional[str] = None
        workdir = None
        try:
            workdir = self.lent_workdir or tempfile.mkdtemp(prefix=f"{self.key}.", dir=self.scratch)
            log.info("%s: attempt %d on %s in %s", job.node, job.attempt, rec["host"], workdir)
            own = limits.own_limit_mb(job.request.memory_mb, job.settings.memory_allowance)
            watched = Watched(self.key, job.request, own, workdir, job.settings.kill_grace_s, self.walltime_s)
            rec.update(
                memory_limit_mb=own, walltime_limit_s=watched.walltime_s, disk_limit_mb=job.request.disk_mb
            )
            self.supervisor.add(watched)
            failure, error = self._stages(watched, workdir, paths)
        except Exception as exc:  # a pilot bug: still record the attempt
            log.exception("%s: pilot error", job.node)
            failure, error = "pilot_error", f"{type(exc).__name__}: {exc}"
        finally:
            if watched is not None:
                self.supervisor.remove(watched)
                self._usage(watched)
            rec["end"] = time.time()
            rec["wall_s"] = time.monotonic() - t0
            rec["stderr_tail"] = record.tail_lines(paths[names.STDERR], job.settings.stderr_tail_lines)
            record.finish(rec, failure, error, job.settings.learn_factor)
            log.info("%s: done: %s (exit %s)", job.node, failure or "success", rec["pilot_exit_code"])
            package_log.removeHandler(handler)
            handler.close()
            if workdir and not job.settings.keep_workdir:
                if workdir == self.lent_workdir:
                    empty_dir(workdir)
                else:
                    shutil.rmtree(workdir, ignore_errors=True)
            try:
                record.write(self.stats_path, rec)
            except OSError as exc:
                log.error("%s: cannot write the stats record %s: %s", job.node, self.stats_path, exc)
        return rec

    def _stages(
        self, watched: Watched, workdir: str, paths: Dict[str, str]
    ) -> Tuple[Optional[str], Optional[str]]:
        job, rec = self.job, self.rec
        # stdout and stderr exist for every attempt the record points to, even one failing to stage in
        with open(paths[names.STDOUT], "ab") as out, open(paths[names.STDERR], "ab") as err:
            transfers, error = staging.stage(job.data, "input", workdir, job.settings, self.base_dir)
            rec["transfers"].extend(transfers)
            if error:
                return "stage_in", error
            for module in job.modules:
                if watched.failure is not None:
                    break
                code, sig = self._module(module, watched, workdir, out, err)
                if watched.failure is not None:
                    return watched.failure, watched.reason
                if code != 0:
                    what = f"signal {sig}" if sig else f"exit code {code}"
                    return (
                        "task_failed",
                        f"module {module.name} (iteration {module.iteration}) failed with {what}",
                    )
        if watched.failure is not None:
            return watched.failure, watched.reason
        transfers, error = staging.stage(job.data, "output", workdir, job.settings, self.base_dir)
        rec["transfers"].extend(transfers)
        return ("stage_out", error) if error else (None, None)

    def _env(self, module: ModuleSpec, workdir: str) -> Dict[str, str]:
        job = self.job
        env = dict(os.environ)
        env.update(
            ICEPROD_DATASET=job.dataset,
            ICEPROD_DATASET_ID=str(job.dataset_id if job.dataset_id is not None else ""),
            ICEPROD_TASK=job.task,
            ICEPROD_JOB=str(job.job),
            ICEPROD_ITER=str(module.iteration),
            ICEPROD_ATTEMPT=str(job.attempt),
            ICEPROD_WORKDIR=workdir,
            TMPDIR=workdir,  # scratch is the only disk we may assume; it is also what the disk limit measures
        )
        env.update(self.extra_env)
        env.update(module.env)
        return env

    def _executable(self, exe: str, workdir: str) -> str:
        """Where a module's program is: a relative path is looked up in the work dir (staged in), then
        where the pilot started; a bare name on PATH, else in the work dir."""
        if os.path.isabs(exe):
            return exe
        if os.sep not in exe:
            local = os.path.join(workdir, exe)
            if shutil.which(exe) is None and os.path.isfile(local):
                return self._runnable(local, workdir)
            return exe
        for folder in (workdir, self.base_dir):
            if os.path.exists(os.path.join(folder, exe)):
                return self._runnable(os.path.join(folder, exe), workdir)
        return os.path.join(workdir, exe)

    @staticmethod
    def _runnable(path: str, workdir: str) -> str:
        """Staged-in programs arrive without the execute bit: give it to them (only in the work dir)."""
        if path.startswith(workdir + os.sep) and os.path.isfile(path) and not os.access(path, os.X_OK):
            os.chmod(path, os.stat(path).st_mode | 0o700)
        return path

    def _module(
        self, module: ModuleSpec, watched: Watched, workdir: str, out: Any, err: Any
    ) -> Tuple[Any, Any]:
        """Run one module to its end; returns (exit code, signal)."""
        exe = self._executable(module.executable, workdir)
        entry: Dict[str, Any] = {"name": module.name, "iteration": module.iteration, "exit_code": None}
        self.rec["modules"].append(entry)
        started = time.monotonic()
        log.info("module %s (iteration %d): %s %s", module.name, module.iteration, exe, " ".join(module.args))
        argv = [exe] + module.args
        tree = exact.cgroup_tree()
        # the kernel enforces the own limit exactly in a cgroup, unless the pilot may lend beyond it
        cgroup = tree.job(self.key, None if self.supervisor.lend else watched.own_limit_mb) if tree else None
        if cgroup is not None:
            argv = exact.CgroupTree.wrap(cgroup, argv)
        hwm = exact.own_hwm_mb()
        try:
            proc = subprocess.Popen(
                argv, cwd=workdir, env=self._env(module, workdir), stdin=subprocess.DEVNULL,
                stdout=out, stderr=err, start_new_session=True, close_fds=True,
            )  # fmt: skip
        except OSError as exc:
            message = f"cannot start module {module.name}: {exe}: {exc.strerror or exc}\n"
            err.write(message.encode())
            err.flush()
            entry.update(exit_code=127, error=message.strip())
            self.rec["exit_code"] = 127
            if cgroup is not None:
                exact.CgroupTree.finish(cgroup)
            return 127, None
        self.supervisor.set_pid(watched, proc.pid)
        try:
            status, usage = _wait(proc.pid)
        finally:
            last = self.supervisor.clear_pid(watched)
            limits.sweep(proc.pid)
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        code = None if sig else os.WEXITSTATUS(status)
        proc.returncode = -sig if sig else code  # we reaped it: keep Popen from waiting again
        user = max(usage.ru_utime, last.cpu_user_s)
        system = max(usage.ru_stime, last.cpu_sys_s)
        self.cpu[0] += user
        self.cpu[1] += system
        self._peak(watched, usage.ru_maxrss * MAXRSS_MB, hwm, cgroup)
        entry.update(exit_code=code, signal=sig, wall_s=round(time.monotonic() - started, 4),
                     cpu_s=round(user + system, 4))  # fmt: skip
        self.rec["exit_code"], self.rec["signal"] = code, sig
        log.info("module %s: %s", module.name, f"killed by signal {sig}" if sig else f"exit code {code}")
        return code, sig

    def _peak(
        self, watched: Watched, maxrss_mb: float, hwm_mb: Optional[float], cgroup: Optional[str]
    ) -> None:
        """Keep the kernel's peak of one module; a module over its limit between two samples (or killed by
        the kernel's own enforcement in its cgroup) is over_memory, as if the supervisor had caught it."""
        rss = exact.rusage_peak(maxrss_mb, hwm_mb)
        # the kernel's ru_maxrss, exact or not (below the pilot's own RSS it counts what the child shared with
        # the pilot when it started): what peak_rss_mb reports when no sample saw more
        self.maxrss_mb = max(self.maxrss_mb, maxrss_mb)
        peak = exact.CgroupTree.finish(cgroup) if cgroup is not None else rss
        if not peak.exact and cgroup is not None:
            peak = rss  # the module could not join its cgroup
        if peak.exact and peak.memory_mb is not None:
            self.exact_mb = max(self.exact_mb or 0.0, peak.memory_mb)
            self.peak_source = peak.source
        elif peak.memory_mb is not None:
            self.bound_mb = max(self.bound_mb or 0.0, peak.memory_mb)
        limit = watched.own_limit_mb
        if limit is None:
            return
        if self.supervisor.lend:
            return  # the limit moved with what the envelope could lend: only the supervisor's ticks judge it
        if peak.oom_killed:
            self.supervisor.fail(
                watched, limits.OVER_MEMORY, f"killed by the kernel at its {limit:.1f} MB limit"
            )
        elif peak.exact and peak.memory_mb and peak.memory_mb > limit:
            self.supervisor.fail(
                watched,
                limits.OVER_MEMORY,
                f"memory {peak.memory_mb:.1f} MB, limit {limit:.1f} MB (the kernel's peak, {peak.source})",
            )

    def _lent(self, watched: Watched, peak: float) -> Optional[float]:
        """What the pilot let the job use beyond its own limit without killing it (lending only)."""
        lent = watched.lent_mb
        own = watched.own_limit_mb
        if self.supervisor.lend and own is not None and watched.failure is None and peak > own:
            lent = max(lent or 0.0, peak - own)
        return lent

    def _usage(self, watched: Watched) -> None:
        usage, rec = watched.usage, self.rec
        peak = usage.peak_memory_mb
        source: Optional[str] = exact.SAMPLES
        if self.exact_mb is not None and self.exact_mb >= peak:
            peak, source = self.exact_mb, self.peak_source or exact.RUSAGE
        elif not usage.samples and self.bound_mb is not None:
            # nothing exact and nothing sampled: all that is known is the kernel's upper bound
            peak, source = self.bound_mb, exact.RUSAGE_BOUND
        rec.update(
            cpu_user_s=self.cpu[0],
            cpu_sys_s=self.cpu[1],
            peak_rss_mb=max(usage.peak_rss_mb, self.maxrss_mb),
            peak_pss_mb=usage.peak_pss_mb,
            peak_memory_mb=peak,
            peak_memory_source=source,
            avg_rss_mb=usage.avg_rss_mb,
            peak_disk_mb=usage.peak_disk_mb,
            peak_gpu_mem_mb=usage.peak_gpu_mem_mb,
            avg_gpu_util=usage.avg_gpu_util,
            memory_lent_mb=self._lent(watched, peak),
            samples=usage.samples,
        )


def spec_task_name(spec_path: str) -> str:
    """The task a spec file is for, from its name (specs/<task>.json), for records of unreadable specs."""
    return os.path.splitext(os.path.basename(spec_path))[0]


def config_failure(
    spec_path: str,
    job: int,
    attempt: int,
    error: str,
    site: Optional[str],
    stats_path: Optional[str],
    category: str = "config",
) -> Dict[str, Any]:
    """Write the record of an attempt that could not start (by default 'config': bad spec, exit PERMANENT)."""
    task = spec_task_name(spec_path)
    rec = record.new_record("", None, task, job, attempt, site)
    now = time.time()
    rec.update(start=now, end=now, wall_s=0.0)
    record.finish(rec, category, error)
    path = stats_path or names.stats_record(rec["node"], attempt)
    try:
        record.write(path, rec)
    except OSError as exc:
        log.error("cannot write the stats record %s: %s", path, exc)
    return rec


def learn_from_previous(job: JobSpec, stats_path: Optional[str], base_dir: str = "") -> None:
    """Raise the job's request where the previous attempt's record asks for more (``next_memory_mb``,
    ``next_walltime_s``, ``next_disk_mb``: it was killed over that limit), when that record is next to this
    one's (shared file systems, the local site); batch systems that bring no old records pass options."""
    if job.attempt <= 0:
        return
    folder = os.path.dirname(stats_path) if stats_path else os.path.join(base_dir, names.STATS_DIR)
    path = os.path.join(folder, os.path.basename(names.stats_record(job.node, job.attempt - 1)))
    try:
        previous = record.read(path)
    except (OSError, ValueError):
        return
    for field, out, _ in record.LEARNED.values():
        wanted, have = previous.get(out), getattr(job.request, field)
        if wanted and (have is None or wanted > have):
            log.info(
                "%s: attempt %d asks for %s = %s, as %s says", job.node, job.attempt, field, wanted, path
            )
            setattr(job.request, field, float(wanted))


def submitted_time() -> Optional[float]:
    """When the batch system got this attempt: $ICEPROD_SUBMITTED (set by the submitting side), else the
    QDate of HTCondor's job ad; None when unknown."""
    value = os.environ.get("ICEPROD_SUBMITTED")
    if value:
        try:
            return float(value)
        except ValueError:
            return None
    ad = os.environ.get("_CONDOR_JOB_AD")
    if ad:
        try:
            with open(ad, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    key, sep, val = line.partition("=")
                    if sep and key.strip() == "QDate":
                        return float(val.strip())
        except (OSError, ValueError):
            return None
    return None


def run_attempt(
    spec_path: str,
    job: int,
    attempt: int = 0,
    memory_mb: Optional[float] = None,
    site: Optional[str] = None,
    stats_path: Optional[str] = None,
    logdir: Optional[str] = None,
    use_psutil: Optional[bool] = None,
    walltime_s: Optional[float] = None,
    disk_mb: Optional[float] = None,
) -> Dict[str, Any]:
    """One-shot mode (`pilot run`): run one attempt of one job and return its stats record."""
    from iceprod_dag.common.exceptions import ConfigError
    from iceprod_dag.pilot.spec import load_job

    try:
        spec = load_job(spec_path, job, attempt, memory_mb)
    except ConfigError as exc:
        log.error("%s", exc)
        return config_failure(spec_path, job, attempt, str(exc), site, stats_path)
    learn_from_previous(spec, stats_path)
    if memory_mb is not None:  # an explicit request (the batch site's retry) wins over the record's
        spec.request.memory_mb = memory_mb
    if walltime_s is not None:
        spec.request.walltime_s = walltime_s
    if disk_mb is not None:
        spec.request.disk_mb = disk_mb
    with Supervisor(spec.settings.sample_interval_s, use_psutil=use_psutil) as supervisor:
        with _terminate_on_signals(supervisor.terminate):
            return JobRun(spec, supervisor, site, stats_path, logdir, submitted=submitted_time()).run()


class _terminate_on_signals:  # noqa: N801 - a context manager used like a function
    """While active (main thread only), SIGTERM/SIGINT/SIGHUP/SIGUSR1 stop the jobs cleanly: the batch
    system's kill becomes a "killed" stats record instead of an orphaned job tree and no record."""

    SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1")

    def __init__(self, stop: Any) -> None:
        self.stop = stop
        self.previous: Dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.stop(f"the pilot received signal {signum}")

    def __enter__(self) -> "_terminate_on_signals":
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


terminate_on_signals = _terminate_on_signals
