"""The engine's job builder on a batch site: one node attempt as a batch job request, wrapped in a Launch.

A retry of an attempt the pilot killed over its memory, wall time or disk asks for what that attempt's stats
record learned (iceprod_dag.pilot.record.LEARNED), and keeps asking for it on later attempts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from iceprod_dag.common import names
from iceprod_dag.dagman.engine.executor import Launch
from iceprod_dag.dagman.model import Dag, Node
from iceprod_dag.pilot import record as records
from iceprod_dag.plugins.batch.jobdesc import node_request


class BatchJobBuilder:
    """Builds the launch of one attempt (request in ``info["request"]``); submitdesc parses each file once."""

    def __init__(self, dag: Dag, run_dir: Path, site: str) -> None:
        self.dag = dag
        self.run_dir = Path(run_dir)
        self.site = site
        #: the DAG's ($(DAG_STATUS), $(FAILED_COUNT)) when a node is submitted; the watcher wires it to the engine
        self.dag_state: Callable[[], tuple[int, int]] = lambda: (0, 0)
        self._learned: dict[str, dict[str, int]] = {}  # node -> request field -> what a kill taught
        self._cwd: dict[str | None, str] = {}  # node DIR -> where its jobs run

    def __call__(self, node: Node, attempt: int) -> Launch:
        learned = self._learned.setdefault(node.name, {})
        if attempt:
            learned.update(self._learn(node.name, attempt - 1))
        status, failed = self.dag_state()
        req = node_request(
            self.dag,
            node.name,
            attempt,
            self.dag.directory,
            learned.get("memory_mb"),
            site=self.site,
            dag_status=status,
            failed_count=failed,
            walltime_s=learned.get("walltime_s"),
            disk_mb=learned.get("disk_mb"),
        )
        cwd = self._cwd.get(node.directory)
        if cwd is None:
            where = (self.dag.directory / node.directory).resolve() if node.directory else self.run_dir
            cwd = self._cwd[node.directory] = str(where)
        info: dict[str, object] = {"request": req, "Cmd": req.argv[0], "Args": " ".join(req.argv[1:])}
        if node.directory:
            info["cwd"] = cwd
        return Launch(argv=list(req.argv), cwd=cwd, cpus=req.cpus, memory_mb=req.memory_mb, info=info)

    def _learn(self, node: str, attempt: int) -> dict[str, int]:
        """What an attempt killed over a limit asks its successor for (its record's next_memory_mb, ...):
        the batch request must grow too, not only the pilot's limit; it holds for later attempts."""
        try:
            record = json.loads((self.run_dir / names.stats_record(node, attempt)).read_text())
        except (OSError, ValueError):
            return {}
        out: dict[str, int] = {}
        for field, wanted, _measured in records.LEARNED.values():
            try:
                if record.get(wanted):
                    out[field] = int(record[wanted])
            except (TypeError, ValueError):
                continue
        return out
