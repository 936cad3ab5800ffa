"""The stats record: one JSON file per attempt (docs/contracts.md), written atomically so readers never see half."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Dict, List, Optional

from iceprod_dag.common import names
from iceprod_dag.pilot import exitcodes

FORMAT = 1
#: the next attempt of a job killed over a limit asks for this much times its measured peak (IceProd's rule;
#: a spec's ``pilot.learn_factor`` overrides it)
RETRY_MEMORY_FACTOR = 1.5
#: failure category -> (request field raised for the next attempt, its record field, the measured peak's field)
LEARNED = {
    "over_memory": ("memory_mb", "next_memory_mb", "peak_memory_mb"),
    "over_time": ("walltime_s", "next_walltime_s", "wall_s"),
    "over_disk": ("disk_mb", "next_disk_mb", "peak_disk_mb"),
}
TAIL_BYTES = 64 * 1024

_HOST: Dict[str, str] = {}


def host_info() -> Dict[str, str]:
    """Host name, OS and Python of this worker (computed once per pilot)."""
    if not _HOST:
        # os.uname rather than platform/socket: the same answers without importing them at every start
        uname = os.uname()
        _HOST.update(
            host=uname.nodename,
            os=f"{uname.sysname}-{uname.release}-{uname.machine}",
            python="%d.%d.%d" % sys.version_info[:3],
        )
    return dict(_HOST)


def tail_lines(path: str, count: int) -> List[str]:
    """The last ``count`` lines of a text file (reads at most the last 64 KiB); [] if it cannot be read."""
    if count <= 0:
        return []
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if size > TAIL_BYTES and lines:
        lines = lines[1:]  # the first one is probably cut
    return lines[-count:]


def next_request(
    peak: Optional[float], requested: Optional[float], factor: float = RETRY_MEMORY_FACTOR
) -> Optional[int]:
    """What the next attempt of a job killed over a limit asks for: ``factor`` × the measured peak (or × the
    request, if the peak was below it: a job killed by a full pilot envelope still gets more); None without
    either."""
    base = max(peak or 0.0, requested or 0.0)
    return int(math.ceil(factor * base)) if base else None


def _round(value: Optional[float], digits: int = 3) -> Optional[float]:
    return None if value is None else round(float(value), digits)


def new_record(
    dataset: str, dataset_id: Optional[int], task: str, job: int, attempt: int, site: Optional[str]
) -> Dict[str, Any]:
    """A record with every contract field present; the pilot fills it as the attempt goes."""
    record: Dict[str, Any] = {
        "format": FORMAT,
        "dataset": dataset,
        "dataset_id": dataset_id,
        "task": task,
        "job": job,
        "node": names.node_name(task, job),
        "attempt": attempt,
        "site": site,
    }
    record.update(host_info())
    record.update(
        {
            "start": None,
            "end": None,
            "wall_s": None,
            "cpu_user_s": None,
            "cpu_sys_s": None,
            "cpu_efficiency": None,
            "request": None,
            "memory_limit_mb": None,
            "memory_lent_mb": None,
            "walltime_limit_s": None,
            "disk_limit_mb": None,
            "peak_memory_mb": None,
            "peak_memory_source": None,
            "peak_rss_mb": None,
            "peak_pss_mb": None,
            "avg_rss_mb": None,
            "peak_disk_mb": None,
            "peak_gpu_mem_mb": None,
            "avg_gpu_util": None,
            "exit_code": None,
            "signal": None,
            "pilot_exit_code": None,
            "failure": None,
            "error": None,
            "transfers": [],
            "modules": [],
            "stderr_tail": [],
            "logs": {},
            "submitted": None,
            "queue_s": None,
            "hold_reason": None,
            "hold_code": None,
            "next_memory_mb": None,
            "next_walltime_s": None,
            "next_disk_mb": None,
        }  # fmt: skip
    )
    return record


def finish(
    record: Dict[str, Any],
    failure: Optional[str],
    error: Optional[str] = None,
    factor: float = RETRY_MEMORY_FACTOR,
) -> Dict[str, Any]:
    """Set the failure category, the pilot exit code and the derived fields (efficiency, queue time, the
    next attempt's request of the limit that was exceeded: ``factor`` × its peak)."""
    record["failure"] = failure
    record["error"] = error
    record["pilot_exit_code"] = exitcodes.SUCCESS if failure is None else exitcodes.BY_CATEGORY[failure]
    wall = record.get("wall_s")
    cpus = (record.get("request") or {}).get("cpus") or 1
    if wall and record.get("cpu_user_s") is not None:
        cpu = record["cpu_user_s"] + (record.get("cpu_sys_s") or 0.0)
        record["cpu_efficiency"] = _round(cpu / (wall * cpus), 4)
    if record.get("submitted") and record.get("start"):
        record["queue_s"] = max(0.0, record["start"] - record["submitted"])
    if failure in LEARNED:
        field, out, measured = LEARNED[failure]
        peak = record.get(measured)
        if failure == "over_memory" and peak is None:
            peak = record.get("peak_pss_mb") or record.get("peak_rss_mb")
        record[out] = next_request(peak, (record.get("request") or {}).get(field), factor)
    for key in ("wall_s", "cpu_user_s", "cpu_sys_s", "peak_rss_mb", "peak_pss_mb", "avg_rss_mb",
                "peak_disk_mb", "peak_gpu_mem_mb", "avg_gpu_util", "memory_limit_mb", "peak_memory_mb",
                "memory_lent_mb", "queue_s"):  # fmt: skip
        if key in record:
            record[key] = _round(record[key])
    return record


def write(path: str, record: Dict[str, Any]) -> None:
    """Write a record atomically (temp file + rename), creating its folder."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1, sort_keys=False)
        handle.write("\n")
    os.replace(tmp, path)


def read(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
