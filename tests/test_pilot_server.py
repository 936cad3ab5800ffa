"""The pilot's server work source: claims from the real web app over HTTP, and buffers on disk while the
server is down so that nothing recorded is lost."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webui_support import app  # noqa: F401  (fixture)
from werkzeug.serving import make_server

from iceprod_dag.pilot.runjob import run_attempt
from iceprod_dag.pilot.serversource import ServerWorkSource
from iceprod_dag.pilot.spec import Resources

DATASET = {
    "name": "spooled",
    "jobs": 2,
    "options": {"pilot": {"sample_interval": 0.05}},
    "tasks": [{"name": "gen", "command": "echo generated $(job)"}],
}


class Server:
    """The app on a real loopback port that can be stopped and started again on the same port."""

    def __init__(self, application: Any) -> None:
        self.application = application
        self.port = 0
        self._server: Any = None

    def start(self) -> None:
        self._server = make_server("127.0.0.1", self.port, self.application, threaded=True)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def server(app: Any) -> Iterator[Server]:  # noqa: F811
    running = Server(app)
    running.start()
    yield running
    running._server.shutdown()


def test_records_survive_a_server_outage(app: Any, server: Server, tmp_path: Path) -> None:  # noqa: F811
    from iceprod_dag.webui.services import accounts

    engine = app.extensions["iceprod_dag_engine"]
    api = accounts.create_token(engine, "alice")[1]
    client = app.test_client()
    created = client.post("/api/datasets", json=DATASET, headers={"Authorization": f"Bearer {api}"})
    assert created.status_code in (200, 201), created.get_json()
    pk = created.get_json()["dataset"]["id"]
    pilot_token = accounts.create_token(engine, "alice", kind="pilot", dataset_pk=pk)[1]
    source = ServerWorkSource(server.url, pk, pilot_token, str(tmp_path / "spool"), timeout_s=2)
    envelope = Resources(cpus=2, memory_mb=4096, disk_mb=4096)

    item = source.claim(envelope)
    assert item is not None and item.job == 0 and item.attempt == 0
    server.stop()  # the server goes away while the job runs
    record = run_attempt(item.spec, item.job, item.attempt, stats_path=item.stats, logdir=item.logdir)
    assert record["pilot_exit_code"] == 0
    source.report(item, record)
    assert len(source.pending()) == 1  # kept on disk, not lost
    assert source.claim(envelope) is None and not source.finished()

    # a new pilot process on the same spool delivers it once the server answers again
    server.start()
    again = ServerWorkSource(server.url, pk, pilot_token, str(tmp_path / "spool"), timeout_s=2)
    assert again.flush() == 1 and again.pending() == []
    second = again.claim(envelope)
    assert second is not None and second.job == 1

    jobs = client.get(f"/api/jobs?dataset={pk}&state=done", headers={"Authorization": f"Bearer {api}"})
    assert [j["node"] for j in jobs.get_json()["jobs"]] == ["gen_0"]
    run_dir = Path(created.get_json()["dataset"]["run_dir"])
    assert (run_dir / "logs" / "gen_0" / "0" / "stdout").read_text() == "generated 0\n"
    # the record stays on the worker too, as it was delivered
    assert json.loads(Path(item.stats).read_text())["node"] == "gen_0"
