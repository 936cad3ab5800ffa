"""Converting IceProd dataset configs: every shared config converts, validates, compiles and resolves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from iceprod_dag.cli.main import cli
from iceprod_dag.common.expressions import Context, resolve
from iceprod_dag.compile.compiler import compile_dataset
from iceprod_dag.dataset.iceprod.convert import RUN_CLASS_CODE, convert, looks_like_iceprod
from iceprod_dag.dataset.loader import load_dataset, load_dataset_dict

DATA = Path(__file__).parent / "data" / "iceprod"
CONFIGS = ["corsika_le", "corsika_me", "numu_me"]
PY27 = Path(os.path.expanduser("~/.pyenv/versions/2.7.18/bin/python"))


def load(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def module_args(dataset: dict, task: str, module: int = 0) -> dict[str, str]:
    """--key=value arguments of one converted module, as a dict."""
    (found,) = [t for t in dataset["tasks"] if t["name"] == task]
    args = found["modules"][module]["args"]
    return dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)


def job_context(dataset: dict, job: int, task: str = "", iteration: int = 0) -> Context:
    return Context(
        job=job,
        dataset_id=dataset["dataset_id"],
        jobs=dataset["jobs"],
        parameters=dataset["parameters"],
        task=task,
        iteration=iteration,
    )


@pytest.mark.parametrize("name", CONFIGS)
def test_every_shared_config_converts_validates_and_compiles(name, tmp_path):
    config = load(name)
    assert looks_like_iceprod(config)
    dataset, notes = convert(config, jobs=4, temp_url="file:///scratch/temp")
    normalized = load_dataset_dict(dataset, source=name)
    assert [t.name for t in normalized.tasks] == ["background", "generate", "hits"]
    assert dataset["jobs"] == 4 and dataset["dataset_id"] == config["dataset"]
    hits = dataset["tasks"][2]
    assert hits["depends"] == ["background", "generate"]
    assert hits["requirements"]["gpus"] == 1
    # every module is an IceProd v1 class with an env_shell: each one is listed for its env_clear
    assert all("env_clear" in n or "parent_id" in n for n in notes), notes
    result = compile_dataset(normalized, tmp_path / "run", with_pilot=False)
    assert result.nodes >= 3 * 4
    assert (tmp_path / "run" / "dataset.dag").exists()


def test_mapping_of_corsika_le():
    dataset, notes = convert(load("corsika_le"), jobs=10)
    assert dataset["name"] == "iceprod-30004"
    assert dataset["parameters"]["CORSIKA::run"] == "$eval($eval($(dataset)*100000 + $(job))%100000000 + 1)"
    background, generate, hits = dataset["tasks"]
    assert background["requirements"] == {"disk": "20 GB"}
    assert hits["requirements"] == {"disk": "20 GB", "gpus": 1, "memory": "3.5 GB"}
    module = generate["modules"][0]
    assert module["executable"] == "/cvmfs/icecube.opensciencegrid.org/py2-v2/icetray-env"
    assert module["args"][:6] == [
        "simulation/V05-01-00",
        "python",
        "-c",
        "$(ICEPROD::run_class)",
        "icecube.simprod.modules.Corsika5ComponentGenerator",
        "",
    ]
    assert module["name"] == "Corsika5ComponentGenerator"
    assert [m["name"] for m in hits["modules"]] == ["clsim", "polyplopia"]
    # without a temp URL the job_temp files are listed, not dropped silently
    assert "tasks[2].trays[0].modules[1].data[1]: job_temp file 'hits.i3.gz'" in "\n".join(notes)
    assert any(n.startswith("parent_id:") for n in notes)


def test_expressions_of_converted_modules_resolve_for_jobs():
    dataset, _ = convert(load("corsika_le"), jobs=10)
    args = module_args(dataset, "generate")
    c = job_context(dataset, 7, "generate")
    # (30004*100000 + 7) % 100000000 = 400007
    assert resolve(args["CORSIKAseed"], c) == 400007
    assert resolve(args["nproc"], c) == 10
    assert resolve(args["procnum"], c) == 7
    assert resolve(args["seed"], c) == 30004
    assert resolve(args["eprimarymax"], c) == "1e5"
    assert resolve(args["pgam"], c) == "[2.65, 2.6, 2.6, 2.6, 2.6]"
    bg = module_args(dataset, "background")
    assert resolve(bg["nshowers"], c) == 2500
    c = job_context(dataset, 250, "background")
    # (30004*100000 + 250) % 100000000 = 400250
    assert resolve(bg["CORSIKAseed"], c) == 400250
    assert resolve("$(CORSIKA::run)", c) == 400251


def test_numu_me_iterations_and_tray_data():
    dataset, notes = convert(load("numu_me"), jobs=3, temp_url="file:///scratch/temp/")
    hits = dataset["tasks"][2]
    assert hits["iterations"] == 4
    urls = [d["url"] for d in hits["data"]]
    assert urls[:2] == ["file:///scratch/temp/$(dataset)/$(job)/nugen.i3.gz"] + [
        "file:///scratch/temp/$(dataset)/$(job)/corsika_bg.i3.gz"
    ]
    outputs = [d["local"] for d in hits["data"] if d["direction"] == "output"]
    assert outputs == ["hits_0.i3.gz", "hits_1.i3.gz", "hits_2.i3.gz", "hits_3.i3.gz"]
    args = module_args(dataset, "hits", 1)
    c = job_context(dataset, 2, "hits", iteration=1)
    assert resolve(args["outputfile"], c) == "hits_1.i3.gz"
    assert resolve(args["IceModelLocation"], c).endswith("/clsim-4.0.5/ellipse-scat.1")
    assert resolve(args["efficiency"], c) == 1.089
    # (30006*100000 + 2) % 100000000 = 600002
    assert resolve("$(RunID)", c) == 600003
    assert resolve("$(outfile::1)", c) == "IC86.2016_nugen_numu_mcpes.030006.000002.ellipse-scat.1"


def test_scripts_trays_depends_by_index_and_unconvertible_fields():
    config = {
        "version": 3.2,
        "description": "hand-made",
        "dataset": 12,
        "options": {"jobs_submitted": 5},
        "categories": ["label"],
        "steering": {"parameters": {"bad name": 1, "x": "$(job)"}, "data": []},
        "tasks": [
            {
                "name": "gen_step",
                "requirements": {"cpu": 2, "time": 1.5, "os": ["RHEL_7_x86_64"], "site": "WIPAC", "foo": 1},
                "trays": [
                    {"iterations": 1, "modules": [{"src": "gen.py", "args": {"n": "$(x)", "v": None}}]},
                    {
                        "iterations": 2,
                        "modules": [{"src": "http://h/run.sh", "args": "a b", "env_clear": False}],
                    },
                ],
            },
            {
                "name": "use",
                "depends": [0, "nope"],
                "data": [
                    {"remote": "http://h/f.dat", "movement": "both", "transfer": "maybe", "type": "permanent"}
                ],
                "trays": [{"modules": [{"src": "/bin/prog", "args": ["-x", 3], "env_clear": False}]}],
            },
        ],
    }
    dataset, notes = convert(config)
    load_dataset_dict(dataset)
    text = "\n".join(notes)
    assert dataset["jobs"] == 5
    gen, use = dataset["tasks"]
    assert gen["name"] == "gen-step" and "tasks[0].name: 'gen_step' renamed 'gen-step'" in text
    assert gen["requirements"] == {"cpus": 2, "walltime": "1.5h", "os": ["RHEL_7_x86_64"], "sites": ["WIPAC"]}
    assert "tasks[0].requirements.foo: not converted: 1" in text
    assert gen["modules"][0] == {
        "name": "gen.py",
        "executable": "python3",
        "args": ["gen.py", "-n=$(x)", "-v"],
    }
    # the second tray's two iterations are unrolled; its script is a URL, so it is staged in
    assert [m["args"] for m in gen["modules"][1:]] == [["run.sh", "a", "b"]] * 2
    assert gen["data"] == [
        {"url": "http://h/run.sh", "local": "run.sh", "direction": "input", "transfer": "yes"}
    ]
    assert "tasks[0].trays[1].iterations: 2 iterations unrolled" in text
    assert use["depends"] == ["gen-step"] and "tasks[1].depends[1]: depends on unknown task 'nope'" in text
    assert use["modules"] == [{"name": "prog", "executable": "/bin/prog", "args": ["-x", "3"]}]
    assert use["data"] == [{"url": "http://h/f.dat", "direction": "both", "transfer": "maybe"}]
    assert "steering.parameters.bad name: parameter name 'bad name' is not allowed" in text
    assert "categories: IceProd dataset labels ['label']" in text
    assert (
        "tasks[0].trays[0].modules[0].env_clear" in text
        and "tasks[1].trays[0].modules[0].env_clear" not in text
    )


def test_jobs_default_is_listed():
    config = load("corsika_me")
    dataset, notes = convert(config)
    assert dataset["jobs"] == 1 and "jobs_submitted: absent" in "\n".join(notes)
    assert convert(config, jobs=7)[0]["jobs"] == 7


def test_not_iceprod():
    assert not looks_like_iceprod({"name": "x", "jobs": 1, "tasks": [{"name": "a", "command": "true"}]})
    assert not looks_like_iceprod([1, 2])


def test_cli_import_then_validate_and_compile_json_directly(tmp_path):
    out = tmp_path / "numu.yaml"
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["import-iceprod", str(DATA / "numu_me.json"), "-o", str(out), "--jobs", "3"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "warning: tasks[2].trays[0].data[0]: job_temp file 'hits_$(iter).i3.gz'" in result.output
    text = out.read_text()
    assert text.startswith("# Converted from the IceProd dataset config numu_me.json")
    dataset = load_dataset(out)
    assert dataset.name == "numu_me" and dataset.jobs == 3 and dataset.dataset_id == 30006
    # `compile` also takes the JSON directly
    assert load_dataset(DATA / "corsika_le.json").dataset_id == 30004
    result = runner.invoke(cli, ["-q", "compile", str(DATA / "corsika_le.json"), "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "dataset.dag").exists()


def test_cli_rejects_other_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"name": "x"}')
    result = CliRunner().invoke(cli, ["import-iceprod", str(path), "-o", str(tmp_path / "o.yaml")])
    assert result.exit_code != 0 and not (tmp_path / "o.yaml").exists()


FAKE_CLASSES = """
class IPBaseClass(object):
    def __init__(self):
        self.params = {}
    def SetParameter(self, k, v):
        self.params[k] = v

