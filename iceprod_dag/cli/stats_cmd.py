"""`import-stats` and `sync`: load a run folder into a stats database; push a site database to the central one;
`stats`: the failure triage of one run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from sqlalchemy import inspect

from iceprod_dag.common.exceptions import StatsError

ENV_CENTRAL = "ICEPROD_DAG_CENTRAL_DB"


@click.command("import-stats")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--db",
    "db_url",
    default=None,
    help="Stats database URL (default: $ICEPROD_DAG_DB or <data home>/stats.sqlite).",
)
@click.option(
    "--site", default=None, help="Site the records belong to (default: the records' own, or 'offline')."
)
def import_stats_command(folder: Path, db_url: str | None, site: str | None) -> None:
    """Load FOLDER's stats records and job ClassAds into a stats database, exactly once.

    FOLDER is a run folder (for example one written by `iceprod-dag run-offline`). Importing it again is a
    no-op: records already recorded with the same content are skipped.
    """
    from iceprod_dag.stats.db import init_db
    from iceprod_dag.stats.importer import import_folder

    engine = init_db(db_url)
    try:
        result = import_folder(engine, folder, site=site)
    finally:
        engine.dispose()
    rec, ads = result.records, result.ads
    click.echo(
        f"{result.run_dir}: {rec.inserted + rec.updated} stats records imported ({rec.unchanged} already there), "
        f"{ads.inserted} job ClassAds imported ({ads.unchanged} already there)"
    )
    rejected = rec.rejected + ads.rejected
    if rejected:
        lines = [f"  {node} attempt {attempt}: {why}" for node, attempt, why in rejected]
        raise StatsError("stale records not imported (the others were):\n" + "\n".join(lines))


def _existing_source(url: str) -> None:
    """Refuse a source that is not a stats database (instead of creating an empty one)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not os.path.exists(parsed.database):
        raise StatsError(f"source database {parsed.database} does not exist")


@click.command("sync")
@click.option(
    "--from",
    "source_url",
    default=None,
    help="Site database URL (default: $ICEPROD_DAG_DB or <data home>/stats.sqlite).",
)
@click.option("--to", "target_url", default=None, help=f"Central database URL (default: ${ENV_CENTRAL}).")
@click.option("--batch-size", default=2000, show_default=True, help="Jobs per transaction.")
@click.pass_context
def sync_command(ctx: click.Context, source_url: str | None, target_url: str | None, batch_size: int) -> None:
    """Push a site's stats database to the central one (PostgreSQL), idempotently.

    Running it twice changes nothing; if it is interrupted, running it again completes it.
    """
    from iceprod_dag.stats.db import init_db, make_engine, resolve_url
    from iceprod_dag.stats.sync import sync

    target_url = target_url or os.environ.get(ENV_CENTRAL)
    if not target_url:
        raise click.UsageError(f"give the central database with --to URL (or ${ENV_CENTRAL})")
    source_url = resolve_url(source_url)
    _existing_source(source_url)
    source = make_engine(source_url)
    target = init_db(target_url)
    try:
        if "jobs" not in inspect(source).get_table_names():
            raise StatsError(f"{source.url.render_as_string(hide_password=True)} is not a stats database")
        quiet = (ctx.obj or {}).get("quiet", False)

        def progress(res: object) -> None:
            if not quiet:
                click.echo(f"  {res}", err=True)

        result = sync(source, target, batch_size=batch_size, on_batch=progress if not quiet else None)
    finally:
        source.dispose()
        target.dispose()
    click.echo(
        f"synced: {result.datasets} datasets, {result.jobs} jobs, {result.attempts} attempts, "
        f"{result.job_ads} job ClassAds written ({result.batches} batches)"
    )


@click.command("stats")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def stats_command(run: Path, as_json: bool) -> None:
    """Failure triage of RUN from its stats records: per task count, min/mean/p95/max of wall, CPU and peak
    memory against the request, retries, badput (wall time of failed attempts) and its share, and failures
    grouped by category and by the first line of their error."""
    from iceprod_dag.stats.summary import load_run, render, summarize

    try:
        records = load_run(run)
    except StatsError as exc:  # a malformed record is bad input: name it, exit 2
        error = click.ClickException(str(exc))
        error.exit_code = 2
        raise error from None
    summary = summarize(records)
    click.echo(json.dumps(summary, indent=1) if as_json else render(summary, str(run)))
