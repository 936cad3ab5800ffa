"""PbsSite: PBS Pro / Torque by translation (qsub -W depend=afterok, select chunks, -J arrays).

No PBS server can be installed here, so only the translation is tested (against expected files); the
commands follow PBS Pro's documented qsub/qstat/qdel syntax.
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
from iceprod_dag.plugins.pbs import translate
from iceprod_dag.plugins.pbs.states import NATIVE_STATES, to_state

log = logging.getLogger(__name__)


class PbsSite(BatchSite):
    """PBS Pro / Torque. Extra options: ``queue``, ``walltime_margin_s`` (default 300)."""

    name: ClassVar[str] = "pbs"
    poll_interval: ClassVar[float] = 10.0
    native_states = NATIVE_STATES

    def script(self, group: JobGroup) -> str:
        return translate.job_script(
            group, int(self.options.get("walltime_margin_s", 300)), self.options.get("queue")
        )

    def submit_argv(self, group: JobGroup, script_path: Path) -> list[str]:
        return ["qsub", str(script_path)]

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
        jobs = translate.parse_qstat_json(self.command(["qstat", "-x", "-t", "-f", "-F", "json"]))
        wanted = set(job_ids)
        return {
            j: (to_state(str(a.get("job_state", ""))), str(a.get("job_state", "")))
            for j, a in jobs.items()
            if j in wanted
        }

    def cancel_jobs(self, job_ids: Sequence[str]) -> None:
        try:
            self.command(["qdel", *job_ids])
        except CommandError as exc:
            log.debug("qdel: %s", exc)

    def accounting(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not job_ids:
            return {}
        jobs = translate.parse_qstat_json(self.command(["qstat", "-x", "-f", "-F", "json", *job_ids]))
        return {j: {k: v for k, v in a.items() if not isinstance(v, dict)} for j, a in jobs.items()}
