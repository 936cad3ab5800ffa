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
