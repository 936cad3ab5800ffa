"""The HTCondor site: submit a run's DAG to a schedd as a DAGMan job, follow it from its event logs,
control it (remove, hold, release, resubmit from the rescue DAG) and collect its stats and job ClassAds.

Options (from `iceprod-dag submit`, then kept in run.json): ``site_config`` (a config/sites file or the
name of a shipped one), ``dag_file`` (a hand-written DAG), ``db`` (stats database URL), ``quiet``.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import htcondor2

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import ActionRefusedError, RunNotFoundError, SiteError
from iceprod_dag.common.states import DAG_REMOVED_EXIT, JobState
from iceprod_dag.plugins.condor import prepare, translate
from iceprod_dag.plugins.condor.follow import DagFollower, rescue_done_nodes
from iceprod_dag.plugins.condor.schedd import locate_schedd
from iceprod_dag.plugins.condor.siteconfig import SiteConfig, load_site_config
from iceprod_dag.sites.base import Action, RunStatus, Site
from iceprod_dag.sites.runlock import RunLock

if TYPE_CHECKING:
    # collect pulls in SQLAlchemy and the stats models (~0.4 s): imported when first needed, after the
    # DAGMan job is submitted, so that time is not spent before the DAG starts
    from iceprod_dag.plugins.condor.collect import CollectState

log = logging.getLogger(__name__)

#: seconds collect waits, at most, for the last job ads of a finished DAG to reach the schedd's history
HISTORY_SETTLE_TRIES = 10
#: seconds between collects while a DAG runs (every finished attempt is collected at the end anyway)
COLLECT_INTERVAL_S = 15.0


class CondorSite(Site):
    """Runs DAGs with DAGMan on an HTCondor pool (the local schedd, or a named schedd of a named pool)."""

    name: ClassVar[str] = "condor"
    #: a poll reads only what the event logs gained (no schedd query), so it can be frequent: `watch`
    #: returns within this long of DAGMan's end
    poll_interval: ClassVar[float] = 0.5
    #: condor_dagman honours its halt file (iceprod_dag.sites.runcontrol suspends and resumes with it)
    capabilities: ClassVar[frozenset[Action]] = frozenset(
        {Action.SUSPEND, Action.HOLD, Action.RELEASE, Action.RESUBMIT, Action.THROUGHPUT}
    )

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self._config: SiteConfig | None = None
        self._followers: dict[Path, DagFollower] = {}
        self._db: Any = None
        self._collected: dict[Path, CollectState] = {}

    # ------------------------------------------------------------ helpers
    @property
    def config(self) -> SiteConfig:
        if self._config is None:
            self._config = load_site_config(self.options.get("site_config"))
        return self._config

    def schedd(self) -> htcondor2.Schedd:
        return locate_schedd(self.config.schedd, self.config.collector)

    def run_info(self, run_dir: Path) -> dict[str, Any]:
        path = Path(run_dir) / names.RUN_INFO
        try:
            info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise RunNotFoundError(f"{run_dir}: not a submitted run (no {names.RUN_INFO})") from exc
        if info.get("site") != self.name:
            raise SiteError(f"{run_dir} was submitted to site {info.get('site')!r}, not {self.name!r}")
        return info

    def _write_info(self, run_dir: Path, info: dict[str, Any]) -> None:
        text = json.dumps(info, indent=2, sort_keys=True) + "\n"
        for folder in {run_dir, Path(info["submit_dir"])}:
            (folder / names.RUN_INFO).write_text(text, encoding="utf-8")

    def _engine(self) -> Any:
        if self._db is None:
            from iceprod_dag.stats.db import init_db

            self._db = init_db(self.options.get("db"))
        return self._db

    def _lasting_options(self) -> dict[str, Any]:
        """The options later commands (status, resubmit) need, with paths made absolute."""
        kept = {k: v for k, v in self.options.items() if k in ("site_config", "dag_file", "db") and v}
        for key in ("site_config", "dag_file"):
            if key in kept and Path(str(kept[key])).exists():
                kept[key] = str(Path(str(kept[key])).resolve())
        return kept

    def _dag_of(self, info: dict[str, Any]) -> Path:
        return Path(info["dag"])

    # ------------------------------------------------------------ submit
    def submit(self, run_dir: Path, wait: bool = False) -> int | None:
        run_dir = Path(run_dir).resolve()
        if not run_dir.is_dir():
            raise RunNotFoundError(f"{run_dir}: no such run folder")
        # DAGMan runs it; the lock keeps a second submit from handing the schedd a second DAGMan meanwhile
        with RunLock(run_dir).acquire():
            if (run_dir / names.RUN_INFO).exists():
                # `submit` into a run folder that ran before resumes it from DAGMan's rescue DAG
                self.resubmit(run_dir)
            else:
                self._submit_new(run_dir)
        return self.watch(run_dir) if wait else None

    def _submit_new(self, run_dir: Path) -> None:
        cfg = self.config
        dag_name = Path(self.options["dag_file"]).name if self.options.get("dag_file") else None
        try:
            dag_name = dag_name or Path(names.find_dag_file(str(run_dir))).name
        except FileNotFoundError as exc:
            raise RunNotFoundError(str(exc)) from exc
        submit_dir = prepare.submit_dir_for(run_dir, cfg)
        prepare.copy_run(run_dir, submit_dir)
        dag_file = submit_dir / dag_name
        if prepare.is_compiled(submit_dir, dag_file):
            prepare.apply_site(submit_dir, dag_file, cfg)
        dataset = self._dataset_meta(submit_dir, dag_file)
        info: dict[str, Any] = {
            "site": self.name,
            "options": self._lasting_options(),
            "site_config": cfg.name,
            "submit_dir": str(submit_dir),
            "dag": str(dag_file),
            "schedd": cfg.schedd,
            "collector": cfg.collector,
            "clusters": [],
        }
        info["cluster"] = self._submit_dag(dag_file, submit_dir, dataset["name"], resubmit=False)
        info["clusters"].append(info["cluster"])
        info["submitted_at"] = time.time()
        self._write_info(run_dir, info)
        self._register(run_dir, dag_file, dataset)
        log.info("submitted %s as DAGMan job %s", dag_file, info["cluster"])

    def _submit_dag(self, dag_file: Path, submit_dir: Path, batch: str, resubmit: bool) -> int:
        options = translate.from_dag_options(self.config, batch_name=batch, resubmit=resubmit)
        # DAGMan runs as the folder's owner and writes next to the DAG: give it what root made there
        prepare.match_owner(submit_dir)
        # DAGMan resolves the DAG's relative paths from its working directory, which is the submitter's
        with contextlib.chdir(submit_dir):
            try:
                description = htcondor2.Submit.from_dag(str(dag_file), options)
            except Exception as exc:
                raise SiteError(f"cannot prepare the DAGMan job for {dag_file}: {exc}") from exc
            # DAGMan's default policy requeues a DAG that exits with a code other than 0-2 (ABORT-DAG-ON RETURN)
            description["on_exit_remove"] = "true"
            description["initialdir"] = str(submit_dir)
            prepare.match_owner(submit_dir)
            try:
                result = self.schedd().submit(description)
            except SiteError:
                raise
            except Exception as exc:
                raise SiteError(f"the schedd refused the DAGMan job for {dag_file}: {exc}") from exc
        return int(result.cluster())

    def _dataset_meta(self, submit_dir: Path, dag_file: Path) -> dict[str, Any]:
        from iceprod_dag.stats.importer import dataset_meta

        meta = (
            dataset_meta(submit_dir, owner=getpass.getuser())
            if prepare.is_compiled(submit_dir, dag_file)
            else None
        )
        return meta or {"name": dag_file.stem, "owner": getpass.getuser()}

    def _register(self, run_dir: Path, dag_file: Path, dataset: dict[str, Any]) -> None:
        from iceprod_dag.dagman.parser import parse_dag
        from iceprod_dag.stats.ingest import register_dataset

        try:
            dag = parse_dag(dag_file)
            nodes = [n for n, node in dag.nodes.items() if not node.final]
            register_dataset(self._engine(), run_dir=run_dir, site=self.name, nodes=nodes, **dataset)
        except Exception as exc:  # the run is submitted; a stats problem must not hide that
            log.warning("could not record %s in the stats database: %s", run_dir, exc)

    # ------------------------------------------------------------ follow
    def follower(self, run_dir: Path) -> DagFollower:
        """The incremental follower of a run, kept per run folder for watch loops."""
        run_dir = Path(run_dir).resolve()
        info = self.run_info(run_dir)
        current = self._followers.get(run_dir)
        if current is None or current.dagman_cluster != info["cluster"]:
            from iceprod_dag.dagman.parser import parse_dag

            dag_file = self._dag_of(info)
            try:
                nodes = parse_dag(dag_file).nodes.values()
                node_names = [n.name for n in nodes if not n.final]
                finals = frozenset(n.name for n in nodes if n.final)
            except Exception as exc:  # a DAG our parser does not know still runs; nodes appear as they log
                log.debug("cannot list the nodes of %s: %s", dag_file, exc)
                node_names, finals = [], frozenset()
            done = rescue_done_nodes(Path(info["rescue"])) if info.get("rescue") else frozenset()
            current = DagFollower(dag_file, info["cluster"], node_names, finals, done)
            self._followers[run_dir] = current
        return current

    def status(self, run_dir: Path) -> RunStatus:
        return self.follower(run_dir).poll()

    def throughput_per_min(self, run_dir: Path) -> float:
        return self.follower(run_dir).throughput_per_min()

    def watch(self, run_dir: Path, timeout: float | None = None) -> int:
        """Follow the run until DAGMan ends; collect as nodes finish; return DAGMan's exit status."""
        deadline = None if timeout is None else time.time() + timeout
        done_before, collected_at = -1, 0.0
        while True:
            status = self.status(run_dir)
            done = sum(1 for s in status.nodes.values() if s.finished)
            # history queries load the schedd: collect as nodes finish, but not more often than this
            due = time.time() - collected_at >= COLLECT_INTERVAL_S
            if (done != done_before and due) or status.finished:
                self._safe_collect(run_dir)
                done_before, collected_at = done, time.time()
            if status.finished:
                return int(status.exit_code if status.exit_code is not None else 1)
            if deadline is not None and time.time() > deadline:
                raise SiteError(f"{run_dir}: the DAG did not end within {timeout:.0f} s")
            time.sleep(self.poll_interval)

    def _record_end(self, run_dir: Path, status: RunStatus) -> None:
        """The dataset's state in the stats database once DAGMan has ended (it stays `submitted` otherwise)."""
        from iceprod_dag.stats.ingest import set_dataset_state

        if status.halted:
            state = "suspended"
        elif status.exit_code == DAG_REMOVED_EXIT:
            state = "cancelled"
        else:
            state = "done" if status.exit_code == 0 else "failed"
        try:
            set_dataset_state(self._engine(), run_dir=Path(run_dir).resolve(), site=self.name, state=state)
        except Exception as exc:  # the run has ended either way; a stats problem must not hide that
            log.warning("could not record the end of %s in the stats database: %s", run_dir, exc)

    # ------------------------------------------------------------ control
    def _act(self, run_dir: Path, action: htcondor2.JobAction, whole_dag: bool) -> None:
        info = self.run_info(Path(run_dir).resolve())
        cluster = int(info["cluster"])
        constraint = f"ClusterId == {cluster}" + (f" || DAGManJobId == {cluster}" if whole_dag else "")
        try:
            self.schedd().act(action, constraint)
        except Exception as exc:
            raise SiteError(f"cannot {action.name.lower()} DAGMan job {cluster} of {run_dir}: {exc}") from exc

    def cancel(self, run_dir: Path) -> None:
        """condor_rm the DAGMan job: DAGMan removes its node jobs and writes a rescue DAG."""
        self._act(run_dir, htcondor2.JobAction.Remove, whole_dag=False)

    def hold(self, run_dir: Path) -> None:
        """Hold the node jobs and DAGMan (no new submissions; running jobs stop and wait)."""
        self._act(run_dir, htcondor2.JobAction.Hold, whole_dag=True)

    def release(self, run_dir: Path) -> None:
        self._act(run_dir, htcondor2.JobAction.Release, whole_dag=True)

    def resubmit(self, run_dir: Path) -> int:
        """Submit the DAG again; DAGMan runs its newest rescue DAG, so completed nodes do not rerun."""
        run_dir = Path(run_dir).resolve()
        info = self.run_info(run_dir)
        status = self.status(run_dir)
        if not status.finished:
            raise ActionRefusedError(
                "resubmit", f"{run_dir}: DAGMan job {info['cluster']} is still running; remove it first"
            )
        dag_file = self._dag_of(info)
        from iceprod_dag.dagman.rescue import find_rescue

        # the DAGMan job's end is logged as soon as it is removed, but DAGMan writes the rescue DAG on its
        # way out: wait for the job to leave the queue before reading it
        self._wait_left_queue(int(info["cluster"]))
        rescue = find_rescue(dag_file) or self._write_own_rescue(run_dir, dag_file)
        # record what the earlier submission left, so the new attempts number on after it
        self._safe_collect(run_dir)
        if prepare.is_compiled(Path(info["submit_dir"]), dag_file):
            prepare.mark_resubmitted(dag_file)
        cluster = self._submit_dag(dag_file, Path(info["submit_dir"]), dag_file.stem, resubmit=True)
        info["rescue"] = str(rescue)
        info["cluster"] = cluster
        info["clusters"] = [*info.get("clusters", []), cluster]
        info["submitted_at"] = time.time()
        self._write_info(run_dir, info)
        self._followers.pop(run_dir, None)
        log.info("resubmitted %s as DAGMan job %s", dag_file, cluster)
        return cluster

    def _write_own_rescue(self, run_dir: Path, dag_file: Path) -> Path:
        """A rescue DAG in DAGMan's format from the nodes' event log, for a DAGMan that exited without one
        (removed while it was still starting up, e.g. right after a release)."""
        from iceprod_dag.dagman.parser import parse_dag
        from iceprod_dag.dagman.rescue import write_rescue

        status = self.status(run_dir)
        done = [node for node, state in status.nodes.items() if state is JobState.DONE]
        failed = [node for node, state in status.nodes.items() if state is JobState.FAILED]
        rescue = write_rescue(parse_dag(dag_file), done, failed)
        log.warning(
            "DAGMan left no rescue DAG; wrote %s from the event log (%d nodes done)", rescue, len(done)
        )
        return rescue

    def _wait_left_queue(self, cluster: int, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if not self.schedd().query(f"ClusterId == {cluster}", projection=["ClusterId"]):
                    return
            except Exception as exc:  # the schedd is busy: try again until the deadline
                log.debug("query for DAGMan job %s: %s", cluster, exc)
            time.sleep(0.5)
        raise SiteError(f"DAGMan job {cluster} is still in the queue after {timeout_s:.0f} s")

    # ------------------------------------------------------------ collect
    def collect(self, run_dir: Path) -> int:
        run_dir = Path(run_dir).resolve()
        info = self.run_info(run_dir)
        try:
            schedd = self.schedd()
        except SiteError as exc:
            log.warning("%s", exc)
            schedd = None
        submit_dir = Path(info["submit_dir"])
        from iceprod_dag.plugins.condor.collect import CollectState, collect_run, missing_ads

        state = self._collected.setdefault(run_dir, CollectState())
        args = (
            self._engine(),
            run_dir,
            submit_dir,
            self.name,
            schedd,
            info.get("clusters") or [info["cluster"]],
        )
        incremental = prepare.is_compiled(submit_dir, self._dag_of(info))
        new = collect_run(*args, state, incremental_history=incremental)
        # DAGMan may see a job end a moment before the schedd moves its ad to the history: once the DAG
        # is over, wait a little for the ads of the attempts whose records came back
        for _ in range(HISTORY_SETTLE_TRIES):
            if schedd is None or not self.follower(run_dir).finished or not missing_ads(submit_dir):
                break
            time.sleep(1.0)
            new += collect_run(*args, state, incremental_history=incremental)
        status = self.status(run_dir)
        if status.finished:
            self._record_end(run_dir, status)
        return new

    def _safe_collect(self, run_dir: Path) -> None:
        try:
            self.collect(run_dir)
        except Exception as exc:  # following the run matters more than one missed ingest
            log.warning("collecting %s failed (will retry): %s", run_dir, exc)
            self._collected.pop(Path(run_dir).resolve(), None)  # read everything again next time
