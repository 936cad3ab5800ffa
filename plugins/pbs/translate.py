"""PBS Pro / Torque translation, text in and text out: #PBS directives, qsub -W depend, qstat JSON."""

from __future__ import annotations

import json
import re

from iceprod_dag.common import names
from iceprod_dag.plugins.batch.translate import JobGroup, directives, hms, job_body, render

INDEX = "${PBS_ARRAY_INDEX}"


def qsub_options(group: JobGroup, walltime_margin_s: int = 0, queue: str | None = None) -> list[str]:
    """The #PBS options: one chunk with ncpus/mem (and ngpus), walltime, array range, afterok dependencies."""
    req = group.first
    select = f"select=1:ncpus={req.cpus}:mem={req.memory_mb}mb"
    if req.gpus:
        select += f":ngpus={req.gpus}"
    out = f"{group.run_dir}/{names.BATCH_OUT_DIR}/{group.name}" + (
        ".^array_index^.out" if group.is_array else ".out"
    )
    opts = [
        f"-N {group.name}",
        f"-o {out}",
        "-j oe",
        f"-l {select}",
        f"-l walltime={hms(req.walltime_s + walltime_margin_s)}",
    ]
    if queue:
        opts.append(f"-q {queue}")
    if group.is_array:
        opts.append(f"-J 1-{len(group.requests)}")
    if group.depends_on:
        opts.append("-W depend=afterok:" + ":".join(group.depends_on))
    return opts


def job_script(group: JobGroup, walltime_margin_s: int = 0, queue: str | None = None) -> str:
    count = len(group.requests)
    summary = (
        f"{group.name}, {count} node(s)" if count > 1 else f"{group.first.node} attempt {group.first.attempt}"
    )
    return render(
        "iceprod_dag.plugins.pbs",
        "job.sh.tmpl",
        summary=summary,
        directives=directives("#PBS", qsub_options(group, walltime_margin_s, queue)),
        body=job_body(group, INDEX if group.is_array else "1"),
    )


_ID = re.compile(r"^(\d+)(\[\])?(\.\S+)?$")


def parse_qsub(stdout: str, count: int, is_array: bool) -> list[str]:
    """Element ids from qsub: "123.server" or, for an array, "123[].server" -> 123[1].server .. 123[N].server."""
    text = stdout.strip().splitlines()[-1].strip() if stdout.strip() else ""
    match = _ID.match(text)
    if not match:
        raise ValueError(f"qsub printed no job id: {stdout.strip()!r}")
    number, _, server = match.groups()
    server = server or ""
    return [f"{number}[{i}]{server}" for i in range(1, count + 1)] if is_array else [f"{number}{server}"]


def array_id(job_id: str) -> str:
    """123[4].server -> 123[].server (PBS names a whole array with empty brackets)."""
    return re.sub(r"\[\d+\]", "[]", job_id)


def dependency_token(job_id: str, whole_array: bool) -> str:
    return array_id(job_id) if whole_array else job_id


def parse_qstat_json(text: str) -> dict[str, dict[str, object]]:
    """`qstat -x -t -f -F json` -> {job id: attributes}."""
    if not text.strip():
        return {}
    return dict(json.loads(text).get("Jobs", {}))
