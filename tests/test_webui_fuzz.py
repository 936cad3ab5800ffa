"""The API fuzzed from its own /api/openapi.json with schemathesis (bounded examples per operation), as a
logged-in user with an API token: 0 responses of 500. Skipped when schemathesis is not installed (test extras)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis (the test extras)")
from hypothesis import HealthCheck, settings  # noqa: E402
from webui_support import PASSWORDS, ROLES, fill_demo  # noqa: E402


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One server for every operation (its set-up is the cost): the demo run, alice's API token."""
    from iceprod_dag.webui import create_app
    from iceprod_dag.webui.services import accounts

    base: Path = tmp_path_factory.mktemp("fuzz")
    app = create_app(
        {
            "DB": f"sqlite:///{base / 'stats.sqlite'}",
            "SECRET_KEY": "fuzz-" + "k" * 40,
            "COOKIE_SECURE": False,
            "RUNS_DIR": str(base / "runs"),
            "TESTING": True,
            "MAX_JOBS": 50,  # what the fuzzer submits compiles quickly
        }
    )
    engine = app.extensions["iceprod_dag_engine"]
    for name, role in ROLES.items():
        accounts.add_user(engine, name, role, PASSWORDS[name])
    fill_demo(engine, base / "run-alice", owner="alice")
    app.config["FUZZ_TOKEN"] = accounts.create_token(engine, "alice")[1]
    yield app
    engine.dispose()


@pytest.fixture(scope="module")
def api_schema(fuzz_app: Any) -> Any:
    return schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_operation_answers_500(case: Any, fuzz_app: Any) -> None:
    response = case.call(headers={"Authorization": f"Bearer {fuzz_app.config['FUZZ_TOKEN']}"})
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text)
