"""Follow and control a submitted run, whatever its site: status, watch, remove, hold, release, resubmit,
and `dag why RUN NODE`. The run folder's run.json says which site runs it and with which options.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import click

from iceprod_dag.cli.summary import run_summary
from iceprod_dag.common import names
from iceprod_dag.common.exceptions import IceprodDagError, SiteError
from iceprod_dag.common.states import JobState
from iceprod_dag.sites.base import Action, RunStatus, Site
from iceprod_dag.sites.progress import ProgressLine, render_progress
from iceprod_dag.sites.runinfo import run_info, site_for

#: seconds between statistics collections while following a run (and once more when it ends)
COLLECT_INTERVAL_S = 15.0
RUN_ARG = click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
TROUBLE = (JobState.HELD, JobState.FAILED)
#: attributes of a stats record `dag why` prints, in this order
RECORD_FIELDS = (
    "attempt",
    "host",
    "site",
    "exit_code",
    "signal",
    "pilot_exit_code",
    "failure",
    "error",
    "wall_s",
    "cpu_efficiency",
    "peak_rss_mb",
    "memory_limit_mb",
    "peak_disk_mb",
    "peak_gpu_mem_mb",
    "next_memory_mb",
)


def format_status(status: RunStatus, limit: int = 20) -> str:
    """Counts per state, then the nodes that need attention (held, failed) with their reasons."""
    counts = status.counts()
    order = [s.value for s in JobState]
    lines = ["  ".join(f"{state}: {counts[state]}" for state in order if state in counts) or "no nodes yet"]
    if status.halted:
        lines.append("DAG suspended: it ended halted; `resume` continues it from its rescue DAG")
    elif status.finished:
        lines.append(f"DAG finished with exit status {status.exit_code}")
    trouble = [n for n in sorted(status.nodes, key=names.natural_key) if status.nodes[n] in TROUBLE]
    for node in trouble[:limit]:
        reason = status.reasons.get(node, "")
        lines.append(f"  {status.nodes[node].value:<8} {node}" + (f": {reason}" if reason else ""))
    if len(trouble) > limit:
        lines.append(f"  ... and {len(trouble) - limit} more")
    return "\n".join(lines)


@click.command("status")
@RUN_ARG
@click.option("--json", "as_json", is_flag=True, help="Print the node states as JSON.")
def status_command(run_dir: Path, as_json: bool) -> None:
    """Show the state of RUN's nodes: counts per state, held and failed nodes with their reasons."""
    site = site_for(run_dir)
    status = site.status(run_dir)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "finished": status.finished,
                    "exit_code": status.exit_code,
                    "halted": status.halted,
                    "counts": status.counts(),
                    "nodes": {n: s.value for n, s in status.nodes.items()},
                    "reasons": dict(status.reasons),
                },
                indent=2,
                sort_keys=True,
            )
        )
        return
    click.echo(format_status(status))
    if site.can(Action.THROUGHPUT):
        click.echo(f"throughput: {site.throughput_per_min(run_dir):.1f} nodes/min")


@click.command("watch")
@RUN_ARG
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
@click.pass_context
def watch_command(ctx: click.Context, run_dir: Path, timeout: float | None) -> None:
    """Follow RUN until its DAG ends with the progress line `submit` shows, then its summary; exit with
    DAGMan's status (non-zero if the DAG failed)."""
    site = site_for(run_dir)
    quiet = (ctx.obj or {}).get("quiet", False)
    status = follow(site, run_dir, quiet, timeout)
    click.echo(run_summary(run_dir, status))
    ctx.exit(int(status.exit_code if status.exit_code is not None else 1))


def follow(site: Site, run_dir: Path, quiet: bool, timeout: float | None) -> RunStatus:
    """Poll RUN until its DAG ends, collecting statistics as nodes finish; the progress line unless quiet."""
    deadline = None if timeout is None else time.time() + timeout
    started = time.time()
    last: dict[str, int] | None = None
    collected_at = 0.0
    finished_before: int | None = None
    line = ProgressLine() if not quiet else None
    with line or contextlib.nullcontext():
        while True:
            status = site.status(run_dir)
            counts = status.counts()
            # collecting can load the batch system (history queries): as nodes finish, not too often, and at the end
            if status.finished or (counts != last and time.time() - collected_at >= COLLECT_INTERVAL_S):
                try:
                    site.collect(run_dir)
                except IceprodDagError as exc:
                    click.echo(f"warning: collecting statistics failed: {exc}", err=True)
                collected_at = time.time()
            last = counts
            finished = counts.get("done", 0) + counts.get("failed", 0)
            finished_before = finished if finished_before is None else finished_before
            if line is not None:
                elapsed = max(1e-6, time.time() - started)
                rate = (finished - finished_before) / elapsed
                line.show(render_progress(counts, len(status.nodes), rate, elapsed))
            if status.finished:
                return status
            if deadline is not None and time.time() > deadline:
                raise SiteError(f"{run_dir}: the DAG did not end within {timeout:.0f} s")
            time.sleep(site.poll_interval)


