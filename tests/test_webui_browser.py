"""The web UI in a real headless Chromium (Debian's, driven by Playwright) against `iceprod-dag serve`:
log in, open the dataset, open the failed job's stderr, follow the link to the entire log. Screenshots of
the main pages go to tests/artifacts/ (git-ignored).

Needs /usr/bin/chromium (.ci/services/browser-up.sh installs it) and the playwright package.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webui_support import PASSWORDS, STDERR_LINES, fill_demo

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """`iceprod-dag serve` on a free port over a database holding the demo run (alice's, one failed job)."""
    from iceprod_dag.stats.db import init_db
    from iceprod_dag.webui.services import accounts

    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: run .ci/services/browser-up.sh")
    pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    db = f"sqlite:///{tmp_path / 'stats.sqlite'}"
    env = {**os.environ, "ICEPROD_DAG_HOME": str(tmp_path / "home")}
    engine = init_db(db)
    accounts.add_user(engine, "alice", "user", PASSWORDS["alice"])
    fill_demo(engine, tmp_path / "run", owner="alice")
    engine.dispose()
    exe = shutil.which("iceprod-dag") or sys.executable
    cmd = [exe] if exe.endswith("iceprod-dag") else [exe, "-m", "iceprod_dag.cli.main"]
    proc = subprocess.Popen([*cmd, "serve", "--port", "0", "--db", db], stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stderr is not None
        url = None
        for line in proc.stderr:
            match = re.search(rb"(http://127\.0\.0\.1:\d+/)", line)
            if match:
                url = match.group(1).decode()
                break
        if url is None:
            pytest.fail("iceprod-dag serve did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"webui-{name}.png"), full_page=True)


def test_login_dataset_failed_stderr_entire_log(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            # every page keeps working under the Content-Security-Policy: the browser reports any refusal
            refused: list[str] = []
            page.on(
                "console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None
            )
            first = page.goto(server)
            assert first is not None and "frame-ancestors 'none'" in first.headers["content-security-policy"]
            assert first.headers["x-frame-options"] == "DENY"
            assert "/login" in page.url
            shot(page, "login")
            page.fill("#username", "alice")
            page.fill("#password", PASSWORDS["alice"])
            page.click("#login-button")
            page.wait_for_selector("#datasets")
            # the session cookie is Secure and HttpOnly, and Chromium keeps it on http://127.0.0.1
            cookie = next(c for c in page.context.cookies() if c["name"] == "iceprod_dag_session")
            assert cookie["secure"] and cookie["httpOnly"]
            shot(page, "datasets")

            page.click("text=demo-sim")
            page.wait_for_selector("svg#dag")
            page.wait_for_function("document.querySelectorAll('canvas[data-plot]')[0].width > 0")
            assert page.locator("svg#dag .task").count() == 4
            shot(page, "dataset")

            page.click("#failed-jobs >> text=detector_0")
            page.wait_for_selector("#attempt-0")
            assert "Traceback: detector exploded" in page.inner_text("#attempt-0")
            shot(page, "job")

            page.click("#log-0-stderr")
            page.wait_for_selector("#tail")
            tail = page.inner_text("#tail")
            assert "the end" in tail and "stderr line 1\n" not in tail
            page.fill("#log-search", "exploded")
            page.press("#log-search", "Enter")
            page.wait_for_selector("#matches")
            assert "Traceback: detector exploded" in page.inner_text("#matches")
            shot(page, "log")

            page.click("#entire-log")
            page.wait_for_load_state()
            assert page.url.endswith("/logs/stderr/raw")
            assert page.inner_text("body").splitlines() == STDERR_LINES

            page.goto(server + "jobs")
            page.wait_for_selector("#jobs")
            shot(page, "jobs")
            page.goto(server + "monitoring")
            page.wait_for_function("document.getElementById('hourly').width > 0")
            shot(page, "monitoring")
            assert refused == []
        finally:
            browser.close()
