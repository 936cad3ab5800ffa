"""Alembic migrations of the stats database, run programmatically (no alembic.ini needed).

``upgrade(engine)`` is ``alembic upgrade head`` on that engine; ``alembic_config(engine)`` gives a Config for
other alembic commands (``command.revision(cfg, autogenerate=True, ...)`` when the models change).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent

#: every module that declares tables on ``iceprod_dag.stats.models.Base``: the migration history covers them
#: all, so autogenerate and the models-vs-migrations test must see them all (add yours here)
MODEL_MODULES = [
    "iceprod_dag.stats.models",
    "iceprod_dag.stats.accounts",
    "iceprod_dag.stats.inbox",
]


def load_models(strict: bool = True) -> None:
    """Import every module of MODEL_MODULES so that ``Base.metadata`` holds every table.

    ``strict=False`` only logs a module that fails to import (upgrades do not need the models).
    """
    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
        except Exception:
            if strict:
                raise
            log.warning("cannot import %s: autogenerate would miss its tables", name, exc_info=True)


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
    cfg = alembic_config(engine)
    if revision == "head":
        # already current (the usual case): skip running env.py, which costs more than the whole check
        heads = set(ScriptDirectory.from_config(cfg).get_heads())
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
        if current == heads:
            return
    command.upgrade(cfg, revision)