@click.command("remove")
@RUN_ARG
def remove_command(run_dir: Path) -> None:
    """Stop RUN; completed nodes stay done and `resubmit` continues from them."""
    site_for(run_dir).cancel(run_dir)
    click.echo(f"removed {run_dir}")


@click.command("hold")
@RUN_ARG
def hold_command(run_dir: Path) -> None:
    """Hold RUN's jobs (and its DAGMan) until `release`."""
    site_for(run_dir).hold(run_dir)
    click.echo(f"held {run_dir}")


@click.command("release")
@RUN_ARG
def release_command(run_dir: Path) -> None:
    """Release RUN's held jobs."""
    site_for(run_dir).release(run_dir)
    click.echo(f"released {run_dir}")


@click.command("suspend")
@RUN_ARG
def suspend_command(run_dir: Path) -> None:
    """Suspend RUN with DAGMan's halt file: no new job starts, running ones finish; `resume` goes on."""
    from iceprod_dag.sites import runcontrol

    click.echo(f"{run_dir}: {runcontrol.suspend(run_dir)}")


@click.command("resume")
@RUN_ARG
def resume_command(run_dir: Path) -> None:
    """Resume a suspended RUN: released in place, or resubmitted from its rescue DAG if it ended halted."""
    from iceprod_dag.sites import runcontrol

    click.echo(f"{run_dir}: {runcontrol.resume(run_dir)}")


@click.command("resubmit")
@RUN_ARG
@click.option("--wait", is_flag=True, help="Follow the run until it ends and exit with its status.")
@click.pass_context
def resubmit_command(ctx: click.Context, run_dir: Path, wait: bool) -> None:
    """Run RUN again from DAGMan's rescue DAG: nodes that completed do not run again."""
    from iceprod_dag.sites import runcontrol

    runcontrol.resubmit(run_dir)  # the one path, as the web UI's retry and resume take
    click.echo(f"resubmitted {run_dir}")
    if wait:
        ctx.invoke(watch_command, run_dir=run_dir, timeout=None)


@click.group("dag")
def dag_command() -> None:
    """Look inside a run's DAG."""


def _latest_attempt(folder: Path, node: str) -> int | None:
    attempts = []
    for sub, suffix in ((names.STATS_DIR, ".json"), (names.HISTORY_DIR, ".ad")):
        for path in (folder / sub).glob(f"{node}.*{suffix}"):
            tail = path.name[len(node) + 1 : -len(suffix)]
            if tail.isdigit():
                attempts.append(int(tail))
    return max(attempts) if attempts else None


def why_report(run_dir: Path, node: str, status: RunStatus | None, folder: Path) -> list[str]:
    """The lines of `dag why`: state and reason, the last attempt's record, its stderr tail, its job ad."""
    lines = [f"node {node}"]
    if status is not None:
        state = status.nodes.get(node)
        if state is None and node not in status.nodes:
            lines.append("  state: not in this DAG (or not seen yet)")
        else:
            lines.append(f"  state: {state.value if state else 'unknown'}")
        if status.reasons.get(node):
            lines.append(f"  reason: {status.reasons[node]}")
    attempt = _latest_attempt(folder, node)
    if attempt is None:
        lines.append("  no attempt has finished yet (no stats record or job ad)")
        return lines
    record_path = folder / names.stats_record(node, attempt)
    if record_path.exists():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        lines.append(f"  last attempt ({record_path.relative_to(folder)}):")
        for key in RECORD_FIELDS:
            if record.get(key) is not None:
                lines.append(f"    {key}: {record[key]}")
        tail = record.get("stderr_tail") or []
        if tail:
            lines.append(f"  last {len(tail)} stderr lines:")
            lines += [f"    | {line}" for line in tail]
    else:
        lines.append(f"  attempt {attempt}: no stats record came back (the pilot did not finish)")
    ad_path = folder / names.job_ad(node, attempt)
    if ad_path.exists():
        from iceprod_dag.plugins.condor.collect import key_attributes
        from iceprod_dag.stats.classads import is_time_attribute, read_ads

        ads = read_ads(ad_path)
        if ads:
            lines.append(f"  job ClassAd ({ad_path.relative_to(folder)}):")
            for k, v in key_attributes(ads[0]).items():
                when = f" ({_utc(v)})" if is_time_attribute(k, v) else ""
                lines.append(f"    {k} = {v}{when}")
    return lines


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


@dag_command.command("why")
@RUN_ARG
@click.argument("node")
def why_command(run_dir: Path, node: str) -> None:
    """Explain NODE of RUN: state, exit code, hold reason, failure category, peaks, stderr tail, job ad."""
    info = run_info(run_dir)
    site = site_for(run_dir)
    try:
        status: RunStatus | None = site.status(run_dir)
    except IceprodDagError as exc:
        click.echo(f"warning: no live status: {exc}", err=True)
        status = None
    try:
        site.collect(run_dir)  # fetch the newest job ads before explaining
    except IceprodDagError as exc:
        click.echo(f"warning: collecting failed: {exc}", err=True)
    folder = Path(info.get("submit_dir") or run_dir)
    click.echo("\n".join(why_report(run_dir, node, status, folder)))
