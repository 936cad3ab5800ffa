"""Suspend, resume and retry-failed of a dataset a site runs, through the JSON API, on the real local site.

A chain a -> b -> c of short sleeps runs detached on the local engine and records into the web UI's
database; the API halts it with DAGMan's halt file, and releases or resubmits it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from webui_support import app, engine  # noqa: F401

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import ActionRefusedError
from iceprod_dag.sites import runcontrol
from iceprod_dag.sites.base import Action
from iceprod_dag.sites.registry import load_site
from iceprod_dag.stats.models import Dataset

CHAIN = """\
name: chain
dataset_id: 77
jobs: 1
options: {{retries: {retries}}}
tasks:
  - name: a
    command: "{a}"
    requirements: {{cpus: 1, memory: "10 MB"}}
  - name: b
    depends: [a]
    command: "{b}"
    requirements: {{cpus: 1, memory: "10 MB"}}
  - name: c
    depends: [b]
    command: "echo c"
    requirements: {{cpus: 1, memory: "10 MB"}}
"""


def compile_chain(tmp_path: Path, a: str = "sleep 2", b: str = "echo b", retries: int = 0) -> Path:
    from iceprod_dag.compile.compiler import compile_dataset
    from iceprod_dag.dataset.loader import load_dataset

    (tmp_path / "chain.yaml").write_text(CHAIN.format(a=a, b=b, retries=retries))
    run = (tmp_path / "run").resolve()
    compile_dataset(load_dataset(tmp_path / "chain.yaml"), run)
    return run


def started(run: Path) -> list[str]:
    """Nodes whose job was started, once per start, from the nodes' job event log (submit events)."""
    path = run / names.nodes_log(names.DAG_FILE)
    if not path.exists():
        return []
    chunks = path.read_text().split("...\n")
    return [c.rpartition("DAG Node: ")[2].strip() for c in chunks if c.startswith("000 (")]


def wait_for(what: str, check: Any, run: Path, timeout: float = 15.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    out = (run / "local.out").read_text()[-2000:] if (run / "local.out").exists() else ""
    pytest.fail(f"{what} did not happen within {timeout:.0f} s; engine output:\n{out}")


def run_json(run: Path) -> dict[str, Any]:
    return json.loads((run / names.RUN_INFO).read_text())


@pytest.fixture
def api(app: Any) -> Any:  # noqa: F811
    """POST a dataset action as the admin, with a bearer token (no CSRF)."""
    from iceprod_dag.webui.services import accounts

    token = accounts.create_token(app.extensions["iceprod_dag_engine"], "root")[1]
    client = app.test_client()

    def post(pk: int, action: str) -> Any:
        return client.post(f"/api/datasets/{pk}/{action}", headers={"Authorization": f"Bearer {token}"})

    return post


def submit(app: Any, run: Path) -> tuple[Any, int]:  # noqa: F811
    """Start the run detached on the local site, recording into the app's database; (site, dataset id)."""
    site = load_site("local", {"db": app.config["DB"], "quiet": True})
    site.submit(run, wait=False)
    db = app.extensions["iceprod_dag_engine"]

    def pk() -> int | None:
        with db.connect() as conn:
            return conn.execute(select(Dataset.id).where(Dataset.run_dir == str(run))).scalar()

    return site, int(wait_for("the engine registering the run", pk, run))


def db_state(app: Any, pk: int) -> str:  # noqa: F811
    with app.extensions["iceprod_dag_engine"].connect() as conn:
        return str(conn.execute(select(Dataset.state).where(Dataset.id == pk)).scalar())


def test_suspend_halts_the_dag_and_resume_resubmits_it(app: Any, api: Any, tmp_path: Path) -> None:  # noqa: F811
    run = compile_chain(tmp_path)
    site, pk = submit(app, run)
    wait_for("a_0 starting", lambda: "a_0" in started(run), run)

    # a job still runs: DAGMan would not retry a running DAG's failures, and neither do we
    busy = api(pk, "retry-failed")
    assert busy.status_code == 409 and busy.get_json()["field"] == "site"
    assert "still running" in busy.get_json()["error"]

    answer = api(pk, "suspend")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"state": "suspended", "site": "local", "site_action": "halted"}
    assert runcontrol.is_halted(run)

    # a_0 finishes; with nothing left running the engine ends halted (DAGMan's halted exit), b_0 never starts
    wait_for("the halted engine ending", lambda: site.status(run).finished, run)
    assert started(run) == ["a_0"]
    assert (run / names.stats_record("a_0", 0)).exists()  # the running job finished and was recorded
    info = run_json(run)
    assert info["halted"] is True and info["exit_code"] != 0  # not reported done
    assert "dag_status=6" in (run / names.DONE_MARKER).read_text()  # FINAL ran with DAG_STATUS_HALTED
    assert db_state(app, pk) == "suspended"

    answer = api(pk, "resume")
    assert answer.get_json() == {"state": "running", "site": "local", "site_action": "resubmitted"}
    assert not runcontrol.is_halted(run)
    wait_for("the resubmitted run succeeding", lambda: run_json(run).get("exit_code") == 0, run)
    assert started(run) == ["a_0", "b_0", "c_0"]  # a_0 was done: the rescue DAG did not run it again
    assert "dag_status=0" in (run / names.DONE_MARKER).read_text()
    wait_for("the engine recording the end", lambda: db_state(app, pk) == "done", run)  # after run.json


