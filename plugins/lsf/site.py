"""LsfSite: IBM Spectrum LSF by translation (bsub -w "done(...)", -n, rusage[mem], -W, arrays -J name[1-N]).

No LSF cluster can be installed here, so only the translation is tested (against expected files); the
commands follow LSF's documented bsub/bjobs/bkill syntax. The script goes to bsub on stdin, the only way
bsub reads #BSUB lines.
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
from iceprod_dag.plugins.lsf import translate
from iceprod_dag.plugins.lsf.states import NATIVE_STATES, to_state

log = logging.getLogger(__name__)


class LsfSite(BatchSite):
    """LSF. Extra options: ``queue``, ``walltime_margin_s`` (default 300)."""

    name: ClassVar[str] = "lsf"
    poll_interval: ClassVar[float] = 10.0
    native_states = NATIVE_STATES

    def script(self, group: JobGroup) -> str:
        return translate.job_script(
            group, int(self.options.get("walltime_margin_s", 300)), self.options.get("queue")
        )

    def submit_argv(self, group: JobGroup, script_path: Path) -> list[str]:
        return ["bsub"]

    def submit_input(self, group: JobGroup, script_path: Path) -> str | None:
        return script_path.read_text()

    def parse_submit(self, stdout: str, group: JobGroup) -> list[str]:
        try:
            return translate.parse_bsub(stdout, len(group.requests), group.is_array)
        except ValueError as exc:
            raise SiteError(str(exc)) from None

    def dependency_token(self, job_id: str, whole_array: bool) -> str:
        return translate.dependency_token(job_id, whole_array)

    def array_id(self, job_id: str) -> str:
        return translate.array_id(job_id)

    def state_of(self, native: str) -> JobState:
        return to_state(native)

    def _bjobs(self) -> dict[str, dict[str, str]]:
        return translate.parse_bjobs(
            self.command(["bjobs", "-a", "-noheader", "-o", translate.bjobs_format()])
        )

    def query_jobs(self, job_ids: Sequence[str]) -> dict[str, tuple[JobState, str]]:
        wanted = set(job_ids)
        return {
            j: (to_state(r.get("stat", "")), r.get("stat", ""))
            for j, r in self._bjobs().items()
            if j in wanted
        }

    def cancel_jobs(self, job_ids: Sequence[str]) -> None:
        try:
            self.command(["bkill", *job_ids])
        except CommandError as exc:
            log.debug("bkill: %s", exc)

    def accounting(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        wanted = set(job_ids)
        return {j: dict(r) for j, r in self._bjobs().items() if j in wanted}
