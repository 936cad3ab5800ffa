# ruff: noqa: F811 - pytest fixtures imported from webui_support are redefined as arguments
"""The dataset page over what real runs record: a local run submitted from the CLI shows in `serve`'s default
database with its task graph (edges, dependency order) and owner; failures grouped; ClassAd times and
undefined values shown as such (in the page and in `dag why`)."""

from __future__ import annotations

import getpass
import html
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from webui_support import DEMO, PASSWORDS, alice, app, demo, engine, login, record  # noqa: F401

from iceprod_dag.common import names
from iceprod_dag.stats import ingest


@pytest.fixture
def cli_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo submitted with the CLI's defaults, in a data home of its own."""
    home = tmp_path / "home"
    monkeypatch.setenv("ICEPROD_DAG_HOME", str(home))
    monkeypatch.delenv("ICEPROD_DAG_DB", raising=False)
    run = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from iceprod_dag.cli.main import main; main()",
            "--quiet",
            "submit",
            str(DEMO),
            "--run-dir",
            str(run),
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return run


def test_cli_run_shows_in_default_serve_database_with_graph_and_owner(
    cli_run: Path, monkeypatch: Any
) -> None:
    from iceprod_dag.webui import create_app
    from iceprod_dag.webui.services import accounts

    monkeypatch.setattr(accounts, "PASSWORD_METHOD", "pbkdf2:sha256:1000")
    application = create_app({"COOKIE_SECURE": False, "TESTING": True})  # no DB: serve's default
    accounts.add_user(application.extensions["iceprod_dag_engine"], "alice", "user", PASSWORDS["alice"])
    client = application.test_client()
    assert login(client, "alice").status_code == 302
    listing = client.get("/").text
    assert "demo-sim" in listing and f"<code>{cli_run.name}</code>" in listing
    pk = int(re.search(r'href="/datasets/(\d+)"', listing).group(1))
    page = client.get(f"/datasets/{pk}").text
    assert page.count('class="edge"') == 4  # generate->detector, generate->background, both->filter
    assert f"<dt>Owner</dt><dd>{html.escape(getpass.getuser())}</dd>" in page
    assert f"run #{pk}" in page
    table = page[page.index('id="task-counts"') :]
    order = [table.index(f">{task}</a>") for task in ("generate", "detector", "background", "filter")]
    assert order == sorted(order), "tasks in dependency order"
    application.extensions["iceprod_dag_engine"].dispose()


def test_identical_failures_are_one_group_linked_to_its_jobs(app: Any, alice: Any, demo: int) -> None:
    db = app.extensions["iceprod_dag_engine"]
    run_dir = app.config["DEMO_RUN"]
    tail = ["reading input", 'File "sim.py", line 3', "ValueError: bad seed", "exiting"]
    recs = [record(f"background_{j}", 0, failed=True, stderr_tail=tail) for j in (10, 2, 7, 3)]
    recs = [r for r in recs if r["job"] < 8] + [record("background_5", 0, failed=True, stderr_tail=tail)]
    ingest.ingest_records(db, recs, run_dir=run_dir, site="local")
    page = alice.get(f"/datasets/{demo}").text
    groups = page[page.index('id="failed-jobs"') : page.index("</table>", page.index('id="failed-jobs"'))]
    assert groups.count('class="failure-group"') == 2  # background's four, detector_0's one
    row = next(r for r in groups.split('class="failure-group"') if "ValueError: bad seed" in r)
    link = html.unescape(re.search(r'class="group-jobs" href="([^"]+)">4<', row).group(1))
    nodes = re.findall(r">(background_\d+)</a>", row)
    assert nodes == ["background_2", "background_3", "background_5", "background_7"]
    listing = alice.get(link).text
    assert all(n in listing for n in nodes) and "detector_0" not in listing


def test_classad_times_as_dates_and_undefined_as_undefined(
    app: Any, alice: Any, demo: int, tmp_path: Path
) -> None:
    from sqlalchemy import select

    from iceprod_dag.cli.control import why_report
    from iceprod_dag.stats.models import Job

    ad = (
        'ClusterId = 43\nProcId = 0\nDAGNodeName = "filter_1"\nQDate = 1796400000\nExitSignal = undefined\n'
        "ExitCode = 0\nRemoteWallClockTime = 12.0\n"
    )
    ingest.ingest_job_ads(
        app.extensions["iceprod_dag_engine"],
        [("filter_1", 0, ad)],
        run_dir=app.config["DEMO_RUN"],
        site="local",
    )
    with app.extensions["iceprod_dag_engine"].connect() as conn:
        pk = conn.scalar(select(Job.id).where(Job.dataset_pk == demo, Job.node == "filter_1"))
    page = alice.get(f"/jobs/{pk}/classad/0").text
    assert '<time datetime="1796400000">2026-12-04 16:00:00 UTC</time>' in page
    assert '<code class="undefined">undefined</code>' in page and "null" not in page
    assert "12.0" in page and "1970" not in page  # a duration is not a date
    # dag why reads the ad the site saved in the run folder
    (tmp_path / names.HISTORY_DIR).mkdir()
    (tmp_path / names.job_ad("filter_1", 0)).write_text(ad, encoding="utf-8")
    lines = why_report(tmp_path, "filter_1", None, tmp_path)
    assert "    ExitSignal = undefined" in lines
    assert "    QDate = 1796400000 (2026-12-04 16:00:00 UTC)" in lines
