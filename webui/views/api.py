"""The JSON API for people and the CLI: datasets, jobs, attempts, stats, logs, ClassAds, tokens.

Every error is ``{"error": message, "field": name}`` with a 4xx status; malformed bodies never give a 500.
"""

from __future__ import annotations

import os
import re
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from iceprod_dag.common.exceptions import (
    AuthError,
    ConfigError,
    IceprodDagError,
    QuotaError,
    RunNotFoundError,
    SiteError,
)
from iceprod_dag.dataset.limits import InputLimits
from iceprod_dag.webui.config import runs_dir
from iceprod_dag.webui.services import accounts, actions, logfiles, queries
from iceprod_dag.webui.services.openapi import openapi_document
from iceprod_dag.webui.views.jobs import job_or_404
from iceprod_dag.webui.views.logs import attempt_log, resolve, send
from iceprod_dag.webui.web import ApiError, dataset_or_404, engine, int_arg, json_body, login_required, who

bp = Blueprint("api", __name__, url_prefix="/api")

_PROBLEM_FIELD = re.compile(r"^\S+ ([^\s:]+): ")


def _public(ds: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in ds.items() if k != "config"}
    out["private"] = bool(out.get("private"))
    return out


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(openapi_document())


@bp.get("/me")
@login_required
def me() -> Any:
    p = who()
    return jsonify(name=p.name, role=p.role, token_kind=p.token_kind)


# ---------------------------------------------------------------- datasets


@bp.get("/datasets")
@login_required
def list_datasets() -> Any:
    a = request.args
    limit = int_arg("limit", 200, 1, 1000)
    with engine().connect() as conn:
        rows = queries.list_datasets(
            conn,
            who(),
            state=a.get("state"),
            owner=a.get("owner"),
            site=a.get("site"),
            name=a.get("name"),
            limit=limit or 200,
        )
    return jsonify(datasets=[_public(r) for r in rows])


def _submitted_body(limits: InputLimits) -> tuple[Any, Any, bool, str]:
    """(dataset data, line map, private, source) from a JSON, YAML or multipart-file request; bodies past
    the input limits are refused before they are read (413) or parsed (400)."""
    from iceprod_dag.dataset.yamlsource import check_size, decode_text, load_yaml_with_lines

    if (request.content_length or 0) > limits.max_document_bytes + 64 * 1024:  # room for multipart framing
        raise ApiError(
            413,
            f"body: a dataset may have at most {limits.max_document_bytes} bytes (MAX_DOCUMENT_BYTES)",
            "body",
        )
    private = request.args.get("private", "").lower() in ("1", "true", "yes")
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "field 'file': attach the dataset file as form field 'file'", "file")
        source = upload.filename or "<upload>"
        raw = upload.read(limits.max_document_bytes + 1)
        check_size(len(raw), source, limits)
        private = private or request.form.get("private", "").lower() in ("1", "true", "yes")
        data, lines = load_yaml_with_lines(decode_text(raw, source), source, limits)
        return data, lines, private, source
    if request.mimetype in ("application/yaml", "application/x-yaml", "text/yaml", "text/plain"):
        raw = request.get_data()
        check_size(len(raw), "<body>", limits)
        data, lines = load_yaml_with_lines(decode_text(raw, "<body>"), "<body>", limits)
        return data, lines, private, "<body>"
    check_size(len(request.get_data()), "<body>", limits)
    body = json_body()
    if "dataset" in body and isinstance(body["dataset"], dict):
        private = private or bool(body.get("private"))
        return body["dataset"], None, private, "<body>.dataset"
    return body, None, private, "<body>"


@bp.post("/datasets")
@login_required
def submit() -> Any:
    limits = current_app.extensions["iceprod_dag_limits"]
    try:
        data, lines, private, source = _submitted_body(limits)
        pk = actions.submit(
            engine(),
            who(),
            data,
            runs_dir(current_app.config),
            private,
            source,
            lines,
            limits=limits,
            quota=int(current_app.config["MAX_UNFINISHED_JOBS_PER_USER"]),
        )
    except QuotaError as exc:
        raise ApiError(429, str(exc), "jobs") from None
    except ConfigError as exc:
        match = _PROBLEM_FIELD.match(exc.problems[0]) if exc.problems else None
        body = {"error": "; ".join(exc.problems), "problems": exc.problems, "status": 400}
        if match:
            body["field"] = match.group(1)
        return jsonify(body), 400
    with engine().connect() as conn:
        ds = queries.get_dataset(conn, pk)
    return jsonify(dataset=_public(ds or {})), 201


@bp.get("/datasets/<int:pk>")
@login_required
def get_dataset(pk: int) -> Any:
    ds = dataset_or_404(pk)
    with engine().connect() as conn:
        counts = queries.task_counts(conn, pk)
    return jsonify(dataset=_public(ds), config=ds.get("config"), tasks=counts)


@bp.post('/datasets/<int:pk>/<any(suspend, resume, "retry-failed"):action>')
@login_required
def dataset_action(pk: int, action: str) -> Any:
    ds = dataset_or_404(pk, change=True)
    try:
        return jsonify(actions.control(engine(), ds, action))
    except RunNotFoundError as exc:
        raise ApiError(409, f"field 'run_dir': {exc}", "run_dir") from None
    except SiteError as exc:  # the site cannot do it (no halt support, still running, schedd down)
        raise ApiError(409, f"site {ds['site']!r}: {exc}", "site") from None


@bp.post("/datasets/<int:pk>/visibility")
@login_required
def visibility(pk: int) -> Any:
    dataset_or_404(pk, change=True)
    body = json_body()
    if not isinstance(body.get("private"), bool):
        raise ApiError(400, "field 'private': expected true or false", "private")
    accounts.set_private(engine(), pk, body["private"])
    return jsonify(private=body["private"])


