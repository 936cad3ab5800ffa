"""`import-iceprod`: convert an IceProd dataset config (JSON) into an iceprod-dag dataset (YAML)."""

from __future__ import annotations

from pathlib import Path

import click

from iceprod_dag.common.exceptions import ConfigError


@click.command("import-iceprod")
@click.argument("config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Dataset YAML to write.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Number of jobs, when the config has no jobs_submitted (default 1).",
)
@click.option("--name", default=None, help="Dataset name (default: the config file's name).")
@click.option(
    "--temp-url",
    default=None,
    metavar="URL",
    help="Where IceProd's temporary files (job_temp...) live, e.g. file:///scratch/iceprod-temp; "
    "without it those data entries are listed as not converted.",
)
@click.pass_context
def import_iceprod_command(
    ctx: click.Context,
    config_file: Path,
    output: Path,
    jobs: int | None,
    name: str | None,
    temp_url: str | None,
) -> None:
    """Convert the IceProd dataset CONFIG_FILE (JSON) into our dataset format.

    What cannot be converted is printed as warnings and listed at the top of the output file.
    The result is validated before it is written.
    """
    from iceprod_dag.dataset.iceprod.convert import convert, looks_like_iceprod
    from iceprod_dag.dataset.iceprod.write import dataset_yaml
    from iceprod_dag.dataset.loader import load_dataset_dict
    from iceprod_dag.dataset.yamlsource import load_yaml_with_lines, read_document

    # the one loader: its limits (size, nesting, encoding) and errors naming the line apply to JSON too
    config, _lines = load_yaml_with_lines(read_document(config_file), str(config_file))
    if not looks_like_iceprod(config):
        raise ConfigError(
            f"{config_file}: not an IceProd dataset config (no tasks with trays)", path=str(config_file)
        )
    try:
        dataset, notes = convert(config, jobs=jobs, name=name or config_file.stem, temp_url=temp_url)
    except ConfigError as exc:
        raise ConfigError([f"{config_file} {p}" for p in exc.problems], str(config_file)) from None
    load_dataset_dict(
        dataset, source=f"{config_file} (converted)"
    )  # raises ConfigError listing every problem
    output.write_text(dataset_yaml(dataset, notes, config_file.name), encoding="utf-8")
    for note in notes:
        click.echo(f"warning: {note}", err=True)
    if not ctx.obj.get("quiet"):
        click.echo(
            f"{output}: {len(dataset['tasks'])} tasks, {dataset['jobs']} jobs, {len(notes)} not converted"
        )
