"""`submit`: compile a dataset (or take a hand-written .dag) and hand the run folder to a site."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from iceprod_dag.cli.progress import progress_bar
from iceprod_dag.cli.summary import run_summary
from iceprod_dag.common import names
from iceprod_dag.common.exceptions import IceprodDagError
from iceprod_dag.compile.compiler import compile_dataset
from iceprod_dag.dataset.loader import dataset_to_json, load_dataset

log = logging.getLogger(__name__)


def prepare_run_dir(dataset_file: Path, run_dir: Path | None, quiet: bool) -> tuple[Path, str | None]:
    """Compile into run_dir, or reuse it when it already holds this same dataset (a resubmit resumes)."""
    dataset = load_dataset(dataset_file)
    run_dir = run_dir or Path("runs") / dataset.name
    existing = run_dir / names.DATASET_FILE
    if existing.exists():
        if existing.read_text(encoding="utf-8") != dataset_to_json(dataset) + "\n":
            raise IceprodDagError(
                f"{run_dir} holds a different version of dataset {dataset.name}; pass another --run-dir"
            )
        log.info("resuming the run in %s", run_dir)
        return run_dir, dataset.site
    with progress_bar("compiling", total=dataset.jobs, quiet=quiet) as advance:
        compile_dataset(dataset, run_dir, progress=advance)
    return run_dir, dataset.site


@click.command("submit")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--site", default=None, help="Site to run on (default: the dataset's options.site, else local)."
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run folder (default: runs/<dataset name>). Submitting again into it resumes the run.",
)
@click.option(
    "--wait/--detach",
    default=None,
    help="Follow the run until it ends (default for local) or return at once (default elsewhere).",
)
@click.option(
    "--site-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Site configuration file (config/sites/*.yaml).",
)
@click.pass_context
def submit_command(
    ctx: click.Context,
    source: Path,
    site: str | None,
    run_dir: Path | None,
    wait: bool | None,
    site_config: Path | None,
) -> None:
    """Submit SOURCE (a dataset YAML, an IceProd JSON config, or a hand-written DAGMan .dag) to a site.

    Prints the run folder, then (with --wait) follows the run, prints a summary (done and failed per task,
    the failed nodes, the `dag why` command for the first) and exits with the DAG's status as DAGMan reports
    it: 0 success, 1 failure, or an ABORT-DAG-ON RETURN value.
    """
    from iceprod_dag.sites.registry import load_site

    quiet = ctx.obj.get("quiet", False)
    if source.suffix == ".dag":
        from iceprod_dag.dagman.parser import parse_dag

        parse_dag(source)  # a DAG that does not parse is exit 2 before any site writes into its folder
        run_dir, default_site = source.resolve().parent, None
    else:
        run_dir, default_site = prepare_run_dir(source, run_dir, quiet)
    site_name = site or default_site or "local"
    options: dict[str, object] = {"quiet": quiet}
    if site_config is not None:
        options["site_config"] = str(site_config)
    if source.suffix == ".dag":
        options["dag_file"] = str(source.resolve())
    plugin = load_site(site_name, options)
    if wait is None:
        wait = site_name == "local"
    click.echo(str(run_dir))
    status = plugin.submit(run_dir, wait=wait)
    if wait and status is not None:
        try:
            click.echo(run_summary(run_dir, plugin.status(run_dir)))
        except IceprodDagError as exc:  # the run ended: its status is the result, the summary a courtesy
            click.echo(f"warning: no summary: {exc}", err=True)
        ctx.exit(status)


def read_run_info(run_dir: Path) -> dict[str, object]:
    """The run.json a site wrote at submit time."""
    path = run_dir / names.RUN_INFO
    try:
        info: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IceprodDagError(f"{run_dir}: not a submitted run (no {names.RUN_INFO})") from exc
    return info
