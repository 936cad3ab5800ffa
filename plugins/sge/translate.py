"""Grid Engine translation, text in and text out: job scripts with #$ directives, qsub/qstat/qacct output."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from iceprod_dag.common import names
from iceprod_dag.plugins.batch.translate import JobGroup, directives, hms, job_body, render

INDEX = "${SGE_TASK_ID}"
#: a failed attempt exits 100: Grid Engine puts the job in error state and keeps its dependents held
FAIL_EXIT = 100


def qsub_options(
    group: JobGroup,
    walltime_margin_s: int = 0,
    queue: str | None = None,
    pe: str = "smp",
    vmem_factor: float = 2.0,
) -> list[str]:
    """The #$ options of a group. h_vmem is per slot and an address-space limit, larger than resident
    memory: it is vmem_factor x the request so the pilot's own over-memory kill (with a record) comes first."""
    req = group.first
    out = f"{group.run_dir}/{names.BATCH_OUT_DIR}/{group.name}" + (
        ".$TASK_ID.out" if group.is_array else ".out"
    )
    per_slot_mb = math.ceil(req.memory_mb * vmem_factor / max(req.cpus, 1))
    opts = [
        f"-N {group.name}",
        "-S /bin/bash",
        f"-o {out}",
        "-j y",
        f"-wd {group.cwd or group.run_dir}",
        f"-l h_rt={hms(req.walltime_s + walltime_margin_s)}",
        f"-l h_vmem={per_slot_mb}M",
    ]
    if req.cpus > 1:
        opts.append(f"-pe {pe} {req.cpus}")
    if req.gpus:
        opts.append(f"-l gpu={req.gpus}")
    if queue:
        opts.append(f"-q {queue}")
    if group.is_array:
        opts.append(f"-t 1-{len(group.requests)}")
    if group.depends_on:
        opts.append("-hold_jid " + ",".join(group.depends_on))
    return opts


def job_script(group: JobGroup, **options: object) -> str:
    count = len(group.requests)
    summary = (
        f"{group.name}, {count} node(s)" if count > 1 else f"{group.first.node} attempt {group.first.attempt}"
    )
    return render(
        "iceprod_dag.plugins.sge",
        "job.sh.tmpl",
        summary=summary,
        directives=directives("#$", qsub_options(group, **options)),  # type: ignore[arg-type]
        body=job_body(group, INDEX if group.is_array else "1", fail_exit=FAIL_EXIT),
    )


def parse_qsub(stdout: str, count: int, is_array: bool) -> list[str]:
    """Element ids from `qsub -terse`: "123" or, for an array, "123.1-4:1" -> 123.1 .. 123.4."""
    text = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    base = text.split(".", 1)[0]
    if not base.isdigit():
        raise ValueError(f"qsub printed no job id: {stdout.strip()!r}")
    return [f"{base}.{i}" for i in range(1, count + 1)] if is_array else [base]


def array_id(job_id: str) -> str:
    return job_id.split(".", 1)[0]


def dependency_token(job_id: str, whole_array: bool) -> str:
    """-hold_jid names whole jobs: a child of one array element waits for the whole array."""
    return array_id(job_id)


def _task_ids(text: str) -> list[int]:
    """qstat's task list: "3", "1-4:1", "1,3,5-6:1"."""
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        span, _, step = part.partition(":")
        first, _, last = span.partition("-")
        ids.extend(range(int(first), int(last or first) + 1, int(step or 1)))
    return ids


def parse_qstat_xml(text: str) -> dict[str, str]:
    """`qstat -xml -u '*'` -> {element id: state letters}; an array's pending range is spread out."""
    found: dict[str, str] = {}
    if not text.strip():
        return found
    root = ET.fromstring(text)
    for job in root.iter("job_list"):
        number = (job.findtext("JB_job_number") or "").strip()
        state = (job.findtext("state") or "").strip()
        tasks = (job.findtext("tasks") or "").strip()
        if not number:
            continue
        if tasks:
            for t in _task_ids(tasks):
                found[f"{number}.{t}"] = state
        else:
            found[number] = state
    return found


QACCT_KEYS = (
    "qname",
    "hostname",
    "jobname",
    "jobnumber",
    "taskid",
    "start_time",
    "end_time",
    "failed",
    "exit_status",
    "ru_wallclock",
    "cpu",
    "maxvmem",
    "slots",
)


def parse_qacct(text: str) -> dict[str, dict[str, str]]:
    """`qacct -j ID` records -> {element id: {key: value}} (array tasks as ID.TASK)."""
    rows: dict[str, dict[str, str]] = {}
    for block in text.split("=" * 10):
        row: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.strip().partition(" ")
            if key in QACCT_KEYS:
                row[key] = value.strip()
        number = row.get("jobnumber")
        if not number:
            continue
        task = row.get("taskid", "undefined")
        rows[f"{number}.{task}" if task.isdigit() else number] = row
    return rows
