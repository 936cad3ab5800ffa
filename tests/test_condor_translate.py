"""The pure translation from a site configuration to submit commands, DAG lines and DAGMan options, and the
memory script that turns an over-memory stats record into the next attempt's bigger request."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from iceprod_dag.plugins.condor import translate
from iceprod_dag.plugins.condor.siteconfig import load_site_config, site_config_from_mapping

COMPILED = """# iceprod-dag: task gen of dataset d; one file for all 2 jobs.
universe = vanilla
executable = pilot.pyz
arguments = "run --spec specs/gen.json --job $(job) --attempt $(retry)"
transfer_input_files = specs/gen.json
transfer_output_files = stats,logs
request_memory = 64
requirements = (OpSysAndVer == "AlmaLinux9")
queue
"""


def test_osg_additions() -> None:
    add = translate.condor_submit_additions(load_site_config("osg"))
    assert add["+ProjectName"] == '"IceCube"'
    assert add["accounting_group"] == "IceCube.production"
    assert add["+DESIRED_Sites"] == '"UChicago,Nebraska,SU-ITS"'
    assert add["+SingularityImage"].startswith('"/cvmfs/singularity.opensciencegrid.org/')
    assert add["gpus_minimum_capability"] == "6.0"
    assert add["gpus_minimum_memory"] == "8192"
    assert add["use_oauth_services"] == "scitokens"
    assert add["My.WantsStashCache"] == "true"
    assert add["job_max_vacate_time"] == "120"
    assert add["periodic_remove"] == (
        "(JobStatus == 5 && HoldReasonCode =!= 1 && time() - EnteredCurrentStatus > 3600)"
    )


def test_requirements_clause() -> None:
    cfg = site_config_from_mapping(
        {
            "requirements": {
                "os": ["AlmaLinux9"],
                "arch": ["X86_64", "aarch64"],
                "cvmfs": ["icecube.opensciencegrid.org"],
                "expression": "HasX =?= true",
            }
        }
    )
    assert translate.requirements_clause(cfg) == (
        '(OpSysAndVer == "AlmaLinux9") && (Arch == "X86_64" || Arch == "aarch64") && '
        "(HAS_CVMFS_icecube_opensciencegrid_org =?= true) && (HasX =?= true)"
    )
    assert translate.requirements_clause(site_config_from_mapping({})) is None


def test_native_container_and_credentials() -> None:
    cfg = site_config_from_mapping(
        {
            "container_image": "docker://alpine:3",
            "container_attribute": "container_image",
            "credentials": {"token_file": "/t/tok", "proxy": "/t/x509"},
            "remove_held_after": 0,
        }
    )
    assert translate.condor_submit_additions(cfg) == {
        "universe": "container",
        "container_image": "docker://alpine:3",
        "scitokens_file": "/t/tok",
        "x509userproxy": "/t/x509",
    }


def test_user_periodic_remove_is_or_ed_with_the_held_policy() -> None:
    cfg = site_config_from_mapping(
        {"remove_held_after": "10m", "submit_commands": {"periodic_remove": "X > 1"}}
    )
    assert translate.condor_submit_additions(cfg)["periodic_remove"] == (
        "((JobStatus == 5 && HoldReasonCode =!= 1 && time() - EnteredCurrentStatus > 600)) || (X > 1)"
    )


def test_apply_additions_expected_text() -> None:
    cfg = site_config_from_mapping({"project_name": "P", "requirements": {"arch": ["X86_64"]}})
    text = translate.apply_additions(COMPILED, translate.site_requirements(cfg), "gen", memory_retry=True)
    head, _, tail = text.partition(translate.ADDITIONS_MARK + "\n")
    assert head == COMPILED[: -len("queue\n")]
    assert tail == (
        '(OpSysAndVer == "AlmaLinux9")'.join(["requirements = (", ') && ((Arch == "X86_64"))\n'])
        + "transfer_input_files = specs,empty/stats,empty/logs\n"
        + '+ProjectName = "P"\n'
        + "periodic_remove = (JobStatus == 5 && HoldReasonCode =!= 1 && time() - EnteredCurrentStatus > 1800)\n"
        + 'arguments = "run --spec specs/gen.json --job $(job) --attempt $(iceprod_attempt) $(iceprod_memory_args)"\n'
        + "iceprod_attempt = $(retry)\n"
        + "iceprod_memory_args =\n"
        + "if defined iceprod_resubmitted\n  include : ./iceprod_attempt.sh gen_$(job) $(retry) 1 1 |\n"
        + "elif $(retry)\n  include : ./iceprod_attempt.sh gen_$(job) $(retry) 0 1 |\nendif\n"
        + "queue\n"
    )
    # applying twice changes nothing
    assert translate.apply_additions(text, {"x": "1"}, "gen", memory_retry=True) == text


def test_apply_additions_without_memory_retry_and_without_queue() -> None:
    text = translate.apply_additions(COMPILED, {}, "gen", memory_retry=False)
    assert "elif" not in text and "iceprod_attempt.sh gen_$(job) $(retry) 1 0 |" in text
    assert text.endswith("endif\nqueue\n")
    with pytest.raises(ValueError, match="queue"):
        translate.apply_additions("executable = x\n", {}, "gen", memory_retry=False)


def test_keep_input_paths() -> None:
    assert translate.keep_input_paths("specs/a.json, pilot.pyz, specs/b.json") == "specs,pilot.pyz"
    assert translate.keep_input_paths("/abs/file,https://h/x/y") == "/abs/file,https://h/x/y"


def test_dag_lines_and_from_dag_options() -> None:
    cfg = site_config_from_mapping(
        {
            "dagman": {
                "max_idle": 50,
                "max_jobs": 10,
                "max_post": 4,
                "priority": 3,
                "batch_name": "b",
                "categories": {"io": 2, "gpu": 7},
                "config": {"DAGMAN_MAX_SUBMITS_PER_INTERVAL": 100, "DAGMAN_ALWAYS_RUN_POST": True},
            }
        }
    )
    assert translate.dag_lines(cfg) == [
        translate.DAG_MARK,
        "MAXJOBS gpu 7",
        "MAXJOBS io 2",
        "CONFIG dagman.config",
    ]
    assert translate.dagman_config_text(cfg) == (
        "DAGMAN_ALWAYS_RUN_POST = true\nDAGMAN_MAX_SUBMITS_PER_INTERVAL = 100\n"
    )
    assert translate.from_dag_options(cfg, "ignored") == {
        "MaxIdle": 50,
        "MaxJobs": 10,
        "MaxPost": 4,
        "Priority": 3,
        "BatchName": "b",
        "Force": True,
    }
    assert translate.from_dag_options(site_config_from_mapping({}), "ds", resubmit=True) == {
        "BatchName": "ds",
        "UpdateSubmit": True,
    }


def _memory(folder: Path, node: str, retry: int, resubmitted: int = 0, memory: int = 1) -> str:
    script = folder / translate.ATTEMPT_SCRIPT
    if not script.exists():
        script.write_text(translate.attempt_script_text())
        script.chmod(0o755)
    args = [node, str(retry), str(resubmitted), str(memory)]
    proc = subprocess.run(["/bin/sh", str(script), *args], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_memory_script_asks_for_the_newest_bigger_request(tmp_path: Path) -> None:
    (tmp_path / "stats").mkdir()
    record = {"node": "hungry_0", "attempt": 0, "next_memory_mb": 321, "failure": "over_memory"}
    (tmp_path / "stats" / "hungry_0.0.json").write_text(json.dumps(record, indent=1))
    expected = "request_memory = 321\niceprod_memory_args = --memory-mb 321\n"
    assert _memory(tmp_path, "hungry_0", 1) == expected
    # attempt 1 failed otherwise (no new request): attempt 2 keeps the bigger request
    (tmp_path / "stats" / "hungry_0.1.json").write_text(json.dumps({"next_memory_mb": None}))
    assert _memory(tmp_path, "hungry_0", 2) == expected
    # a newer over-memory record wins
    (tmp_path / "stats" / "hungry_0.2.json").write_text(json.dumps({"next_memory_mb": 700}))
    assert _memory(tmp_path, "hungry_0", 3) == "request_memory = 700\niceprod_memory_args = --memory-mb 700\n"


def test_memory_script_without_records(tmp_path: Path) -> None:
    # the attempt died before its record came back: the retry keeps the compiled request
    assert _memory(tmp_path, "gen_3", 1) == ""
    assert _memory(tmp_path, "gen_3", 0) == ""


def test_attempt_script_continues_numbers_after_an_earlier_submission(tmp_path: Path) -> None:
    (tmp_path / "stats").mkdir()
    (tmp_path / "history").mkdir()
    assert _memory(tmp_path, "gen_1", 0, resubmitted=1) == "iceprod_attempt = 0\n"
    (tmp_path / "stats" / "gen_1.0.json").write_text(json.dumps({"next_memory_mb": None}))
    (tmp_path / "history" / "gen_1.1.ad").write_text("ClusterId = 4\n")  # killed: an ad, no record
    (tmp_path / "stats" / "gen_10.7.json").write_text("{}")  # another node
    assert _memory(tmp_path, "gen_1", 0, resubmitted=1) == "iceprod_attempt = 2\n"
    (tmp_path / "stats" / "gen_1.1.json").write_text(json.dumps({"next_memory_mb": 99}))
    assert _memory(tmp_path, "gen_1", 1, resubmitted=1) == (
        "iceprod_attempt = 2\nrequest_memory = 99\niceprod_memory_args = --memory-mb 99\n"
    )
    assert _memory(tmp_path, "gen_1", 1, resubmitted=1, memory=0) == "iceprod_attempt = 2\n"
