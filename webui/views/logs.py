"""Pages: an attempt's stdout, stderr and pilot log: last lines inline, the entire log streamed, download,
search. Files are served only from the run's own ``logs/`` folder (iceprod_dag.webui.services.logfiles)."""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from flask import Blueprint, abort, current_app, render_template, request, send_file

from iceprod_dag.webui.services import logfiles, queries
from iceprod_dag.webui.services.logfiles import KINDS, LogPathError
from iceprod_dag.webui.views.jobs import job_or_404
from iceprod_dag.webui.web import ApiError, dataset_or_404, engine, login_required, wants_json

bp = Blueprint("logs", __name__)


def open_or_none(ds: dict[str, Any], rel: str) -> BinaryIO | None:
    """The open file if it is inside the run's logs folder (logfiles.open_log), None if it does not exist;
    403 if it leaves the folder."""
    try:
        return logfiles.open_log(ds["run_dir"], rel)
    except (LogPathError, PermissionError) as exc:
        if wants_json():
            raise ApiError(403, str(exc), "path") from None
        abort(403, str(exc))
    except OSError:  # missing file or folder, the run folder itself gone
        return None


def resolve(ds: dict[str, Any], rel: str) -> BinaryIO:
    """The open file if it is inside the run's logs folder and exists; 403 / 404 otherwise."""
    f = open_or_none(ds, rel)
    if f is None:
        if wants_json():
            raise ApiError(404, f"field 'path': no log file {rel!r} in this run", "path")
        abort(404, f"no log file {rel} in this run")
    return f


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


def send(f: BinaryIO, rel: str, download: bool) -> Any:
    """The entire open file, streamed by the WSGI server's file wrapper (never read into memory here)."""
    st = os.fstat(f.fileno())
    parts = rel.replace("\\", "/").split("/")
    response = send_file(
        f,
        mimetype="text/plain; charset=utf-8",
        as_attachment=download,
        download_name=".".join(parts[-3:]) + ".txt" if download else None,
        conditional=True,
        last_modified=st.st_mtime,
        max_age=0,
    )
    if response.status_code == 200:
        response.content_length = st.st_size
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/jobs/<int:pk>/attempts/<int:attempt>/logs/<kind>")
@login_required
def show(pk: int, attempt: int, kind: str) -> Any:
    job, ds, rel = attempt_log(pk, attempt, kind)
    lines = request.args.get("lines", "")
    count = min(int(lines), 100_000) if lines.isdigit() else current_app.config["TAIL_LINES"]
    q = request.args.get("q", "")
    f = open_or_none(ds, rel)
    matches: list[tuple[int, str]] = []
    exists, size, tail, cut = False, 0, [], False
    if f is not None:
        with f:
            exists, size = True, os.fstat(f.fileno()).st_size
            tail = logfiles.tail(f, count)
            if q:
                matches, cut = logfiles.search(f, q)
    return render_template(
        "log.html",
        job=job,
        ds=ds,
        attempt=attempt,
        kind=kind,
        kinds=list(KINDS),
        rel=rel,
        exists=exists,
        size=size,
        tail=tail,
        lines=count,
        q=q,
        matches=matches,
        cut=cut,
    )


@bp.get("/jobs/<int:pk>/attempts/<int:attempt>/logs/<kind>/raw")
@login_required
def raw(pk: int, attempt: int, kind: str) -> Any:
    _job, ds, rel = attempt_log(pk, attempt, kind)
    return send(resolve(ds, rel), rel, request.args.get("download") == "1")


@bp.get("/datasets/<int:pk>/files")
@login_required
def file(pk: int) -> Any:
    """Any file under the run's logs folder by its run-relative path (``?path=logs/<node>/<n>/stderr``)."""
    ds = dataset_or_404(pk)
    rel = request.args.get("path", "")
    return send(resolve(ds, rel), rel, request.args.get("download") == "1")
