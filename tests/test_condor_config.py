"""Site configuration for HTCondor: the shipped examples load, and bad values are refused before submission
with messages naming the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.plugins.condor.siteconfig import load_site_config, site_config_from_mapping

SITES = Path(__file__).resolve().parent.parent / "config" / "sites"


@pytest.mark.parametrize("name", ["osg", "chtc", "local-condor"])
def test_shipped_site_configs_load_by_path_and_by_name(name: str) -> None:
    by_path = load_site_config(SITES / f"{name}.yaml")
    by_name = load_site_config(name)
    assert by_path.name == by_name.name == name


def test_osg_config_fields() -> None:
    cfg = load_site_config("osg")
    assert cfg.project_name == "IceCube"
    assert cfg.desired_sites == ("UChicago", "Nebraska", "SU-ITS")
    assert cfg.remove_held_after_s == 3600
    assert cfg.extra_attributes == {"OSG_PROJECT_NAME": '"IceCube"', "WantsStashCache": "true"}
    assert cfg.dagman["categories"] == {"gpu": 500}


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_site_config(path)
    return info.value.problems


def test_unknown_field_names_file_line_and_suggestion(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "name: x\nproject_nam: IceCube\n")
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'site.yaml'}:2: project_nam: unknown field")
    assert "did you mean 'project_name'" in problems[0]


def test_malformed_extra_attribute_value_is_rejected(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "extra_attributes:\n  Good: 1\n  Bad: (1 +\n")
    assert len(problems) == 1
    assert ":3: extra_attributes.Bad: not a valid ClassAd expression: '(1 +'" in problems[0]


def test_bad_attribute_names_are_rejected(tmp_path: Path) -> None:
    problems = _problems(tmp_path, 'extra_attributes:\n  "9lives": 1\n  ClusterId: 3\n  "a-b": 2\n')
    text = "\n".join(problems)
    assert "extra_attributes.9lives: invalid ClassAd attribute name '9lives'" in text
    assert "extra_attributes.a-b: invalid ClassAd attribute name 'a-b'" in text
    assert "extra_attributes.ClusterId: attribute 'ClusterId' is set by HTCondor" in text
    assert len(problems) == 3


def test_unknown_submit_command_is_rejected(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "submit_commands:\n  executable: /bin/evil\n  priority: 5\n")
    assert len(problems) == 1
    assert ":2: submit_commands.executable: unknown or disallowed submit command 'executable'" in problems[0]


def test_expression_submit_commands_and_requirements_are_parsed(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        "submit_commands:\n  periodic_release: 'NumJobStarts <'\nrequirements:\n  expression: 'HasX =?= '\n",
    )
    assert len(problems) == 2
    assert "submit_commands.periodic_release: not a valid ClassAd expression" in problems[0]
    assert ":4: requirements.expression: not a valid ClassAd expression" in problems[1]


def test_schema_errors_are_all_reported(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        "remove_held_after: soon\nrequirements:\n  arch: [sparc]\ndagman:\n  max_idle: -1\n"
        "  config: {MAX_JOBS: 3}\n",
    )
    text = "\n".join(problems)
    assert ':1: remove_held_after: expected a duration like "2h" or "90m", got "soon"' in text
    assert "requirements.arch[0]: expected one of" in text
    assert "dagman.max_idle" in text
    assert "dagman.config: 'MAX_JOBS' does not match the pattern" in text


def test_missing_site_config_names_it() -> None:
    with pytest.raises(ConfigError, match="no-such-site: no such site configuration"):
        load_site_config("no-such-site")


def test_defaults_without_a_file() -> None:
    cfg = site_config_from_mapping({})
    assert cfg.run_root is None and cfg.memory_retry and cfg.remove_held_after_s == 1800
