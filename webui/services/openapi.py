"""The OpenAPI 3.1 document of the JSON API, served at ``/api/openapi.json``.

Written as a table of routes (one line each) rather than by hand-nested dicts, so a new route is one line;
``tests/test_webui_api.py`` checks every ``/api`` route of the app is documented here.
"""

from __future__ import annotations

from typing import Any

from iceprod_dag.webui.services.queries import SCAN_LIMIT

#: (method, path, summary, query parameters, request body kind: None, "json", "dataset", "text")
ROUTES: list[tuple[str, str, str, tuple[str, ...], str | None]] = [
    ("get", "/api/me", "Who the token or session acts as", (), None),
    (
        "get",
        "/api/datasets",
        "Datasets the caller may read, with job counts per state",
        ("state", "owner", "site", "name", "limit"),
        None,
    ),
    (
        "post",
        "/api/datasets",
        "Submit a dataset (JSON object, YAML body, or multipart field 'file')",
        ("private",),
        "dataset",
    ),
    ("get", "/api/datasets/{id}", "One dataset, its config and per-task state counts", (), None),
    (
        "post",
        "/api/datasets/{id}/suspend",
        "Stop handing out the dataset's jobs; a site's run is halted (DAGMan's halt file)",
        (),
        None,
    ),
    (
        "post",
        "/api/datasets/{id}/resume",
        "Hand out the dataset's jobs again; a site's halted run is released or resubmitted",
        (),
        None,
    ),
    (
        "post",
        "/api/datasets/{id}/retry-failed",
        "Make every failed job pending again; a site's ended run is resubmitted from its rescue DAG",
        (),
        None,
    ),
    (
        "post",
        "/api/datasets/{id}/visibility",
        'Make a dataset private or public: {"private": bool}',
        (),
        "json",
    ),
    ("get", "/api/datasets/{id}/stats", "Per-task resource statistics", (), None),
    (
        "get",
        "/api/datasets/{id}/files",
        "A file of the run's logs folder, streamed",
        ("path", "download"),
        None,
    ),
    (
        "get",
        "/api/jobs",
        "Jobs, newest first, one keyset page at a time (follow 'next' as 'after'). Indexed filters: dataset, "
        f"dataset + state, failure. Any other filter is checked over the next {SCAN_LIMIT:,} jobs at most per page: "
        "'partial' is true when the page is short for that reason, and 'next' searches on. Sort 'node' needs "
        "'dataset'.",
        ("dataset", "state", "task", "site", "host", "failure", "sort", "order", "after", "limit"),
        None,
    ),
    ("get", "/api/jobs/{id}", "One job and its attempts", (), None),
    ("get", "/api/jobs/{id}/attempts", "The attempts of one job", (), None),
    ("get", "/api/jobs/{id}/attempts/{attempt}", "One attempt's stats", (), None),
    ("get", "/api/jobs/{id}/classads", "The job ClassAds of the job's attempts", (), None),
    (
        "get",
        "/api/jobs/{id}/attempts/{attempt}/logs/{kind}",
        "Last lines of a log, and a search",
        ("lines", "q"),
        None,
    ),
    (
        "get",
        "/api/jobs/{id}/attempts/{attempt}/logs/{kind}/raw",
        "The entire log, streamed",
        ("download",),
        None,
    ),
    ("get", "/api/tokens", "The caller's tokens (all tokens for admins)", (), None),
    ("post", "/api/tokens", 'New token: {"kind": "api"|"pilot", "dataset": id, "name": str}', (), "json"),
    ("delete", "/api/tokens/{token_id}", "Revoke a token", (), None),
    ("post", "/api/pilot/datasets/{id}/claim", 'Claim one runnable job ({"host": str})', (), "json"),
    (
        "post",
        "/api/pilot/datasets/{id}/heartbeat",
        'A claimed attempt is alive: {"node", "attempt"}',
        (),
        "json",
    ),
    (
        "post",
        "/api/pilot/datasets/{id}/reports",
        'One stats record, or {"records": [...]}; stale ones refused',
        (),
        "json",
    ),
    ("put", "/api/pilot/datasets/{id}/logs/{node}/{attempt}/{kind}", "Upload an attempt's log", (), "text"),
    (
        "get",
        "/api/pilot/datasets/{id}/reports/{node}/{attempt}",
        "Where a report is: applied, queued, refused (with the reason) or none",
        (),
        None,
    ),
    (
        "get",
        "/api/pilot/datasets/{id}/refusals",
        "Queued reports refused when applied, newest first",
        (),
        None,
    ),
]

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "field": {"type": "string"}, "status": {"type": "integer"}},
    "required": ["error"],
}


#: the answer of the dataset actions; ``site`` and ``site_action`` only for a dataset a site runs
_SITE_ACTION = {
    "site": {"type": "string", "description": "the site that runs the dataset (not the server's pilots)"},
    "site_action": {
        "type": "string",
        "enum": ["halted", "released", "resubmitted", "none"],
        "description": "what was done to the run on its site (none: nothing to do, or run not on this host)",
    },
}
_ACTION_ANSWERS = {
    "/api/datasets/{id}/suspend": {"state": {"type": "string", "const": "suspended"}},
    "/api/datasets/{id}/resume": {"state": {"type": "string", "const": "running"}},
    "/api/datasets/{id}/retry-failed": {"retried": {"type": "integer", "description": "jobs made pending"}},
}


def _action_responses(path: str) -> dict[str, Any]:
    """200 and 409 of a dataset action: 409 when the dataset's site cannot do it (field 'site' or 'run_dir')."""
    props = {**_ACTION_ANSWERS[path], **_SITE_ACTION}
    schema = {"type": "object", "properties": props, "required": list(_ACTION_ANSWERS[path])}
    return {
        "200": {"description": "Done", "content": {"application/json": {"schema": schema}}},
        "409": {
            "description": "The site cannot do it now (no halt support, the DAG still runs, schedd down)",
            "content": {"application/json": {"schema": _ERROR}},
        },
    }


def _operation(
    method: str, path: str, summary: str, query: tuple[str, ...], body: str | None
) -> dict[str, Any]:
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string" if name in ("kind", "node") else "integer"},
        }
        for name in (seg[1:-1] for seg in path.split("/") if seg.startswith("{"))
    ]
    params += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in query]
    op: dict[str, Any] = {
        "summary": summary,
        "operationId": (
            method
            + path.replace("/api", "").replace("/", "_").replace("{", "").replace("}", "").replace("-", "_")
        ),
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
            "4XX": {
                "description": "Error naming the field",
                "content": {"application/json": {"schema": _ERROR}},
            },
        },
    }
    if path in _ACTION_ANSWERS:
        op["responses"].update(_action_responses(path))
    if body == "json":
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    elif body == "dataset":
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/yaml": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            },
        }
    elif body == "text":
        op["requestBody"] = {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    if path.startswith("/api/pilot") or path == "/api/openapi.json":
        op["security"] = [{"bearer": []}]
    else:
        op["security"] = [{"bearer": []}, {"session": []}]
    return op


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, query, body in ROUTES:
        paths.setdefault(path, {})[method] = _operation(method, path, summary, query, body)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "iceprod-dag",
            "version": "1",
            "description": "Datasets, jobs, statistics, logs and ClassAds of iceprod-dag runs.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "API token (iceprod-dag user token) or a dataset's pilot token",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "iceprod_dag_session",
                    "description": "Browser session; unsafe methods also need header X-CSRF-Token",
                },
            },
            "schemas": {"Error": _ERROR},
        },
    }
