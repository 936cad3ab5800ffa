"""The JSON API: submit/list/get/suspend/resume/retry, jobs, attempts, stats, logs, ClassAds, OpenAPI, pilot
endpoints (claim, heartbeat, batched reports, stale updates, log upload), and errors naming the field."""

from __future__ import annotations

import json

import pytest
from webui_support import DEMO, admin, alice, anon, app, bob, demo, engine, record  # noqa: F401


@pytest.fixture
def token(app):  # noqa: F811
    from iceprod_dag.webui.services import accounts

    return accounts.create_token(app.extensions["iceprod_dag_engine"], "alice")[1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


GOOD = {
    "name": "api-set",
    "dataset_id": 30001,
    "jobs": 3,
    "tasks": [
        {"name": "gen", "command": "echo $(job)"},
        {"name": "use", "command": "echo use", "depends": ["gen"]},
    ],
}


def test_openapi_documents_every_api_route(anon, app):  # noqa: F811
    doc = anon.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.rule == "/api/openapi.json":
            continue
        path = rule.rule
        for conv in ("<int:pk>", "<int:token_id>", "<int:attempt>", "<kind>", "<node>"):
            path = path.replace(
                conv, "{" + {"<int:pk>": "id"}.get(conv, conv.strip("<>").split(":")[-1]) + "}"
            )
        if "<any(" in path:
            prefix = path.split("<any(")[0]
            actions = path.split("<any(")[1].split(")")[0].replace('"', "").replace(" ", "").split(",")
            paths = [prefix + a for a in actions]
        else:
            paths = [path]
        for p in paths:
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (method, p) in documented, f"{method} {p} missing from the OpenAPI document"


def test_requests_without_credentials_get_json_401(anon):  # noqa: F811
    response = anon.get("/api/datasets")
    assert response.status_code == 401 and response.get_json()["field"] == "Authorization"
    bad = anon.get("/api/datasets", headers={"Authorization": "Bearer idt_nope"})
    assert bad.status_code == 401 and "token" in bad.get_json()["error"]
    assert anon.get("/api/datasets", headers={"Authorization": "Basic abc"}).status_code == 401


def test_submit_list_get_and_control_a_dataset(anon, token, app):  # noqa: F811
    created = anon.post("/api/datasets", json=GOOD, headers=auth(token))
    assert created.status_code == 201, created.get_json()
    pk = created.get_json()["dataset"]["id"]
    assert created.get_json()["dataset"]["owner"] == "alice"
    listed = anon.get("/api/datasets", headers=auth(token)).get_json()["datasets"]
    assert {d["name"] for d in listed} >= {"api-set", "demo-sim"}
    got = anon.get(f"/api/datasets/{pk}", headers=auth(token)).get_json()
    assert got["tasks"] == {"gen": {"pending": 3}, "use": {"pending": 3}}
    assert got["config"]["tasks"][1]["depends"] == ["gen"]
    assert anon.post(f"/api/datasets/{pk}/suspend", headers=auth(token)).get_json() == {"state": "suspended"}
    assert anon.post(f"/api/datasets/{pk}/resume", headers=auth(token)).get_json() == {"state": "running"}
    assert anon.post(f"/api/datasets/{pk}/retry-failed", headers=auth(token)).get_json() == {"retried": 0}


def test_submit_yaml_body_and_multipart_file(anon, token):  # noqa: F811
    text = DEMO.read_text()
    as_yaml = anon.post("/api/datasets", data=text, content_type="application/yaml", headers=auth(token))
    assert as_yaml.status_code == 201, as_yaml.get_json()
    from io import BytesIO

    as_file = anon.post(
        "/api/datasets?private=1",
        data={"file": (BytesIO(text.encode()), "demo.yaml")},
        content_type="multipart/form-data",
        headers=auth(token),
    )
    assert as_file.status_code == 201 and as_file.get_json()["dataset"]["private"] is True


@pytest.mark.parametrize(
    "body, content_type, status, field",
    [
        ({**GOOD, "jobs": "many"}, "application/json", 400, "jobs"),
        ({**GOOD, "tasks": [{"name": "x"}]}, "application/json", 400, "tasks[0]"),
        ({"dataset": {**GOOD, "jobs": -1}}, "application/json", 400, "jobs"),
        ("{not json", "application/json", 400, "body"),
        ("[1, 2]", "application/json", 400, "body"),
        ("name: x\n  bad: indentation: here\n", "application/yaml", 400, None),
        ("jobs=3", "application/x-www-form-urlencoded", 415, "body"),
    ],
)
def test_bad_submissions_are_4xx_naming_the_field(anon, token, body, content_type, status, field):  # noqa: F811
    data = json.dumps(body) if isinstance(body, dict) else body
    response = anon.post("/api/datasets", data=data, content_type=content_type, headers=auth(token))
    assert response.status_code == status, response.get_json()
    payload = response.get_json()
    assert payload["error"]
    if field:
        assert payload["field"] == field and field.split("[")[0] in payload["error"]


def test_multipart_without_file_names_the_field(anon, token):  # noqa: F811
    response = anon.post(
        "/api/datasets", data={"x": "1"}, content_type="multipart/form-data", headers=auth(token)
    )
    assert response.status_code == 400 and response.get_json()["field"] == "file"


def test_jobs_attempts_stats_logs_classads(anon, token, demo):  # noqa: F811
    h = auth(token)
    page = anon.get(
        f"/api/jobs?dataset={demo}&task=generate&sort=node&order=asc&limit=5", headers=h
    ).get_json()
    assert [j["node"] for j in page["jobs"]] == [f"generate_{i}" for i in range(5)]
    rest = anon.get(
        f"/api/jobs?dataset={demo}&task=generate&sort=node&order=asc&after={page['next']}", headers=h
    ).get_json()
    assert [j["node"] for j in rest["jobs"]] == ["generate_5", "generate_6", "generate_7"] and rest[
        "next"
    ] is None
    failed = anon.get(f"/api/jobs?dataset={demo}&state=failed", headers=h).get_json()["jobs"]
    assert [j["node"] for j in failed] == ["detector_0"]
    jid = failed[0]["id"]
    job = anon.get(f"/api/jobs/{jid}", headers=h).get_json()
    assert job["attempts"][0]["failure"] == "task_failed"
    assert anon.get(f"/api/jobs/{jid}/attempts", headers=h).get_json()["attempts"][0]["attempt"] == 0
    assert anon.get(f"/api/jobs/{jid}/attempts/0", headers=h).get_json()["attempt"]["exit_code"] == 1
    missing = anon.get(f"/api/jobs/{jid}/attempts/5", headers=h)
    assert missing.status_code == 404 and missing.get_json()["field"] == "attempt"
    log = anon.get(f"/api/jobs/{jid}/attempts/0/logs/stderr?lines=2&q=exploded", headers=h).get_json()
    assert log["tail"] == ["Traceback: detector exploded", "the end"]
    assert log["matches"] == [{"line": 200, "text": "Traceback: detector exploded"}]
    raw = anon.get(f"/api/jobs/{jid}/attempts/0/logs/stderr/raw", headers=h)
    assert raw.status_code == 200 and raw.data.endswith(b"the end\n")
    raw.close()
    stats = anon.get(f"/api/datasets/{demo}/stats", headers=h).get_json()
    assert stats["plots"]["generate"]["wall"]["counts"] and stats["tasks"]["generate"] == {"done": 8}
    gen0 = anon.get(f"/api/jobs?dataset={demo}&task=generate&sort=node&order=asc&limit=1", headers=h)
    ads = anon.get(f"/api/jobs/{gen0.get_json()['jobs'][0]['id']}/classads", headers=h).get_json()["classads"]
    assert ads[0]["attributes"]["ClusterId"] == 42


@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("dataset=x", "dataset"),
        ("after=%%%", "after"),
        ("sort=secret", "sort"),
    ],
)
def test_bad_query_parameters_name_the_field(anon, token, query, field):  # noqa: F811
    response = anon.get(f"/api/jobs?{query}", headers=auth(token))
    assert response.status_code == 400 and response.get_json()["field"] == field


