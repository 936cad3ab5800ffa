"""The monitoring page (finished/failed per hour, running per site) and Prometheus ``/metrics``.

``/metrics`` shows only totals (no dataset names or owners), so scrapers need no account.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, render_template

from iceprod_dag.webui.services import queries
from iceprod_dag.webui.web import engine, login_required

bp = Blueprint("monitoring", __name__)


@bp.get("/monitoring")
@login_required
def page() -> Any:
    with engine().connect() as conn:
        hourly = queries.hourly(conn)
        running = queries.running_per_site(conn)
        totals = queries.totals(conn)
    return render_template("monitoring.html", hourly=hourly, running=running, totals=totals)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def metrics_text() -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    started = time.perf_counter()
    with engine().connect() as conn:
        totals = queries.totals(conn)
        running = queries.running_per_site(conn)
        hourly = queries.hourly(conn, hours=1)
    out = [
        "# HELP iceprod_dag_jobs Jobs (DAG nodes) recorded, by state of their latest attempt.",
        "# TYPE iceprod_dag_jobs gauge",
    ]
    out += [f'iceprod_dag_jobs{{state="{_escape(s)}"}} {n}' for s, n in sorted(totals["jobs"].items())]
    out += ["# HELP iceprod_dag_datasets Datasets recorded, by state.", "# TYPE iceprod_dag_datasets gauge"]
    out += [
        f'iceprod_dag_datasets{{state="{_escape(s)}"}} {n}' for s, n in sorted(totals["datasets"].items())
    ]
    out += [
        "# HELP iceprod_dag_running_jobs Jobs running now, by site.",
        "# TYPE iceprod_dag_running_jobs gauge",
    ]
    out += [f'iceprod_dag_running_jobs{{site="{_escape(s)}"}} {n}' for s, n in sorted(running.items())]
    out += [
        "# HELP iceprod_dag_attempts_last_hour Attempts that ended in the current hour, by outcome.",
        "# TYPE iceprod_dag_attempts_last_hour gauge",
        f'iceprod_dag_attempts_last_hour{{outcome="done"}} {hourly["done"][-1]}',
        f'iceprod_dag_attempts_last_hour{{outcome="failed"}} {hourly["failed"][-1]}',
        "# HELP iceprod_dag_metrics_seconds Time taken to collect these metrics.",
        "# TYPE iceprod_dag_metrics_seconds gauge",
        f"iceprod_dag_metrics_seconds {time.perf_counter() - started:.6f}",
    ]
    return "\n".join(out) + "\n"


@bp.get("/metrics")
def metrics() -> Any:
    return Response(metrics_text(), mimetype="text/plain; version=0.0.4; charset=utf-8")
