"""What a batch system needs from one DAG node's attempt: the command line and the resources it asks for.

The node's submit file is read by iceprod_dag.dagman.submitdesc, the one reader every site uses (DAGMan's node
macros, VARS, HTCondor's quoting rules); here its description becomes a batch job: argv, request_*, walltime,
environment, and the input/output/error files condor would have given the job.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from iceprod_dag.common.exceptions import ConfigError, DagSyntaxError
from iceprod_dag.common.units import parse_duration_s
from iceprod_dag.dagman.model import Dag
from iceprod_dag.dagman.submitdesc import SubmitDescription, read_node_submit
from iceprod_dag.dagman.submitsyntax import resolve_executable

_DEFAULT_WALLTIME_S = 3600
_DEFAULT_MEMORY_MB = 1024
_DEFAULT_DISK_MB = 1024
#: submit keys (as htcondor2 names them: +Attr is MY.Attr) that give a job's walltime, first found wins
_WALLTIME_KEYS = ("my.iceprodwalltime", "my.walltime", "walltime", "my.maxwalltime")


@dataclasses.dataclass(frozen=True)
class JobRequest:
    """One attempt of one node as a batch job: the command and its resource requests."""

    node: str
    attempt: int
    argv: tuple[str, ...]
    cpus: int = 1
    memory_mb: int = _DEFAULT_MEMORY_MB
    disk_mb: int = _DEFAULT_DISK_MB
    gpus: int = 0
    walltime_s: int = _DEFAULT_WALLTIME_S
    environment: tuple[tuple[str, str], ...] = ()
    # the submit file's input/output/error, relative to where the job runs (the node's DIR); None: the site's
    stdin: str | None = None
    stdout: str | None = None
    stderr: str | None = None

    def shape(self) -> tuple[object, ...]:
        """What must be equal for two requests to share one array job."""
        return (
            self.argv[:1],
            self.cpus,
            self.memory_mb,
            self.disk_mb,
            self.gpus,
            self.walltime_s,
            self.environment,
        )


def node_request(
    dag: Dag,
    name: str,
    attempt: int,
    run_dir: Path,
    memory_mb: int | None = None,
    site: str | None = None,
    dag_status: int = 0,
    failed_count: int = 0,
    walltime_s: int | None = None,
    disk_mb: int | None = None,
) -> JobRequest:
    """The batch job of one attempt of a node, its submit file read as DAGMan would submit it.

    run_dir is the folder of the DAG file (a node's DIR is relative to it); memory_mb, walltime_s and
    disk_mb as for job_request.
    """
    node = dag.nodes[name]
    subdir = run_dir / node.directory if node.directory else run_dir
    try:
        desc = read_node_submit(
            os.path.join(subdir, node.submit_file), node, attempt, dag_status, failed_count
        )
    except DagSyntaxError as exc:
        raise ConfigError(f"node {name}: {exc}", path=exc.path) from None
    return job_request(
        name, attempt, desc, subdir, memory_mb=memory_mb, site=site, walltime_s=walltime_s, disk_mb=disk_mb
    )


def job_request(
    node: str,
    attempt: int,
    desc: SubmitDescription,
    subdir: Path,
    memory_mb: int | None = None,
    site: str | None = None,
    walltime_s: int | None = None,
    disk_mb: int | None = None,
) -> JobRequest:
    """The batch job of one attempt from its submit description (subdir: the submit file's folder).

    memory_mb, walltime_s and disk_mb override the submit file's requests (the retry of an attempt killed
    over that limit asks for more); the pilot is told too, since it enforces them.
    """
    argv = [resolve_executable(desc.executable, subdir), *desc.arguments]
    walltime = next((desc.macros[k] for k in _WALLTIME_KEYS if desc.macros.get(k)), None)
    try:
        asked_s = parse_duration_s(walltime.strip('"')) if walltime else _DEFAULT_WALLTIME_S
    except ValueError as exc:
        raise ConfigError(f"node {node}: {exc}", path=str(desc.path)) from None
    if argv[0].endswith(".pyz"):  # only the pilot knows --memory-mb, --walltime, --disk and --site
        argv += ["--memory-mb", str(memory_mb)] if memory_mb else []
        argv += ["--walltime", f"{walltime_s}s"] if walltime_s else []
        argv += ["--disk", f"{disk_mb}MB"] if disk_mb else []
        if site and "--site" not in argv:
            argv += ["--site", site]
    disk_kb = desc.request_disk_kb
    req = JobRequest(
        node=node,
        attempt=attempt,
        argv=tuple(argv),
        cpus=desc.request_cpus,
        memory_mb=memory_mb or desc.request_memory_mb or _DEFAULT_MEMORY_MB,
        disk_mb=disk_mb or (-(-disk_kb // 1024) if disk_kb else _DEFAULT_DISK_MB),
        gpus=desc.request_gpus,
        walltime_s=walltime_s or asked_s,
        environment=tuple(desc.environment.items()),
        stdin=_in_initialdir(desc, desc.input),
        stdout=_in_initialdir(desc, desc.output),
        stderr=_in_initialdir(desc, desc.error),
    )
    return req


def _in_initialdir(desc: SubmitDescription, path: str | None) -> str | None:
    # condor reads input/output/error relative to initialdir, itself relative to the submit file's folder
    if not path or os.path.isabs(path) or not desc.initialdir:
        return path
    return os.path.join(desc.initialdir, path)
