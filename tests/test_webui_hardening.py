"""A hostile user against the web UI (issue 16): a job's planted links under its run folder, revocable sessions,
security headers, password spraying, and the order of 401 and CSRF."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from webui_support import admin, alice, anon, app, bob, demo, engine  # noqa: F401

from iceprod_dag.stats.db import data_home


@pytest.fixture
def secret_key_file(app):  # noqa: F811
    """The server's session key, as a job would find it in $ICEPROD_DAG_HOME."""
    path = data_home() / "web-secret-key"
    assert path.is_file() and path.read_text().strip() == app.config["SECRET_KEY"]
    return path


def _urls(demo: int, rel: str) -> list[str]:  # noqa: F811
    return [f"/datasets/{demo}/files?path={rel}", f"/api/datasets/{demo}/files?path={rel}"]


def test_a_job_replacing_logs_by_a_link_to_the_data_home_gets_no_secret(
    alice,  # noqa: F811
    demo,  # noqa: F811
    app,  # noqa: F811
    secret_key_file,
):
    run = Path(app.config["DEMO_RUN"])
    shutil.rmtree(run / "logs")
    os.symlink(secret_key_file.parent, run / "logs")  # what a job of this run can do
    key = app.config["SECRET_KEY"].encode()
    for url in _urls(demo, "logs/web-secret-key") + _urls(demo, "logs/stats.sqlite"):
        response = alice.get(url)
        assert response.status_code in (403, 404), (url, response.status_code)
        assert key not in response.data


def test_a_link_at_any_depth_is_refused(alice, demo, app, secret_key_file):  # noqa: F811
    run = Path(app.config["DEMO_RUN"])
    key = app.config["SECRET_KEY"].encode()
    # the node folder, then the attempt folder, then the file itself, then a hard link
    shutil.rmtree(run / "logs" / "generate_1")
    os.symlink(secret_key_file.parent, run / "logs" / "generate_1")
    (run / "logs" / "generate_2" / "0").rename(run / "logs" / "generate_2" / "moved")
    os.symlink(secret_key_file.parent, run / "logs" / "generate_2" / "0")
    os.link(secret_key_file, run / "logs" / "hard-key")
    for rel in ("logs/generate_1/web-secret-key", "logs/generate_2/0/web-secret-key", "logs/hard-key"):
        for url in _urls(demo, rel):
            response = alice.get(url)
            assert response.status_code == 403, (url, response.status_code)
            assert key not in response.data
    ok = alice.get(f"/api/datasets/{demo}/files?path=logs/generate_0/0/stdout")
    assert ok.status_code == 200 and ok.data == b"output of generate_0\n"
    ok.close()


def test_attempt_log_pages_refuse_a_linked_logs_folder(alice, demo, app, engine, secret_key_file):  # noqa: F811
    from sqlalchemy import select

    from iceprod_dag.stats.models import Job

    with engine.connect() as conn:
        job = conn.scalar(select(Job.id).where(Job.dataset_pk == demo, Job.node == "detector_0"))
    run = Path(app.config["DEMO_RUN"])
    # the attempt folder becomes a link to the data home, its stderr a link to the key
    folder = run / "logs" / "detector_0" / "0"
    shutil.rmtree(folder)
    os.symlink(secret_key_file.parent, folder)
    key = app.config["SECRET_KEY"]
    for url in (
        f"/jobs/{job}/attempts/0/logs/stderr",
        f"/jobs/{job}/attempts/0/logs/stderr/raw",
        f"/api/jobs/{job}/attempts/0/logs/stderr",
        f"/api/jobs/{job}/attempts/0/logs/stderr/raw",
    ):
        response = alice.get(url)
        assert response.status_code == 403, (url, response.status_code)
        assert key not in response.text


def test_a_fifo_in_logs_does_not_hang_the_server(alice, demo, app):  # noqa: F811
    run = Path(app.config["DEMO_RUN"])
    os.mkfifo(run / "logs" / "pipe")
    assert alice.get(f"/api/datasets/{demo}/files?path=logs/pipe").status_code == 403


def test_pilot_upload_never_writes_through_a_link(anon, app, tmp_path):  # noqa: F811
    from iceprod_dag.webui.services import logfiles

    run = tmp_path / "run-upload"
    run.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, run / "logs")
    import io

    with pytest.raises(logfiles.LogPathError):
        logfiles.write_upload(str(run), "gen_0", 0, "stderr", io.BytesIO(b"x"), 100)
    assert list(outside.iterdir()) == []


# ---------------------------------------------------------------- sessions end at once (a copied cookie too)

COOKIE = "iceprod_dag_session"


