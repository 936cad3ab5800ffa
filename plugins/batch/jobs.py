"""The engine's job builder on a batch site: one node attempt as a batch job request, wrapped in a Launch."""

from __future__ import annotations

import json
from pathlib import Path

from iceprod_dag.common import names
from iceprod_dag.dagman.engine.executor import Launch
from iceprod_dag.dagman.model import Dag, Node
from iceprod_dag.plugins.batch.jobdesc import job_request, read_submit


class BatchJobBuilder:
    """Builds the launch of one attempt (request in ``info["request"]``), reading each submit file once."""

    def __init__(self, dag: Dag, run_dir: Path, site: str) -> None:
        self.dag = dag
        self.run_dir = Path(run_dir)
        self.site = site
        self._submits: dict[tuple[str | None, str], tuple[Path, dict[str, str]]] = {}

    def __call__(self, node: Node, attempt: int) -> Launch:
        key = (node.directory, node.submit_file)
        if key not in self._submits:
            path = self.dag.directory / (node.directory or "") / node.submit_file
            self._submits[key] = (path, read_submit(path))
        path, submit = self._submits[key]
        memory = self._next_memory(node.name, attempt - 1) if attempt else None
        req = job_request(node.name, attempt, submit, node.vars, memory, where=str(path), site=self.site)
        cwd = (self.dag.directory / node.directory).resolve() if node.directory else self.run_dir
        info: dict[str, object] = {"request": req, "Cmd": req.argv[0], "Args": " ".join(req.argv[1:])}
        if node.directory:
            info["cwd"] = str(cwd)
        return Launch(argv=list(req.argv), cwd=str(cwd), cpus=req.cpus, memory_mb=req.memory_mb, info=info)

    def _next_memory(self, node: str, attempt: int) -> int | None:
        """The previous attempt's ``next_memory_mb`` (set when the pilot killed it over memory): the batch
        request must grow too, not only the pilot's limit."""
        try:
            record = json.loads((self.run_dir / names.stats_record(node, attempt)).read_text())
            return int(record["next_memory_mb"]) if record.get("next_memory_mb") else None
        except (OSError, ValueError, KeyError, TypeError):
            return None