def test_resume_before_the_halt_ends_releases_the_running_engine(app: Any, api: Any, tmp_path: Path) -> None:  # noqa: F811
    run = compile_chain(tmp_path, a="sleep 1.5")
    site, pk = submit(app, run)
    wait_for("a_0 starting", lambda: "a_0" in started(run), run)
    pid = run_json(run)["pid"]
    assert api(pk, "suspend").get_json()["site_action"] == "halted"
    time.sleep(0.3)
    assert not site.status(run).finished
    assert api(pk, "resume").get_json() == {"state": "running", "site": "local", "site_action": "released"}
    wait_for("the released run succeeding", lambda: run_json(run).get("exit_code") == 0, run)
    assert run_json(run)["pid"] == pid  # the same engine went on: no resubmission
    assert started(run) == ["a_0", "b_0", "c_0"]
    wait_for("the engine recording the end", lambda: db_state(app, pk) == "done", run)  # after run.json


def test_retry_failed_resubmits_the_rescue_dag(app: Any, api: Any, tmp_path: Path) -> None:  # noqa: F811
    flag = tmp_path / "fixed"  # jobs run in a scratch folder: keep the flag outside it
    run = compile_chain(tmp_path, a="echo a", b=f"test -e {flag}")
    site, pk = submit(app, run)
    wait_for("the run failing", lambda: run_json(run).get("exit_code") not in (None, 0), run)
    assert started(run) == ["a_0", "b_0"]
    flag.touch()
    answer = api(pk, "retry-failed")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"retried": 1, "site": "local", "site_action": "resubmitted"}
    wait_for("the retried run succeeding", lambda: run_json(run).get("exit_code") == 0, run)
    assert started(run) == ["a_0", "b_0", "b_0", "c_0"]
    wait_for("the engine recording the end", lambda: db_state(app, pk) == "done", run)  # after run.json
    # an ended run: suspend and resume are refused with the reason, and its state is left alone
    for action in ("suspend", "resume"):
        refused = api(pk, action)
        assert refused.status_code == 409 and refused.get_json()["field"] == "site", refused.get_json()
        assert (
            f"cannot {action}: " in refused.get_json()["error"] and "has ended" in refused.get_json()["error"]
        )
        assert db_state(app, pk) == "done"
    assert not runcontrol.is_halted(run)


def test_a_site_that_cannot_act_is_a_409_naming_the_field(app: Any, api: Any, tmp_path: Path) -> None:  # noqa: F811
    from iceprod_dag.stats import ingest

    run = compile_chain(tmp_path)
    (run / names.RUN_INFO).write_text(json.dumps({"site": "nosuch", "options": {}}))
    pk = ingest.register_dataset(app.extensions["iceprod_dag_engine"], run_dir=run, site="nosuch", name="x")
    answer = api(pk, "suspend")
    assert answer.status_code == 409 and answer.get_json()["field"] == "site"
    assert "nosuch" in answer.get_json()["error"]
    assert db_state(app, pk) != "suspended"  # the site refused: the database is left as it was
    (run / names.RUN_INFO).write_text("{not json")
    broken = api(pk, "resume")
    assert broken.status_code == 409 and broken.get_json()["field"] == "run_dir"


def test_a_site_without_halt_support_cannot_suspend(tmp_path: Path, monkeypatch: Any) -> None:
    from iceprod_dag.plugins.local.site import LocalSite

    run = compile_chain(tmp_path)
    (run / names.RUN_INFO).write_text(json.dumps({"site": "local", "pid": None, "exit_code": None}))
    monkeypatch.setattr(LocalSite, "capabilities", LocalSite.capabilities - {Action.SUSPEND})
    with pytest.raises(ActionRefusedError, match="cannot suspend: site 'local' does not support 'suspend'"):
        runcontrol.suspend(run)
    assert not runcontrol.is_halted(run)


