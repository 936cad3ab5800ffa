"""Failure triage of one run from its stats records: per-task usage against the request, retries, badput,
failures grouped by category and by the first line of their error (``iceprod-dag stats RUN``)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import RunNotFoundError
from iceprod_dag.stats.records import load_record

#: the usage figures summarised per task: (name, how to read it from a record, its request's field, unit)
MEASURES = (
    ("wall_s", lambda r: r.get("wall_s"), "walltime_s", "s"),
    ("cpu_s", lambda r: _cpu(r), "cpus", "cpus"),
    ("peak_memory_mb", lambda r: r.get("peak_memory_mb") or r.get("peak_pss_mb") or r.get("peak_rss_mb"),
     "memory_mb", "MB"),
)  # fmt: skip
_NUMBER = re.compile(r"\d+(\.\d+)?")
_REMARK = re.compile(r"\s*\([^()]*\)\s*$")


def _cpu(record: Mapping[str, Any]) -> float | None:
    user, system = record.get("cpu_user_s"), record.get("cpu_sys_s")
    return None if user is None else user + (system or 0.0)


def p95(values: Sequence[float]) -> float:
    """The 95th percentile by nearest rank (a value that occurred, never an interpolation)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def spread(values: Iterable[float | None]) -> dict[str, float] | None:
    """min, mean, p95 and max of the known values; None when none is known."""
    known = [float(v) for v in values if v is not None]
    if not known:
        return None
    return {
        "min": min(known),
        "mean": sum(known) / len(known),
        "p95": p95(known),
        "max": max(known),
    }


def first_line(error: str | None) -> str:
    """The first line of an error with its numbers as '#' and without a closing remark in parentheses: kills
    of one kind at different sizes, or found by different measurements, group."""
    lines = (error or "").strip().splitlines()
    return _NUMBER.sub("#", _REMARK.sub("", lines[0]).strip()) if lines else ""


def load_run(run_dir: Path) -> list[dict[str, Any]]:
    """Every stats record of a run folder (``stats/*.json``); a bad record is a StatsError naming its file."""
    folder = Path(run_dir) / names.STATS_DIR
    if not Path(run_dir).is_dir():
        raise RunNotFoundError(f"{run_dir}: no such run folder")
    if not folder.is_dir():
        raise RunNotFoundError(f"{run_dir}: no {names.STATS_DIR}/ folder (has the run started?)")
    return [load_record(path) for path in sorted(folder.glob("*.json"))]


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The triage summary of a run's records (JSON-ready)."""
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        by_task.setdefault(str(rec.get("task") or rec["node"]), []).append(rec)
    tasks = {name: _task(recs) for name, recs in sorted(by_task.items())}
    wall = sum(rec.get("wall_s") or 0.0 for rec in records)
    badput = sum(rec.get("wall_s") or 0.0 for rec in records if rec.get("failure"))
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        if not rec.get("failure"):
            continue
        key = (str(rec["failure"]), first_line(rec.get("error")))
        group = groups.setdefault(
            key,
            {"category": key[0], "error": key[1], "example": rec.get("error"), "count": 0, "tasks": set()},
        )
        group["count"] += 1
        group["tasks"].add(str(rec.get("task") or rec["node"]))
    failures = sorted(groups.values(), key=lambda g: (-g["count"], g["category"], g["error"]))
    return {
        "attempts": len(records),
        "jobs": len({rec["node"] for rec in records}),
        "failed_attempts": sum(1 for rec in records if rec.get("failure")),
        "wall_s": wall,
        "badput_s": badput,
        "badput_share": badput / wall if wall else 0.0,
        "tasks": tasks,
        "failures": [{**g, "tasks": sorted(g["tasks"])} for g in failures],
    }


def _task(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    latest: dict[str, Mapping[str, Any]] = {}
    for rec in records:
        if rec["node"] not in latest or rec["attempt"] > latest[rec["node"]]["attempt"]:
            latest[rec["node"]] = rec
    out: dict[str, Any] = {
        "jobs": len(latest),
        "attempts": len(records),
        "retries": len(records) - len(latest),
        "succeeded": sum(1 for rec in latest.values() if not rec.get("failure")),
        "badput_s": sum(rec.get("wall_s") or 0.0 for rec in records if rec.get("failure")),
    }
    for name, read, request_field, _ in MEASURES:
        requests = [(rec.get("request") or {}).get(request_field) for rec in records]
        out[name] = spread(read(rec) for rec in records)
        out[name + "_request"] = spread(requests)
    categories: dict[str, int] = {}
    for rec in records:
        if rec.get("failure"):
            categories[rec["failure"]] = categories.get(rec["failure"], 0) + 1
    out["failures"] = dict(sorted(categories.items()))
    return out


def _fmt(values: Mapping[str, float] | None, digits: int = 1) -> str:
    if not values:
        return "-"
    return "/".join(f"{values[k]:.{digits}f}" for k in ("min", "mean", "p95", "max"))


def render(summary: Mapping[str, Any], run: str) -> str:
    """The summary as text for a terminal."""
    lines = [
        f"{run}: {summary['jobs']} jobs, {summary['attempts']} attempts, {summary['failed_attempts']} failed; "
        f"badput {summary['badput_s']:.1f} s of {summary['wall_s']:.1f} s wall "
        f"({100 * summary['badput_share']:.0f}%)",
        "",
        "per task: min/mean/p95/max of each measure, and the largest request",
    ]
    for name, task in summary["tasks"].items():
        lines.append(
            f"{name}: {task['jobs']} jobs, {task['attempts']} attempts, {task['retries']} retries, "
            f"badput {task['badput_s']:.1f} s"
        )
        for key, _, _, unit in MEASURES:
            asked = (task[key + "_request"] or {}).get("max")
            lines.append(f"  {key:<15} {_fmt(task[key], 3 if key != 'peak_memory_mb' else 1):<40}"
                         f" request {'-' if asked is None else f'{asked:g} {unit}'}")  # fmt: skip
    if summary["failures"]:
        lines += ["", "failures: count, category, first error line (# for numbers), tasks"]
        for group in summary["failures"]:
            lines.append(
                f"  {group['count']:>5} {group['category']:<12} {group['error'] or '-'} "
                f"[{', '.join(group['tasks'])}]"
            )
    return "\n".join(lines)
