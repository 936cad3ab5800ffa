"""compile: the DAG and submit files it writes, checked by HTCondor's own parsers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import htcondor2
import pytest

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import IceprodDagError
from iceprod_dag.compile.compiler import compile_dataset
from iceprod_dag.dataset.loader import load_dataset


@pytest.fixture
def chain_run(data_dir: Path, tmp_path: Path) -> Path:
    dataset = load_dataset(data_dir / "datasets" / "chain.yaml")
    compile_dataset(dataset, tmp_path / "run", with_pilot=False)
    return tmp_path / "run"


def dag_lines(run: Path) -> list[str]:
    return (run / names.DAG_FILE).read_text().splitlines()


def test_one_submit_file_and_one_spec_per_task(chain_run: Path) -> None:
    assert sorted(p.name for p in chain_run.glob("*.sub")) == [
        "final.sub",
        "gen.sub",
        "merge.sub",
        "proc.sub",
    ]
    assert sorted(p.name for p in (chain_run / "specs").iterdir()) == ["gen.json", "merge.json", "proc.json"]


def test_nodes_vars_retries_priorities_categories_and_edges(chain_run: Path) -> None:
    lines = dag_lines(chain_run)
    for job in range(3):
        assert f"JOB gen_{job} gen.sub" in lines
        assert f'VARS gen_{job} job="{job}"' in lines
        assert f"RETRY gen_{job} 3 UNLESS-EXIT 2" in lines
        assert f"CATEGORY proc_{job} io" in lines
        assert f"PRIORITY merge_{job} 10" in lines
        assert f"PARENT gen_{job} CHILD proc_{job} merge_{job}" in lines
        assert f"PARENT proc_{job} CHILD merge_{job}" in lines
    assert not any(line.startswith("RETRY proc_") for line in lines)  # retries: 0
    assert "MAXJOBS io 2" in lines
    assert "FINAL FINAL final.sub NOOP" in lines
    assert "SCRIPT PRE FINAL final.sh $DAG_STATUS $FAILED_COUNT" in lines
    assert 'VARS ALL_NODES retry="$(RETRY)"' in lines
    assert "NODE_STATUS_FILE dataset.dag.status 30" in lines
    assert "JOBSTATE_LOG dataset.dag.jobstate.log" in lines
    assert sum(line.startswith("JOB ") for line in lines) == 9


def test_every_node_is_defined_before_an_edge_names_it(chain_run: Path) -> None:
    defined: set[str] = set()
    for line in dag_lines(chain_run):
        words = line.split()
        if words and words[0] == "JOB":
            defined.add(words[1])
        elif words and words[0] == "PARENT":
            assert set(words[1:]) - {"CHILD"} <= defined, line


def test_submit_files_are_accepted_by_htcondor(chain_run: Path) -> None:
    sub = htcondor2.Submit((chain_run / "gen.sub").read_text())
    assert sub["executable"] == names.PILOT_ZIPAPP
    assert sub["request_memory"] == "2048"
    assert sub["request_cpus"] == "2"
    assert sub["request_gpus"] == "1"
    assert sub["requirements"] == '(OpSysAndVer == "el9")'
    assert sub["MY.DESIRED_Sites"] == '"CHTC,OSG"'
    assert sub["arguments"] == '"run --spec specs/gen.json --job $(job) --attempt $(retry)"'
    htcondor2.Submit((chain_run / "final.sub").read_text())


def test_dag_is_accepted_by_submit_from_dag(chain_run: Path) -> None:
    cwd = os.getcwd()
    os.chdir(chain_run)
    try:
        dagman = htcondor2.Submit.from_dag(names.DAG_FILE, {"DagmanPath": "/bin/true"})
    finally:
        os.chdir(cwd)
    assert "-Dag dataset.dag" in dagman["arguments"]


def test_task_spec_carries_unresolved_expressions_and_units(chain_run: Path) -> None:
    spec = json.loads((chain_run / "specs" / "gen.json").read_text())
    assert spec["dataset"]["parameters"]["seed"] == "$eval($(dataset)*100 + $(job))"
    assert spec["dataset"]["dataset_id"] == 7
    assert spec["task"]["requirements"] == {
        "cpus": 2,
        "memory_mb": 2048,
        "disk_mb": 500,
        "gpus": 1,
        "walltime_s": 5400,
    }
    assert spec["task"]["modules"] == [
        {"name": "gen", "executable": "/bin/sh", "args": ["-c", "echo $(seed)"], "env": {}}
    ]


def test_output_is_byte_identical_for_the_same_input(data_dir: Path, tmp_path: Path) -> None:
    dataset = load_dataset(data_dir / "datasets" / "chain.yaml")
    compile_dataset(dataset, tmp_path / "a", with_pilot=False)
    compile_dataset(dataset, tmp_path / "b", with_pilot=False)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_refuses_to_overwrite_a_submitted_run(chain_run: Path, data_dir: Path) -> None:
    (chain_run / names.RUN_INFO).write_text("{}")
    with pytest.raises(IceprodDagError, match="submitted run"):
        compile_dataset(load_dataset(data_dir / "datasets" / "chain.yaml"), chain_run, with_pilot=False)


def test_final_script_records_status_and_fails_when_the_dag_failed(chain_run: Path) -> None:
    import subprocess

    script = chain_run / names.FINAL_SCRIPT
    assert subprocess.run([str(script), "0", "0"]).returncode == 0
    assert (chain_run / names.DONE_MARKER).read_text() == "dag_status=0\nfailed_count=0\n"
    assert subprocess.run([str(script), "1", "2"]).returncode == 1
    assert "failed_count=2" in (chain_run / names.DONE_MARKER).read_text()
