"""SlurmSite: runs a compiled DAG on Slurm through sbatch, squeue, scancel and sacct."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from iceprod_dag.common.exceptions import CommandError, SiteError
from iceprod_dag.common.states import JobState
from iceprod_dag.plugins.batch.site import BatchSite
from iceprod_dag.plugins.batch.translate import JobGroup
from iceprod_dag.plugins.slurm import translate
from iceprod_dag.plugins.slurm.states import NATIVE_STATES, to_state

log = logging.getLogger(__name__)


class SlurmSite(BatchSite):
    """Slurm: arrays for wide layers, --dependency=afterok for edges, the pilot as the job script.

    Extra options: ``partition``, ``walltime_margin_s`` (added to the walltime request so the pilot's own
    over-time kill, which writes a stats record, comes first; default 300).
    """

    name: ClassVar[str] = "slurm"
    poll_interval: ClassVar[float] = 5.0
    native_states = NATIVE_STATES

    def script(self, group: JobGroup) -> str:
        return translate.job_script(
            group, int(self.options.get("walltime_margin_s", 300)), self.options.get("partition")
        )

    def submit_argv(self, group: JobGroup, script_path: Path) -> list[str]:
        return ["sbatch", "--parsable", str(script_path)]

    def parse_submit(self, stdout: str, group: JobGroup) -> list[str]:
        try:
            return translate.parse_sbatch(stdout, len(group.requests), group.is_array)
        except ValueError as exc:
            raise SiteError(str(exc)) from None

    def dependency_token(self, job_id: str, whole_array: bool) -> str:
        return translate.dependency_token(job_id, whole_array)

    def array_id(self, job_id: str) -> str:
        return translate.array_id(job_id)

    def state_of(self, native: str) -> JobState:
        return to_state(native)

    def query_jobs(self, job_ids: Sequence[str]) -> dict[str, tuple[JobState, str]]:
        # one call for the whole queue: squeue -j fails outright if any listed job was already purged
        out = self.command(["squeue", "-h", "-r", "-t", "all", "-o", translate.SQUEUE_FORMAT])
        wanted = set(job_ids)
        return {
            job_id: (to_state(native), native)
            for job_id, (native, _reason) in translate.parse_squeue(out).items()
            if job_id in wanted
        }

    def cancel_jobs(self, job_ids: Sequence[str]) -> None:
        for start in range(0, len(job_ids), 500):
            try:
                self.command(["scancel", *job_ids[start : start + 500]])
            except CommandError as exc:  # already ended jobs make scancel complain; the rest are cancelled
                log.debug("scancel: %s", exc)

    def accounting(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not job_ids:
            return {}
        jobs = ",".join(job_ids)
        try:
            fields: tuple[str, ...] = translate.SACCT_DBD_FIELDS
            out = self.command(["sacct", "-X", "-P", "-n", f"--format={','.join(fields)}", f"--jobs={jobs}"])
        except CommandError:
            # no slurmdbd: the job-completion file still has state, exit code, times and node
            fields = translate.SACCT_FIELDS
            out = self.command(["sacct", "-c", "-P", "-n", f"--format={','.join(fields)}", f"--jobs={jobs}"])
        return dict(translate.parse_sacct(out, fields))
