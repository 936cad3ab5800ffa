"""A reusable conformance test base for site plugins: subclass it in a plugin's tests.

    from iceprod_dag.sites.conformance import SiteConformance

    class TestMySiteConformance(SiteConformance):
        site_name = "mysite"

Batch-system sites subclass ``iceprod_dag.plugins.batch.conformance.BatchConformance`` instead, which adds
the checks of their state tables and translation.

Each ``test_*`` method checks one obligation of the site contract (iceprod_dag/sites/base.py) without needing
the batch system itself: registration under the exact name, validation on load, declared capabilities that
match the methods and a uniform refusal of every other action, errors for unknown runs. Override
``make_site`` if the site needs options to be built.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from iceprod_dag.common.exceptions import ActionRefusedError, RunNotFoundError
from iceprod_dag.sites.base import ACTION_METHODS, Action, Site
from iceprod_dag.sites.registry import available_sites, capability_problems, site_class, validate_site_class


class SiteConformance:
    """Contract checks every site plugin's tests inherit (not collected itself: no Test prefix)."""

    #: the entry-point name the plugin registers under
    site_name: ClassVar[str]

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
