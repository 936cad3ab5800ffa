"""LSF translation, text in and text out: #BSUB directives, -w "done(...)" dependencies, bjobs output."""

from __future__ import annotations

import re

from iceprod_dag.common import names
from iceprod_dag.plugins.batch.translate import JobGroup, directives, hm, job_body, render

INDEX = "${LSB_JOBINDEX}"


def bsub_options(group: JobGroup, walltime_margin_s: int = 0, queue: str | None = None) -> list[str]:
    """The #BSUB options. Memory is in MB (LSF_UNIT_FOR_LIMITS=MB, the common setting)."""
    req = group.first
    name = f'"{group.name}[1-{len(group.requests)}]"' if group.is_array else group.name
    out = f"{group.run_dir}/{names.BATCH_OUT_DIR}/{group.name}" + (".%I.out" if group.is_array else ".out")
    opts = [
        f"-J {name}",
        f"-o {out}",
        f"-cwd {group.cwd or group.run_dir}",
        f"-n {req.cpus}",
        f'-R "span[hosts=1] rusage[mem={req.memory_mb}]"',
        f"-M {req.memory_mb}",
        f"-W {hm(req.walltime_s + walltime_margin_s)}",
    ]
    if req.gpus:
        opts.append(f'-gpu "num={req.gpus}"')
    if queue:
        opts.append(f"-q {queue}")
    if group.depends_on:
        opts.append('-w "' + " && ".join(f"done({d})" for d in group.depends_on) + '"')
    return opts


def job_script(group: JobGroup, walltime_margin_s: int = 0, queue: str | None = None) -> str:
    count = len(group.requests)
    summary = (
        f"{group.name}, {count} node(s)" if count > 1 else f"{group.first.node} attempt {group.first.attempt}"
    )
    return render(
        "iceprod_dag.plugins.lsf",
        "job.sh.tmpl",
        summary=summary,
        directives=directives("#BSUB", bsub_options(group, walltime_margin_s, queue)),
        body=job_body(group, INDEX if group.is_array else "1"),
    )


_SUBMITTED = re.compile(r"Job <(\d+)> is submitted")


def parse_bsub(stdout: str, count: int, is_array: bool) -> list[str]:
    """Element ids from "Job <123> is submitted to queue <normal>.": 123[1] .. 123[N] for an array."""
    match = _SUBMITTED.search(stdout)
    if not match:
        raise ValueError(f"bsub printed no job id: {stdout.strip()!r}")
    base = match.group(1)
    return [f"{base}[{i}]" for i in range(1, count + 1)] if is_array else [base]


def array_id(job_id: str) -> str:
    return job_id.split("[", 1)[0]


def dependency_token(job_id: str, whole_array: bool) -> str:
    """done(123) waits for a whole array, done(123[4]) for one element."""
    return array_id(job_id) if whole_array else job_id


BJOBS_FIELDS = (
    "jobid",
    "jobindex",
    "stat",
    "exit_code",
    "start_time",
    "finish_time",
    "max_mem",
    "cpu_used",
    "exec_host",
)


def bjobs_format(fields: tuple[str, ...] = BJOBS_FIELDS) -> str:
    return " ".join(fields) + " delimiter='|'"


def parse_bjobs(stdout: str, fields: tuple[str, ...] = BJOBS_FIELDS) -> dict[str, dict[str, str]]:
    """`bjobs -a -noheader -o "jobid jobindex stat ... delimiter='|'"` -> {element id: {field: value}}."""
    rows: dict[str, dict[str, str]] = {}
    for line in stdout.splitlines():
        values = line.strip().split("|")
        if len(values) < 3 or not values[0].isdigit():
            continue
        row = dict(zip(fields, values, strict=False))
        index = row.get("jobindex", "0")
        rows[f"{row['jobid']}[{index}]" if index not in ("", "0", "-") else row["jobid"]] = row
    return rows
