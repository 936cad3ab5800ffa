"""Entry point of the `iceprod-dag` command: a click group whose subcommands live in one module each.

Subcommand modules are imported lazily, so `iceprod-dag --help` and scripts stay fast.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from iceprod_dag.common.exceptions import IceprodDagError

#: module (in iceprod_dag.cli) -> names of the click commands or groups it defines
COMMAND_MODULES: dict[str, list[str]] = {
    "dataset_cmds": ["validate", "compile", "config"],
    "submit_cmd": ["submit"],
    "control": ["status", "watch", "remove", "hold", "release", "suspend", "resume", "resubmit", "dag"],
    "pilot_cmd": ["pilot"],
    "offline_cmd": ["run-offline"],
    "iceprod_cmd": ["import-iceprod"],
    "stats_cmd": ["import-stats", "sync", "stats"],
    "web_cmd": ["serve", "user"],
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({name for names in COMMAND_MODULES.values() for name in names})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for module, names in COMMAND_MODULES.items():
            if cmd_name in names:
                mod = importlib.import_module(f"iceprod_dag.cli.{module}")
                return getattr(mod, cmd_name.replace("-", "_") + "_command")
        return None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display; only errors and results.")
@click.version_option(package_name="iceprod-dag")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """iceprod-dag: compile datasets into HTCondor DAGMan workflows and run them on a site."""
    level = logging.WARNING - 10 * verbose if not quiet else logging.ERROR
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet


def main() -> None:
    """Run the CLI; our own errors print one clear message and exit with their exit code."""
    try:
        result = cli.main(standalone_mode=False)
        # without standalone mode click returns ctx.exit()'s code instead of exiting
        sys.exit(result if isinstance(result, int) else 0)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except IceprodDagError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
