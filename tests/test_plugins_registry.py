"""Site discovery through entry points, load-time validation, and the one command runner."""

from __future__ import annotations

import os
import subprocess
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
from iceprod_dag.sites.base import Action, Site
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
            from iceprod_dag.sites.base import Action, RunStatus, Site

            class ThirdSite(Site):
                name = "third"
                def submit(self, run_dir, wait=False): return None
                def status(self, run_dir): return RunStatus(nodes={})
                def cancel(self, run_dir): return None
                def collect(self, run_dir): return 0

            class Wrong(ThirdSite):
                name = "not-wrong"

            class Undeclared(ThirdSite):  # the old getattr contract: a hold method nobody declared
                name = "undeclared"
                def hold(self, run_dir): return None

            class Boasting(ThirdSite):  # declares what it does not implement
                name = "boasting"
                capabilities = frozenset({Action.SUSPEND, Action.RESUBMIT})
            """
        )
    )
    dist = tmp_path / "thirdsite-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdsite\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[iceprod_dag.sites]\nthird = thirdsite:ThirdSite\nwrong = thirdsite:Wrong\nbroken = nosuchmodule:X\n"
        "undeclared = thirdsite:Undeclared\nboasting = thirdsite:Boasting\n"
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


def test_capabilities_must_match_the_methods(third_party: Path) -> None:
    with pytest.raises(InvalidSiteError, match=r"implements hold\(\) but does not declare Action.HOLD"):
        registry.load_site("undeclared")
    with pytest.raises(InvalidSiteError, match=r"declares 'resubmit' but does not implement resubmit\(\)"):
        registry.load_site("boasting")


@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_sites_declare_what_they_implement(name: str) -> None:
    assert registry.capability_problems(registry.site_class(name)) == []
    assert (
        Action.SUSPEND in registry.site_class(name).capabilities
    )  # every built-in driver honours the halt file


def test_a_site_without_an_action_refuses_it_the_same_way_from_the_cli(
    third_party: Path, tmp_path: Path
) -> None:
    """A real `iceprod-dag` process against a run of the minimal third-party site: hold, release, resubmit
    and suspend are each refused with exit 2 and one message naming the site and the action."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "x.dag").write_text("JOB a a.sub\n")
    (run / "run.json").write_text('{"site": "third", "options": {}}')
    env = {**os.environ, "PYTHONPATH": f"{third_party}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for action in ("hold", "release", "resubmit", "suspend"):
        done = subprocess.run(
            [sys.executable, "-c", "from iceprod_dag.cli.main import main; main()", action, str(run)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 2, (action, done.stdout, done.stderr)
        assert done.stderr.strip() == f"error: cannot {action}: site 'third' does not support {action!r}"


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
