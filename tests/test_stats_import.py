"""`iceprod-dag import-stats FOLDER`: a run folder's records go into the stats database exactly once."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from test_stats_ingest import make_record
from test_stats_sync import dump, run_main

from iceprod_dag.stats.classads import format_ad
from iceprod_dag.stats.db import init_db

TINY = """\
name: tiny
dataset_id: 42
jobs: 2
tasks:
  - name: gen
    command: "echo hello $(job)"
    requirements: {memory: 64 MB, walltime: 1m}
  - name: sum
    depends: [gen]
    command: "echo sum >&2; exit 0"
    requirements: {memory: 64 MB, walltime: 1m}
"""


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["iceprod-dag", *args], capture_output=True, text=True, env=env, timeout=180)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {**os.environ, "ICEPROD_DAG_HOME": str(tmp_path / "home"), "ICEPROD_DAG_DB": ""}


@pytest.fixture
def cli(env, monkeypatch, capsys):
    """Run `iceprod-dag ARGS` in this process (fast), in the environment of ``env``."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return lambda *args: run_main(monkeypatch, capsys, *args)


def test_offline_run_imported_twice_is_recorded_once(tmp_path, env, cli):
    source = tmp_path / "tiny.yaml"
    source.write_text(TINY)
    offline = run("-q", "run-offline", str(source), "-o", str(tmp_path / "off"), env=env)
    if offline.returncode != 0:
        pytest.fail(f"run-offline failed: {offline.stderr}")
    url = f"sqlite:///{tmp_path / 'stats.sqlite'}"
    first = cli("import-stats", str(tmp_path / "off"), "--db", url)
    assert first.returncode == 0, first.stderr
    assert "4 stats records imported (0 already there)" in first.stdout
    engine = init_db(url)
    before = dump(engine)
    second = cli("import-stats", str(tmp_path / "off"), "--db", url)
    assert second.returncode == 0 and "0 stats records imported (4 already there)" in second.stdout
    assert dump(engine) == before  # not even a timestamp moved
    datasets = [v for (table, _), v in before.items() if table == "datasets"]
    assert [(d["name"], d["dataset_id"], d["site"]) for d in datasets] == [("tiny", 42, "offline")]
    assert datasets[0]["config"]["tasks"][1]["name"] == "sum"
    jobs = {key[1]: v for (table, key), v in before.items() if table == "jobs"}
    assert sorted(jobs) == ["gen_0", "gen_1", "sum_0", "sum_1"] and {j["state"] for j in jobs.values()} == {
        "done"
    }
    engine.dispose()


def test_default_database_is_the_one_file_under_iceprod_dag_home(tmp_path, cli):
    folder = tmp_path / "run"
    (folder / "stats").mkdir(parents=True)
    (folder / "stats" / "gen_0.0.json").write_text(json.dumps(make_record("gen_0", site="local")))
    result = cli("import-stats", str(folder))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "home" / "stats.sqlite").exists()


def test_ads_are_imported_and_stale_records_reported(tmp_path, cli):
    folder = tmp_path / "run"
    (folder / "stats").mkdir(parents=True)
    (folder / "history").mkdir()
    for attempt in (0, 1):
        rec = make_record("gen_0", attempt=attempt, failure="task_failed" if attempt == 0 else None)
        (folder / "stats" / f"gen_0.{attempt}.json").write_text(json.dumps(rec))
    (folder / "history" / "gen_0.1.ad").write_text(
        format_ad({"ClusterId": 7, "ProcId": 0, "DAGNodeName": "gen_0"})
    )
    url = f"sqlite:///{tmp_path / 'stats.sqlite'}"
    first = cli("import-stats", str(folder), "--db", url)
    assert first.returncode == 0, first.stderr
    assert "2 stats records imported" in first.stdout and "1 job ClassAds imported" in first.stdout
    # a rewritten attempt-0 record, now older than the recorded attempt 1: listed, not applied
    (folder / "stats" / "gen_0.0.json").write_text(json.dumps(make_record("gen_0", attempt=0, exit_code=3)))
    again = cli("import-stats", str(folder), "--db", url)
    assert again.returncode == 1
    assert "gen_0 attempt 0: attempt 1 already started" in again.stderr


def test_bad_folders_are_clear_errors(tmp_path, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("import-stats", str(empty), "--db", f"sqlite:///{tmp_path / 's.sqlite'}")
    assert result.returncode == 2 and "no stats/*.json" in result.stderr
    (empty / "stats").mkdir()
    (empty / "stats" / "gen_0.0.json").write_text('{"node": "gen_0", "attempt": "x", "dataset": "d"}')
    result = cli("import-stats", str(empty), "--db", f"sqlite:///{tmp_path / 's.sqlite'}")
    assert result.returncode == 1 and "gen_0.0.json: field 'attempt'" in result.stderr
