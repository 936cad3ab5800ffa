"""Staging through a real HTTP server on 127.0.0.1 and file:// URLs: checksums, retries, PUT, failures."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zlib
from pathlib import Path

import pytest

from iceprod_dag.pilot import exitcodes
from iceprod_dag.pilot.runjob import run_attempt
from iceprod_dag.pilot.staging import parse_checksum

PAYLOAD = b"ice" * 10000


class Handler(http.server.BaseHTTPRequestHandler):
    """GET serves PAYLOAD at /in.dat (after `flaky` 500s), 404 elsewhere; PUT stores the body."""

    store: dict = {}
    flaky = [0]
    gets = [0]

    def do_GET(self) -> None:  # noqa: N802
        self.gets[0] += 1
        if self.path != "/in.dat":
            self.send_error(404)
            return
        if self.flaky[0] > 0:
            self.flaky[0] -= 1
            self.send_error(500)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def do_PUT(self) -> None:  # noqa: N802
        length = int(self.headers["Content-Length"])
        self.store[self.path] = self.rfile.read(length)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    Handler.store, Handler.flaky, Handler.gets = {}, [0], [0]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_http_in_and_put_out_with_checksums(pilot_spec, server):
    data = [
        {"url": f"{server}/in.dat", "local": "in.dat", "direction": "input", "checksum": f"sha256:{SHA}"},
        {"url": f"{server}/out/$(job).dat", "local": "out.dat", "direction": "output"},
    ]
    rec = run_attempt(pilot_spec(command="cat in.dat in.dat > out.dat", data=data), 7)
    assert rec["failure"] is None, rec["error"]
    assert Handler.store["/out/7.dat"] == PAYLOAD * 2
    inp, out = rec["transfers"]
    assert (inp["bytes"], inp["checksum"], inp["ok"], inp["direction"]) == (
        len(PAYLOAD),
        f"sha256:{SHA}",
        True,
        "input",
    )
    assert out["checksum"] == "sha256:" + hashlib.sha256(PAYLOAD * 2).hexdigest() and out["bytes"] == 2 * len(
        PAYLOAD
    )


def test_wrong_checksum_fails_stage_in_after_retries(pilot_spec, server):
    data = [{"url": f"{server}/in.dat", "local": "in.dat", "checksum": "sha256:" + "0" * 64}]
    rec = run_attempt(pilot_spec(command="touch ran", data=data, pilot={"transfer_retries": 2}), 0)
    assert (rec["failure"], rec["pilot_exit_code"]) == ("stage_in", exitcodes.STAGE_IN_FAILED)
    assert "checksum mismatch" in rec["error"] and "after 3 attempts" in rec["error"]
    assert Handler.gets[0] == 3
    assert rec["modules"] == [], "the task must not run on corrupt input"
    assert rec["transfers"][0]["ok"] is False


def test_transient_errors_are_retried(pilot_spec, server):
    Handler.flaky[0] = 2
    data = [{"url": f"{server}/in.dat", "local": "sub/in.dat", "checksum": f"sha256:{SHA}"}]
    rec = run_attempt(pilot_spec(command="test -s sub/in.dat", data=data, pilot={"transfer_retries": 3}), 0)
    assert rec["failure"] is None, rec["error"]
    assert rec["transfers"][0]["attempts"] == 3


def test_missing_input_required_vs_maybe(pilot_spec, server):
    data = [{"url": f"{server}/nothing", "local": "x", "transfer": "maybe"}]
    assert run_attempt(pilot_spec(command="true", data=data), 0)["failure"] is None
    data[0]["transfer"] = "yes"
    rec = run_attempt(pilot_spec(command="true", data=data), 0)
    assert rec["failure"] == "stage_in" and "404" in rec["error"]
    assert Handler.gets[0] == 2, "a 404 is not retried"


def test_file_urls_and_stage_out_failure(pilot_spec, tmp_path: Path):
    src = tmp_path / "src.dat"
    src.write_bytes(PAYLOAD)
    adler = "%08x" % (zlib.adler32(PAYLOAD) & 0xFFFFFFFF)
    data = [
        {"url": src.as_uri(), "local": "in.dat", "checksum": f"adler32:{adler}"},
        {"url": (tmp_path / "results").as_uri() + "/o_$(job).dat", "local": "o.dat", "direction": "output"},
    ]
    rec = run_attempt(pilot_spec(command="cp in.dat o.dat", data=data), 3)
    assert rec["failure"] is None, rec["error"]
    assert (tmp_path / "results/o_3.dat").read_bytes() == PAYLOAD
    rec = run_attempt(pilot_spec(command="true", data=data), 4)  # the job forgot its output
    assert (rec["failure"], rec["pilot_exit_code"]) == ("stage_out", exitcodes.STAGE_OUT_FAILED)
    assert "did not write" in rec["error"]


def test_both_direction_and_relative_paths(pilot_spec, tmp_path: Path):
    (tmp_path / "state.txt").write_text("1\n")
    data = [{"url": "state.txt", "local": "state.txt", "direction": "both"}]
    rec = run_attempt(pilot_spec(command="echo 2 >> state.txt", data=data), 0)
    assert rec["failure"] is None, rec["error"]
    assert (tmp_path / "state.txt").read_text() == "1\n2\n"
    assert [t["direction"] for t in rec["transfers"]] == ["input", "output"]


def test_unsupported_scheme_and_bad_checksum_spec(pilot_spec):
    rec = run_attempt(pilot_spec(command="true", data=[{"url": "gsiftp://x/y", "local": "y"}]), 0)
    assert rec["failure"] == "stage_in" and "unsupported URL scheme" in rec["error"]
    assert parse_checksum("SHA-256:ABC") == ("sha256", "abc")
    assert parse_checksum("abc") == ("sha256", "abc")


def test_staged_in_programs_run_from_the_work_dir(pilot_spec, tmp_path: Path):
    script = tmp_path / "tool.sh"
    script.write_text("#!/bin/sh\necho tool $1\n")  # not executable: staging never keeps modes
    data = [{"url": script.as_uri(), "local": "bin/tool.sh"}, {"url": script.as_uri(), "local": "tool.sh"}]
    mods = [
        {"name": "a", "executable": "bin/tool.sh", "args": ["$(job)"]},
        {"name": "b", "executable": "tool.sh", "args": ["b"]},
    ]
    rec = run_attempt(pilot_spec(modules=mods, data=data), 5)
    assert rec["failure"] is None, rec["error"]
    assert (tmp_path / "logs/gen_5/0/stdout").read_text() == "tool 5\ntool b\n"
