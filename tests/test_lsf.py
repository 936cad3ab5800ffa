"""LSF site (translation only: no LSF cluster is installable here): scripts against expected files and
LSF's documented bsub syntax, bsub/bjobs output parsing, the state table."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from iceprod_dag.common.states import JobState
from iceprod_dag.plugins.batch.conformance import BatchConformance
from iceprod_dag.plugins.batch.translate import JobGroup
from iceprod_dag.plugins.lsf import translate
from iceprod_dag.plugins.lsf.states import to_state
from iceprod_dag.sites.conformance import assert_matches_expected
from iceprod_dag.sites.registry import load_site

EXPECTED = Path(__file__).resolve().parent / "data" / "expected" / "lsf"
#: bjobs STAT values documented by LSF 10.1
LSF_STATES = "PEND PROV PSUSP RUN USUSP SSUSP DONE EXIT UNKWN WAIT ZOMBI".split()


class TestLsfConformance(BatchConformance):
    site_name = "lsf"
    native_states = LSF_STATES

    def submit_output_sample(self, group: JobGroup) -> str:
        return "Job <4242> is submitted to default queue <normal>.\n"


@pytest.mark.parametrize("index", [0, 1], ids=["single-with-dependencies", "array-with-gpus"])
def test_job_scripts_match_expected_files(index: int) -> None:
    group = BatchConformance().sample_groups()[index]
    assert_matches_expected(EXPECTED / f"{group.name}.sh", load_site("lsf").script(group))


def test_scripts_follow_bsub_syntax() -> None:
    for group in BatchConformance().sample_groups():
        script = load_site("lsf").script(group)
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)
        directives = [line[6:] for line in script.splitlines() if line.startswith("#BSUB ")]
        assert all(re.fullmatch(r"-[A-Za-z]+ \S.*", d) for d in directives), directives
        assert any(re.fullmatch(r"-W \d+:\d{2}", d) for d in directives)  # [hour:]minute
        assert any(re.fullmatch(r'-R "span\[hosts=1\] rusage\[mem=\d+\]"', d) for d in directives)


def test_dependencies_arrays_and_requests() -> None:
    single, wide = BatchConformance().sample_groups()
    opts = translate.bsub_options(single)
    assert '-w "done(101) && done(102)"' in opts and "-n 1" in opts and "-W 1:30" in opts
    opts = translate.bsub_options(wide, queue="gpu")
    assert '-J "gen.0[1-3]"' in opts and "-n 4" in opts and '-gpu "num=1"' in opts and "-q gpu" in opts
    assert "${LSB_JOBINDEX}" in load_site("lsf").script(wide)


def test_the_script_goes_to_bsub_on_stdin(tmp_path: Path) -> None:
    site = load_site("lsf")
    group = BatchConformance().sample_groups()[0]
    script = tmp_path / "job.sh"
    script.write_text(site.script(group))
    assert site.submit_argv(group, script) == ["bsub"]
    assert site.submit_input(group, script) == script.read_text()


def test_bsub_and_bjobs_parsing() -> None:
    assert translate.parse_bsub("Job <17> is submitted to queue <normal>.\n", 1, False) == ["17"]
    assert translate.parse_bsub("Job <18> is submitted to queue <normal>.\n", 2, True) == ["18[1]", "18[2]"]
    assert translate.dependency_token("18[2]", whole_array=True) == "18"
    with pytest.raises(ValueError):
        translate.parse_bsub("Request aborted by esub.\n", 1, False)
    rows = translate.parse_bjobs("17|0|RUN|-|a|b|c|d|h\n18|2|EXIT|1|a|b|c|d|h\n")
    assert rows["17"]["stat"] == "RUN" and rows["18[2]"]["exit_code"] == "1"


def test_state_table() -> None:
    assert to_state("PEND") is JobState.IDLE and to_state("EXIT") is JobState.FAILED
    assert to_state("USUSP") is JobState.HELD and to_state("NEW") is JobState.UNKNOWN
