"""A work source backed by the web server's pilot API, with an on-disk spool so nothing is lost offline.

Every finished attempt's stats record and logs stay in the spool folder until the server has accepted
them; while the server is unreachable the pilot keeps running the work it holds and buffers, and a later
claim (or a later pilot started on the same spool) delivers what was buffered. Standard library only.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional

from iceprod_dag.common import names
from iceprod_dag.pilot.spec import Resources
from iceprod_dag.pilot.worksource import WorkItem, WorkSource, _SpecRequirements

log = logging.getLogger(__name__)

PENDING_DIR = "pending"
SPECS_DIR = "specs"
OUT_DIR = "out"
LOG_KINDS = (("stdout", names.STDOUT), ("stderr", names.STDERR), ("pilot", names.PILOT_LOG))


class ServerUnreachable(Exception):
    """The server did not answer (connection refused, timeout, 5xx)."""


class ServerWorkSource(WorkSource):
    """Claims work from ``/api/pilot/datasets/<pk>/claim`` and reports through a disk spool."""

    def __init__(
        self,
        server: str,
        dataset: int,
        token: str,
        spool_dir: str,
        timeout_s: float = 10.0,
        batch: int = 200,
    ) -> None:
        self.base = server.rstrip("/") + f"/api/pilot/datasets/{int(dataset)}"
        self.token = token
        self.spool = os.path.abspath(spool_dir)
        self.timeout_s = timeout_s
        self.batch = batch
        self.host = socket.gethostname()
        self._held: Optional[WorkItem] = None
        self._server_finished = False
        self._requirements = _SpecRequirements()
        for sub in (PENDING_DIR, SPECS_DIR, OUT_DIR):
            os.makedirs(os.path.join(self.spool, sub), exist_ok=True)

    # --- HTTP -----------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Optional[bytes], content_type: str) -> Any:
        request = urllib.request.Request(self.base + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                raise ServerUnreachable(f"{self.base}{path}: HTTP {exc.code}") from exc
            payload = exc.read()
            try:
                answer = json.loads(payload or b"{}")
            except ValueError:
                answer = {"error": payload.decode("utf-8", "replace")}
            answer["_status"] = exc.code
            return answer
        except (urllib.error.URLError, OSError) as exc:
            raise ServerUnreachable(f"{self.base}{path}: {getattr(exc, 'reason', exc)}") from exc

    def _post(self, path: str, payload: Dict[str, Any]) -> Any:
        return self._request("POST", path, json.dumps(payload).encode(), "application/json")

    # --- WorkSource -----------------------------------------------------------------------------
    def claim(self, free: Resources) -> Optional[WorkItem]:
        self.flush()
        if self._held is None:
            try:
                answer = self._post("/claim", {"host": self.host})
            except ServerUnreachable as exc:
                log.warning("server unreachable, working offline: %s", exc)
                return None
            if "_status" in answer:
                log.error("claim refused (HTTP %s): %s", answer["_status"], answer.get("error"))
                self._server_finished = answer["_status"] in (401, 403, 404)
                return None
            work = answer.get("work")
            if not work:
                self._server_finished = bool(answer.get("finished"))
                return None
            self._held = self._item(work)
        if not self._requirements(self._held).fits_in(free):
            return None
        item, self._held = self._held, None
        return item

    def _item(self, work: Dict[str, Any]) -> WorkItem:
        spec_path = os.path.join(self.spool, SPECS_DIR, f"{work['task']}.json")
        if work.get("spec_json") and not os.path.exists(spec_path):
            _write_atomic(spec_path, work["spec_json"].encode())
        out = os.path.join(self.spool, OUT_DIR)
        return WorkItem(
            spec=spec_path,
            job=int(work["job"]),
            attempt=int(work["attempt"]),
            memory_mb=work.get("memory_mb"),
            stats=os.path.join(out, work.get("stats") or names.stats_record(work["node"], work["attempt"])),
            logdir=os.path.join(
                out, work.get("logdir") or names.attempt_log_dir(work["node"], work["attempt"])
            ),
            id=str(work.get("id") or ""),
        )

    def report(self, item: WorkItem, record: Dict[str, Any]) -> None:
        """Spool the record first (durable), then try to deliver everything spooled."""
        entry: Dict[str, Any] = {"record": record, "logdir": item.logdir, "logs_sent": []}
        name = f"{record['node']}.{record['attempt']}.json"
        _write_atomic(os.path.join(self.spool, PENDING_DIR, name), json.dumps(entry).encode())
        self.flush()

    def finished(self) -> bool:
        return self._server_finished and self._held is None and not self.pending()

    # --- the spool ------------------------------------------------------------------------------
    def pending(self) -> List[str]:
        folder = os.path.join(self.spool, PENDING_DIR)
        return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".json"))

    def flush(self) -> int:
        """Deliver spooled records (in batches) and their logs; returns how many were delivered."""
        paths = self.pending()
        delivered = 0
        for start in range(0, len(paths), self.batch):
            chunk = paths[start : start + self.batch]
            entries = [_read_json(p) for p in chunk]
            try:
                answer = self._post("/reports", {"records": [e["record"] for e in entries]})
            except ServerUnreachable as exc:
                log.info("keeping %d records spooled: %s", len(paths) - delivered, exc)
                return delivered
            if answer.get("_status") not in (None, 409):
                log.error("reports refused (HTTP %s): %s", answer["_status"], answer.get("error"))
                return delivered
            for rejected in answer.get("rejected", []):
                log.warning(
                    "server rejected %s attempt %s: %s",
                    rejected["node"],
                    rejected["attempt"],
                    rejected["reason"],
                )
            for index, path in enumerate(chunk):  # zip(strict=) needs Python 3.10; workers may have 3.8
                entry = entries[index]
                if not self._send_logs(path, entry):
                    return delivered
                os.unlink(path)
                delivered += 1
        return delivered

    def _send_logs(self, path: str, entry: Dict[str, Any]) -> bool:
        record = entry["record"]
        for kind, file_name in LOG_KINDS:
            if kind in entry["logs_sent"] or not entry.get("logdir"):
                continue
            log_path = os.path.join(entry["logdir"], file_name)
            if os.path.exists(log_path):
                with open(log_path, "rb") as handle:
                    data = handle.read()
                node = urllib.parse.quote(record["node"], safe="")
                try:
                    answer = self._request(
                        "PUT", f"/logs/{node}/{record['attempt']}/{kind}", data, "application/octet-stream"
                    )
                except ServerUnreachable:
                    return False
                if answer.get("_status"):
                    log.error("log %s of %s refused: %s", kind, record["node"], answer.get("error"))
            entry["logs_sent"].append(kind)
            _write_atomic(path, json.dumps(entry).encode())
        return True


def _write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_json(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
