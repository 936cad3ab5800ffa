"""The conformance base of the batch-system sites (Slurm, Grid Engine, PBS, LSF): subclass it in their tests.

    class TestMySiteConformance(BatchConformance):
        site_name = "mysite"
        native_states = ("PENDING", "RUNNING", ...)   # every state the system documents

It adds to the site contract's checks (iceprod_dag.sites.conformance) those of the batch machinery, still
without the batch system itself: a state table that covers the documented native states, deterministic
translation, dependency tokens, and status read from the run's state file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from iceprod_dag.common.states import JobState
from iceprod_dag.plugins.batch import state as st
from iceprod_dag.plugins.batch.jobdesc import JobRequest
from iceprod_dag.plugins.batch.site import BatchSite
from iceprod_dag.plugins.batch.translate import JobGroup
from iceprod_dag.sites.base import RunStatus
from iceprod_dag.sites.conformance import SiteConformance


class BatchConformance(SiteConformance):
    """Contract checks every batch site's tests inherit (not collected itself: no Test prefix)."""

    #: every native state the batch system documents; each must be in the site's table
    native_states: ClassVar[Sequence[str]] = ()

    def _batch_site(self) -> BatchSite:
        site = self.make_site()
        assert isinstance(site, BatchSite), f"{self.site_name} is not a batch site"
        return site

    def test_state_table_covers_the_documented_native_states(self) -> None:
        site = self._batch_site()
        if not self.native_states:
            pytest.skip("the plugin's tests list no native states")
        missing = [s for s in self.native_states if s not in site.native_states]
        assert not missing, f"native states without a mapping: {missing}"
        for native in self.native_states:
            assert isinstance(site.state_of(native), JobState)

    def test_unknown_native_states_map_to_unknown(self) -> None:
        site = self._batch_site()
        assert site.state_of("NO_SUCH_STATE_EVER") is JobState.UNKNOWN
        assert all(isinstance(v, JobState) for v in site.native_states.values())

    def sample_groups(self, run_dir: str = "/runs/demo") -> list[JobGroup]:
        """A single job with dependencies, and an array job with GPUs and several cpus."""
        single = JobGroup(
            name="merge_0.2",
            requests=(
                JobRequest(
                    "merge_0",
                    2,
                    ("pilot.pyz", "run", "--spec", "specs/merge.json", "--job", "0"),
                    cpus=1,
                    memory_mb=2048,
                    walltime_s=5400,
                ),
            ),
            run_dir=run_dir,
            depends_on=("101", "102"),
            parents=("proc_0", "proc_1"),
        )
        wide = JobGroup(
            name="gen.0",
            requests=tuple(
                JobRequest(
                    f"gen_{i}",
                    0,
                    ("pilot.pyz", "run", "--spec", "specs/gen.json", "--job", str(i)),
                    cpus=4,
                    memory_mb=4000,
                    gpus=1,
                    walltime_s=3600,
                )
                for i in range(3)
            ),
            run_dir=run_dir,
        )
        return [single, wide]

    def test_translation_is_deterministic_and_complete(self) -> None:
        site = self._batch_site()
        for group in self.sample_groups():
            first, second = site.script(group), site.script(group)
            assert first == second, "the same group must translate to the same script"
            assert first.startswith("#!"), "a job script starts with its interpreter line"
            for req in group.requests:
                assert req.node in first and "specs/" in first
            script = Path("/nonexistent/script.sh")
            assert site.submit_argv(group, script) == site.submit_argv(group, script)

    def test_dependency_tokens_name_arrays_and_elements(self) -> None:
        site = self._batch_site()
        group = self.sample_groups()[1]
        ids = site.parse_submit(self.submit_output_sample(group), group)
        assert len(ids) == len(group.requests) and len(set(ids)) == len(ids)
        assert len({site.array_id(j) for j in ids}) == 1
        assert site.dependency_token(ids[0], True) == site.dependency_token(ids[1], True)

    def submit_output_sample(self, group: JobGroup) -> str:
        """What the system's submit command prints for group; batch plugins' tests override this."""
        pytest.skip("the plugin's tests give no submit output sample")
        raise AssertionError  # unreachable

    def test_status_of_a_submitted_run_reads_state_without_work_at_construction(self, tmp_path: Path) -> None:
        """Constructing a site and asking for a finished run's status must not need the batch system."""
        site = self._batch_site()
        run = tmp_path / "run"
        run.mkdir()
        (run / "x.dag").write_text("JOB a a.sub\n")
        state = st.RunState(site=self.site_name, finished=True, exit_code=0)
        state.node("a").status = st.DONE
        st.save(run, state)
        status = site.status(run)
        assert isinstance(status, RunStatus)
        assert status.finished and status.nodes == {"a": JobState.DONE}
