"""`iceprod-dag serve` (the web UI on waitress) and `iceprod-dag user add/list/token/revoke`."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from iceprod_dag.common.exceptions import IceprodDagError

if TYPE_CHECKING:  # sqlalchemy loads only for the commands that use it
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

ENV_ADMIN_PASSWORD = "ICEPROD_DAG_ADMIN_PASSWORD"


def _engine(db: str | None) -> Engine:
    from iceprod_dag.stats import accounts  # noqa: F401 - the account tables on Base
    from iceprod_dag.stats.db import init_db

    return init_db(db)


def _password(password_file: str | None, prompt: bool) -> str | None:
    if password_file:
        text = sys.stdin.read() if password_file == "-" else Path(password_file).read_text(encoding="utf-8")
        password = text.strip("\r\n")
        if not password:
            raise IceprodDagError(f"{password_file}: the password file is empty")
        return password
    if os.environ.get(ENV_ADMIN_PASSWORD):
        return os.environ[ENV_ADMIN_PASSWORD]
    if prompt:
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return None


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port (0: any free port).")
@click.option(
    "--db", default=None, help="Stats database URL (default: $ICEPROD_DAG_DB or <data home>/stats.sqlite)."
)
@click.option("--threads", default=4, show_default=True, type=int, help="waitress worker threads.")
@click.option("--config", "config_file", default=None, help="Web config file (JSON/YAML).")
@click.option(
    "--insecure-cookies",
    is_flag=True,
    help="Send the session cookie over plain HTTP too (only behind a trusted proxy or for tests).",
)
def serve_command(
    host: str, port: int, db: str | None, threads: int, config_file: str | None, insecure_cookies: bool
) -> None:
    """Serve the web UI and JSON API on waitress (a production WSGI server)."""
    from waitress.server import create_server

    from iceprod_dag.webui import create_app

    explicit: dict[str, object] = {"DB": db}
    if insecure_cookies:
        explicit["COOKIE_SECURE"] = False
    app = create_app(explicit, config_file)
    from iceprod_dag.webui.services import accounts

    db_engine = app.extensions["iceprod_dag_engine"]
    # the same default as every other command: runs submitted from any shell show here unless told otherwise
    click.echo(f"stats database: {db_engine.url.render_as_string(hide_password=True)}", err=True)
    if not accounts.list_users(db_engine):
        click.echo(
            "no users yet: create the first admin with "
            "`iceprod-dag user add admin --role admin --password-file FILE` (same --db)",
            err=True,
        )
    server = create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        ident="iceprod-dag",
        # a pilot's batch of 10,000 stats records is ~6 MB: read it in 256 KB chunks and keep it in memory
        # (waitress's defaults, 8 KB reads and a temporary file above 512 KB, cost ~5% of a batch)
        recv_bytes=256 * 1024,
        inbuf_overflow=16 * 1024 * 1024,
    )
    # the real port matters with --port 0; tests and scripts read this line
    port = server.effective_port  # type: ignore[union-attr]  # set by waitress, missing from types-waitress
    click.echo(f"iceprod-dag web UI on http://{host}:{port}/", err=True)
    sys.stderr.flush()
    try:
        server.run()
    except KeyboardInterrupt:
        pass


@click.group("user")
def user_command() -> None:
    """Users and API tokens of the web UI."""


@user_command.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["user", "production", "admin"]), default="user", show_default=True)
@click.option(
    "--password-file",
    default=None,
    help=f"Read the password from this file ('-': stdin); else ${ENV_ADMIN_PASSWORD}, else a prompt.",
)
@click.option("--no-password", is_flag=True, help="A user that only uses tokens.")
@click.option("--db", default=None, help="Stats database URL.")
def user_add(name: str, role: str, password_file: str | None, no_password: bool, db: str | None) -> None:
    """Create a user (the first admin: `iceprod-dag user add admin --role admin --password-file F`)."""
    from iceprod_dag.webui.services import accounts

    password = None if no_password else _password(password_file, prompt=sys.stdin.isatty())
    if password is None and not no_password:
        raise IceprodDagError("give --password-file, set $ICEPROD_DAG_ADMIN_PASSWORD, or --no-password")
    accounts.add_user(_engine(db), name, role, password)
    click.echo(f"user {name} ({role}) created")


@user_command.command("password")
@click.argument("name")
@click.option("--password-file", default=None, help="Read the new password from this file ('-': stdin).")
@click.option("--db", default=None, help="Stats database URL.")
def user_password(name: str, password_file: str | None, db: str | None) -> None:
    """Set a user's password."""
    from iceprod_dag.webui.services import accounts

    password = _password(password_file, prompt=sys.stdin.isatty())
    if not password:
        raise IceprodDagError("give --password-file or set $ICEPROD_DAG_ADMIN_PASSWORD")
    accounts.set_password(_engine(db), name, password)
    click.echo(f"password of {name} changed")


@user_command.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable the user again instead.")
@click.option("--db", default=None, help="Stats database URL.")
def user_disable(name: str, enable: bool, db: str | None) -> None:
    """Disable a user: their logins end at once, their tokens stop working."""
    from iceprod_dag.webui.services import accounts

    accounts.set_disabled(_engine(db), name, not enable)
    click.echo(f"user {name} {'enabled' if enable else 'disabled'}")


@user_command.command("logout")
@click.argument("name")
@click.option("--db", default=None, help="Stats database URL.")
def user_logout(name: str, db: str | None) -> None:
    """End every web session of a user (a stolen cookie stops working); their API tokens stay."""
    from iceprod_dag.webui.services import accounts

    accounts.end_sessions(_engine(db), name)
    click.echo(f"sessions of {name} ended")


@user_command.command("list")
@click.option("--db", default=None, help="Stats database URL.")
def user_list(db: str | None) -> None:
    """List users and their roles."""
    from iceprod_dag.webui.services import accounts

    for user in accounts.list_users(_engine(db)):
        flag = " (disabled)" if user["disabled"] else ""
        click.echo(f"{user['name']}\t{user['role']}{flag}")


@user_command.command("token")
@click.argument("name")
@click.option(
    "--pilot",
    "dataset",
    type=int,
    default=None,
    help="A pilot token for this dataset id (claim, heartbeat, report, upload logs only).",
)
@click.option("--label", default="", help="A name to tell the token apart.")
@click.option("--expires-days", type=float, default=None, help="Expire after this many days.")
@click.option("--db", default=None, help="Stats database URL.")
def user_token(
    name: str, dataset: int | None, label: str, expires_days: float | None, db: str | None
) -> None:
    """Make an API token for a user (printed once; only its hash is stored)."""
    from iceprod_dag.webui.services import accounts

    _, text = accounts.create_token(
        _engine(db),
        name,
        name=label,
        kind="pilot" if dataset is not None else "api",
        dataset_pk=dataset,
        expires_in_s=expires_days * 86400 if expires_days else None,
    )
    click.echo(text)


@user_command.command("revoke")
@click.argument("token_id", type=int)
@click.option("--db", default=None, help="Stats database URL.")
def user_revoke(token_id: int, db: str | None) -> None:
    """Revoke a token by its id."""
    from iceprod_dag.webui.services import accounts

    accounts.revoke_token(_engine(db), token_id)
    click.echo(f"token {token_id} revoked")
