"""Pilot work on a server dataset: reports and logs of nodes the dataset does not have are refused, a queued
report is never dropped silently, lost attempts are settled, and the dataset's state follows its jobs."""

from __future__ import annotations

import pytest
from webui_support import anon, app, engine, record  # noqa: F401

from iceprod_dag.stats import ingest, work

SPEC = {"name": "work-set", "jobs": 2, "tasks": [{"name": "gen", "command": "echo $(job)"}]}


@pytest.fixture
def pilot(app, anon):  # noqa: F811
    """A submitted server dataset and a pilot token for it: (dataset id, headers)."""
    from iceprod_dag.webui.services import accounts

    eng = app.extensions["iceprod_dag_engine"]
    user = {"Authorization": f"Bearer {accounts.create_token(eng, 'alice')[1]}"}
    pk = anon.post("/api/datasets", json=SPEC, headers=user).get_json()["dataset"]["id"]
    token = accounts.create_token(eng, "alice", kind="pilot", dataset_pk=pk)[1]
    return pk, {"Authorization": f"Bearer {token}"}


def _report(anon, pk, h, body):  # noqa: F811
    return anon.post(f"/api/pilot/datasets/{pk}/reports", json=body, headers=h)


def _nodes(engine, pk):  # noqa: F811
    with engine.connect() as conn:
        return sorted(r[0] for r in conn.exec_driver_sql(f"SELECT node FROM jobs WHERE dataset_pk = {pk}"))


@pytest.mark.parametrize("node", ["../../etc/passwd", "<script>alert(1)</script>", "gen_999999"])
def test_reports_and_logs_of_unknown_nodes_are_refused(anon, engine, pilot, node):  # noqa: F811
    pk, h = pilot
    single = _report(anon, pk, h, record(node, 0, dataset="work-set"))
    assert single.status_code == 404 and node in single.get_json()["error"], single.get_json()
    assert single.get_json()["field"] == "node"
    batch = _report(anon, pk, h, {"records": [record(node, 0, dataset="work-set")]})
    assert batch.status_code == 404 and node in batch.get_json()["error"]
    # one unknown node in a batch refuses that record only
    mixed = _report(anon, pk, h, {"records": [record("gen_0", 0, dataset="work-set"), record(node, 0)]})
    assert mixed.status_code == 200 and mixed.get_json()["inserted"] == 1
    assert [r["node"] for r in mixed.get_json()["rejected"]] == [node]
    assert _nodes(engine, pk) == ["gen_0", "gen_1"]
    upload = anon.put(f"/api/pilot/datasets/{pk}/logs/gen_999999/0/stdout", data=b"x", headers=h)
    assert upload.status_code == 404 and "gen_999999" in upload.get_json()["error"]


def test_a_queued_report_is_judged_before_a_later_direct_one(anon, engine, pilot):  # noqa: F811
    pk, h = pilot
    first = record("gen_0", 0, dataset="work-set")
    app_drainer_off(anon)
    assert _report(anon, pk, h, first).get_json()["queued"] == 1
    # a batch with other content for the same attempt comes later: the queued report was first
    later = _report(anon, pk, h, {"records": [{**first, "wall_s": 1.0}]})
    assert later.status_code == 409 and "different" in later.get_json()["error"]
    state = anon.get(f"/api/pilot/datasets/{pk}/reports/gen_0/0", headers=h).get_json()
    assert state["state"] == "applied"


def test_a_queued_report_refused_when_applied_is_visible(anon, engine, pilot):  # noqa: F811
    from iceprod_dag.stats import inbox

    pk, h = pilot
    app_drainer_off(anon)
    assert _report(anon, pk, h, record("gen_1", 0, dataset="work-set")).get_json()["queued"] == 1
    assert anon.get(f"/api/pilot/datasets/{pk}/reports/gen_1/0", headers=h).get_json()["state"] == "queued"
    # a writer outside the web server starts attempt 1 before the drain: attempt 0's report is stale then
    with engine.connect() as conn:
        run_dir = conn.exec_driver_sql(f"SELECT run_dir FROM datasets WHERE id = {pk}").scalar()
    ingest.record_attempt_started(engine, run_dir=run_dir, site="server", node="gen_1", attempt=1)
    assert inbox.drain(engine) == 1
    state = anon.get(f"/api/pilot/datasets/{pk}/reports/gen_1/0", headers=h).get_json()
    assert state["state"] == "refused" and "attempt 1 already started" in state["reason"]
    listed = anon.get(f"/api/pilot/datasets/{pk}/refusals", headers=h).get_json()["refusals"]
    assert [(r["node"], r["attempt"]) for r in listed] == [("gen_1", 0)]
    assert anon.get(f"/api/pilot/datasets/{pk}/reports/gen_0/0", headers=h).get_json()["state"] == "none"


def app_drainer_off(client) -> None:
    """Keep queued reports queued until the test drains them (the server's thread would apply them)."""
    client.application.extensions["iceprod_dag_drainer"].poke = lambda *args: None


@pytest.mark.parametrize("last_fails, final", [(False, "done"), (True, "failed")])
def test_lost_attempts_are_settled_and_the_dataset_state_follows_its_jobs(
    anon,  # noqa: F811
    engine,  # noqa: F811
    pilot,
    last_fails,
    final,
):
    pk, h = pilot

    def dataset_state() -> str:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql(f"SELECT state FROM datasets WHERE id = {pk}").scalar())

    def claim() -> dict:
        return anon.post(f"/api/pilot/datasets/{pk}/claim", json={}, headers=h).get_json()["work"]

    app_drainer_off(anon)
    assert dataset_state() == "submitted"
    first = claim()
    assert dataset_state() == "running"
    # its pilot is killed: no heartbeat; once the timeout passed, the attempt is failed and the job pending
    assert work.settle_lost(engine, timeout_s=3600) == 0
    assert work.settle_lost(engine, timeout_s=-1) == 1
    with engine.connect() as conn:
        lost = conn.exec_driver_sql(
            "SELECT a.state, a.failure, a.ended_at IS NOT NULL, j.state FROM attempts a "
            f"JOIN jobs j ON j.id = a.job_pk WHERE j.node = '{first['node']}' AND j.dataset_pk = {pk}"
        ).one()
    assert tuple(lost) == ("failed", "lost", 1, "pending")
    again = [claim(), claim()]
    assert (again[0]["node"], again[0]["attempt"]) == (first["node"], 1)
    for item in again:
        failed = last_fails and item is again[-1]
        rec = record(item["node"], item["attempt"], failed=failed, dataset="work-set")
        assert _report(anon, pk, h, {"records": [rec]}).status_code == 200
        assert dataset_state() == (final if item is again[-1] else "running")


def test_a_queued_report_that_cannot_be_applied_does_not_block_direct_reports(anon, engine, pilot):  # noqa: F811
    pk, h = pilot
    app_drainer_off(anon)
    with engine.begin() as conn:  # a row no drain can apply (accept() never queues such a record)
        conn.exec_driver_sql(
            "INSERT INTO report_inbox (dataset_pk, node, attempt, record_hash, record, received_at) "
            f"VALUES ({pk}, 'gen_0', 0, 'x', '{{\"node\": \"gen_0\"}}', 0)"
        )
    done = _report(anon, pk, h, {"records": [record("gen_1", 0, dataset="work-set")]})
    assert done.status_code == 200 and done.get_json()["inserted"] == 1
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM report_inbox").scalar() == 1
