"""The submit-side watcher: follows a DAG on a batch system the way DAGMan follows it on HTCondor.

It submits ready nodes with batch-side dependencies (so whole layers wait in the batch queue, as arrays),
runs PRE and POST scripts here on the submit side, resubmits failed nodes up to their RETRY, runs the FINAL
node last, and writes its state (plugins/batch/state.py) after every change, so a re-submit skips done nodes.
DAGMan's halt file (``<dag>.halt``) suspends it: nothing new is submitted and no PRE script runs, while queued
jobs finish and their POST scripts run. Unlike DAGMan it then waits halted instead of exiting with a rescue
DAG: polling costs one batched query, and removing the file resumes the run in place.
Run detached as ``python -m iceprod_dag.plugins.batch.watcher RUNDIR``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import IceprodDagError, SiteError
from iceprod_dag.common.states import JobState
from iceprod_dag.dagman.model import Dag, Node
from iceprod_dag.dagman.parser import load_rescue
from iceprod_dag.pilot import exitcodes
from iceprod_dag.pilot import record as records
from iceprod_dag.plugins.batch import state as st
from iceprod_dag.plugins.batch.jobdesc import JobRequest, job_request, read_submit
from iceprod_dag.plugins.batch.scripts import run_script
from iceprod_dag.plugins.batch.translate import DEPENDENCY_NOT_MET, group_requests

if TYPE_CHECKING:
    from iceprod_dag.plugins.batch.site import BatchSite

log = logging.getLogger(__name__)

#: polls a job may be gone from the queue without an exit marker before it counts as killed
MISSING_POLLS = 3
#: seconds between polls right after something changed; doubles up to the site's poll interval when quiet
FAST_POLL_S = 0.5
#: seconds an ended job may lack its exit marker (shared filesystem lag) before it counts as killed
MARKER_GRACE_S = 5.0


class Watcher:
    """Follows one run folder's DAG on one batch site."""

    def __init__(self, site: BatchSite, run_dir: Path) -> None:
        self.site = site
        self.run_dir = Path(run_dir)
        dag_file = site.options.get("dag_file") or names.find_dag_file(str(self.run_dir))
        self.dag: Dag = load_rescue(dag_file)
        self.halt_file = Path(names.halt_file(str(dag_file)))
        self._halted = False
        self.state = st.load(self.run_dir) or st.RunState(site=site.name)
        self._order = _topological(self.dag)
        self._submits: dict[tuple[str | None, str], tuple[Path, dict[str, str]]] = {}
        self._stop = False

    # ---------------------------------------------------------------- start

    def prepare(self) -> None:
        """Start (or restart) the run: done nodes stay done, the rest get their full RETRY budget again."""
        from iceprod_dag.plugins.batch.site import watcher_alive

        if self.state.site != self.site.name:
            raise SiteError(f"{self.run_dir} runs on site {self.state.site!r}, not {self.site.name!r}")
        if watcher_alive(self.state) and self.state.watcher_pid != os.getpid():
            raise SiteError(f"{self.run_dir} is already followed by watcher pid {self.state.watcher_pid}")
        self.state.options = dict(self.site.options)
        # as condor_submit_dag does: a (re)submitted DAG starts unhalted
        self.halt_file.unlink(missing_ok=True)
        self.state.finished, self.state.exit_code = False, None
        self.state.submissions += 1
        for name, node in self.dag.nodes.items():
            ns = self.state.node(name)
            if node.done:
                ns.status = st.DONE
            if ns.status == st.FAILED:
                ns.status, ns.attempt = st.WAITING, ns.attempt + 1
            if ns.status != st.DONE:
                ns.failures = 0
        (self.run_dir / names.BATCH_EXIT_DIR).mkdir(parents=True, exist_ok=True)
        (self.run_dir / names.BATCH_SCRIPTS_DIR).mkdir(parents=True, exist_ok=True)
        (self.run_dir / names.BATCH_OUT_DIR).mkdir(parents=True, exist_ok=True)
        self.adopt(os.getpid())

    def adopt(self, pid: int) -> None:
        """Record which process follows the run."""
        self.state.watcher_pid, self.state.watcher_host = pid, socket.gethostname()
        st.save(self.run_dir, self.state)

    # ---------------------------------------------------------------- loop

    def run(self) -> int:
        """Poll until the DAG ends (or SIGTERM); return its exit status (0 success, 1 failure)."""
        previous = signal.signal(signal.SIGTERM, self._on_term)
        try:
            self.adopt(os.getpid())
            delay = FAST_POLL_S
            while True:
                before = self.state.signature()
                self.poll()
                if self.state.finished or self._stop:
                    break
                # poll again soon while things move (a layer ending releases the next), back off when quiet
                changed = self.state.signature() != before
                delay = FAST_POLL_S if changed else min(delay * 2, self.site.watch_interval)
                _sleep(delay, lambda: self._stop)
        finally:
            signal.signal(signal.SIGTERM, previous)
            st.save(self.run_dir, self.state)
        return self.state.exit_code if self.state.exit_code is not None else 1

    def _on_term(self, signum: int, frame: object) -> None:
        self._stop = True

    def poll(self) -> None:
        """One round: read results, submit what became ready, finish when nothing is left."""
        self._collect_results()
        if not self._stop and not self.halted():
            self._submit_ready()
            self._maybe_finish()
        st.save(self.run_dir, self.state)

    def halted(self) -> bool:
        """Whether the halt file exists (logged when that changes)."""
        halted = self.halt_file.exists()
        if halted != self._halted:
            log.warning("%s: %s", self.halt_file, "halted" if halted else "halt file gone, resuming")
            self._halted = halted
        return halted

    # ---------------------------------------------------------------- results

    def _collect_results(self) -> None:
        queued = {n: s for n, s in self.state.nodes.items() if s.status == st.QUEUED}
        if not queued:
            return
        live = self.site.query_jobs(sorted({s.job_id for s in queued.values() if s.job_id}))
        stale: list[str] = []
        for name, ns in queued.items():
            if ns.status != st.QUEUED:  # reset by a parent's failure earlier in this loop
                continue
            rc, acct_id = st.read_exit(self.run_dir, name, ns.attempt)
            if acct_id:
                ns.acct_ids[str(ns.attempt)] = acct_id
            found = live.get(ns.job_id or "")
            if rc is None:
                if found is not None and not found[0].finished:
                    ns.missing_polls, ns.missing_since = 0, None
                    continue
                # a shared filesystem may show the marker a little late: give it a few polls and seconds
                ns.missing_polls += 1
                ns.missing_since = ns.missing_since or time.time()
                grace = float(self.site.options.get("marker_grace_s", MARKER_GRACE_S))
                if ns.missing_polls < MISSING_POLLS or time.time() - ns.missing_since < grace:
                    continue
                ns.reason = f"job {ns.job_id} ended without an exit code ({found[1] if found else 'gone'})"
            elif rc != 0 and found is not None and found[0] is JobState.HELD:
                # Grid Engine keeps a failed (exit 100) job in error state: remove it. A job that succeeded
                # but is still finishing must be left alone: its children's afterok waits for its end.
                stale.append(ns.job_id or "")
            self._attempt_ended(name, ns, rc)
        if stale:
            self.site.cancel_jobs(stale)

    def _attempt_ended(self, name: str, ns: st.NodeState, rc: int | None) -> None:
        node = self.dag.nodes[name]
        ns.missing_polls, ns.missing_since = 0, None
        if rc == DEPENDENCY_NOT_MET:  # started before its parents succeeded: not an attempt
            st.exit_marker(self.run_dir, name, ns.attempt).unlink(missing_ok=True)
            ns.status, ns.job_id = st.WAITING, None
            return
        ns.exit_codes.append(rc)
        result = -1 if rc is None else rc
        if node.post is not None:
            result = run_script(node, node.post, self.dag, ns, self.state, job_return=result)
        if result == 0:
            ns.status, ns.reason = st.DONE, ""
            st.done_marker(self.run_dir, name).touch()
            log.info("%s attempt %d done", name, ns.attempt)
            return
        st.done_marker(self.run_dir, name).unlink(missing_ok=True)
        self._failed(name, ns, result, f"exit code {rc}" if rc is not None else ns.reason)

    def _failed(self, name: str, ns: st.NodeState, result: int, why: str) -> None:
        node = self.dag.nodes[name]
        log.warning("%s attempt %d failed: %s", name, ns.attempt, why)
        self._reset_descendants(name)
        ns.failures += 1
        ns.job_id = None
        if node.abort_dag_on and result == node.abort_dag_on[0]:
            ret = node.abort_dag_on[1]
            self._abort(f"{name}: ABORT-DAG-ON exit {result}", 1 if ret is None else ret)
            ns.status, ns.reason = st.FAILED, why
            return
        if node.unless_exit is not None and result == node.unless_exit:
            ns.status, ns.reason = st.FAILED, f"{why} (permanent: UNLESS-EXIT {node.unless_exit})"
        elif ns.failures <= node.retry:
            ns.status, ns.reason = st.WAITING, f"{why}; retry {ns.failures} of {node.retry}"
            self._learn(name, ns, result)
            ns.attempt += 1
        else:
            ns.status, ns.reason = st.FAILED, f"{why} after {ns.failures} attempt(s)"

    def _learn(self, name: str, ns: st.NodeState, result: int) -> None:
        """After a kill over a limit, the next attempt asks for what the record says (1.5 x the peak)."""
        category = exitcodes.CATEGORY_BY_CODE.get(result)
        if category not in records.LEARNED:
            return
        field, out, _ = records.LEARNED[category]
        try:
            record = json.loads((self.run_dir / names.stats_record(name, ns.attempt)).read_text())
            wanted = int(record[out]) if record.get(out) else None
        except (OSError, ValueError, KeyError, TypeError):
            wanted = None
        if wanted:
            setattr(ns, field, wanted)

    def _reset_descendants(self, name: str) -> None:
        """Children queued behind a failed node can never start: take them back out of the queue."""
        seen, todo, cancel = set(), list(self.dag.nodes[name].children), []
        while todo:
            child = todo.pop()
            if child in seen:
                continue
            seen.add(child)
            todo.extend(self.dag.nodes[child].children)
            cs = self.state.node(child)
            if cs.status == st.QUEUED:
                if cs.job_id:
                    cancel.append(cs.job_id)
                cs.status, cs.job_id = st.WAITING, None
        if cancel:
            self.site.cancel_jobs(sorted(set(cancel)))

    def _abort(self, why: str, code: int) -> None:
        queued = [s.job_id for s in self.state.nodes.values() if s.status == st.QUEUED and s.job_id]
        ids = self.site.whole_arrays(self.state, queued)
        if ids:
            self.site.cancel_jobs(ids)
        for s in self.state.nodes.values():
            if s.status == st.QUEUED:
                s.status, s.job_id = st.WAITING, None
        log.error("aborting the DAG: %s", why)
        self.state.finished, self.state.exit_code = True, code

    # ---------------------------------------------------------------- submission

    def _ready(self, name: str, running: dict[str, int]) -> bool:
        node = self.dag.nodes[name]
        eager = bool(self.site.options.get("eager", True))
        for p in node.parents:
            ps = self.state.node(p).status
            if ps == st.DONE:
                continue
            # a parent still in the queue is fine: the batch system holds the child until it succeeds,
            # unless something must run here first (the child's PRE, the parent's POST)
            if ps != st.QUEUED or not eager or node.pre is not None or self.dag.nodes[p].post is not None:
                return False
        if node.category and node.category in self.dag.max_jobs:
            if running.get(node.category, 0) >= self.dag.max_jobs[node.category]:
                return False
        return True

    def _submit_ready(self) -> None:
        while not self.state.finished and not self._stop:
            running: dict[str, int] = {}
            for n, s in self.state.nodes.items():
                cat = self.dag.nodes[n].category if n in self.dag.nodes else None
                if s.status == st.QUEUED and cat:
                    running[cat] = running.get(cat, 0) + 1
            wave = []
            for name in self._order:
                ns = self.state.node(name)
                if ns.status != st.WAITING or self.dag.nodes[name].final or not self._ready(name, running):
                    continue
                wave.append(name)
                cat = self.dag.nodes[name].category
                if cat:
                    running[cat] = running.get(cat, 0) + 1
            if not wave:
                return
            before = [(self.state.node(n).status, self.state.node(n).attempt) for n in wave]
            self._submit(self._run_pres(wave))
            if before == [(self.state.node(n).status, self.state.node(n).attempt) for n in wave]:
                return  # nothing moved (the submission failed): try again at the next poll

    def _run_pres(self, wave: list[str]) -> list[str]:
        """Run the PRE scripts of a wave; the nodes whose job should now be submitted."""
        out = []
        for name in wave:
            node, ns = self.dag.nodes[name], self.state.node(name)
            rc = 0 if node.pre is None else run_script(node, node.pre, self.dag, ns, self.state)
            if rc == 0 and node.noop:  # nothing to submit: the node's result is its POST script's, or success
                self._attempt_ended(name, ns, 0)
            elif rc == 0:
                out.append(name)
            elif node.pre_skip is not None and rc == node.pre_skip:
                ns.status, ns.reason = st.DONE, f"PRE_SKIP {rc}"
                st.done_marker(self.run_dir, name).touch()
            else:
                self._failed(name, ns, rc, f"PRE script exit code {rc}")
        return out

    def _request(self, name: str) -> JobRequest:
        node, ns = self.dag.nodes[name], self.state.node(name)
        key = (node.directory, node.submit_file)
        if key not in self._submits:
            path = self.run_dir / (node.directory or "") / node.submit_file
            self._submits[key] = (path, read_submit(path))
        path, submit = self._submits[key]
        return job_request(
            name,
            ns.attempt,
            submit,
            node.vars,
            ns.memory_mb,
            where=str(path),
            site=self.site.name,
            walltime_s=ns.walltime_s,
            disk_mb=ns.disk_mb,
        )

    def _submit(self, batch: list[str]) -> None:
        if not batch:
            return
        arrays: dict[str, int] = {}
        for s in self.state.nodes.values():
            if s.status == st.QUEUED and s.job_id:
                aid = self.site.array_id(s.job_id)
                arrays[aid] = arrays.get(aid, 0) + 1
        items, cwd = [], {}
        stale_markers = set(os.listdir(self.run_dir / names.BATCH_EXIT_DIR))
        for name in batch:
            node = self.dag.nodes[name]
            queued_parents = [p for p in node.parents if self.state.node(p).status == st.QUEUED]
            deps = self._dependencies(node, queued_parents, arrays)
            items.append((self._request(name), deps, tuple(node.parents)))
            if node.directory:
                cwd[name] = str((self.run_dir / node.directory).resolve())
            marker = st.exit_marker(self.run_dir, name, self.state.node(name).attempt)
            if marker.name in stale_markers:  # left by an attempt that never reported (killed watcher)
                marker.unlink(missing_ok=True)
        groups = group_requests(
            items,
            str(self.run_dir),
            max_array=int(self.site.options.get("max_array", 1000)),
            python=str(self.site.options.get("python", "python3")),
            cwd=cwd,
        )
        for group in groups:
            script = self.run_dir / names.BATCH_SCRIPTS_DIR / f"{group.name}.sh"
            script.write_text(self.site.script(group))
            try:
                out = self.site.command(
                    self.site.submit_argv(group, script),
                    input=self.site.submit_input(group, script),
                    cwd=str(self.run_dir),
                )
                ids = self.site.parse_submit(out, group)
            except IceprodDagError as exc:
                # leave the nodes waiting: the next poll tries again
                log.error("submitting %s failed: %s", group.name, exc)
                for req in group.requests:
                    self.state.node(req.node).reason = f"submit failed: {exc}"
                self._stop_on_repeated_failure(exc)
                continue
            for req, job_id in zip(group.requests, ids, strict=True):
                ns = self.state.node(req.node)
                ns.status, ns.job_id, ns.reason, ns.missing_polls = st.QUEUED, job_id, "", 0
                ns.jobs[str(ns.attempt)] = job_id
            log.info("submitted %s: %d node(s) as %s", group.name, len(ids), self.site.array_id(ids[0]))
            st.save(self.run_dir, self.state)

    def _stop_on_repeated_failure(self, exc: Exception) -> None:
        self._submit_errors = getattr(self, "_submit_errors", 0) + 1
        if self._submit_errors >= 5:
            raise SiteError(f"batch submission keeps failing: {exc}")

    def _dependencies(self, node: Node, queued_parents: list[str], arrays: dict[str, int]) -> tuple[str, ...]:
        """Batch dependency tokens: a whole array when every still-queued element of it is a parent."""
        per_array: dict[str, list[str]] = {}
        for p in queued_parents:
            job_id = self.state.node(p).job_id or ""
            per_array.setdefault(self.site.array_id(job_id), []).append(job_id)
        tokens: set[str] = set()
        for aid, ids in per_array.items():
            whole = len(ids) == arrays.get(aid, -1)
            tokens.update(self.site.dependency_token(j, whole) for j in ids)
        return tuple(sorted(tokens))

    # ---------------------------------------------------------------- the end

    def _maybe_finish(self) -> None:
        if self.state.finished:
            return
        statuses = {n: s.status for n, s in self.state.nodes.items()}
        if any(s == st.QUEUED for s in statuses.values()):
            return
        final = self.dag.final
        body = [n for n, node in self.dag.nodes.items() if not node.final]
        if any(statuses[n] == st.WAITING and self._reachable(n) for n in body):
            return  # waiting for a MAXJOBS slot or a failed submission's retry
        if final and statuses.get(final) == st.WAITING:
            self._submit(self._run_pres([final]))
            if self.state.node(final).status == st.QUEUED:
                return
        ok = all(statuses[n] == st.DONE for n in body) and (
            not final or self.state.node(final).status == st.DONE
        )
        self.state.finished, self.state.exit_code = True, 0 if ok else 1
        log.info("DAG finished with status %d", self.state.exit_code)

    def _reachable(self, name: str) -> bool:
        """Whether a waiting node can still run: no ancestor failed for good."""
        todo, seen = list(self.dag.nodes[name].parents), set()
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            if self.state.node(p).status == st.FAILED:
                return False
            todo.extend(self.dag.nodes[p].parents)
        return True


def _topological(dag: Dag) -> list[str]:
    """Nodes parents-first, then by descending PRIORITY, then in file order."""
    order, indeg = [], {n: len(node.parents) for n, node in dag.nodes.items()}
    ready = sorted((n for n, d in indeg.items() if d == 0), key=lambda n: -dag.nodes[n].priority)
    while ready:
        n = ready.pop(0)
        order.append(n)
        for c in dag.nodes[n].children:
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    return order


def _sleep(seconds: float, stop: object) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop():  # type: ignore[operator]
        time.sleep(min(0.2, seconds))


def main(argv: list[str] | None = None) -> int:
    """Entry of the detached watcher process: follow RUNDIR with the site and options its state names."""
    from iceprod_dag.sites.registry import load_site

    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_dir = Path(args[0]).resolve()
    saved = st.load(run_dir)
    if saved is None:
        log.error("%s has no %s", run_dir, names.BATCH_STATE)
        return 2
    site = load_site(saved.site, saved.options)
    try:
        return Watcher(site, run_dir).run()  # type: ignore[arg-type]
    except IceprodDagError as exc:
        log.error("watcher stopped: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
