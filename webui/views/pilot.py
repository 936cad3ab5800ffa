"""Pilot endpoints (the server work source): claim work, heartbeat, report stats in batches, upload logs.

A pilot token is scoped to one dataset and can do nothing else; a user who may change the dataset can use
these too. Every write is a call of ``iceprod_dag.stats`` (``work``, ``reports``, ``inbox``): reports follow
``ingest``'s rules, so an update for a superseded attempt is refused (409), and a report or log of a node
the dataset does not have is refused (404 naming the node). A single report queued in the inbox is answered
``queued``; ``GET .../reports/<node>/<attempt>`` tells whether it was applied or refused, and
``GET .../refusals`` lists the refused ones for the operator.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import sqlalchemy.exc
from flask import Blueprint, current_app, jsonify, request

from iceprod_dag.common.exceptions import IceprodDagError, StaleUpdateError, StatsError, UnknownNodeError
from iceprod_dag.common.gcpause import gc_paused
from iceprod_dag.stats import inbox, ingest, reports, work
from iceprod_dag.webui.services import accounts, logfiles, queries
from iceprod_dag.webui.services.logfiles import KINDS, LogPathError
from iceprod_dag.webui.web import ApiError, engine, json_body, login_required, who

bp = Blueprint("pilot", __name__, url_prefix="/api/pilot")

MAX_BATCH = 100_000


class _DatasetCache:
    """Dataset rows for a few seconds: a busy pilot reports many times a second for the same dataset."""

    TTL_S = 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[int, tuple[float, dict[str, Any] | None]] = {}

    def get(self, pk: int) -> dict[str, Any] | None:
        hit = self._rows.get(pk)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        with engine().connect() as conn:
            row = queries.get_dataset(conn, pk)
        with self._lock:
            self._rows[pk] = (time.monotonic() + self.TTL_S, row)
        return row


def _cache() -> _DatasetCache:
    # one per app: two apps (tests, or two databases) must never share dataset rows
    return current_app.extensions.setdefault("iceprod_dag_dataset_cache", _DatasetCache())


def pilot_view(view: Any) -> Any:
    """Mark a view as reachable with a pilot token (login_required refuses pilot tokens elsewhere)."""
    view.pilot_ok = True
    return view


def dataset_for_pilot(pk: int) -> dict[str, Any]:
    """The dataset if this principal may act as its pilot: its pilot token, or a user who may change it."""
    principal = who()
    ds = _cache().get(pk)
    if ds is None:
        raise ApiError(404, f"no dataset {pk}", "dataset")
    if principal.is_pilot:
        if principal.dataset_pk != pk:
            raise ApiError(
                403, f"this pilot token is for dataset {principal.dataset_pk}, not {pk}", "dataset"
            )
        return ds
    if not accounts.can_change(principal, ds["owner"]):
        raise ApiError(
            403 if accounts.can_read(principal, ds["owner"], bool(ds["private"]), pk) else 404,
            f"you may not run pilots for dataset {pk}",
            "dataset",
        )
    return ds


@bp.post("/datasets/<int:pk>/claim")
@login_required
@pilot_view
def claim(pk: int) -> Any:
    ds = dataset_for_pilot(pk)
    body = json_body() if request.content_length else {}
    host = body.get("host")
    if host is not None and not isinstance(host, str):
        raise ApiError(400, "field 'host': expected a string", "host")
    timeout = current_app.config["HEARTBEAT_TIMEOUT_S"]
    current_app.extensions["iceprod_dag_drainer"].poke(timeout)  # pilots at work: watch for lost ones
    item = work.claim(engine(), ds, host, timeout)
    if item is None:
        return jsonify(work=None, finished=ds["state"] in work.NO_WORK_STATES)
    return jsonify(work=item)


def _node_attempt(body: dict[str, Any]) -> tuple[str, int]:
    node, attempt = body.get("node"), body.get("attempt")
    if not isinstance(node, str) or not node:
        raise ApiError(400, "field 'node': expected the node name", "node")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
        raise ApiError(400, "field 'attempt': expected an integer >= 0", "attempt")
    return node, attempt


@bp.post("/datasets/<int:pk>/heartbeat")
@login_required
@pilot_view
def heartbeat(pk: int) -> Any:
    dataset_for_pilot(pk)
    node, attempt = _node_attempt(json_body())
    try:
        work.heartbeat(engine(), pk, node, attempt)
    except StaleUpdateError as exc:
        raise ApiError(409, str(exc), "attempt") from None
    except IceprodDagError as exc:
        raise ApiError(404, str(exc), "node") from None
    return jsonify(ok=True)


@bp.post("/datasets/<int:pk>/reports")
@login_required
@pilot_view
@gc_paused()
def report(pk: int) -> Any:
    """One stats record (a JSON object) or ``{"records": [...]}``; stale ones are listed in ``rejected``."""
    ds = dataset_for_pilot(pk)
    body = json_body()
    records = body["records"] if "records" in body else [body]
    if not isinstance(records, list) or not records:
        raise ApiError(400, "field 'records': expected a non-empty list of stats records", "records")
    if len(records) > MAX_BATCH:
        raise ApiError(413, f"field 'records': at most {MAX_BATCH} records per request", "records")
    if "records" not in body and current_app.config["REPORT_INBOX"] and inbox.usable(engine()):
        return _queue_one(ds, body, _body_text())
    sqlite = inbox.usable(engine())
    drainer = current_app.extensions["iceprod_dag_drainer"]
    try:
        result = reports.report(engine(), ds, records, drainer.connection() if sqlite else None)
    except (StatsError, OverflowError) as exc:
        # validate_record names the field; an integer beyond 64 bits only shows when SQLite binds it
        field = "records" if "records" in body else "record"
        raise ApiError(400, f"{field}: {exc}", field) from None
    except (sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlalchemy.exc.StatementError) as exc:
        # a value of a type no column can hold (an object where a string belongs): the batch is rolled back
        field = "records" if "records" in body else "record"
        raise ApiError(400, f"{field}: a value has a type the database cannot store ({exc})", field) from None
    if sqlite:
        drainer.poke()  # its thread checkpoints the WAL, off this one
    rejected = [{"node": n, "attempt": a, "reason": why} for n, a, why in result.rejected]
    status = 409 if rejected and not (result.inserted or result.updated or result.unchanged) else 200
    if status == 409 and result.unknown == len(rejected):
        status = 404  # none of these nodes is the dataset's
    body_out = {
        "inserted": result.inserted,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "rejected": rejected,
    }
    if status == 409:
        body_out["error"] = "stale update: " + "; ".join(
            f"{r['node']} attempt {r['attempt']}: {r['reason']}" for r in rejected[:5]
        )
        body_out["field"] = "attempt"
    elif status == 404:
        body_out["error"] = "; ".join(str(r["reason"]) for r in rejected[:5])
        body_out["field"] = "node"
    return jsonify(body_out), status


def _body_text() -> str | None:
    """The request's text when it is UTF-8: a queued single report is stored as received, and reading it back
    gives the same object."""
    try:
        return request.get_data().decode()
    except UnicodeDecodeError:  # UTF-16 or UTF-32 JSON: the json module reads those too
        return None


_QUEUED = b'{"inserted":0,"queued":1,"rejected":[],"unchanged":0,"updated":0}\n'


def _queue_one(ds: dict[str, Any], record: dict[str, Any], text: str | None) -> Any:
    """One record into the inbox (stats.inbox): same answers as a direct report, minus the row counts."""
    drainer = current_app.extensions["iceprod_dag_drainer"]
    try:
        ingest.validate_record(record, "record")
        outcome = inbox.accept(engine(), ds["id"], record, text, drainer.connection())
    except StaleUpdateError as exc:
        reason = str(exc)
        return jsonify(
            error=f"stale update: {reason}", field="attempt", inserted=0, updated=0, unchanged=0, queued=0,
            rejected=[{"node": record["node"], "attempt": record["attempt"], "reason": reason}],
        ), 409  # fmt: skip
    except UnknownNodeError as exc:
        raise ApiError(404, str(exc), "node") from None
    except (StatsError, OverflowError) as exc:
        raise ApiError(400, f"record: {exc}", "record") from None
    drainer.poke()
    if outcome is None:  # the common answer, prebuilt: jsonify costs as much as the inbox insert
        return current_app.response_class(_QUEUED, mimetype="application/json")
    return jsonify(inserted=0, updated=0, unchanged=1, queued=0, rejected=[])


@bp.put("/datasets/<int:pk>/logs/<node>/<int:attempt>/<kind>")
@login_required
@pilot_view
def upload_log(pk: int, node: str, attempt: int, kind: str) -> Any:
    ds = dataset_for_pilot(pk)
    if kind not in KINDS:
        raise ApiError(404, f"field 'kind': must be one of {', '.join(KINDS)}", "kind")
    if not work.has_node(engine(), pk, node):
        raise ApiError(404, ingest.unknown_node(pk, node), "node")
    try:
        size = logfiles.write_upload(
            ds["run_dir"], node, attempt, kind, request.stream, current_app.config["MAX_CONTENT_LENGTH"]
        )
    except LogPathError as exc:
        raise ApiError(400, str(exc), "node") from None
    except ValueError as exc:
        raise ApiError(413, str(exc), "body") from None
    return jsonify(path=logfiles.attempt_log_rel(node, attempt, kind), bytes=size), 201


@bp.get("/datasets/<int:pk>/reports/<node>/<int:attempt>")
@login_required
@pilot_view
def report_state(pk: int, node: str, attempt: int) -> Any:
    """Where the report of one attempt is: applied, queued, refused (with the reason) or none."""
    dataset_for_pilot(pk)
    return jsonify(inbox.report_state(engine(), pk, node, attempt))


@bp.get("/datasets/<int:pk>/refusals")
@login_required
@pilot_view
def refusals(pk: int) -> Any:
    """Queued reports refused when they were applied, newest first (for the operator)."""
    dataset_for_pilot(pk)
    return jsonify(refusals=inbox.refusals(engine(), pk))
