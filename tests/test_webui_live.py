"""The dataset page of a run that is going on updates itself, in a real headless Chromium against a real
`iceprod-dag serve`, while a real local run of slow jobs goes on (submitted from the CLI with the same default
data home): counts, bars and state change from pending to running (host set) to done without a reload, and polling stops once the
dataset is done. Screenshots go to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from webui_support import PASSWORDS

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
#: jobs long enough for the page to see the run going on (the issue's 8-second jobs)
SLOW = """\
name: slow
jobs: 3
tasks:
  - name: nap
    command: "sleep 8"
    requirements: {memory: 50 MB, walltime: 5m}
  - name: wake
    depends: [nap]
    command: "sleep 1"
    requirements: {memory: 50 MB, walltime: 5m}
"""

pytestmark = pytest.mark.browser


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from iceprod_dag.cli.main import main; main()", *args]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A data home with alice, and `serve` over its default database: (environment, URL)."""
    from iceprod_dag.stats.db import init_db
    from iceprod_dag.webui.services import accounts

    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: run .ci/services/browser-up.sh")
    pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    env = {**os.environ, "ICEPROD_DAG_HOME": str(tmp_path / "home")}
    env.pop("ICEPROD_DAG_DB", None)
    monkeypatch.setenv("ICEPROD_DAG_HOME", env["ICEPROD_DAG_HOME"])
    monkeypatch.delenv("ICEPROD_DAG_DB", raising=False)
    engine = init_db()
    accounts.add_user(engine, "alice", "user", PASSWORDS["alice"])
    engine.dispose()
    proc = subprocess.Popen(cli("serve", "--port", "0"), stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stderr is not None
        url = next(
            (m.group(1) for line in proc.stderr if (m := re.search(r"(http://127\.0\.0\.1:\d+/)", line))),
            None,
        )
        if url is None:
            pytest.fail("iceprod-dag serve did not start")
        yield {**env, "URL": url}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"webui-live-{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_dataset_page_follows_a_local_run_without_reloading(home: dict[str, str], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    dataset = tmp_path / "slow.yaml"
    dataset.write_text(SLOW)
    run = tmp_path / "run"
    submitted = subprocess.run(
        cli("submit", str(dataset), "--run-dir", str(run), "--detach"),
        env=home,
        capture_output=True,
        text=True,
    )
    assert submitted.returncode == 0, submitted.stderr
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(home["URL"])
            page.fill("#username", "alice")
            page.fill("#password", PASSWORDS["alice"])
            page.click("#login-button")
            page.wait_for_selector("#datasets")
            deadline = time.time() + 60
            while page.locator("#datasets >> text=slow").count() == 0:  # the engine registers the run
                assert time.time() < deadline, "the run never showed in the datasets list"
                time.sleep(0.5)
                page.reload()
            page.click("#datasets >> text=slow")
            page.wait_for_selector("svg#dag")
            before = page.inner_text("#job-totals")
            assert "done 6" not in before, "the run ended before the page could watch it"
            assert page.inner_text("#ds-state") == "running"
            page.evaluate("window.notReloaded = true")
            # the naps show as running (on this host) while they run, on the page, the API and the job list
            page.wait_for_selector("#job-totals:has-text('running')", timeout=30_000)
            shot(page, "running")
            pk = int(re.search(r"/datasets/(\d+)", page.url).group(1))  # type: ignore[union-attr]
            api = page.request.get(f"{home['URL']}api/datasets/{pk}").json()
            assert "running" in json.dumps(api["tasks"]), api
            running = page.request.get(f"{home['URL']}api/jobs?dataset={pk}&state=running").json()["jobs"]
            assert running and all(j["host"] == socket.gethostname() for j in running), running
            listing = page.request.get(f"{home['URL']}jobs?state=running").text()
            assert all(j["node"] in listing for j in running), listing

            # selectors, not wait_for_function: the Content-Security-Policy forbids the eval it polls with
            page.wait_for_selector("#live[data-updated]", state="attached", timeout=30_000)
            page.wait_for_selector("#job-totals:has-text('done 6')", timeout=120_000)
            assert page.evaluate("window.notReloaded === true"), "the page was reloaded"
            page.wait_for_selector("#live[data-ended='done']", state="attached", timeout=30_000)
            assert page.inner_text("#ds-state") == "done"
            assert page.text_content("svg#dag g[data-task='wake'] .task-counts") == "3 jobs · done 3"
            assert page.inner_text("#task-counts tr[data-task='nap'] td[data-state='done']") == "3"
            assert page.locator("#ds-progress .progress span.st-done").count() == 1
            # the job list is rendered again by the server as the counts change
            expect(page.locator("#jobs .badge.st-done")).to_have_count(6, timeout=30_000)
            shot(page, "done")
        finally:
            browser.close()
    status = subprocess.run(cli("status", str(run)), env=home, capture_output=True, text=True)
    assert "done: 7" in status.stdout  # the 6 jobs and the FINAL node, as DAGMan counts them