def _submit(anon, token) -> int:  # noqa: F811
    return anon.post("/api/datasets", json=GOOD, headers=auth(token)).get_json()["dataset"]["id"]


def test_pilot_claims_in_dependency_order_heartbeats_and_reports(anon, token, app):  # noqa: F811
    from iceprod_dag.webui.services import accounts

    pk = _submit(anon, token)
    pilot = accounts.create_token(app.extensions["iceprod_dag_engine"], "alice", kind="pilot", dataset_pk=pk)[
        1
    ]
    h = auth(pilot)
    claimed = [
        anon.post(f"/api/pilot/datasets/{pk}/claim", json={"host": "w1"}, headers=h).get_json()["work"]
        for _ in range(3)
    ]
    assert [c["node"] for c in claimed] == ["gen_0", "gen_1", "gen_2"]
    assert (
        claimed[0]["spec"] == "specs/gen.json"
        and json.loads(claimed[0]["spec_json"])["task"]["name"] == "gen"
    )
    # 'use' jobs wait for their 'gen' parent
    assert anon.post(f"/api/pilot/datasets/{pk}/claim", json={}, headers=h).get_json()["work"] is None
    assert anon.post(
        f"/api/pilot/datasets/{pk}/heartbeat", json={"node": "gen_0", "attempt": 0}, headers=h
    ).get_json() == {"ok": True}
    rec = record("gen_0", 0, dataset="api-set", task="gen", job=0)
    done = anon.post(f"/api/pilot/datasets/{pk}/reports", json=rec, headers=h)
    assert done.status_code == 200 and done.get_json()["queued"] == 1
    nxt = anon.post(f"/api/pilot/datasets/{pk}/claim", json={}, headers=h).get_json()["work"]
    assert nxt["node"] == "use_0"
    # the same report again changes nothing, queued or applied
    assert anon.post(f"/api/pilot/datasets/{pk}/reports", json=rec, headers=h).get_json()["unchanged"] == 1
    job = anon.get(f"/api/jobs?dataset={pk}&task=gen&state=done", headers=auth(token)).get_json()["jobs"]
    assert [j["node"] for j in job] == ["gen_0"]
    # a different final report for the same attempt is refused
    other = anon.post(f"/api/pilot/datasets/{pk}/reports", json={**rec, "wall_s": 1.0}, headers=h)
    assert other.status_code == 409 and "different" in other.get_json()["error"]


