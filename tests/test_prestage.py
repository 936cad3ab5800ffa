"""File pre-staging: a prestage layer copies inputs from a real HTTP server to storage before the jobs."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.compile.compiler import compile_dataset
from iceprod_dag.dataset.loader import load_dataset_dict
from iceprod_dag.pilot import exitcodes
from iceprod_dag.sites.offline import run_offline

PAYLOAD = b"calibration constants\n" * 100


@pytest.fixture
def http_url(tmp_path: Path) -> Iterator[str]:
    served = tmp_path / "served"
    served.mkdir()
    (served / "gcd.dat").write_bytes(PAYLOAD)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def dataset(url: str, storage: Path, checksum: str) -> dict[str, object]:
    return {
        "name": "pre",
        "jobs": 2,
        "options": {"retries": 0, "prestage": {"storage": storage.as_uri(), "max_parallel": 1}},
        "tasks": [
            {
                "name": "use",
                "command": "wc -c < gcd.dat",
                "data": [{"url": f"{url}/gcd.dat", "checksum": checksum, "prestage": True}],
            }
        ],
    }


def test_compile_adds_a_bounded_prestage_layer(tmp_path: Path) -> None:
    data = dataset("http://127.0.0.1:1", tmp_path / "storage", "sha256:" + "0" * 64)
    compile_dataset(load_dataset_dict(data), tmp_path / "run", with_pilot=False)
    dag = (tmp_path / "run" / "dataset.dag").read_text().splitlines()
    assert "JOB prestage_0 prestage.sub" in dag
    assert "PARENT prestage_1 CHILD use_1" in dag
    assert "CATEGORY prestage_0 prestage" in dag and "MAXJOBS prestage 1" in dag
    spec = json.loads((tmp_path / "run" / "specs" / "use.json").read_text())
    assert spec["task"]["data"][0]["url"] == f"{(tmp_path / 'storage').as_uri()}/pre/$(job)/gcd.dat"


def test_jobs_read_the_staged_copy(http_url: str, tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    checksum = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
    ds = load_dataset_dict(dataset(http_url, storage, checksum))
    compile_dataset(ds, tmp_path / "run")
    result = run_offline(ds, tmp_path / "run", [0, 1])
    assert result.succeeded == ["prestage_0", "use_0", "prestage_1", "use_1"]
    assert (storage / "pre" / "1" / "gcd.dat").read_bytes() == PAYLOAD
    use = json.loads((tmp_path / "run" / "stats" / "use_0.0.json").read_text())
    assert use["transfers"][0]["url"] == f"{storage.as_uri()}/pre/0/gcd.dat"
    assert (tmp_path / "run" / "logs" / "use_0" / "0" / "stdout").read_text().strip() == str(len(PAYLOAD))


def test_a_corrupt_transfer_fails_the_dependent_jobs_clearly(http_url: str, tmp_path: Path) -> None:
    ds = load_dataset_dict(dataset(http_url, tmp_path / "storage", "sha256:" + "0" * 64))
    compile_dataset(ds, tmp_path / "run")
    result = run_offline(ds, tmp_path / "run", [0])
    assert result.failed == ["prestage_0"] and result.skipped == ["use_0"]
    record = json.loads((tmp_path / "run" / "stats" / "prestage_0.0.json").read_text())
    assert record["failure"] == "stage_in"
    assert record["pilot_exit_code"] == exitcodes.STAGE_IN_FAILED
    assert not (tmp_path / "storage" / "pre" / "0" / "gcd.dat").exists()


def test_prestage_needs_storage_and_inputs_only(tmp_path: Path) -> None:
    data = dataset("http://127.0.0.1:1", tmp_path, "sha256:00")
    data["options"] = {}
    with pytest.raises(ConfigError, match="options.prestage.storage is not set"):
        load_dataset_dict(data)
