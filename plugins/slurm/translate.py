"""Slurm translation, text in and text out: job scripts with #SBATCH directives, dependencies, squeue output."""

from __future__ import annotations

from collections.abc import Sequence

from iceprod_dag.common import names
from iceprod_dag.plugins.batch.translate import JobGroup, directives, hms, job_body, render

INDEX = "${SLURM_ARRAY_TASK_ID}"


def sbatch_options(group: JobGroup, walltime_margin_s: int = 0, partition: str | None = None) -> list[str]:
    """The #SBATCH options of a group: name, output, requests, array and dependencies."""
    req = group.first
    out = f"{group.run_dir}/{names.BATCH_OUT_DIR}/{group.name}" + ("_%a.out" if group.is_array else ".out")
    opts = [
        f"--job-name={group.name}",
        f"--output={out}",
        f"--chdir={group.cwd or group.run_dir}",
        "--ntasks=1",
        f"--cpus-per-task={req.cpus}",
        f"--mem={req.memory_mb}M",
        f"--time={hms(req.walltime_s + walltime_margin_s)}",
    ]
    if req.gpus:
        opts.append(f"--gres=gpu:{req.gpus}")
    if partition:
        opts.append(f"--partition={partition}")
    if group.is_array:
        opts.append(f"--array=1-{len(group.requests)}")
    if group.depends_on:
        opts.append("--dependency=afterok:" + ":".join(group.depends_on))
        opts.append("--kill-on-invalid-dep=no")
    return opts


def job_script(group: JobGroup, walltime_margin_s: int = 0, partition: str | None = None) -> str:
    """The sbatch script of a group: the pilot (or the node's executable) is the body."""
    count = len(group.requests)
    summary = (
        f"{group.name}, {count} node(s)" if count > 1 else f"{group.first.node} attempt {group.first.attempt}"
    )
    return render(
        "iceprod_dag.plugins.slurm",
        "job.sh.tmpl",
        summary=summary,
        directives=directives("#SBATCH", sbatch_options(group, walltime_margin_s, partition)),
        body=job_body(group, INDEX if group.is_array else "1", job_ref="${SLURM_JOB_ID}"),
    )


def parse_sbatch(stdout: str, count: int, is_array: bool) -> list[str]:
    """Element job ids from `sbatch --parsable` ("123" or "123;cluster"): 123_1..123_N for an array."""
    line = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    base = line.split(";", 1)[0].strip()
    if not base.isdigit():
        raise ValueError(f"sbatch printed no job id: {stdout.strip()!r}")
    return [f"{base}_{i}" for i in range(1, count + 1)] if is_array else [base]


def array_id(job_id: str) -> str:
    return job_id.split("_", 1)[0]


def dependency_token(job_id: str, whole_array: bool) -> str:
    """afterok accepts a job, an array element (123_4) or a whole array (123)."""
    return array_id(job_id) if whole_array else job_id


SQUEUE_FORMAT = "%i|%T|%r"


def parse_squeue(stdout: str) -> dict[str, tuple[str, str]]:
    """`squeue -h -r -t all -o '%i|%T|%r'` lines -> {job id: (native state, reason)}."""
    found: dict[str, tuple[str, str]] = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            found[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    return found


SACCT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Start", "End", "Elapsed", "NodeList")
SACCT_DBD_FIELDS = (*SACCT_FIELDS, "MaxRSS", "TotalCPU", "ReqMem", "AllocCPUS")


def parse_sacct(stdout: str, fields: Sequence[str]) -> dict[str, dict[str, str]]:
    """`sacct -P -n --format=...` lines -> {job id: {field: value}}; job steps (123.batch) are left out."""
    rows: dict[str, dict[str, str]] = {}
    for line in stdout.splitlines():
        values = line.split("|")
        if len(values) < len(fields):
            continue
        row = dict(zip(fields, values, strict=False))
        job_id = row.get("JobID", "")
        if not job_id or "." in job_id:
            continue
        rows[job_id] = row
    return rows
