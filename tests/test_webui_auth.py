"""Accounts: password hashing, sessions and cookies, CSRF, login throttling, API and pilot tokens (hashed,
scoped, revocable), and that nobody reads another user's private dataset or changes anyone else's, route by
route."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from webui_support import PASSWORDS, admin, alice, anon, app, bob, client_for, csrf_of, demo, engine, login  # noqa: F401

from iceprod_dag.stats.accounts import ApiToken, User
from iceprod_dag.stats.models import Job
from iceprod_dag.webui.services import accounts


def jid(engine, demo, node):  # noqa: F811
    with engine.connect() as conn:
        return conn.scalar(select(Job.id).where(Job.dataset_pk == demo, Job.node == node))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_passwords_and_tokens_are_stored_hashed(engine, monkeypatch):  # noqa: F811
    monkeypatch.setattr(accounts, "PASSWORD_METHOD", "scrypt")
    accounts.add_user(engine, "carol", "user", "carol-secret")
    _, token = accounts.create_token(engine, "carol")
    with engine.connect() as conn:
        stored = conn.scalar(select(User.password_hash).where(User.name == "carol"))
        hashes = conn.scalars(select(ApiToken.token_hash)).all()
    assert stored.startswith("scrypt:") and "carol-secret" not in stored
    assert token not in hashes and accounts.token_hash(token) in hashes
    assert accounts.check_password(engine, "carol", "carol-secret").name == "carol"
    assert accounts.check_password(engine, "carol", "wrong") is None
    assert accounts.check_password(engine, "nobody", "x") is None


def test_login_sets_a_hardened_session_cookie(app):  # noqa: F811
    client = app.test_client()
    app.config["SESSION_COOKIE_SECURE"] = True
    response = login(client, "alice")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_wrong_password_and_login_throttling(app):  # noqa: F811
    client = app.test_client()
    assert login(client, "alice", "wrong").status_code == 401
    for _ in range(app.config["LOGIN_MAX_FAILURES"] - 1):
        login(client, "alice", "wrong")
    # locked now, even with the right password; another user is not affected
    assert login(client, "alice").status_code == 429
    assert login(app.test_client(), "bob").status_code == 302


def test_login_and_logout_need_the_csrf_token(app, alice):  # noqa: F811
    fresh = app.test_client()
    fresh.get("/login")
    response = fresh.post("/login", data={"username": "alice", "password": PASSWORDS["alice"]})
    assert response.status_code == 400
    assert alice.post("/logout").status_code == 400
    assert alice.post("/logout", data={"csrf_token": csrf_of(alice)}).status_code == 302
    assert alice.get("/").status_code == 302


def test_open_redirect_after_login_is_refused(app):  # noqa: F811
    client = app.test_client()
    client.get("/login")
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post(
        "/login",
        data={
            "username": "bob",
            "password": PASSWORDS["bob"],
            "csrf_token": token,
            "next": "//evil.example/x",
        },
    )
    assert response.headers["Location"] == "/"


def test_cookie_session_api_posts_need_csrf_header(alice, demo):  # noqa: F811
    assert alice.post(f"/api/datasets/{demo}/suspend").status_code == 400
    ok = alice.post(f"/api/datasets/{demo}/suspend", headers={"X-CSRF-Token": csrf_of(alice)})
    assert ok.status_code == 200


def test_token_lifecycle_via_api_and_pages(alice, anon, engine):  # noqa: F811
    made = alice.post("/api/tokens", json={"name": "laptop"}, headers={"X-CSRF-Token": csrf_of(alice)})
    assert made.status_code == 201
    token, token_id = made.get_json()["token"], made.get_json()["id"]
    assert anon.get("/api/me", headers=bearer(token)).get_json()["name"] == "alice"
    listed = anon.get("/api/tokens", headers=bearer(token)).get_json()["tokens"]
    assert [t["name"] for t in listed] == ["laptop"] and "token" not in listed[0]
    assert anon.delete(f"/api/tokens/{token_id}", headers=bearer(token)).status_code == 200
    assert anon.get("/api/me", headers=bearer(token)).status_code == 401
    # the page form makes a token shown once
    page = alice.post(
        "/tokens", data={"csrf_token": csrf_of(alice), "name": "ui", "kind": "api"}, follow_redirects=True
    )
    assert 'id="new-token"' in page.text
    assert 'id="new-token"' not in alice.get("/tokens").text


def test_expired_and_disabled_tokens_fail(app, anon, engine):  # noqa: F811
    _, expired = accounts.create_token(engine, "alice", expires_in_s=-1)
    assert anon.get("/api/me", headers=bearer(expired)).status_code == 401


def test_users_cannot_revoke_others_tokens(app, anon, engine):  # noqa: F811
    alice_id, _ = accounts.create_token(engine, "alice")
    _, bob_token = accounts.create_token(engine, "bob")
    response = anon.delete(f"/api/tokens/{alice_id}", headers=bearer(bob_token))
    assert response.status_code == 403
    _, root_token = accounts.create_token(engine, "root")
    assert anon.delete(f"/api/tokens/{alice_id}", headers=bearer(root_token)).status_code == 200


def test_pilot_token_is_scoped_to_one_dataset_and_report_only(app, anon, engine, demo):  # noqa: F811
    _, pilot = accounts.create_token(engine, "alice", kind="pilot", dataset_pk=demo)
    h = bearer(pilot)
    for path in (
        "/api/datasets",
        f"/api/datasets/{demo}",
        f"/api/jobs?dataset={demo}",
        "/api/tokens",
        "/api/me",
    ):
        assert anon.get(path, headers=h).status_code == 403, path
    assert anon.post(f"/api/datasets/{demo}/suspend", headers=h).status_code == 403
    assert anon.post("/api/tokens", json={}, headers=h).status_code == 403
    assert anon.post(f"/api/pilot/datasets/{demo}/claim", json={}, headers=h).status_code == 200
    assert anon.post(f"/api/pilot/datasets/{demo + 100}/claim", json={}, headers=h).status_code in (403, 404)
    accounts.revoke_token(engine, accounts.list_tokens(engine)[-1]["id"])
    accounts.TOKEN_CACHE.clear()
    assert anon.post(f"/api/pilot/datasets/{demo}/claim", json={}, headers=h).status_code == 401


def test_pilot_token_needs_a_dataset_the_user_may_change(app, bob, alice, demo):  # noqa: F811
    response = bob.post(
        "/api/tokens", json={"kind": "pilot", "dataset": demo}, headers={"X-CSRF-Token": csrf_of(bob)}
    )
    assert response.status_code == 403
    response = alice.post("/api/tokens", json={"kind": "pilot"}, headers={"X-CSRF-Token": csrf_of(alice)})
    assert response.status_code == 400 and response.get_json()["field"] == "dataset"
    response = alice.post(
        "/api/tokens", json={"kind": "pilot", "dataset": demo}, headers={"X-CSRF-Token": csrf_of(alice)}
    )
    assert response.status_code == 201


READ_PAGES = [
    "/datasets/{ds}",
    "/jobs?dataset={ds}",
    "/jobs/{job}",
    "/jobs/{job}/classad/0",
    "/jobs/{bad}/attempts/0/logs/stderr",
    "/jobs/{bad}/attempts/0/logs/stderr/raw",
    "/datasets/{ds}/files?path=logs/generate_0/0/stdout",
    "/api/datasets/{ds}",
    "/api/datasets/{ds}/stats",
    "/api/jobs?dataset={ds}",
    "/api/jobs/{job}",
    "/api/jobs/{job}/attempts",
    "/api/jobs/{job}/attempts/0",
    "/api/jobs/{job}/classads",
    "/api/jobs/{bad}/attempts/0/logs/stderr",
    "/api/jobs/{bad}/attempts/0/logs/stderr/raw",
    "/api/datasets/{ds}/files?path=logs/generate_0/0/stdout",
]
CHANGE_API = ["/api/datasets/{ds}/suspend", "/api/datasets/{ds}/resume", "/api/datasets/{ds}/retry-failed"]
CHANGE_PAGES = ["/datasets/{ds}/suspend", "/datasets/{ds}/resume", "/datasets/{ds}/retry"]


@pytest.fixture
def ids(engine, demo):  # noqa: F811
    return {"ds": demo, "job": jid(engine, demo, "generate_0"), "bad": jid(engine, demo, "detector_0")}


def test_private_dataset_is_invisible_to_other_users_on_every_route(app, alice, bob, admin, engine, ids):  # noqa: F811
    accounts.set_private(engine, ids["ds"], True)
    for template in READ_PAGES:
        path = template.format(**ids)
        assert bob.get(path).status_code == 404, path
        for who in (alice, admin):
            response = who.get(path)
            assert response.status_code == 200, (path, response.status_code)
            response.close()
    assert "demo-sim" not in bob.get("/").text
    assert "generate_0" not in bob.get("/jobs").text and "generate_0" in alice.get("/jobs").text
    assert bob.get("/api/datasets").get_json()["datasets"] == []
    assert bob.get("/api/jobs").get_json()["jobs"] == []
    token = csrf_of(bob)
    for template in CHANGE_API:
        assert bob.post(template.format(**ids), headers={"X-CSRF-Token": token}).status_code == 404
    assert (
        bob.post(
            f"/api/pilot/datasets/{ids['ds']}/claim", json={}, headers={"X-CSRF-Token": token}
        ).status_code
        == 404
    )


def test_public_dataset_is_readable_but_not_changeable_by_others(app, bob, engine, ids):  # noqa: F811
    for template in READ_PAGES:
        response = bob.get(template.format(**ids))
        assert response.status_code == 200, template
        response.close()
    token = csrf_of(bob)
    for template in CHANGE_API:
        assert bob.post(template.format(**ids), headers={"X-CSRF-Token": token}).status_code == 403, template
    for template in CHANGE_PAGES:
        assert bob.post(template.format(**ids), data={"csrf_token": token}).status_code == 403, template
    assert (
        bob.post(
            f"/api/datasets/{ids['ds']}/visibility", json={"private": True}, headers={"X-CSRF-Token": token}
        ).status_code
        == 403
    )
    assert (
        bob.post(
            f"/api/pilot/datasets/{ids['ds']}/claim", json={}, headers={"X-CSRF-Token": token}
        ).status_code
        == 403
    )
    assert (
        bob.post(
            f"/api/pilot/datasets/{ids['ds']}/reports", json={"records": []}, headers={"X-CSRF-Token": token}
        ).status_code
        == 403
    )


def test_admin_may_change_any_dataset(admin, ids):  # noqa: F811
    token = csrf_of(admin)
    for template in CHANGE_API:
        assert admin.post(template.format(**ids), headers={"X-CSRF-Token": token}).status_code == 200


def test_production_users_share_the_production_account(app, anon, engine):  # noqa: F811
    from webui_support import DEMO

    _, prod = accounts.create_token(engine, "prod")
    made = anon.post(
        "/api/datasets?private=1",
        data=DEMO.read_text(),
        content_type="application/yaml",
        headers=bearer(prod),
    )
    ds = made.get_json()["dataset"]
    assert ds["owner"] == "production" and ds["priority"] > 0
    accounts.add_user(engine, "prod2", "production", "prod2-pw")
    _, prod2 = accounts.create_token(engine, "prod2")
    assert anon.post(f"/api/datasets/{ds['id']}/suspend", headers=bearer(prod2)).status_code == 200
    _, alice_t = accounts.create_token(engine, "alice")
    assert anon.get(f"/api/datasets/{ds['id']}", headers=bearer(alice_t)).status_code == 404


def test_disabled_user_loses_the_session(app, alice, engine):  # noqa: F811
    from sqlalchemy import update

    with engine.begin() as conn:
        conn.execute(update(User).where(User.name == "alice").values(disabled=True))
    assert alice.get("/").status_code == 302


def test_cli_user_add_list_token(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from iceprod_dag.cli.main import cli

    monkeypatch.setenv("ICEPROD_DAG_HOME", str(tmp_path))
    monkeypatch.setattr(accounts, "PASSWORD_METHOD", "pbkdf2:sha256:1000")
    db = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    (tmp_path / "pw").write_text("first-admin-pw\n")
    runner = CliRunner()
    result = runner.invoke(
        cli, ["user", "add", "admin", "--role", "admin", "--password-file", str(tmp_path / "pw"), "--db", db]
    )
    assert result.exit_code == 0, result.output
    again = runner.invoke(cli, ["user", "add", "admin", "--password-file", str(tmp_path / "pw"), "--db", db])
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    listed = runner.invoke(cli, ["user", "list", "--db", db])
    assert "admin\tadmin" in listed.output
    token = runner.invoke(cli, ["user", "token", "admin", "--db", db]).output.strip()
    from iceprod_dag.stats.db import make_engine

    found = accounts.verify_token(make_engine(db), token)
    assert found is not None and found.role == "admin"
    (tmp_path / "pw2").write_text("second-pw\n")
    changed = runner.invoke(
        cli, ["user", "password", "admin", "--password-file", str(tmp_path / "pw2"), "--db", db]
    )
    assert (
        changed.exit_code == 0 and accounts.check_password(make_engine(db), "admin", "second-pw") is not None
    )
    monkeypatch.setenv("ICEPROD_DAG_ADMIN_PASSWORD", "from-env")
    assert runner.invoke(cli, ["user", "add", "ops", "--db", db]).exit_code == 0
    assert accounts.check_password(make_engine(db), "ops", "from-env") is not None