class Gen(IPBaseClass):
    def Execute(self, stats):
        import json
        with open("out.json", "w") as f:
            json.dump(self.params, f, sort_keys=True)
        return 0

def func(**kw):
    import json
    with open("out.json", "w") as f:
        json.dump(kw, f, sort_keys=True)
"""


@pytest.mark.parametrize("python", [sys.executable, str(PY27)], ids=["python3", "python2.7"])
@pytest.mark.parametrize("target", ["fakemod.Gen", "fakemod.func"])
def test_run_class_code_runs_iceprod_v1_classes(tmp_path, python, target):
    if not Path(python).exists():
        pytest.skip(f"no interpreter at {python}")
    (tmp_path / "fakemod.py").write_text(FAKE_CLASSES)
    args = ["--n=5", "--e=1e11", '--l=["compress"]', "--b=false", "--p=/cvmfs/x.i3.gz", "--s='q'", "--flag"]
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    subprocess.run([python, "-c", RUN_CLASS_CODE, target, "", *args], cwd=tmp_path, env=env, check=True)
    got = json.loads((tmp_path / "out.json").read_text())
    assert got == {
        "n": 5,
        "e": 1e11,
        "l": ["compress"],
        "b": False,
        "p": "/cvmfs/x.i3.gz",
        "s": "q",
        "flag": None,
    }