def test_superseded_attempt_is_rejected(anon, token, app, engine):  # noqa: F811
    from iceprod_dag.webui.services import accounts

    pk = _submit(anon, token)
    pilot = accounts.create_token(engine, "alice", kind="pilot", dataset_pk=pk)[1]
    h = auth(pilot)
    first = anon.post(f"/api/pilot/datasets/{pk}/claim", json={}, headers=h).get_json()["work"]
    # the heartbeat timed out: a second pilot gets attempt 1 of the same job
    app.config["HEARTBEAT_TIMEOUT_S"] = -1
    second = anon.post(f"/api/pilot/datasets/{pk}/claim", json={}, headers=h).get_json()["work"]
    assert (second["node"], second["attempt"]) == (first["node"], 1)
    stale = anon.post(
        f"/api/pilot/datasets/{pk}/reports", json=record("gen_0", 0, dataset="api-set"), headers=h
    )
    assert stale.status_code == 409 and stale.get_json()["rejected"][0]["attempt"] == 0, stale.get_json()
    beat = anon.post(f"/api/pilot/datasets/{pk}/heartbeat", json={"node": "gen_0", "attempt": 0}, headers=h)
    assert beat.status_code == 409 and beat.get_json()["field"] == "attempt"
    fresh = anon.post(
        f"/api/pilot/datasets/{pk}/reports", json=record("gen_0", 1, dataset="api-set"), headers=h
    )
    assert fresh.status_code == 200


def test_single_reports_queue_then_apply_like_direct_ones(anon, token, app, engine):  # noqa: F811
    from iceprod_dag.stats import inbox

    pk = _submit(anon, token)
    h = auth(token)
    first = record("gen_0", 0, dataset="api-set")
    assert anon.post(f"/api/pilot/datasets/{pk}/reports", json=first, headers=h).get_json()["queued"] == 1
    # a second report for the same attempt with other content, while the first is still queued
    again = anon.post(f"/api/pilot/datasets/{pk}/reports", json={**first, "wall_s": 5.0}, headers=h)
    assert again.status_code == 409
    # a later attempt queued makes an older one stale before anything is drained
    assert (
        anon.post(
            f"/api/pilot/datasets/{pk}/reports", json=record("gen_1", 2, dataset="api-set"), headers=h
        ).status_code
        == 200
    )
    old = anon.post(
        f"/api/pilot/datasets/{pk}/reports", json=record("gen_1", 1, dataset="api-set"), headers=h
    )
    assert old.status_code == 409 and "attempt 2" in old.get_json()["error"]
    inbox.drain(engine)
    jobs = {j["node"]: j for j in anon.get(f"/api/jobs?dataset={pk}&task=gen", headers=h).get_json()["jobs"]}
    assert jobs["gen_0"]["state"] == "done" and jobs["gen_1"]["last_attempt"] == 2
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM report_inbox").scalar() == 0


def test_queued_reports_survive_a_restart(anon, token, app, engine, tmp_path):  # noqa: F811
    from iceprod_dag.webui import create_app

    pk = _submit(anon, token)
    app.extensions["iceprod_dag_drainer"].poke = lambda: None  # the server "dies" before draining
    assert (
        anon.post(
            f"/api/pilot/datasets/{pk}/reports",
            json=record("gen_2", 0, dataset="api-set"),
            headers=auth(token),
        ).get_json()["queued"]
        == 1
    )
    create_app({"DB": str(engine.url), "COOKIE_SECURE": False})  # the restart drains
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM report_inbox").scalar() == 0
        state = conn.exec_driver_sql(
            f"SELECT state FROM jobs WHERE dataset_pk = {pk} AND node = 'gen_2'"
        ).scalar()
    assert state == "done"


