"""Submit files: one per task, shared by all of that task's nodes through DAG VARS (job, retry)."""

from __future__ import annotations

from iceprod_dag.common import names
from iceprod_dag.dataset.model import Dataset, Task
from iceprod_dag.pilot import exitcodes


def _quote_classad_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def requirements_expression(task: Task) -> str | None:
    """HTCondor requirements for the task's OS constraints, or None when it has none."""
    if not task.requirements.os:
        return None
    return (
        "(" + " || ".join(f"OpSysAndVer == {_quote_classad_string(os)}" for os in task.requirements.os) + ")"
    )


def submit_description(dataset: Dataset, task: Task) -> dict[str, str]:
    """The submit commands of a task's nodes, as an ordered mapping (also accepted by htcondor2.Submit)."""
    req = task.requirements
    node = f"{task.name}_$(job)"
    spec = names.spec_file(task.name)
    desc: dict[str, str] = {
        "universe": "vanilla",
        "executable": names.PILOT_ZIPAPP,
        "arguments": f'"run --spec {spec} --job $(job) --attempt $(retry)"',
        "transfer_executable": "true",
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT_OR_EVICT",
        "transfer_input_files": names.SPECS_DIR,  # the folder: HTCondor flattens specs/x.json to x.json
        "transfer_output_files": f"{names.STATS_DIR},{names.LOGS_DIR}",
        "output": f"{names.LOGS_DIR}/{node}.$(retry).condor.out",
        "error": f"{names.LOGS_DIR}/{node}.$(retry).condor.err",
        "request_cpus": str(req.cpus),
        "request_memory": str(req.memory_mb),
        "request_disk": str(req.disk_mb * 1024),  # KiB, HTCondor's unit for request_disk
        "+IceProdDataset": _quote_classad_string(dataset.name),
        "+IceProdDatasetId": str(dataset.dataset_id),
        "+IceProdTask": _quote_classad_string(task.name),
        "+IceProdJob": "$(job)",
        "+IceProdWalltime": str(req.walltime_s),
        # permanent failures (bad spec) must not be retried by HTCondor either
        "on_exit_hold": "false",
    }
    if req.gpus:
        desc["request_gpus"] = str(req.gpus)
    requirements = requirements_expression(task)
    if requirements:
        desc["requirements"] = requirements
    if req.sites:
        desc["+DESIRED_Sites"] = _quote_classad_string(",".join(req.sites))
    desc["+IceProdPermanentExitCode"] = str(exitcodes.PERMANENT)
    return desc


def render(desc: dict[str, str], header: str) -> str:
    """Submit-file text: a comment header, one command per line, then queue."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{key} = {value}" for key, value in desc.items()]
    lines.append("queue")
    return "\n".join(lines) + "\n"


def task_submit_file(dataset: Dataset, task: Task) -> str:
    return render(
        submit_description(dataset, task),
        f"iceprod-dag: task {task.name} of dataset {dataset.name}; one file for all {dataset.jobs} jobs.\n"
        "Node variables: job (the job index), retry (DAGMan's $(RETRY)).",
    )


def final_submit_file() -> str:
    """The FINAL node is a NOOP job whose PRE script marks the dataset done; this file is never submitted."""
    return render(
        {"universe": "local", "executable": "/bin/true", "log": "final.log"},
        "iceprod-dag: FINAL node (NOOP); its PRE script writes " + names.DONE_MARKER,
    )


FINAL_SCRIPT = f"""#!/bin/sh
# iceprod-dag FINAL node: record how the DAG ended, then fail if it failed so DAGMan reports it.
# $1 = DAGMan's $DAG_STATUS, $2 = $FAILED_COUNT
cd "$(dirname "$0")" || exit 1
printf 'dag_status=%s\\nfailed_count=%s\\n' "$1" "$2" > {names.DONE_MARKER}
[ "$1" = 0 ]
"""
