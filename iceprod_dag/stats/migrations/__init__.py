"""Alembic migrations of the stats database, run programmatically (no alembic.ini needed).

``upgrade(engine)`` is ``alembic upgrade head`` on that engine; ``alembic_config(engine)`` gives a Config for
other alembic commands (``command.revision(cfg, autogenerate=True, ...)`` when the models change).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

HERE = Path(__file__).resolve().parent


def alembic_config(engine: Engine) -> Config:
    """An alembic Config whose env.py runs on a connection of this engine."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    # '%' is alembic's interpolation character: escape it in URLs holding encoded passwords
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to a revision (head by default); safe to run on an up-to-date database."""
    command.upgrade(alembic_config(engine), revision)
