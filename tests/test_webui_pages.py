"""Server-rendered pages over a real SQLite stats database: datasets, DAG, jobs, attempts, logs, ClassAds,
monitoring; and the log folder boundary (``..``, absolute paths, symlinks out)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from webui_support import STDERR_LINES, admin, alice, anon, app, bob, demo, engine  # noqa: F401

from iceprod_dag.stats.models import Job


def job_id(engine, demo: int, node: str) -> int:  # noqa: F811
    from sqlalchemy import select

    with engine.connect() as conn:
        return conn.scalar(select(Job.id).where(Job.dataset_pk == demo, Job.node == node))


def test_anonymous_is_sent_to_login(anon):  # noqa: F811
    for path in ("/", "/jobs", "/monitoring", "/datasets/1", "/tokens"):
        response = anon.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_datasets_list_shows_owner_state_progress(alice, demo):  # noqa: F811
    page = alice.get("/")
    assert page.status_code == 200
    assert "demo-sim" in page.text and "alice" in page.text
    assert 'class="progress"' in page.text and "st-done" in page.text
    assert alice.get("/?state=done").text.count("demo-sim") == 0
    assert "demo-sim" in alice.get("/?state=running&sort=name&order=asc").text
    assert "demo-sim" not in alice.get("/?name=nothing-like-this").text


def test_dataset_page_draws_dag_with_counts_and_plots(alice, demo):  # noqa: F811
    page = alice.get(f"/datasets/{demo}").text
    # four tasks, four edges (generate->detector, generate->background, detector->filter, background->filter)
    for task in ("generate", "detector", "background", "filter"):
        assert f'class="task-name">{task}<' in page
    assert page.count('class="edge"') == 4
    assert "8 jobs · done 8" in page  # generate: 8 done
    assert "8 jobs · done 1" in page  # background: 1 done
    assert "8 jobs · failed 1" in page  # detector: 1 failed
    assert 'data-plot="memory"' in page and "vendor/chart.umd.min.js" in page
    assert 'id="failed-jobs"' in page and "detector_0" in page


def test_static_chart_library_is_served(alice):  # noqa: F811
    response = alice.get("/static/vendor/chart.umd.min.js")
    assert response.status_code == 200 and b"Chart" in response.data[:2000]
    response.close()


def test_jobs_listing_filters_sorts_and_pages(alice, demo):  # noqa: F811
    page = alice.get(f"/jobs?dataset={demo}&state=failed").text
    assert "detector_0" in page and "generate_1" not in page
    page = alice.get(f"/jobs?dataset={demo}&task=generate&sort=node&order=asc&size=3").text
    nodes = re.findall(r">(generate_\d)</a>", page)
    assert nodes == ["generate_0", "generate_1", "generate_2"]
    following = re.search(r'id="next-page" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    nodes2 = re.findall(r">(generate_\d)</a>", alice.get(following).text)
    assert nodes2 == ["generate_3", "generate_4", "generate_5"]
    assert "worker1" in alice.get("/jobs?host=worker1").text
    assert "detector_0" in alice.get("/jobs?failure=task_failed").text
    assert alice.get("/jobs?after=garbage").status_code == 400
    assert alice.get("/jobs?sort=password").status_code == 400
    # node names repeat across datasets: that order is offered, and served, only within one
    assert "<option selected>node</option>" in alice.get(f"/jobs?dataset={demo}&sort=node").text
    assert "<option>node</option>" not in alice.get("/jobs").text
    no_dataset = alice.get("/jobs?sort=node")
    assert no_dataset.status_code == 400 and "needs a dataset filter" in no_dataset.text


def test_job_page_lists_attempts_logs_and_classad(alice, demo, engine):  # noqa: F811
    page = alice.get(f"/jobs/{job_id(engine, demo, 'detector_0')}").text
    assert "Attempt 0" in page and "task_failed" in page and "Traceback: detector exploded" in page
    assert 'id="log-0-stderr"' in page
    gen = job_id(engine, demo, "generate_0")
    assert "ClassAd" in alice.get(f"/jobs/{gen}").text
    ad = alice.get(f"/jobs/{gen}/classad/0").text
    assert "ClusterId" in ad and "MachineAttrGLIDEIN_Site0" in ad
    only = alice.get(f"/jobs/{gen}/classad/0?q=glidein").text
    table = only[only.index('id="classad"') : only.index("</table>")]
    assert "MachineAttrGLIDEIN_Site0" in table and "ClusterId" not in table
    assert "1 of 9 attributes" in only
    assert alice.get(f"/jobs/{gen}/classad/7").status_code == 404
    assert alice.get("/jobs/999999").status_code == 404


def test_failed_stderr_tail_entire_download_and_search(alice, demo, engine):  # noqa: F811
    det = job_id(engine, demo, "detector_0")
    page = alice.get(f"/jobs/{det}/attempts/0/logs/stderr").text
    assert "the end" in page and "stderr line 1\n" not in page  # last lines only
    assert 'id="entire-log"' in page
    entire = alice.get(f"/jobs/{det}/attempts/0/logs/stderr/raw")
    assert entire.status_code == 200 and entire.mimetype == "text/plain"
    assert entire.data.decode().splitlines() == STDERR_LINES
    entire.close()
    download = alice.get(f"/jobs/{det}/attempts/0/logs/stderr/raw?download=1")
    assert "attachment" in download.headers["Content-Disposition"]
    download.close()
    found = alice.get(f"/jobs/{det}/attempts/0/logs/stderr?q=exploded").text
    assert "1 lines matching" in found and "Traceback: detector exploded" in found
    assert "stderr line 7" in alice.get(f"/jobs/{det}/attempts/0/logs/stderr?lines=500").text
    assert alice.get(f"/jobs/{det}/attempts/0/logs/shadow").status_code == 404


def test_logs_outside_the_run_log_folder_are_refused(alice, demo, app, tmp_path):  # noqa: F811
    run = Path(app.config["DEMO_RUN"])
    (tmp_path / "secret.txt").write_text("top secret", encoding="utf-8")
    (run / "dataset.json").exists()
    for bad in (
        "../secret.txt",
        "logs/../../secret.txt",
        "logs/generate_0/0/../../../dataset.json",
        str(tmp_path / "secret.txt"),
        "/etc/passwd",
        "dataset.json",
        "logs/./generate_0/0/stdout",
    ):
        for prefix in ("", "/api"):
            response = alice.get(f"{prefix}/datasets/{demo}/files", query_string={"path": bad})
            assert response.status_code == 403, (prefix, bad, response.status_code)
            assert b"top secret" not in response.data
    # a symlink inside logs/ that points out of it
    os.symlink(tmp_path / "secret.txt", run / "logs" / "escape.txt")
    assert alice.get(f"/datasets/{demo}/files?path=logs/escape.txt").status_code == 403
    ok = alice.get(f"/datasets/{demo}/files?path=logs/generate_0/0/stdout")
    assert ok.status_code == 200 and ok.data == b"output of generate_0\n"
    ok.close()
    assert alice.get(f"/datasets/{demo}/files?path=logs/nope").status_code == 404


def test_recorded_log_path_pointing_outside_is_refused(alice, demo, engine, app):  # noqa: F811
    from webui_support import record

    from iceprod_dag.stats import ingest

    run = app.config["DEMO_RUN"]
    rec = record(
        "filter_3", 0, logs={"stdout": "../../../etc/passwd", "stderr": "/etc/passwd", "pilot": None}
    )
    ingest.ingest_records(engine, [rec], run_dir=run, site="local")
    job = job_id(engine, demo, "filter_3")
    assert alice.get(f"/jobs/{job}/attempts/0/logs/stdout/raw").status_code == 403
    assert alice.get(f"/jobs/{job}/attempts/0/logs/stderr/raw").status_code == 403
    assert alice.get(f"/jobs/{job}/attempts/0/logs/stdout").status_code == 403


def test_monitoring_page_and_prometheus_metrics(alice, anon):  # noqa: F811
    page = alice.get("/monitoring").text
    assert 'id="hourly"' in page and "monitoring-data" in page
    metrics = anon.get("/metrics")
    assert metrics.status_code == 200 and metrics.mimetype == "text/plain"
    text = metrics.text
    assert 'iceprod_dag_jobs{state="done"} 9' in text
    assert 'iceprod_dag_jobs{state="failed"} 1' in text
    assert re.search(r'iceprod_dag_attempts_last_hour\{outcome="done"\} \d+', text)


def test_dataset_actions_by_form(alice, bob, demo):  # noqa: F811
    from webui_support import csrf_of

    assert alice.post(f"/datasets/{demo}/suspend").status_code == 400  # no CSRF token
    token = csrf_of(alice)
    assert alice.post(f"/datasets/{demo}/suspend", data={"csrf_token": token}).status_code == 302
    assert "st-suspended" in alice.get(f"/datasets/{demo}").text
    assert alice.post(f"/datasets/{demo}/retry", data={"csrf_token": token}).status_code == 302
    assert "detector_0" in alice.get(f"/jobs?dataset={demo}&state=pending&task=detector").text
    assert bob.post(f"/datasets/{demo}/resume", data={"csrf_token": csrf_of(bob)}).status_code == 403


def test_a_filter_scan_that_ends_short_says_so_and_goes_on(alice, demo, monkeypatch):  # noqa: F811
    from iceprod_dag.webui.services import queries

    monkeypatch.setattr(queries, "SCAN_LIMIT", 2)
    page = alice.get(f"/jobs?dataset={demo}&host=no-such-host").text
    assert 'id="partial-page"' in page and 'id="next-page"' in page
    api = alice.get(f"/api/jobs?dataset={demo}&host=no-such-host").get_json()
    assert api["jobs"] == [] and api["partial"] is True and api["next"]