@bp.get("/datasets/<int:pk>/stats")
@login_required
def dataset_stats(pk: int) -> Any:
    dataset_or_404(pk)
    with engine().connect() as conn:
        return jsonify(tasks=queries.task_counts(conn, pk), plots=queries.task_plots(conn, pk))


# ---------------------------------------------------------------- jobs and attempts


@bp.get("/jobs")
@login_required
def list_jobs() -> Any:
    filters: dict[str, Any] = {k: request.args.get(k) or None for k in queries.JOB_FILTERS}
    filters["dataset"] = int_arg("dataset")
    if filters["dataset"] is not None:
        dataset_or_404(filters["dataset"])
    limit = int_arg("limit", 50, 1, 1000) or 50
    sort = request.args.get("sort", "updated")
    try:
        with engine().connect() as conn:
            page = queries.list_jobs(
                conn,
                who(),
                filters,
                sort=sort,
                desc=request.args.get("order", "desc") != "asc",
                after=request.args.get("after"),
                limit=limit,
            )
    except ValueError as exc:
        field = "after" if "after" in str(exc) else "sort"
        raise ApiError(400, str(exc), field) from None
    # partial: the page is short because SCAN_LIMIT jobs were checked; `next` continues the search
    return jsonify(jobs=page.rows, next=page.cursor, partial=page.partial)


@bp.get("/jobs/<int:pk>")
@login_required
def get_job(pk: int) -> Any:
    job, _ds = job_or_404(pk)
    with engine().connect() as conn:
        attempts = queries.attempts_of(conn, pk)
    return jsonify(job=job, attempts=attempts)


@bp.get("/jobs/<int:pk>/attempts")
@login_required
def list_attempts(pk: int) -> Any:
    job_or_404(pk)
    with engine().connect() as conn:
        return jsonify(attempts=queries.attempts_of(conn, pk))


@bp.get("/jobs/<int:pk>/attempts/<int:attempt>")
@login_required
def get_attempt(pk: int, attempt: int) -> Any:
    job_or_404(pk)
    with engine().connect() as conn:
        row = queries.get_attempt(conn, pk, attempt)
    if row is None:
        raise ApiError(404, f"field 'attempt': job {pk} has no attempt {attempt}", "attempt")
    return jsonify(attempt=row)


@bp.get("/jobs/<int:pk>/classads")
@login_required
def classads(pk: int) -> Any:
    job_or_404(pk)
    with engine().connect() as conn:
        ads = queries.ads_of(conn, pk)
    return jsonify(classads=[{k: v for k, v in a.items() if k != "ad_text"} for a in ads])


@bp.get("/jobs/<int:pk>/attempts/<int:attempt>/logs/<kind>")
@login_required
def log_tail(pk: int, attempt: int, kind: str) -> Any:
    _job, ds, rel = attempt_log(pk, attempt, kind)
    lines = int_arg("lines", current_app.config["TAIL_LINES"], 0, 100_000) or 0
    with resolve(ds, rel) as f:
        body: dict[str, Any] = {
            "path": rel,
            "size": os.fstat(f.fileno()).st_size,
            "tail": logfiles.tail(f, lines),
        }
        if request.args.get("q"):
            found, cut = logfiles.search(f, request.args["q"])
            body["matches"] = [{"line": n, "text": t} for n, t in found]
            body["truncated"] = cut
    return jsonify(body)


@bp.get("/jobs/<int:pk>/attempts/<int:attempt>/logs/<kind>/raw")
@login_required
def log_raw(pk: int, attempt: int, kind: str) -> Any:
    _job, ds, rel = attempt_log(pk, attempt, kind)
    return send(resolve(ds, rel), rel, request.args.get("download") == "1")


@bp.get("/datasets/<int:pk>/files")
@login_required
def dataset_file(pk: int) -> Any:
    ds = dataset_or_404(pk)
    rel = request.args.get("path", "")
    return send(resolve(ds, rel), rel, request.args.get("download") == "1")


# ---------------------------------------------------------------- tokens


@bp.get("/tokens")
@login_required
def list_tokens() -> Any:
    p = who()
    return jsonify(tokens=accounts.list_tokens(engine(), None if p.is_admin else p.user_id))


@bp.post("/tokens")
@login_required
def create_token() -> Any:
    body = json_body()
    kind = body.get("kind", "api")
    if kind not in ("api", "pilot"):
        raise ApiError(400, "field 'kind': must be 'api' or 'pilot'", "kind")
    dataset = body.get("dataset")
    if kind == "pilot":
        if not isinstance(dataset, int) or isinstance(dataset, bool):
            raise ApiError(
                400, "field 'dataset': a pilot token needs the dataset id it may report for", "dataset"
            )
        dataset_or_404(dataset, change=True)
    elif dataset is not None:
        raise ApiError(400, "field 'dataset': only pilot tokens are scoped to a dataset", "dataset")
    name = body.get("name", "")
    if not isinstance(name, str):
        raise ApiError(400, "field 'name': expected a string", "name")
    token_id, text = accounts.create_token(engine(), who().name, name=name, kind=kind, dataset_pk=dataset)
    return jsonify(id=token_id, token=text, kind=kind, dataset=dataset), 201


@bp.delete("/tokens/<int:token_id>")
@login_required
def revoke_token(token_id: int) -> Any:
    try:
        accounts.revoke_token(engine(), token_id, by=who())
    except AuthError as exc:
        raise ApiError(403, str(exc), "token") from None
    except IceprodDagError as exc:
        raise ApiError(404, str(exc), "token") from None
    accounts.TOKEN_CACHE.clear()
    return jsonify(revoked=token_id)
