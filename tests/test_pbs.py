"""PBS Pro / Torque site (translation only: no PBS server is installable here): scripts against expected
files and PBS's documented syntax, qsub/qstat output parsing, the state table."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from iceprod_dag.common.states import JobState
from iceprod_dag.plugins.batch.conformance import BatchConformance
from iceprod_dag.plugins.batch.translate import JobGroup
from iceprod_dag.plugins.pbs import translate
from iceprod_dag.plugins.pbs.states import to_state
from iceprod_dag.sites.conformance import assert_matches_expected
from iceprod_dag.sites.registry import load_site

EXPECTED = Path(__file__).resolve().parent / "data" / "expected" / "pbs"
#: job_state letters documented by PBS Pro (qstat(1B)) plus Torque's C
PBS_STATES = "B E F H M Q R S T U W X C".split()


class TestPbsConformance(BatchConformance):
    site_name = "pbs"
    native_states = PBS_STATES

    def submit_output_sample(self, group: JobGroup) -> str:
        return "4242[].pbsserver\n"


@pytest.mark.parametrize("index", [0, 1], ids=["single-with-dependencies", "array-with-gpus"])
def test_job_scripts_match_expected_files(index: int) -> None:
    group = BatchConformance().sample_groups()[index]
    assert_matches_expected(EXPECTED / f"{group.name}.sh", load_site("pbs").script(group))


def test_scripts_follow_pbs_syntax() -> None:
    for group in BatchConformance().sample_groups():
        script = load_site("pbs").script(group)
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)
        directives = [line[5:] for line in script.splitlines() if line.startswith("#PBS ")]
        # every directive is a qsub option: -X value
        assert all(re.fullmatch(r"-[A-Za-z] \S.*", d) for d in directives), directives
        select = next(d for d in directives if d.startswith("-l select="))
        assert re.fullmatch(r"-l select=1:ncpus=\d+:mem=\d+mb(:ngpus=\d+)?", select)
        assert any(re.fullmatch(r"-l walltime=\d{2,}:\d{2}:\d{2}", d) for d in directives)


def test_dependencies_arrays_and_requests() -> None:
    single, wide = BatchConformance().sample_groups()
    opts = translate.qsub_options(single, queue="workq")
    assert "-W depend=afterok:101:102" in opts and "-q workq" in opts
    assert "-l select=1:ncpus=1:mem=2048mb" in opts and "-l walltime=01:30:00" in opts
    opts = translate.qsub_options(wide)
    assert "-J 1-3" in opts and "-l select=1:ncpus=4:mem=4000mb:ngpus=1" in opts
    assert "${PBS_ARRAY_INDEX}" in load_site("pbs").script(wide)


def test_qsub_and_qstat_parsing() -> None:
    assert translate.parse_qsub("17.server\n", 1, False) == ["17.server"]
    assert translate.parse_qsub("18[].server\n", 2, True) == ["18[1].server", "18[2].server"]
    assert translate.array_id("18[2].server") == "18[].server"
    assert translate.dependency_token("18[2].server", whole_array=True) == "18[].server"
    assert translate.dependency_token("18[2].server", whole_array=False) == "18[2].server"
    with pytest.raises(ValueError):
        translate.parse_qsub("qsub: Unknown queue\n", 1, False)
    text = json.dumps({"Jobs": {"17.server": {"job_state": "R"}, "18[1].server": {"job_state": "X"}}})
    assert translate.parse_qstat_json(text) == {
        "17.server": {"job_state": "R"},
        "18[1].server": {"job_state": "X"},
    }


def test_state_table() -> None:
    assert (
        to_state("Q") is JobState.IDLE
        and to_state("R") is JobState.RUNNING
        and to_state("H") is JobState.HELD
    )
    assert to_state("F") is JobState.DONE and to_state("?") is JobState.UNKNOWN
