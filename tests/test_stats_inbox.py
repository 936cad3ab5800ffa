"""Single pilot reports through the inbox (iceprod_dag.stats.inbox): a record SQLite could not store is refused at once
(once queued it would fail every drain after it), good reports queued around a refused one are applied,
and the queued text is the request's own."""

from __future__ import annotations

import json

import pytest
from webui_support import anon, app, engine, record  # noqa: F401


@pytest.fixture
def dataset(app, anon):  # noqa: F811
    from iceprod_dag.webui.services import accounts

    eng = app.extensions["iceprod_dag_engine"]
    token = accounts.create_token(eng, "alice")[1]
    spec = {"name": "inbox-set", "jobs": 4, "tasks": [{"name": "gen", "command": "echo $(job)"}]}
    h = {"Authorization": f"Bearer {token}"}
    pk = anon.post("/api/datasets", json=spec, headers=h).get_json()["dataset"]["id"]
    return pk, h


def _post(anon, pk, h, body, raw: bool = False):  # noqa: F811
    url = f"/api/pilot/datasets/{pk}/reports"
    if raw:
        return anon.post(url, data=body, headers={**h, "Content-Type": "application/json"})
    return anon.post(url, json=body, headers=h)


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"exit_code": 2**64}, "exit_code"),
        ({"host": {"name": "w1"}}, "host"),
        ({"request": 5}, "record"),
        ({"stderr_tail": ["ok", 7]}, "record"),
    ],
)
def test_unstorable_single_records_are_refused_and_the_queue_still_drains(
    anon,  # noqa: F811
    app,  # noqa: F811
    engine,  # noqa: F811
    dataset,
    extra,
    field,
):
    from iceprod_dag.stats import inbox

    pk, h = dataset
    app.extensions["iceprod_dag_drainer"].poke = lambda: None  # drain by hand below
    assert _post(anon, pk, h, record("gen_0", 0, dataset="inbox-set")).get_json()["queued"] == 1
    bad = _post(anon, pk, h, {**record("gen_1", 0, dataset="inbox-set"), **extra})
    assert bad.status_code == 400, bad.get_json()
    assert bad.get_json()["field"] == "record" and (field in bad.get_json()["error"] or field == "record")
    assert _post(anon, pk, h, record("gen_2", 0, dataset="inbox-set")).get_json()["queued"] == 1
    assert inbox.drain(engine) == 2
    with engine.connect() as conn:
        states = dict(conn.exec_driver_sql(f"SELECT node, state FROM jobs WHERE dataset_pk = {pk}").all())
        assert conn.exec_driver_sql("SELECT count(*) FROM report_inbox").scalar() == 0
    assert states["gen_0"] == states["gen_2"] == "done" and states["gen_1"] == "pending"


def test_queued_text_is_the_requests_own_and_bad_bodies_name_the_body(anon, engine, dataset):  # noqa: F811
    from iceprod_dag.stats import inbox

    pk, h = dataset
    good = record("gen_3", 0, dataset="inbox-set")
    text = json.dumps({**good, "wall_s": "NaN"}).replace('"NaN"', "NaN")  # NaN: the json module accepts it
    assert _post(anon, pk, h, text, raw=True).get_json()["queued"] == 1
    broken = _post(anon, pk, h, '{"node": "gen_0", ', raw=True)
    assert broken.status_code == 400 and broken.get_json()["field"] == "body"
    listed = _post(anon, pk, h, "[1, 2]", raw=True)
    assert listed.status_code == 400 and "JSON object" in listed.get_json()["error"]
    # the queued text is the request's own: an exact repeat is recognized as unchanged
    assert _post(anon, pk, h, text, raw=True).get_json()["unchanged"] == 1
    inbox.drain(engine)
    with engine.connect() as conn:
        wall = conn.exec_driver_sql(
            f"SELECT a.wall_s FROM attempts a JOIN jobs j ON j.id = a.job_pk WHERE j.node = 'gen_3' "
            f"AND j.dataset_pk = {pk}"
        ).scalar()
    assert wall is None or wall != wall  # NaN is stored as SQLite NULL
