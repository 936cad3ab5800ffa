"""Turn a node's submit file into the process the executor runs.

The submit file is read by iceprod_dag.dagman.submitdesc, the one reader every site uses: DAGMan's node macros
($(JOB), $(RETRY), $(DAG_STATUS), $(FAILED_COUNT), $(DAG_PARENT_NAMES), $(DAGManJobId)), VARS and HTCondor's
quoting rules, with each file parsed once and expanded per node. Here, as condor_submit does locally: a relative
executable is found from the submit directory (the node's DIR), output/error paths from ``initialdir``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iceprod_dag.common import names
from iceprod_dag.dagman.model import Dag, Node
from iceprod_dag.dagman.submitdesc import SubmitDescription, read_submit
from iceprod_dag.plugins.local.executor import Launch


def is_pilot(argv: list[str]) -> bool:
    """Whether a job runs our pilot zipapp (directly, or through a Python interpreter)."""
    head = argv[:2]
    return any(os.path.basename(a) == names.PILOT_ZIPAPP for a in head)


class JobFactory:
    """Builds the Launch of one attempt of a node."""

    def __init__(self, dag: Dag, run_dir: Path, dagman_job_id: int | None = None) -> None:
        self.dag = dag
        self.run_dir = run_dir
        self.dagman_job_id = dagman_job_id
        #: the DAG's ($(DAG_STATUS), $(FAILED_COUNT)) when a node is submitted; the runner wires it to the engine
        self.dag_state: Callable[[], tuple[int, int]] = lambda: (0, 0)
        self._env = dict(os.environ)
        self._exes: dict[tuple[str, str], str] = {}

    def submit_dir(self, node: Node) -> Path:
        base = self.dag.directory
        return base / node.directory if node.directory else base

    def description(self, node: Node, attempt: int) -> SubmitDescription:
        """The node's submit description with DAGMan's macros, as DAGMan would submit this attempt."""
        status, failed = self.dag_state()
        return read_submit(
            self.submit_dir(node) / node.submit_file,
            node=node.name,
            vars=node.vars,
            vars_append=node.vars_append,
            retry=attempt,
            dag_status=status,
            failed_count=failed,
            parents=tuple(node.parents),
            dagman_job_id=self.dagman_job_id,
        )

    def __call__(self, node: Node, attempt: int) -> Launch:
        desc = self.description(node, attempt)
        subdir = self.submit_dir(node)
        initialdir = subdir / desc.initialdir if desc.initialdir else subdir
        exe = self._executable(subdir, desc.executable)
        argv = [exe, *desc.arguments]
        info: dict[str, Any] = {
            "submit_file": node.submit_file,
            "Cmd": exe,
            "Args": " ".join(argv[1:]),
            "Iwd": str(initialdir),
            "pilot": is_pilot(argv),
            "UserLog": desc.log,
        }
        if info["pilot"] and argv[0] == exe and exe.endswith(names.PILOT_ZIPAPP):
            argv.insert(0, sys.executable)  # run by its own process (no in-engine pilot): needs no x bit
        return Launch(
            argv=argv,
            cwd=str(initialdir),
            env={**self._env, **desc.environment} if desc.environment else None,
            stdout=self._path(initialdir, desc.output),
            stderr=self._path(initialdir, desc.error),
            cpus=max(1, desc.request_cpus),
            memory_mb=desc.request_memory_mb or 0,
            info=info,
        )

    def _executable(self, subdir: Path, executable: str) -> str:
        key = (str(subdir), executable)
        exe = self._exes.get(key)
        if exe is None:
            exe = executable if os.path.isabs(executable) else str(subdir / executable)
            if not os.path.exists(exe) and "/" not in executable:
                exe = executable  # a bare name: found on PATH, like transfer_executable = false
            self._exes[key] = exe
        return exe

    @staticmethod
    def _path(initialdir: Path, value: str | None) -> str | None:
        if not value or value == "/dev/null":
            return None
        return value if os.path.isabs(value) else str(initialdir / value)