@pytest.mark.condor
def test_condor_dagman_halts_and_the_rescue_dag_resumes(tmp_path: Path, condor_run_root: Path) -> None:
    """condor_dagman itself honours the halt file: the running node finishes, the next one is never submitted,
    DAGMan ends halted; resume resubmits from its rescue DAG. (About a minute on the tuned pool.)"""
    from iceprod_dag.common.states import JobState

    config = (Path(__file__).resolve().parent.parent / "config" / "sites" / "local-condor.yaml").read_text()
    (tmp_path / "site.yaml").write_text(
        config.replace("run_root: /srv/htc/runs", f"run_root: {condor_run_root}")
    )
    run = compile_chain(tmp_path, a="sleep 6")
    options = {
        "site_config": str(tmp_path / "site.yaml"),
        "db": f"sqlite:///{tmp_path / 's.sqlite'}",
        "quiet": True,
    }
    site = load_site("condor", options)
    site.submit(run, wait=False)
    wait_for("a_0 running", lambda: site.status(run).nodes.get("a_0") is JobState.RUNNING, run, 120)
    assert runcontrol.suspend(run) == "halted"
    assert (condor_run_root / "run" / "dataset.dag.halt").exists()  # next to the DAG DAGMan runs
    wait_for("DAGMan ending halted", lambda: site.status(run).finished, run, 120)
    status = site.status(run)
    assert status.nodes["a_0"] is JobState.DONE and status.nodes.get("b_0") is not JobState.DONE
    assert status.exit_code != 0
    assert "DAG Node: b_0" not in (condor_run_root / "run" / "dataset.dag.nodes.log").read_text()
    assert runcontrol.resume(run) == "resubmitted"
    site = load_site("condor", options)
    wait_for("the resubmitted DAG succeeding", lambda: site.status(run).finished, run, 180)
    assert site.status(run).exit_code == 0 and site.status(run).counts() == {"done": 3}


