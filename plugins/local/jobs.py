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
from iceprod_dag.dagman.engine.executor import Launch
from iceprod_dag.dagman.model import Dag, Node
from iceprod_dag.dagman.submitdesc import SubmitDescription, read_node_submit
from iceprod_dag.dagman.submitsyntax import resolve_executable


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
        self._paths: dict[tuple[str | None, str], str] = {}
        self._dirs: dict[str | None, Path] = {}
        self._iwds: dict[tuple[str | None, str | None], str] = {}

    def submit_dir(self, node: Node) -> Path:
        found = self._dirs.get(node.directory)
        if found is None:
            base = self.dag.directory
            found = self._dirs[node.directory] = base / node.directory if node.directory else base
        return found

    def description(self, node: Node, attempt: int) -> SubmitDescription:
        """The node's submit description with DAGMan's macros, as DAGMan would submit this attempt."""
        status, failed = self.dag_state()
        key = (node.directory, node.submit_file)
        path = self._paths.get(key)
        if path is None:
            path = self._paths[key] = str(self.submit_dir(node) / node.submit_file)
        return read_node_submit(path, node, attempt, status, failed, self.dagman_job_id)

    def __call__(self, node: Node, attempt: int) -> Launch:
        desc = self.description(node, attempt)
        subdir = self.submit_dir(node)
        key = (node.directory, desc.initialdir)
        initialdir = self._iwds.get(key)
        if initialdir is None:
            initialdir = self._iwds[key] = os.path.join(subdir, desc.initialdir or "").rstrip("/") or "/"
        exe = self._executable(subdir, desc.executable)
        argv = [exe, *desc.arguments]
        info: dict[str, Any] = {
            "submit_file": node.submit_file,
            "Cmd": exe,
            "Args": " ".join(argv[1:]),
            "Iwd": initialdir,
            "pilot": is_pilot(argv),
            "UserLog": desc.log,
        }
        if info["pilot"] and argv[0] == exe and exe.endswith(names.PILOT_ZIPAPP):
            argv.insert(0, sys.executable)  # run by its own process (no in-engine pilot): needs no x bit
        return Launch(
            argv=argv,
            cwd=initialdir,
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
            exe = self._exes[key] = resolve_executable(executable, subdir)
        return exe

    @staticmethod
    def _path(initialdir: str, value: str | None) -> str | None:
        if not value or value == "/dev/null":
            return None
        return os.path.join(initialdir, value)  # an absolute value stays as it is
