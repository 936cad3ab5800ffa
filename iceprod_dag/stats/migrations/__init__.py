"""Alembic migrations of the stats database, run programmatically (no alembic.ini needed).

``upgrade(engine)`` is ``alembic upgrade head`` on that engine; ``alembic_config(engine)`` gives a Config for
other alembic commands (``command.revision(cfg, autogenerate=True, ...)`` when the models change).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

HERE = Path(__file__).resolve().parent

#: every module that declares tables on ``iceprod_dag.stats.models.Base``: the migration history covers them
#: all, so autogenerate and the models-vs-migrations test must see them all (add yours here)
MODEL_MODULES = [
    "iceprod_dag.stats.models",
    "iceprod_dag.webui.accounts_models",
    "iceprod_dag.webui.inbox",
]


def load_models() -> None:
    """Import every module of MODEL_MODULES so that ``Base.metadata`` holds every table."""
    for name in MODEL_MODULES:
        importlib.import_module(name)


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