def test_suspend_and_resume_from_the_command_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from iceprod_dag.cli.main import cli

    run = compile_chain(tmp_path, a="sleep 1.5")
    site = load_site("local", {"db": f"sqlite:///{tmp_path / 'stats.sqlite'}", "quiet": True})
    site.submit(run, wait=False)
    wait_for("a_0 starting", lambda: "a_0" in started(run), run)
    suspended = CliRunner().invoke(cli, ["suspend", str(run)])
    assert suspended.exit_code == 0 and suspended.output.strip().endswith(": halted"), suspended.output
    time.sleep(2.0)  # a_0 ends meanwhile; b_0 must not start
    assert started(run) == ["a_0"]
    resumed = CliRunner().invoke(cli, ["resume", str(run)])
    assert resumed.exit_code == 0 and resumed.output.split(": ")[-1].strip() in ("released", "resubmitted")
    wait_for("the resumed run succeeding", lambda: run_json(run).get("exit_code") == 0, run)
    assert started(run) == ["a_0", "b_0", "c_0"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """A real `iceprod-dag` process (errors become exit codes as users see them)."""
    argv = [sys.executable, "-c", "from iceprod_dag.cli.main import main; main()", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def cli_status(run: Path) -> dict[str, Any]:
    done = cli("status", "--json", str(run))
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def gate(tmp_path: Path) -> tuple[str, Path]:
    """A job command that runs until the test opens its gate (touches the returned path)."""
    opened = tmp_path / "gate-open"  # jobs run in a scratch folder: keep the flag outside it
    script = tmp_path / "gate.sh"
    script.write_text(f"while [ ! -e {opened} ]; do sleep 0.05; done\n")
    return f"sh {script}", opened


def test_remove_then_resubmit_a_local_run_from_the_command_line(tmp_path: Path) -> None:
    """remove stops the engine and its job: status then reports what the site reports (the DAG removed, its
    job cancelled, nothing running); suspend and resume of the ended run are refused; resubmit continues it."""
    command, opened = gate(tmp_path)
    run = compile_chain(tmp_path, a=command)
    load_site("local", {"db": f"sqlite:///{tmp_path / 'stats.sqlite'}", "quiet": True}).submit(
        run, wait=False
    )
    wait_for("a_0 starting", lambda: "a_0" in started(run), run)
    busy = cli("resubmit", str(run))
    assert busy.returncode == 2 and "cannot resubmit: " in busy.stderr and "still running" in busy.stderr

    removed = cli("remove", str(run))
    assert removed.returncode == 0, removed.stderr
    status = cli_status(run)
    assert status["finished"] and status["exit_code"] == 2 and not status["halted"]
    assert status["nodes"] == {"a_0": "cancelled", "b_0": "pending", "c_0": "pending", "FINAL": "pending"}
    text = cli("status", str(run)).stdout
    assert "running" not in text and "exit status 2" in text and "None" not in text

    for action in ("suspend", "resume"):
        refused = cli(action, str(run))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.startswith(f"error: cannot {action}: ") and "has ended" in refused.stderr
    assert not runcontrol.is_halted(run) and cli_status(run) == status

    opened.touch()
    again = cli("resubmit", "--wait", str(run))
    assert again.returncode == 0, again.stdout + again.stderr
    assert started(run) == ["a_0", "a_0", "b_0", "c_0"]  # the killed a_0 ran again; nothing else twice
    assert cli_status(run)["nodes"] == {"a_0": "done", "b_0": "done", "c_0": "done", "FINAL": "done"}


def test_resubmit_a_failed_local_run_takes_the_web_uis_path(tmp_path: Path) -> None:
    flag = tmp_path / "fixed"  # jobs run in a scratch folder: keep the flag outside it
    run = compile_chain(tmp_path, a="echo a", b=f"test -e {flag}")
    site = load_site("local", {"db": f"sqlite:///{tmp_path / 'stats.sqlite'}", "quiet": True})
    assert site.submit(run, wait=True) != 0
    # the FINAL node fails with the DAG, as DAGMan reports it
    assert cli_status(run)["nodes"] == {"a_0": "done", "b_0": "failed", "c_0": "cancelled", "FINAL": "failed"}
    flag.touch()
    again = cli("resubmit", "--wait", str(run))
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.startswith(f"resubmitted {run}")
    assert started(run) == ["a_0", "b_0", "b_0", "c_0"]


def test_a_suspended_local_run_reports_halted_not_failed(tmp_path: Path) -> None:
    command, opened = gate(tmp_path)
    run = compile_chain(tmp_path, a=command)
    site = load_site("local", {"db": f"sqlite:///{tmp_path / 'stats.sqlite'}", "quiet": True})
    site.submit(run, wait=False)
    wait_for("a_0 starting", lambda: "a_0" in started(run), run)
    assert cli("suspend", str(run)).stdout.strip() == f"{run}: halted"
    opened.touch()  # a_0 ends; with the halt file, b_0 does not start and the DAG ends halted
    wait_for("the halted engine ending", lambda: site.status(run).finished, run)
    status = cli_status(run)
    # the FINAL node ran with DAG_STATUS 6 but runs again at the resume: pending, not failed
    nodes = {"a_0": "done", "b_0": "pending", "c_0": "pending", "FINAL": "pending"}
    assert status["halted"] and status["nodes"] == nodes
    text = cli("status", str(run)).stdout
    assert "failed" not in text and "FINAL" not in text and "suspended" in text, text
    again = cli("suspend", str(run))  # it has ended (halted): nothing runs to suspend
    assert again.returncode == 2 and "has ended" in again.stderr
    assert cli("resume", str(run)).stdout.strip() == f"{run}: resubmitted"
    wait_for("the resumed run succeeding", lambda: run_json(run).get("exit_code") == 0, run)
    assert cli_status(run)["nodes"] == {"a_0": "done", "b_0": "done", "c_0": "done", "FINAL": "done"}


@pytest.mark.parametrize(
    ("state", "action", "reason"),
    [
        ("done", "suspend", "has ended (done)"),
        ("failed", "resume", "has ended (failed)"),
        ("running", "resume", "is not suspended (running)"),
    ],
)
def test_a_server_dataset_refuses_what_its_state_does_not_allow(
    app: Any,  # noqa: F811
    api: Any,
    tmp_path: Path,
    state: str,
    action: str,
    reason: str,
) -> None:
    """A dataset the server's pilots run has no site to ask: its recorded state decides, and is left alone."""
    from iceprod_dag.stats import ingest

    db = app.extensions["iceprod_dag_engine"]
    pk = ingest.register_dataset(db, run_dir=tmp_path / "srv", site="server", name="srv", state=state)
    refused = api(pk, action)
    assert refused.status_code == 409, refused.get_json()
    assert f"cannot {action}: " in refused.get_json()["error"] and reason in refused.get_json()["error"]
    assert db_state(app, pk) == state
