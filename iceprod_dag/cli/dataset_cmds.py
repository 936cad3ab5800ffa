"""`validate`, `compile` and `config docs`: the commands that read a dataset and write a workflow."""

from __future__ import annotations

from pathlib import Path

import click

from iceprod_dag.cli.progress import progress_bar
from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.compile.compiler import compile_dataset
from iceprod_dag.dataset.loader import load_dataset


@click.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def validate_command(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Check dataset FILES against the schema; report every problem with file, line and field (exit 2)."""
    failed = False
    for path in files:
        try:
            dataset = load_dataset(path)
        except ConfigError as exc:
            failed = True
            for problem in exc.problems:
                click.echo(problem, err=True)
            continue
        if not ctx.obj.get("quiet"):
            click.echo(f"{path}: ok ({dataset.jobs} jobs x {len(dataset.tasks)} tasks)")
    if failed:
        ctx.exit(2)


@click.command("compile")
@click.argument("dataset_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run folder to write the DAG, submit files, task specs and pilot into.",
)
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Override the number of jobs.")
@click.pass_context
def compile_command(ctx: click.Context, dataset_file: Path, run_dir: Path, jobs: int | None) -> None:
    """Compile DATASET_FILE (a dataset YAML or an IceProd JSON config) into a DAGMan workflow in a run folder."""
    dataset = load_dataset(dataset_file, jobs=jobs)
    with progress_bar("compiling", total=dataset.jobs, quiet=ctx.obj.get("quiet", False)) as advance:
        result = compile_dataset(dataset, run_dir, progress=advance)
    click.echo(f"{result.dag_file} ({result.nodes} nodes)")


@click.group("config")
def config_command() -> None:
    """Configuration reference tools."""


@config_command.command("docs")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of standard output (docs/config.md in the repository).",
)
def docs_command(output: Path | None) -> None:
    """Print the reference of every configuration parameter, generated from the schemas."""
    from iceprod_dag.dataset.schemadocs import generate_docs

    text = generate_docs()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