def test_batched_reports_and_bad_records(anon, token, engine):  # noqa: F811
    pk = _submit(anon, token)
    h = auth(token)
    batch = {"records": [record(f"gen_{j}", 0, dataset="api-set") for j in range(3)]}
    response = anon.post(f"/api/pilot/datasets/{pk}/reports", json=batch, headers=h)
    assert response.get_json()["inserted"] == 3
    bad = anon.post(f"/api/pilot/datasets/{pk}/reports", json={"records": [{"node": "gen_0"}]}, headers=h)
    assert bad.status_code == 400 and "attempt" in bad.get_json()["error"]
    assert anon.post(f"/api/pilot/datasets/{pk}/reports", json={"records": []}, headers=h).status_code == 400
    assert anon.post(f"/api/pilot/datasets/{pk}/reports", json={"records": "x"}, headers=h).status_code == 400
    bad_failure = record("gen_1", 0, dataset="api-set", failure="gremlins")
    response = anon.post(f"/api/pilot/datasets/{pk}/reports", json=bad_failure, headers=h)
    assert response.status_code == 400 and "failure" in response.get_json()["error"]
    for body in ({"node": 3, "attempt": 0}, {"node": "gen_0", "attempt": -1}, {"node": "gen_0"}):
        beat = anon.post(f"/api/pilot/datasets/{pk}/heartbeat", json=body, headers=h)
        assert beat.status_code == 400 and beat.get_json()["field"] in ("node", "attempt")


def test_pilot_log_upload_is_served_and_confined(anon, token, app):  # noqa: F811
    pk = _submit(anon, token)
    h = auth(token)
    up = anon.put(f"/api/pilot/datasets/{pk}/logs/gen_0/0/stderr", data=b"line one\nboom\n", headers=h)
    assert up.status_code == 201 and up.get_json()["path"] == "logs/gen_0/0/stderr"
    got = anon.get(f"/api/datasets/{pk}/files?path=logs/gen_0/0/stderr", headers=h)
    assert got.data == b"line one\nboom\n"
    got.close()
    for node in ("..", "a%2F..%2F..", "..%2F..%2Fetc"):
        response = anon.put(f"/api/pilot/datasets/{pk}/logs/{node}/0/stderr", data=b"x", headers=h)
        assert response.status_code in (400, 404), node
    assert anon.put(f"/api/pilot/datasets/{pk}/logs/gen_0/0/shadow", data=b"x", headers=h).status_code == 404


JUNK = [b"", b"{", b"null", b"[]", b'"text"', b"123", b'{"records": [1, "x", null]}', b'{"records": {}}',
        b'{"node": null, "attempt": "0"}', b'{"kind": 5, "dataset": "x", "name": []}', b'{"private": "yes"}',
        b"\xff\xfe\x00garbage", b'{"dataset": {"tasks": "none"}}',
        b'{"node": "gen_0", "attempt": 99999999999999999999999, "dataset": "d"}',
        b'{"records": [{"node": "gen_0", "attempt": 99999999999999999999999, "dataset": "d"}]}']  # fmt: skip


@pytest.mark.parametrize("body", JUNK)
def test_malformed_bodies_never_give_500(anon, token, demo, body):  # noqa: F811
    h = {**auth(token), "Content-Type": "application/json"}
    routes = [
        ("post", "/api/datasets"), ("post", f"/api/datasets/{demo}/visibility"), ("post", "/api/tokens"),
        ("post", f"/api/pilot/datasets/{demo}/claim"), ("post", f"/api/pilot/datasets/{demo}/heartbeat"),
        ("post", f"/api/pilot/datasets/{demo}/reports"),
    ]  # fmt: skip
    for method, path in routes:
        response = getattr(anon, method)(path, data=body, headers=h)
        assert response.status_code < 500, (path, body, response.get_json())
        if response.status_code >= 400:
            assert response.get_json()["error"], (path, body)


def test_a_batch_with_a_value_of_the_wrong_type_is_a_400_and_applies_nothing(anon, token, app):  # noqa: F811
    from iceprod_dag.webui.services import accounts

    pk = _submit(anon, token)
    pilot = accounts.create_token(app.extensions["iceprod_dag_engine"], "alice", kind="pilot", dataset_pk=pk)[
        1
    ]
    good = record("gen_0", 0, dataset="api-set", task="gen", job=0)
    bad = record("gen_1", 0, dataset="api-set", task="gen", job=1, host={"not": "a string"})
    response = anon.post(
        f"/api/pilot/datasets/{pk}/reports", json={"records": [good, bad]}, headers=auth(pilot)
    )
    assert response.status_code == 400 and response.get_json()["field"] == "records"
    done = anon.get(f"/api/jobs?dataset={pk}&state=done", headers=auth(token)).get_json()["jobs"]
    assert done == []
