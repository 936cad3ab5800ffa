"""Bring a Condor run's results into the stats database: the pilots' stats records (transferred back to
the submit folder) and each finished job's ClassAd from the schedd's history, also kept on disk as
history/<node>.<attempt>.ad so a run folder can be re-ingested (or read by `dag why`) without the schedd.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import classad2
import htcondor2
from sqlalchemy import Engine

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import StatsError
from iceprod_dag.stats.classads import display_value, read_ads, split_ads, write_ad
from iceprod_dag.stats.ingest import ingest_job_ads, ingest_records, load_record

log = logging.getLogger(__name__)
_WARNED: set[tuple[str, str, int]] = set()

#: attributes `dag why` shows from a job ad, in this order
KEY_ATTRIBUTES = (
    "ClusterId",
    "ProcId",
    "DAGNodeName",
    "IceProdAttempt",
    "JobStatus",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "HoldReason",
    "HoldReasonCode",
    "RemoveReason",
    "RequestCpus",
    "RequestMemory",
    "MemoryUsage",
    "ResidentSetSize_RAW",
    "RequestDisk",
    "DiskUsage",
    "RemoteWallClockTime",
    "RemoteUserCpu",
    "RemoteSysCpu",
    "LastRemoteHost",
    "NumJobStarts",
    "QDate",
    "JobStartDate",
    "CompletionDate",
    "EnteredCurrentStatus",
)


def _is_new(path: Path, seen: dict[str, float] | None) -> bool:
    """True (and remembered) when path was not seen with its current mtime; always True without a memory."""
    if seen is None:
        return True
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return False
    if seen.get(str(path)) == mtime:
        return False
    seen[str(path)] = mtime
    return True


def stats_records(submit_dir: Path, seen: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """The run's readable stats records (only new or changed ones when given `seen`); bad ones are logged."""
    records = []
    for path in sorted((submit_dir / names.STATS_DIR).glob("*.json")):
        if not _is_new(path, seen):
            continue
        try:
            records.append(load_record(path))
        except StatsError as exc:
            log.warning("%s", exc)
    return records


def _attempt_of(ad: classad2.ClassAd, seen: dict[str, int]) -> int:
    """The DAGMan retry number of a node's job: our IceProdAttempt, or (hand-written DAGs) its order."""
    value = ad.get("IceProdAttempt")
    if isinstance(value, int):
        return value
    node = str(ad.get("DAGNodeName"))
    seen[node] = seen.get(node, -1) + 1
    return seen[node]


@dataclasses.dataclass
class CollectState:
    """What earlier collect calls of one run already did, so each poll only reads what is new."""

    #: file path -> mtime of stats records and job ads already ingested
    ingested: dict[str, float] = dataclasses.field(default_factory=dict)
    #: the newest job of the run the schedd's history held at the last query ("cluster.proc"): the next
    #: query reads only what the history recorded after it; None reads the whole history of the DAG
    history_after: str | None = None


def fetch_history(
    schedd: htcondor2.Schedd, clusters: Iterable[int], history_dir: Path, after: str | None = None
) -> tuple[list[Path], str | None]:
    """Write the history ads of the DAGs' node jobs that are not on disk yet.

    Returns the new files and the job id ("cluster.proc") of the newest ad read, to pass as `after` next
    time: the schedd then reads its history file back only to that job, not to its start. Use `after`
    only when every ad carries IceProdAttempt (compiled runs): hand-written DAGs number attempts by the
    order of the whole history.
    """
    clusters = list(clusters)
    if not clusters:
        return [], after
    history_dir.mkdir(exist_ok=True)
    constraint = "(" + " || ".join(f"DAGManJobId == {c}" for c in clusters) + ")"
    # a job id as `since` stops the schedd's backward scan there (a rotated-away id reads everything)
    ads = schedd.history(constraint=constraint, projection=[], since=after)
    if ads:  # newest recorded first
        after = f"{int(ads[0].get('ClusterId', 0))}.{int(ads[0].get('ProcId', 0))}"
    # history comes newest first; attempt numbers by order need oldest first
    ads = sorted(ads, key=lambda ad: (int(ad.get("ClusterId", 0)), int(ad.get("ProcId", 0))))
    seen: dict[str, int] = {}
    written = []
    for ad in ads:
        if "DAGNodeName" not in ad:
            continue
        node = str(ad["DAGNodeName"])
        path = history_dir.parent / names.job_ad(node, _attempt_of(ad, seen))
        if not path.exists():
            write_ad(path, ad)
            written.append(path)
    return written, after


