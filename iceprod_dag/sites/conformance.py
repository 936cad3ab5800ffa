"""A reusable conformance test base for site plugins: subclass it in a plugin's tests.

    from iceprod_dag.sites.conformance import SiteConformance

    class TestMySiteConformance(SiteConformance):
        site_name = "mysite"
        native_states = ("PENDING", "RUNNING", ...)   # every state the system documents (batch sites)

Each ``test_*`` method checks one obligation of the site contract (iceprod_dag/sites/base.py) without needing
the batch system itself: registration under the exact name, validation on load, declared capabilities that
match the methods and a uniform refusal of every other action, errors for unknown runs,
deterministic translation, and a state table that covers the documented native states. Override
``make_site`` if the site needs options to be built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from iceprod_dag.common.exceptions import ActionRefusedError, RunNotFoundError
from iceprod_dag.common.states import JobState
from iceprod_dag.plugins.batch.jobdesc import JobRequest
from iceprod_dag.plugins.batch.site import BatchSite
from iceprod_dag.plugins.batch.translate import JobGroup
from iceprod_dag.sites.base import ACTION_METHODS, Action, RunStatus, Site
from iceprod_dag.sites.registry import available_sites, capability_problems, site_class, validate_site_class


class SiteConformance:
    """Contract checks every site plugin's tests inherit (not collected itself: no Test prefix)."""

    #: the entry-point name the plugin registers under
    site_name: ClassVar[str]
    #: every native state the batch system documents; each must be in the site's table (batch sites only)
    native_states: ClassVar[Sequence[str]] = ()

    def make_site(self, options: Mapping[str, Any] | None = None) -> Site:
        """A site instance for the checks; constructing one must not need the batch system."""
        return site_class(self.site_name)(options)

    # ------------------------------------------------------------------ registration

    def test_registered_under_its_exact_name(self) -> None:
        assert self.site_name in available_sites()
        cls = site_class(self.site_name)
        assert cls.name == self.site_name

    def test_passes_load_time_validation(self) -> None:
        validate_site_class(site_class(self.site_name), self.site_name)

    def test_is_a_site_with_a_positive_poll_interval(self) -> None:
        site = self.make_site()
        assert isinstance(site, Site)
        assert site.poll_interval > 0

    def test_keeps_its_options(self) -> None:
        site = self.make_site({"conformance_marker": 1})
        assert site.options.get("conformance_marker") == 1

    # ------------------------------------------------------------------ capabilities

    def test_declares_exactly_the_actions_it_implements(self) -> None:
        cls = site_class(self.site_name)
        assert capability_problems(cls) == []
        assert all(isinstance(a, Action) for a in cls.capabilities)

    def test_undeclared_actions_are_refused_the_one_way(self, tmp_path: Path) -> None:
        """An action the site does not declare raises ActionRefusedError (exit 2, API 409) naming the site."""
        site = self.make_site()
        undeclared = [a for a in ACTION_METHODS if not site.can(a)]
        if not undeclared:
            pytest.skip(f"{self.site_name} declares every action")
        for action in undeclared:
            with pytest.raises(ActionRefusedError) as info:
                getattr(site, ACTION_METHODS[action])(tmp_path)
            assert info.value.exit_code == 2 and repr(self.site_name) in str(info.value)
            with pytest.raises(ActionRefusedError):
                site.require(action)

    # ------------------------------------------------------------------ unknown runs

    def test_status_of_an_unknown_run_raises(self, tmp_path: Path) -> None:
        with pytest.raises(RunNotFoundError):
            self.make_site().status(tmp_path / "no-such-run")

    def test_status_of_a_folder_without_a_dag_raises(self, tmp_path: Path) -> None:
        with pytest.raises(RunNotFoundError):
            self.make_site().status(tmp_path)

    def test_cancel_of_an_unknown_run_raises(self, tmp_path: Path) -> None:
        with pytest.raises(RunNotFoundError):
            self.make_site().cancel(tmp_path / "no-such-run")

    def test_submit_of_an_unknown_run_raises(self, tmp_path: Path) -> None:
        with pytest.raises(RunNotFoundError):
            self.make_site().submit(tmp_path / "no-such-run")

    # ------------------------------------------------------------------ batch sites: states and translation

    def _batch_site(self) -> BatchSite:
        site = self.make_site()
        if not isinstance(site, BatchSite):
            pytest.skip(f"{self.site_name} is not a batch site")
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
        from iceprod_dag.plugins.batch import state as st

        run = tmp_path / "run"
        run.mkdir()
        (run / "x.dag").write_text("JOB a a.sub\n")
        state = st.RunState(site=self.site_name, finished=True, exit_code=0)
        state.node("a").status = st.DONE
        st.save(run, state)
        status = site.status(run)
        assert isinstance(status, RunStatus)
        assert status.finished and status.nodes == {"a": JobState.DONE}


#: set ICEPROD_DAG_UPDATE_EXPECTED=1 to rewrite expected files from the current translators (then review the diff)
UPDATE_EXPECTED_ENV = "ICEPROD_DAG_UPDATE_EXPECTED"


def assert_matches_expected(path: Path, text: str) -> None:
    """A translation must equal its expected file byte for byte (translators are pure: text in, text out)."""
    import os

    if os.environ.get(UPDATE_EXPECTED_ENV) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with {UPDATE_EXPECTED_ENV}=1 and review it"
    assert text == path.read_text(), f"translation differs from {path}"
