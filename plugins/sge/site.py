"""SgeSite: runs a compiled DAG on (Son of) Grid Engine through qsub, qstat, qdel and qacct.

Grid Engine refuses jobs owned by root: the product submits as the invoking user. Tests, which run as
root, set the ``submit_as_user`` option so the commands run through ``runuser``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from iceprod_dag.common.exceptions import CommandError, SiteError
from iceprod_dag.common.states import JobState
from iceprod_dag.plugins.batch.site import BatchSite
from iceprod_dag.plugins.batch.translate import JobGroup
from iceprod_dag.plugins.sge import translate
from iceprod_dag.plugins.sge.states import NATIVE_STATES, to_state

log = logging.getLogger(__name__)


class SgeSite(BatchSite):
    """Grid Engine: array jobs (-t) for wide layers, -hold_jid for edges, the pilot as the job script.

    Extra options: ``queue``, ``pe`` (parallel environment for cpus > 1, default "smp"), ``vmem_factor``
    (h_vmem = factor x memory request, default 2), ``walltime_margin_s`` (default 300).
    """

    name: ClassVar[str] = "sge"
    poll_interval: ClassVar[float] = 5.0
    native_states = NATIVE_STATES
    fail_exit = translate.FAIL_EXIT

    def script(self, group: JobGroup) -> str:
        o = self.options
        return translate.job_script(
            group,
            walltime_margin_s=int(o.get("walltime_margin_s", 300)),
            queue=o.get("queue"),
            pe=str(o.get("pe", "smp")),
            vmem_factor=float(o.get("vmem_factor", 2.0)),
        )

    def submit_argv(self, group: JobGroup, script_path: Path) -> list[str]:
        return ["qsub", "-terse", str(script_path)]

    def parse_submit(self, stdout: str, group: JobGroup) -> list[str]:
        try:
            return translate.parse_qsub(stdout, len(group.requests), group.is_array)
        except ValueError as exc:
            raise SiteError(str(exc)) from None

    def dependency_token(self, job_id: str, whole_array: bool) -> str:
        return translate.dependency_token(job_id, whole_array)

    def array_id(self, job_id: str) -> str:
        return translate.array_id(job_id)

    def state_of(self, native: str) -> JobState:
        return to_state(native)

    def query_jobs(self, job_ids: Sequence[str]) -> dict[str, tuple[JobState, str]]:
        found = translate.parse_qstat_xml(self.command(["qstat", "-xml", "-u", "*"]))
        wanted = set(job_ids)
        return {j: (to_state(s), s) for j, s in found.items() if j in wanted}

    def cancel_jobs(self, job_ids: Sequence[str]) -> None:
        for start in range(0, len(job_ids), 500):
            try:
                self.command(["qdel", *job_ids[start : start + 500]])
            except CommandError as exc:  # jobs that already ended: the others are deleted
                log.debug("qdel: %s", exc)

    def accounting(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        wanted = set(job_ids)
        for aid in sorted({translate.array_id(j) for j in job_ids}):
            try:
                out = self.command(["qacct", "-j", aid])
            except CommandError as exc:  # not yet written (qacct lags a few seconds) or purged
                log.debug("qacct %s: %s", aid, exc)
                continue
            rows.update({k: v for k, v in translate.parse_qacct(out).items() if k in wanted})
        return rows
