"""iceprod-dag: turn a dataset into an HTCondor DAGMan workflow and run it on a site.

The public API is re-exported lazily: the pilot zipapp ships this package without its
third-party dependencies, so importing ``iceprod_dag`` must not import them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "IceprodDagError": "iceprod_dag.common.exceptions",
    "ConfigError": "iceprod_dag.common.exceptions",
    "load_dataset": "iceprod_dag.dataset.loader",
    "compile_dataset": "iceprod_dag.compile.compiler",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'iceprod_dag' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
