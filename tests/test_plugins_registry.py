"""Site discovery through entry points, load-time validation, and the one command runner."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from iceprod_dag.common.exceptions import (
    CommandError,
    CommandTimeoutError,
    InvalidSiteError,
    UnknownSiteError,
)
from iceprod_dag.sites import registry
from iceprod_dag.sites.base import Site
from iceprod_dag.sites.runner import run_command

BUILT_IN = ["condor", "local", "lsf", "pbs", "sge", "slurm"]


def test_built_in_sites_are_registered_like_any_plugin() -> None:
    assert set(BUILT_IN) <= set(registry.available_sites())


@pytest.mark.parametrize("name", ["slurm", "sge", "pbs", "lsf"])
def test_load_site_gives_a_configured_instance(name: str) -> None:
    site = registry.load_site(name, {"poll_interval": 2})
    assert isinstance(site, Site) and site.name == name
    assert site.options == {"poll_interval": 2}


@pytest.mark.parametrize("name", ["slur", "Slurm", "slurm-wlm", "iceprod_dag.plugins.slurm"])
def test_names_match_exactly_and_the_error_lists_installed_sites(name: str) -> None:
    with pytest.raises(UnknownSiteError) as info:
        registry.load_site(name)
    message = str(info.value)
    assert repr(name) in message
    for installed in BUILT_IN:
        assert installed in message
    assert info.value.exit_code == 2


class _Incomplete(Site):
    name = "incomplete"

    def submit(self, run_dir, wait=False):  # type: ignore[no-untyped-def]
        return None


class _Misnamed(_Incomplete):
    name = "other"

    def status(self, run_dir):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    cancel = collect = status  # type: ignore[assignment]


def test_validation_names_missing_abstract_members() -> None:
    with pytest.raises(InvalidSiteError, match="does not implement cancel, collect, status"):
        registry.validate_site_class(_Incomplete, "incomplete")


def test_validation_refuses_a_name_that_differs_from_the_entry_point() -> None:
    with pytest.raises(InvalidSiteError, match="declares name 'other' but is registered as 'misnamed'"):
        registry.validate_site_class(_Misnamed, "misnamed")


def test_validation_refuses_what_is_not_a_site() -> None:
    with pytest.raises(InvalidSiteError, match="not a subclass"):
        registry.validate_site_class(dict, "dict")


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A third-party distribution on sys.path registering two sites: a good one and a broken one."""
    (tmp_path / "thirdsite.py").write_text(
        textwrap.dedent(
            """
            from iceprod_dag.sites.base import RunStatus, Site

            class ThirdSite(Site):
                name = "third"
                def submit(self, run_dir, wait=False): return None
                def status(self, run_dir): return RunStatus(nodes={})
                def cancel(self, run_dir): return None
                def collect(self, run_dir): return 0

            class Wrong(ThirdSite):
                name = "not-wrong"
            """
        )
    )
    dist = tmp_path / "thirdsite-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdsite\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[iceprod_dag.sites]\nthird = thirdsite:ThirdSite\nwrong = thirdsite:Wrong\nbroken = nosuchmodule:X\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("thirdsite", None)


def test_a_third_party_site_is_found_through_its_entry_point(third_party: Path) -> None:
    assert {"third", "wrong", "broken"} <= set(registry.available_sites())
    site = registry.load_site("third")
    assert type(site).__name__ == "ThirdSite"


def test_a_third_party_site_with_the_wrong_name_is_refused(third_party: Path) -> None:
    with pytest.raises(InvalidSiteError, match="declares name 'not-wrong'"):
        registry.load_site("wrong")


def test_a_plugin_that_fails_to_import_is_not_reported_missing(third_party: Path) -> None:
    with pytest.raises(InvalidSiteError, match="failed to import"):
        registry.load_site("broken")


# ---------------------------------------------------------------- the command runner


def test_run_command_returns_captured_output() -> None:
    proc = run_command(["sh", "-c", "cat; echo err >&2"], timeout=10, input="hello")
    assert proc.stdout == "hello" and proc.stderr == "err\n" and proc.returncode == 0


def test_run_command_adds_to_the_environment() -> None:
    proc = run_command(["sh", "-c", 'echo "$ICEPROD_X:$PATH"'], timeout=10, env={"ICEPROD_X": "1"})
    assert proc.stdout.startswith("1:/")


def test_a_failing_command_error_carries_command_code_and_output() -> None:
    with pytest.raises(CommandError) as info:
        run_command(["sh", "-c", "echo out; echo bad >&2; exit 3"], timeout=10)
    err = info.value
    assert err.command == ["sh", "-c", "echo out; echo bad >&2; exit 3"]
    assert (err.returncode, err.stdout, err.stderr) == (3, "out\n", "bad\n")
    assert "exit code 3" in str(err) and "bad" in str(err)


def test_a_command_over_its_timeout_is_killed() -> None:
    with pytest.raises(CommandTimeoutError) as info:
        run_command(["sh", "-c", "sleep 30; echo never"], timeout=0.5)
    assert isinstance(info.value, CommandError)
    assert info.value.timeout == 0.5 and "timed out after 0.5 s" in str(info.value)


def test_a_missing_command_is_a_command_error() -> None:
    with pytest.raises(CommandError) as info:
        run_command(["no-such-command-iceprod"], timeout=5)
    assert info.value.returncode is None and "No such file" in info.value.stderr
