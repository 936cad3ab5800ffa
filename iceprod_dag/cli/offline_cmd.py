"""`run-offline`: run a dataset's jobs here through the pilot, with no server and no batch system."""

from __future__ import annotations

from pathlib import Path

import click

from iceprod_dag.cli.submit_cmd import prepare_run_dir
from iceprod_dag.dataset.loader import load_dataset
from iceprod_dag.sites.offline import parse_job_range, run_offline


@click.command("run-offline")
@click.argument("dataset_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--jobs", "job_range", default=None, help="Jobs to run, like 0-9 or 0,3,5-7 (default: all).")
@click.option("--task", "task_name", default=None, help="Run only this task (its inputs must already exist).")
@click.option(
    "-o",
    "--output",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the workflow, stats records and logs (default: runs/<dataset name>).",
)
@click.pass_context
def run_offline_command(
    ctx: click.Context, dataset_file: Path, job_range: str | None, task_name: str | None, run_dir: Path | None
) -> None:
    """Run jobs of DATASET_FILE on this machine with no server, writing stats records and logs to a folder.

    Load them into a stats database later with `iceprod-dag import-stats FOLDER`. Running again skips the
    jobs that already succeeded. Exits 1 if any job failed.
    """
    quiet = ctx.obj.get("quiet", False)
    dataset = load_dataset(dataset_file)
    jobs = parse_job_range(job_range, dataset.jobs)
    run_dir, _ = prepare_run_dir(dataset_file, run_dir, quiet)
    click.echo(str(run_dir))

    def show(node: str, ok: bool) -> None:
        if not quiet:
            click.echo(f"{node}: {'ok' if ok else 'FAILED'}")

    result = run_offline(dataset, run_dir, jobs, task_name, on_node=show)
    click.echo(
        f"{len(result.succeeded)} succeeded, {len(result.failed)} failed, {len(result.skipped)} skipped"
    )
    if result.failed:
        ctx.exit(1)
