"""`pilot build` writes the pilot zipapp; `pilot run` and `pilot multi` run the pilot from the installed package."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from iceprod_dag.common import names

_PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@click.group("pilot")
def pilot_command() -> None:
    """The job wrapper every DAG node runs through."""


@pilot_command.command("build")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(names.PILOT_ZIPAPP),
    show_default=True,
    help="Where to write the zipapp.",
)
def build_command(output: Path) -> None:
    """Build the self-contained pilot zipapp (needs only Python >= 3.8 on the worker)."""
    from iceprod_dag.compile.pilotzip import build_zipapp

    click.echo(build_zipapp(output))


def _passthrough(command: str, args: tuple[str, ...]) -> None:
    from iceprod_dag.pilot.__main__ import main

    sys.exit(main([command, *args], configure_logging=False))


@pilot_command.command("run", context_settings=_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run_command(args: tuple[str, ...]) -> None:
    """Run one job (same options as `python3 pilot.pyz run`; try `pilot run --help`)."""
    _passthrough("run", args)


@pilot_command.command("multi", context_settings=_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def multi_command(args: tuple[str, ...]) -> None:
    """Pilot mode on a queue folder (same options as `python3 pilot.pyz multi`)."""
    _passthrough("multi", args)
