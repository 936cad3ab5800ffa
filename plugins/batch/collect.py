"""Load a batch run's statistics into the stats database: the pilots' records plus the batch accounting.

Pilot records (stats/<node>.<attempt>.json) carry what the job measured; the batch system's accounting
(sacct, qacct...) carries what the scheduler saw. Accounting is stored once per attempt, as a job ad, and
kept in history/<node>.<attempt>.acct.json so a later collect does not ask the batch system again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import IceprodDagError
from iceprod_dag.plugins.batch import state as st
from iceprod_dag.plugins.batch.system import BatchSystem

log = logging.getLogger(__name__)


def accounting_path(run_dir: Path, node: str, attempt: int) -> Path:
    return Path(run_dir) / names.HISTORY_DIR / f"{node}.{attempt}.acct.json"


def fetch_accounting(
    site: BatchSystem, run_dir: Path, state: st.RunState
) -> dict[tuple[str, int], dict[str, Any]]:
    """Accounting of every ended attempt, from history/ or (once) from the batch system."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    missing: dict[str, tuple[str, int, str]] = {}  # accounting id -> node, attempt, batch job id
    for node, ns in state.nodes.items():
        for attempt_s, job_id in ns.jobs.items():
            attempt = int(attempt_s)
            if ns.status == st.QUEUED and attempt == ns.attempt:
                continue  # still running
            path = accounting_path(run_dir, node, attempt)
            if path.exists():
                found[(node, attempt)] = json.loads(path.read_text())
            else:
                missing[ns.acct_ids.get(attempt_s) or job_id] = (node, attempt, job_id)
    if missing:
        try:
            rows = site.accounting(sorted(missing))
        except IceprodDagError as exc:
            log.warning("no batch accounting for %s: %s", run_dir, exc)
            rows = {}
        for acct_id, row in rows.items():
            if acct_id not in missing:
                continue
            node, attempt, job_id = missing[acct_id]
            ad = _as_ad(site.name, job_id, site.array_id(job_id), row)
            path = accounting_path(run_dir, node, attempt)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(ad, indent=1, sort_keys=True))
            found[(node, attempt)] = ad
    return found


def _as_ad(site: str, job_id: str, array_id: str, row: dict[str, Any]) -> dict[str, Any]:
    ad: dict[str, Any] = {"BatchSystem": site, "BatchJobId": job_id}
    if array_id.isdigit():
        ad["ClusterId"] = int(array_id)
    element = job_id[len(array_id) + 1 :]
    if element.isdigit():
        ad["ProcId"] = int(element)
    for key, value in row.items():
        # ClassAd names ignore case: a prefix keeps sacct's JobID apart from our BatchJobId
        ad[
            "Acct" + "".join(part[:1].upper() + part[1:] for part in str(key).replace("-", "_").split("_"))
        ] = value
    return ad


def collect_run(site: BatchSystem, run_dir: Path) -> int:
    """Record the run's finished attempts in the stats database; how many records were new."""
    from iceprod_dag.stats.classads import format_ad
    from iceprod_dag.stats.db import init_db
    from iceprod_dag.stats.ingest import ingest_job_ads, ingest_records, load_record

    state = st.load(run_dir)
    records = []
    for path in sorted((run_dir / names.STATS_DIR).glob("*.json")):
        try:
            records.append(load_record(path))
        except IceprodDagError as exc:
            log.warning("skipping %s: %s", path, exc)
    engine = init_db(site.options.get("db"))
    result = (
        ingest_records(engine, records, run_dir=run_dir, site=site.name, on_stale="skip") if records else None
    )
    new = result.inserted + result.updated if result is not None else 0
    if state is not None:
        ads = fetch_accounting(site, run_dir, state)
        if ads:
            ingest_job_ads(
                engine,
                # as text without format_ad's trailing blank line, which parse_ad refuses
                [
                    (node, attempt, format_ad(ad).rstrip("\n") + "\n")
                    for (node, attempt), ad in sorted(ads.items())
                ],
                run_dir=run_dir,
                site=site.name,
                on_stale="skip",
            )
    return new
