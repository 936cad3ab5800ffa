"""Pages: the dataset list, one dataset (summary, DAG, per-task plots, jobs), and its actions."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from iceprod_dag.common.exceptions import IceprodDagError
from iceprod_dag.common.states import JobState
from iceprod_dag.webui.services import actions, queries
from iceprod_dag.webui.services.dag import layout, task_graph
from iceprod_dag.webui.services.failures import SHOWN, failure_groups
from iceprod_dag.webui.web import dataset_or_404, engine, login_required, who

bp = Blueprint("datasets", __name__)

#: display order of job states in progress bars
STATE_ORDER = [
    s.value
    for s in (
        JobState.DONE,
        JobState.RUNNING,
        JobState.IDLE,
        JobState.PENDING,
        JobState.HELD,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.UNKNOWN,
    )
]


#: dataset states after which nothing changes by itself: the page stops updating itself
ENDED = [s.value for s in JobState if s.finished]


@bp.get("/")
@login_required
def index() -> Any:
    args = request.args
    sort = args.get("sort", "submitted")
    with engine().connect() as conn:
        rows = queries.list_datasets(
            conn,
            who(),
            state=args.get("state") or None,
            owner=args.get("owner") or None,
            site=args.get("site") or None,
            name=args.get("name") or None,
            sort=sort,
            desc=args.get("order", "desc") != "asc",
        )
    for row in rows:  # two runs of one dataset differ by their run folder
        row["run_name"] = PurePath(row["run_dir"]).name
    return render_template("datasets.html", datasets=rows, states=STATE_ORDER, args=args, sort=sort)


@bp.get("/datasets/<int:pk>")
@login_required
def show(pk: int) -> Any:
    ds = dataset_or_404(pk)
    with engine().connect() as conn:
        counts = queries.task_counts(conn, pk)
        plots = queries.task_plots(conn, pk)
        failures = failure_groups(conn, pk)
        jobs, cursor, _ = queries.list_jobs(conn, who(), {"dataset": pk}, limit=25)
    totals: dict[str, int] = {}
    for per_task in counts.values():
        for state, n in per_task.items():
            totals[state] = totals.get(state, 0) + n
    graph = layout(task_graph(ds.get("config"), counts), counts)
    return render_template(
        "dataset.html",
        ds=ds,
        graph=graph,
        counts=counts,
        totals=totals,
        total=sum(totals.values()),
        states=STATE_ORDER,
        plots=plots,
        failures=failures,
        ended=ENDED,
        shown=SHOWN,
        jobs=jobs,
        cursor=cursor,
    )


@bp.post("/datasets/<int:pk>/<any(suspend, resume, retry):action>")
@login_required
def act(pk: int, action: str) -> Any:
    ds = dataset_or_404(pk, change=True)
    try:
        done = actions.control(engine(), ds, "retry-failed" if action == "retry" else action)
    except IceprodDagError as exc:  # the site cannot do it: say why, change nothing
        flash(f"Cannot {action} the dataset: {exc}", "error")
        return redirect(url_for("datasets.show", pk=pk))
    on_site = f" (site {done['site']}: {done['site_action']})" if "site" in done else ""
    if action == "retry":
        flash(f"{done['retried']} failed jobs will run again.{on_site}", "info")
    else:
        flash(f"Dataset {'suspended' if action == 'suspend' else 'resumed'}.{on_site}", "info")
    return redirect(url_for("datasets.show", pk=pk))
