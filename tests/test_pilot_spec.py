"""Loading a task spec and resolving it for one job: expressions, iterations, requirements, clear errors."""

from __future__ import annotations

import copy

import pytest

from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.pilot.spec import Resources, load_spec, requirements, resolve_job, settings

SPEC = {
    "format": 1,
    "dataset": {"name": "demo", "dataset_id": 20001, "jobs": 10, "parameters": {"seed": "$(job)", "x": "d"}},
    "task": {
        "name": "generate",
        "modules": [
            {
                "name": "gen",
                "executable": "/bin/sh",
                "args": ["-c", "echo $(seed) $(x) $(iter)"],
                "env": {"A": 1},
            }
        ],
        "iterations": 2,
        "parameters": {"x": "t$eval($(job) * 2)"},
        "requirements": {"cpus": 2, "memory_mb": "2 GB", "disk_mb": 1024, "gpus": 0, "walltime_s": "1h30m"},
        "data": [
            {"url": "http://h/in_$(job).dat", "local": "in.dat", "direction": "input", "transfer": "yes"}
        ],
    },
    "pilot": {"memory_allowance": 0.5, "sample_interval_s": 0.5},
}


def test_resolves_one_job():
    job = resolve_job(copy.deepcopy(SPEC), 3, attempt=2)
    assert (job.node, job.attempt, job.dataset, job.dataset_id) == ("generate_3", 2, "demo", 20001)
    assert [m.args[1] for m in job.modules] == ["echo 3 t6 0", "echo 3 t6 1"], "task parameters win"
    assert [m.iteration for m in job.modules] == [0, 1]
    assert job.modules[0].env == {"A": "1"}
    assert job.data[0].url == "http://h/in_3.dat"
    assert job.request == Resources(cpus=2, memory_mb=2048, disk_mb=1024, gpus=0, walltime_s=5400)
    assert job.settings.memory_allowance == 0.5 and job.settings.kill_grace_s == 5.0


def test_memory_override():
    assert requirements(SPEC, memory_mb=3000).memory_mb == 3000


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s["task"].update(modules=[]), "task.modules must be a non-empty list"),
        (lambda s: s["task"]["modules"][0].pop("executable"), "task.modules[0] needs an 'executable'"),
        (lambda s: s["task"]["data"][0].update(direction="sideways"), "task.data[0].direction"),
        (lambda s: s["task"]["data"][0].update(local="../escape"), "task.data[0].local"),
        (lambda s: s["task"]["requirements"].update(memory_mb="lots"), "task.requirements.memory_mb"),
        (lambda s: s["pilot"].update(colour="blue"), "pilot.colour is not a pilot setting"),
        (lambda s: s["pilot"].update(kill_grace_s="soon"), "pilot.kill_grace_s"),
        (lambda s: s["task"].update(iterations=0), "task.iterations"),
        (lambda s: s["task"]["modules"][0].update(args=["$(nope)"]), "nope"),
    ],
)
def test_errors_name_the_field(change, message):
    spec = copy.deepcopy(SPEC)
    change(spec)
    with pytest.raises(ConfigError) as err:
        resolve_job(spec, 0, source="specs/generate.json")
    assert message in str(err.value) and "specs/generate.json" in str(err.value)


def test_load_spec_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read task spec"):
        load_spec(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 2, "dataset": {}, "task": {}}')
    with pytest.raises(ConfigError, match="format 2 is not supported"):
        load_spec(str(bad))
    bad.write_text("[]")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        load_spec(str(bad))


def test_settings_defaults_and_fits():
    assert settings({}).transfer_retries == 3
    free = Resources(cpus=2, memory_mb=100, disk_mb=None, gpus=0, walltime_s=None)
    assert Resources(cpus=2, memory_mb=100).fits_in(free)
    assert not Resources(cpus=3).fits_in(free)
    assert not Resources(cpus=1, gpus=1).fits_in(free)
    assert Resources(cpus=1, disk_mb=10**9, walltime_s=10**9).fits_in(free)
