"""Pages: the jobs listing (filters, sort, keyset pages), one job with its attempts, and its ClassAds."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request

from iceprod_dag.common.states import FailureCategory, JobState
from iceprod_dag.stats.classads import is_time_attribute
from iceprod_dag.webui.services import queries
from iceprod_dag.webui.services.logfiles import KINDS
from iceprod_dag.webui.web import dataset_or_404, engine, login_required, not_found, who

bp = Blueprint("jobs", __name__)


def job_filters(args: Any) -> dict[str, Any]:
    filters: dict[str, Any] = {k: args.get(k) or None for k in queries.JOB_FILTERS}
    if filters["dataset"] is not None:
        try:
            filters["dataset"] = int(filters["dataset"])
        except ValueError:
            abort(400, f"query 'dataset': expected a dataset id, got {filters['dataset']!r}")
    return filters


@bp.get("/jobs")
@login_required
def index() -> Any:
    filters = job_filters(request.args)
    if filters["dataset"] is not None:
        dataset_or_404(filters["dataset"])
    sort = request.args.get("sort", "updated")
    if sort not in queries.JOB_SORTS:
        abort(400, f"query 'sort': must be one of {', '.join(queries.JOB_SORTS)}")
    desc = request.args.get("order", "desc") != "asc"
    raw_size = request.args.get("size", "")
    size = min(max(int(raw_size), 1), 500) if raw_size.isdigit() else 50
    try:
        with engine().connect() as conn:
            page = queries.list_jobs(
                conn,
                who(),
                filters,
                sort=sort,
                desc=desc,
                after=request.args.get("after") or None,
                limit=size,
            )
    except ValueError as exc:
        abort(400, str(exc))
    return render_template(
        "jobs.html",
        jobs=page.rows,
        cursor=page.cursor,
        partial=page.partial,
        scan_limit=queries.SCAN_LIMIT,
        base_args={k: v for k, v in request.args.items() if k != "after"},
        filters=filters,
        sort=sort,
        desc=desc,
        size=size,
        states=[s.value for s in JobState],
        failures=[f.value for f in FailureCategory],
    )


def job_or_404(pk: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A job and its dataset, if the principal may read the dataset."""
    with engine().connect() as conn:
        job = queries.get_job(conn, pk)
    if job is None:
        not_found(f"no job {pk}")
    assert job is not None
    return job, dataset_or_404(job["dataset_pk"])


@bp.get("/jobs/<int:pk>")
@login_required
def show(pk: int) -> Any:
    job, ds = job_or_404(pk)
    with engine().connect() as conn:
        attempts = queries.attempts_of(conn, pk)
        ads = queries.ads_of(conn, pk)
    return render_template("job.html", job=job, ds=ds, attempts=attempts, ads=ads, kinds=list(KINDS))


@bp.get("/jobs/<int:pk>/classad/<int:attempt>")
@login_required
def classad(pk: int, attempt: int) -> Any:
    job, ds = job_or_404(pk)
    with engine().connect() as conn:
        ads = [a for a in queries.ads_of(conn, pk) if a["attempt"] == attempt]
    if not ads:
        abort(404, f"no ClassAd recorded for attempt {attempt} of {job['node']}")
    q = request.args.get("q", "").strip().lower()
    attrs = sorted(ads[0]["attributes"].items(), key=lambda kv: kv[0].lower())
    if q:
        attrs = [(k, v) for k, v in attrs if q in k.lower() or q in str(v).lower()]
    # (name, value, whether the value is a Unix time to show as a date); a JSON null is an undefined value
    rows = [(k, v, is_time_attribute(k, v)) for k, v in attrs]
    return render_template(
        "classad.html",
        job=job,
        ds=ds,
        attempt=attempt,
        attrs=rows,
        q=q,
        total=len(ads[0]["attributes"]),
        ad_text=ads[0]["ad_text"],
    )
