"""The pilot's stats record (docs/contracts.md): validation, and its flattening into an attempts row."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from iceprod_dag.exceptions import StatsError
from iceprod_dag.states import FailureCategory, JobState

_FAILURES = {f.value for f in FailureCategory}


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 of a record's canonical JSON (sorted keys, no spaces, UTF-8, by orjson): equal content, equal
    hash. orjson writes NaN and infinities as null, so those count as equal to a null; what orjson cannot
    write (an integer beyond 64 bits) gets the legacy hash."""
    try:
        return hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()
    except TypeError:  # orjson.JSONEncodeError
        return legacy_record_hash(record)


# json.dumps(record, sort_keys=True, separators=(",", ":"), default=str), built once: dumps builds a new
# encoder per call, which costs as much as the encoding
_LEGACY_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def legacy_record_hash(record: Mapping[str, Any]) -> str:
    """The record hash of databases written before 0.2 (json module, ASCII escapes), 4x slower to compute:
    a stored hash may be either, so a mismatch is checked against this one too (``same_record``)."""
    return hashlib.sha256(_LEGACY_CANONICAL(record).encode()).hexdigest()


def same_record(stored: str | None, digest: str, record: Mapping[str, Any] | None) -> bool:
    """Whether a stored record hash is this record's (``digest``: its record_hash) under either scheme."""
    if stored is None or stored == digest:
        return stored == digest
    return record is not None and stored == legacy_record_hash(record)


def validate_record(record: Any, where: str = "stats record") -> dict[str, Any]:
    """Check the fields ingest relies on; the error names the source and the field."""
    if not isinstance(record, dict):
        raise StatsError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for field, types in (("node", str), ("attempt", int), ("dataset", str)):
        value = record.get(field)
        if not isinstance(value, types) or isinstance(value, bool):
            raise StatsError(f"{where}: field {field!r} must be a {types.__name__}, got {value!r}")
    if record["attempt"] < 0:
        raise StatsError(f"{where}: field 'attempt' must be >= 0, got {record['attempt']}")
    failure = record.get("failure")
    if failure is not None and failure not in _FAILURES:
        raise StatsError(
            f"{where}: field 'failure' must be null or one of {sorted(_FAILURES)}, got {failure!r}"
        )
    return record


def load_record(path: str | Path) -> dict[str, Any]:
    """Read and validate one stats record file."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StatsError(f"{path}: cannot read stats record: {exc}") from exc
    return validate_record(record, str(path))


def attempt_row(record: Mapping[str, Any], digest: str | None = None) -> dict[str, Any]:
    """The attempts-table columns of one stats record (without keys); ``digest`` is its record_hash if known."""
    get = record.get  # bound once: 30 lookups per record add up over a batch
    req = get("request") or {}
    logs = get("logs") or {}
    failed = get("failure") is not None or get("pilot_exit_code") not in (0, None)
    tail = get("stderr_tail")
    return {
        "state": JobState.FAILED.value if failed else JobState.DONE.value,
        "started_at": get("start"),
        "ended_at": get("end"),
        "wall_s": get("wall_s"),
        "cpu_user_s": get("cpu_user_s"),
        "cpu_sys_s": get("cpu_sys_s"),
        "cpu_efficiency": get("cpu_efficiency"),
        "peak_rss_mb": get("peak_rss_mb"),
        "peak_pss_mb": get("peak_pss_mb"),
        "avg_rss_mb": get("avg_rss_mb"),
        "peak_disk_mb": get("peak_disk_mb"),
        "peak_gpu_mem_mb": get("peak_gpu_mem_mb"),
        "avg_gpu_util": get("avg_gpu_util"),
        "request_cpus": req.get("cpus"),
        "request_memory_mb": req.get("memory_mb"),
        "request_disk_mb": req.get("disk_mb"),
        "request_gpus": req.get("gpus"),
        "request_walltime_s": req.get("walltime_s"),
        "memory_limit_mb": get("memory_limit_mb"),
        "exit_code": get("exit_code"),
        "signal": get("signal"),
        "pilot_exit_code": get("pilot_exit_code"),
        "failure": get("failure"),
        "host": get("host"),
        "site": get("site"),
        "os": get("os"),
        "python": get("python"),
        "stderr_tail": "\n".join(tail) if isinstance(tail, list) else tail,
        "log_stdout": logs.get("stdout"),
        "log_stderr": logs.get("stderr"),
        "log_pilot": logs.get("pilot"),
        "transfers": get("transfers"),
        "next_memory_mb": get("next_memory_mb"),
        "record_hash": digest or record_hash(record),
    }
