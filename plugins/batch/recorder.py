"""The engine's recorder on a batch site: the run's rescue state (state.py), saved when a round changed it."""

from __future__ import annotations

from pathlib import Path

from iceprod_dag.dagman.engine.executor import Exit, Launch
from iceprod_dag.dagman.engine.nodestate import RunView
from iceprod_dag.dagman.engine.recorder import Recorder
from iceprod_dag.dagman.model import Node
from iceprod_dag.plugins.batch import state as st


class BatchRecorder(Recorder):
    """Keeps RunState in step with the engine: what status, `cancel`, `collect` and a resubmit read."""

    def __init__(self, run_dir: Path, state: st.RunState) -> None:
        self.run_dir = Path(run_dir)
        self.state = state
        self._live: dict[str, Launch] = {}  # node -> its job's launch, until it ends (job ids come later)
        self._dirty = True

    def pre_started(self, node: Node, retry: int) -> None:
        pass

    def pre_finished(self, node: Node, exit: Exit) -> None:
        if exit.value != 0:
            self.state.node(node.name).reason = f"PRE script exit code {exit.value}"
            self._dirty = True

    def job_started(self, node: Node, attempt: int, cluster: int, launch: Launch) -> None:
        ns = self.state.node(node.name)
        ns.status, ns.attempt, ns.job_id, ns.reason = st.QUEUED, attempt, None, ""
        self._live[node.name] = launch
        self._dirty = True

    def job_finished(self, node: Node, attempt: int, cluster: int, launch: Launch, exit: Exit) -> None:
        self._live.pop(node.name, None)
        ns = self.state.node(node.name)
        self._take_ids(ns, attempt, launch)
        ns.status, ns.job_id = st.WAITING, None
        ns.exit_codes.append(exit.exit_code)
        if exit.error:
            ns.reason = exit.error
        elif exit.exit_code:
            ns.reason = f"exit code {exit.exit_code}"
        self._dirty = True

    def post_started(self, node: Node, cluster: int) -> None:
        pass

    def post_finished(self, node: Node, cluster: int, exit: Exit) -> None:
        if exit.value != 0:
            self.state.node(node.name).reason = f"POST script exit code {exit.value}"
            self._dirty = True

    def node_finished(self, node: Node, ok: bool) -> None:
        ns = self.state.node(node.name)
        ns.status = st.DONE if ok else st.FAILED
        if ok:
            ns.reason = ""
        self._dirty = True

    def flush(self, run: RunView, force: bool = False) -> None:
        for name, launch in self._live.items():
            ns = self.state.node(name)
            if launch.info.get("job_id") and ns.job_id != launch.info["job_id"]:
                self._take_ids(ns, ns.attempt, launch)
                ns.job_id = str(launch.info["job_id"])
                self._dirty = True
        if self._dirty or force:
            st.save(self.run_dir, self.state)
            self._dirty = False

    @staticmethod
    def _take_ids(ns: st.NodeState, attempt: int, launch: Launch) -> None:
        if launch.info.get("job_id"):
            ns.jobs[str(attempt)] = str(launch.info["job_id"])
        if launch.info.get("acct_id"):
            ns.acct_ids[str(attempt)] = str(launch.info["acct_id"])