def _copy_of(app, client):  # noqa: F811
    """Another client holding a copy of this client's session cookie (what a thief replays)."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    assert thief.get("/api/me").status_code == 200
    return thief


def test_logout_ends_a_copied_cookie(app, alice):  # noqa: F811
    from webui_support import csrf_of

    thief = _copy_of(app, alice)
    assert alice.post("/logout", data={"csrf_token": csrf_of(alice)}).status_code == 302
    assert thief.get("/api/me").status_code == 401
    assert thief.get("/").status_code == 302  # to the login page


def test_password_change_and_disable_end_a_copied_cookie(app, alice, bob, engine, tmp_path):  # noqa: F811
    import subprocess
    import sys

    from iceprod_dag.webui.services import accounts

    thief = _copy_of(app, alice)
    accounts.set_password(engine, "alice", "a-new-password")
    assert thief.get("/api/me").status_code == 401
    assert alice.get("/api/me").status_code == 401  # the owner logs in again
    # an admin's disable from the command line (another process), on bob's live session and its copy
    thief = _copy_of(app, bob)
    (tmp_path / "cli-home").mkdir()
    result = subprocess.run(
        [sys.executable, "-c", "from iceprod_dag.cli.main import main; main()", "user", "disable", "bob",
         "--db", str(engine.url)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert thief.get("/api/me").status_code == 401 and bob.get("/api/me").status_code == 401
    from webui_support import login

    assert login(app.test_client(), "bob").status_code == 401  # disabled: no new session either
    accounts.set_disabled(engine, "bob", False)
    assert login(app.test_client(), "bob").status_code == 302


# ---------------------------------------------------------------- headers, file modes, throttling, 401 first


def test_every_response_forbids_framing_and_foreign_scripts(alice, anon, demo):  # noqa: F811
    for client, url in ((anon, "/login"), (alice, "/"), (alice, f"/datasets/{demo}"), (anon, "/api/me")):
        headers = client.get(url).headers
        assert headers["X-Frame-Options"] == "DENY", url
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, url
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_stats_database_is_private(app, tmp_path):  # noqa: F811
    import stat

    from iceprod_dag.stats.db import init_db

    for path in (tmp_path / "stats.sqlite", tmp_path / "fresh" / "new.sqlite"):
        init_db(f"sqlite:///{path}").dispose()
        for f in [path, *path.parent.glob(path.name + "-*")]:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, (f, oct(f.stat().st_mode))


def test_a_sprayed_password_is_throttled_per_address_and_per_name(app, engine):  # noqa: F811
    from webui_support import PASSWORDS, login

    from iceprod_dag.webui.services import accounts

    app.config.update(LOGIN_MAX_FAILURES_PER_ADDRESS=6, LOGIN_MAX_FAILURES_PER_NAME=4)
    for i in range(10):
        accounts.add_user(engine, f"user{i}", "user", f"pw-{i}")
    # one address, one password, many names: each name fails once, the address is stopped after 6
    client = app.test_client()
    codes = [login(client, f"user{i}", "Winter2026!").status_code for i in range(8)]
    assert codes == [401] * 6 + [429] * 2
    assert login(client, "alice").status_code == 429  # even a right password, from that address
    # one name from many addresses: stopped after 4 failures whatever the address
    codes = []
    for i in range(6):
        other = app.test_client()
        other.environ_base["REMOTE_ADDR"] = f"10.0.0.{i}"
        codes.append(login(other, "bob", f"guess-{i}").status_code)
    assert codes == [401] * 4 + [429] * 2
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.9.9.9"
    assert login(elsewhere, "root", PASSWORDS["root"]).status_code == 302  # others are not affected


def test_anonymous_unsafe_requests_get_401_before_csrf(anon, demo):  # noqa: F811
    for url in (f"/api/datasets/{demo}/suspend", "/api/tokens", "/api/datasets"):
        response = anon.post(url, json={})
        assert response.status_code == 401, (url, response.status_code)
        assert response.get_json()["field"] == "Authorization"
    assert anon.delete("/api/tokens/1").status_code == 401
    page = anon.post(f"/datasets/{demo}/suspend")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert anon.post("/login", data={"username": "alice", "password": "x"}).status_code == 400  # CSRF


def test_a_user_past_their_quota_of_unfinished_jobs_gets_429(app, alice, bob):  # noqa: F811
    from webui_support import csrf_of

    app.config["MAX_UNFINISHED_JOBS_PER_USER"] = 10
    body = {
        "name": "q",
        "jobs": 3,
        "tasks": [{"name": "a", "command": "true"}, {"name": "b", "command": "true"}],
    }
    h = {"X-CSRF-Token": csrf_of(alice)}
    assert alice.post("/api/datasets", json=body, headers=h).status_code == 201  # 6 unfinished jobs
    refused = alice.post("/api/datasets", json=body, headers=h)  # 12 > 10
    assert refused.status_code == 429 and refused.get_json()["field"] == "jobs", refused.text
    assert "12 unfinished jobs" in refused.get_json()["error"]
    assert len(alice.get("/api/datasets?owner=alice").get_json()["datasets"]) == 2  # the demo and the first
    # the quota is per owner: bob still may
    assert bob.post("/api/datasets", json=body, headers={"X-CSRF-Token": csrf_of(bob)}).status_code == 201


def test_cli_user_logout_ends_sessions_but_keeps_tokens(app, alice, engine):  # noqa: F811
    from click.testing import CliRunner

    from iceprod_dag.cli.main import cli
    from iceprod_dag.webui.services import accounts

    thief = _copy_of(app, alice)
    token = accounts.create_token(engine, "alice")[1]
    result = CliRunner().invoke(cli, ["user", "logout", "alice", "--db", str(engine.url)])
    assert result.exit_code == 0, result.output
    assert thief.get("/api/me").status_code == 401 and alice.get("/api/me").status_code == 401
    assert app.test_client().get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    missing = CliRunner().invoke(cli, ["user", "logout", "nobody", "--db", str(engine.url)])
    assert missing.exit_code != 0 and "no user named 'nobody'" in str(missing.exception or missing.output)
