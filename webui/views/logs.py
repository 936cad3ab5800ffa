"""Pages: an attempt's stdout, stderr and pilot log: last lines inline, the entire log streamed, download,
search. Files are served only from the run's own ``logs/`` folder (iceprod_dag.webui.services.logfiles)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, render_template, request, send_file

from iceprod_dag.webui.services import logfiles, queries
from iceprod_dag.webui.services.logfiles import KINDS, LogPathError
from iceprod_dag.webui.views.jobs import job_or_404
from iceprod_dag.webui.web import ApiError, dataset_or_404, engine, login_required, wants_json

bp = Blueprint("logs", __name__)


def resolve(ds: dict[str, Any], rel: str) -> Path:
    """The file if it is inside the run's logs folder and exists; 403 / 404 otherwise."""
    try:
        path = logfiles.safe_log_path(ds["run_dir"], rel)
    except LogPathError as exc:
        if wants_json():
            raise ApiError(403, str(exc), "path") from None
        abort(403, str(exc))
    if not path.is_file():
        if wants_json():
            raise ApiError(404, f"field 'path': no log file {rel!r} in this run", "path")
        abort(404, f"no log file {rel} in this run")
    return path


def attempt_log(job_pk: int, attempt: int, kind: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(job, dataset, run-relative log path) of one attempt's log of this kind."""
    if kind not in KINDS:
        if wants_json():
            raise ApiError(404, f"field 'kind': must be one of {', '.join(KINDS)}", "kind")
        abort(404)
    job, ds = job_or_404(job_pk)
    with engine().connect() as conn:
        row = queries.get_attempt(conn, job_pk, attempt)
    recorded = row.get(f"log_{kind}") if row else None
    return job, ds, logfiles.attempt_log_rel(job["node"], attempt, kind, recorded)


def send(path: Path, download: bool) -> Any:
    """The entire file, streamed by the WSGI server's file wrapper (never read into memory here)."""
    response = send_file(
        path,
        mimetype="text/plain; charset=utf-8",
        as_attachment=download,
        download_name=f"{path.parent.parent.name}.{path.parent.name}.{path.name}.txt" if download else None,
        conditional=True,
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/jobs/<int:pk>/attempts/<int:attempt>/logs/<kind>")
@login_required
def show(pk: int, attempt: int, kind: str) -> Any:
    job, ds, rel = attempt_log(pk, attempt, kind)
    try:
        path = logfiles.safe_log_path(ds["run_dir"], rel)
    except LogPathError as exc:
        abort(403, str(exc))
    exists = path.is_file()
    lines = request.args.get("lines", "")
    count = int(lines) if lines.isdigit() else current_app.config["TAIL_LINES"]
    q = request.args.get("q", "")
    matches, cut = logfiles.search(path, q) if q and exists else ([], False)
    return render_template(
        "log.html",
        job=job,
        ds=ds,
        attempt=attempt,
        kind=kind,
        kinds=list(KINDS),
        rel=rel,
        exists=exists,
        size=path.stat().st_size if exists else 0,
        tail=logfiles.tail(path, count) if exists else [],
        lines=count,
        q=q,
        matches=matches,
        cut=cut,
    )


@bp.get("/jobs/<int:pk>/attempts/<int:attempt>/logs/<kind>/raw")
@login_required
def raw(pk: int, attempt: int, kind: str) -> Any:
    _job, ds, rel = attempt_log(pk, attempt, kind)
    return send(resolve(ds, rel), request.args.get("download") == "1")


@bp.get("/datasets/<int:pk>/files")
@login_required
def file(pk: int) -> Any:
    """Any file under the run's logs folder by its run-relative path (``?path=logs/<node>/<n>/stderr``)."""
    ds = dataset_or_404(pk)
    rel = request.args.get("path", "")
    return send(resolve(ds, rel), request.args.get("download") == "1")
