"""The pilot's stats record (docs/contracts.md): validation, and its flattening into an attempts row."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from iceprod_dag.common.exceptions import StatsError
from iceprod_dag.common.states import FailureCategory, JobState

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


# attempts column <- stats record field, for the values copied as they are (docs/contracts.md)
_COPIED = (
    ("started_at", "start"), ("ended_at", "end"), ("wall_s", "wall_s"), ("cpu_user_s", "cpu_user_s"),
    ("cpu_sys_s", "cpu_sys_s"), ("cpu_efficiency", "cpu_efficiency"), ("peak_rss_mb", "peak_rss_mb"),
    ("peak_pss_mb", "peak_pss_mb"), ("avg_rss_mb", "avg_rss_mb"), ("peak_disk_mb", "peak_disk_mb"),
    ("peak_gpu_mem_mb", "peak_gpu_mem_mb"), ("avg_gpu_util", "avg_gpu_util"),
    ("memory_limit_mb", "memory_limit_mb"), ("exit_code", "exit_code"), ("signal", "signal"),
    ("pilot_exit_code", "pilot_exit_code"), ("failure", "failure"), ("host", "host"), ("site", "site"),
    ("os", "os"), ("python", "python"), ("transfers", "transfers"), ("next_memory_mb", "next_memory_mb"),
    *((f, f) for f in ("peak_memory_mb", "peak_memory_source", "memory_lent_mb", "walltime_limit_s",
                       "next_walltime_s", "next_disk_mb", "queue_s", "hold_reason", "hold_code", "error")),
)  # fmt: skip
_REQUEST = (("request_cpus", "cpus"), ("request_memory_mb", "memory_mb"), ("request_disk_mb", "disk_mb"),
            ("request_gpus", "gpus"), ("request_walltime_s", "walltime_s"))  # fmt: skip
_LOGS = (("log_stdout", "stdout"), ("log_stderr", "stderr"), ("log_pilot", "pilot"))
#: every column attempt_row fills, in order
ATTEMPT_COLUMNS = ("state", *(c for c, _ in _COPIED), *(c for c, _ in _REQUEST), "stderr_tail",
                   *(c for c, _ in _LOGS), "record_hash")  # fmt: skip
_NO_VALUES = dict.fromkeys(ATTEMPT_COLUMNS)


def attempt_values(record: Mapping[str, Any], digest: str | None = None) -> dict[str, Any]:
    """The attempts-table columns of one stats record that have a value (None ones left out: the DB-API
    path writes those as NULL literals); ``digest`` is its record_hash if known."""
    get = record.get
    failed = get("failure") is not None or get("pilot_exit_code") not in (0, None)
    row: dict[str, Any] = {"state": JobState.FAILED.value if failed else JobState.DONE.value}
    for column, field in _COPIED:
        value = get(field)
        if value is not None:
            row[column] = value
    for pairs, nested in ((_REQUEST, get("request")), (_LOGS, get("logs"))):
        if nested:
            for column, field in pairs:
                value = nested.get(field)
                if value is not None:
                    row[column] = value
    tail = get("stderr_tail")
    if tail is not None:
        row["stderr_tail"] = "\n".join(tail) if isinstance(tail, list) else tail
    row["record_hash"] = digest or record_hash(record)
    return row


def attempt_row(record: Mapping[str, Any], digest: str | None = None) -> dict[str, Any]:
    """Every attempts-table column of one stats record (without keys), None where it has no value."""
    return {**_NO_VALUES, **attempt_values(record, digest)}