def history_ads(submit_dir: Path, seen: dict[str, float] | None = None) -> list[tuple[str, int, str]]:
    """The (node, attempt, ad text) triples on disk under history/ (only new ones when given `seen`)."""
    out = []
    for path in sorted((submit_dir / names.HISTORY_DIR).glob("*.ad")):
        node, _, attempt = path.name[: -len(".ad")].rpartition(".")
        if not attempt.isdigit() or not _is_new(path, seen):
            continue
        # the text, not a parsed ad: ingest keeps it verbatim and compares it to detect repeats
        for _, chunk in list(split_ads(path.read_text(encoding="utf-8", errors="replace")))[:1]:
            out.append((node, int(attempt), chunk))
    return out


def missing_ads(submit_dir: Path) -> list[str]:
    """Attempts whose stats record came back but whose job ad is not in history/ yet."""
    records = {p.name[: -len(".json")] for p in (submit_dir / names.STATS_DIR).glob("*.json")}
    ads = {p.name[: -len(".ad")] for p in (submit_dir / names.HISTORY_DIR).glob("*.ad")}
    return sorted(records - ads)


def read_history_ad(submit_dir: Path, node: str, attempt: int) -> classad2.ClassAd | None:
    """The job ad of one attempt from history/, or None if it has not been fetched."""
    path = submit_dir / names.job_ad(node, attempt)
    if not path.exists():
        return None
    ads = read_ads(path)
    return ads[0] if ads else None


def collect_run(
    engine: Engine,
    run_dir: Path,
    submit_dir: Path,
    site: str,
    schedd: htcondor2.Schedd | None,
    clusters: Iterable[int],
    state: CollectState | None = None,
    incremental_history: bool = False,
) -> int:
    """Ingest records and ads of one run; return how many attempts or ads were new to the database.

    With a state kept between calls, only files new or changed since the last call are read.
    """
    state = state if state is not None else CollectState()
    if schedd is not None:
        try:
            after = state.history_after if incremental_history else None
            _, after = fetch_history(schedd, clusters, submit_dir / names.HISTORY_DIR, after)
            if incremental_history:
                state.history_after = after
        except Exception as exc:  # a busy or unreachable schedd must not lose the records we have
            log.warning("cannot read the schedd's history for %s: %s", run_dir, exc)
    new = 0
    records = stats_records(submit_dir, state.ingested)
    if records:
        res = ingest_records(engine, records, run_dir=run_dir, site=site, on_stale="skip")
        new += res.inserted + res.updated
        for node, attempt, why in res.rejected:
            if (str(submit_dir), node, attempt) not in _WARNED:  # once per process, not every poll
                _WARNED.add((str(submit_dir), node, attempt))
                log.warning("stats record of %s attempt %d not recorded: %s", node, attempt, why)
    ads = history_ads(submit_dir, state.ingested)
    if ads:
        res = ingest_job_ads(engine, ads, run_dir=run_dir, site=site, on_stale="skip")
        new += res.inserted
    return new


def key_attributes(ad: classad2.ClassAd) -> dict[str, Any]:
    """The attributes of a job ad a Condor admin looks at first."""
    return {k: display_value(ad.eval(k)) for k in KEY_ATTRIBUTES if k in ad}
