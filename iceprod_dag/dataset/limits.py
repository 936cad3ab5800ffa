"""Limits on one input document (dataset YAML, IceProd JSON, site config): bounded work for any file or request.

The CLI and the web server share them through the one YAML loader (iceprod_dag.dataset.yamlsource) and the
dataset loader. Each is set by an ``ICEPROD_DAG_<NAME>`` environment variable, or for the server by the same
key in its config file; docs/config.md lists them (generated from :data:`LIMITS`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from iceprod_dag.common.exceptions import ConfigError

PREFIX = "ICEPROD_DAG_"


@dataclasses.dataclass(frozen=True)
class InputLimits:
    #: bytes of one document (a dataset file, a request body)
    max_document_bytes: int = 4 * 1024 * 1024
    #: values after YAML aliases are expanded (a 400-byte alias bomb expands to hundreds of millions)
    max_yaml_values: int = 250_000
    #: lists and maps inside each other
    max_nesting: int = 100
    #: the dataset's ``jobs``: compile work and DAG size grow with it
    max_jobs: int = 1_000_000


#: the settings, their defaults and what they bound (docs/config.md's "Input limits" table)
LIMITS: dict[str, tuple[str, int, str]] = {
    "MAX_DOCUMENT_BYTES": (
        "max_document_bytes",
        InputLimits.max_document_bytes,
        "Bytes of one dataset file, IceProd config or submitted request body.",
    ),
    "MAX_YAML_VALUES": (
        "max_yaml_values",
        InputLimits.max_yaml_values,
        "Values of one document once YAML aliases (`*name`) are expanded: a small alias bomb is refused.",
    ),
    "MAX_NESTING": (
        "max_nesting",
        InputLimits.max_nesting,
        "Depth of lists and maps inside each other in one document.",
    ),
    "MAX_JOBS": (
        "max_jobs",
        InputLimits.max_jobs,
        "A dataset's `jobs` (also the command line's `--jobs`); the web server's config may set a lower one.",
    ),
}


def from_settings(settings: Mapping[str, Any] | None = None) -> InputLimits:
    """The limits named in ``settings`` (keys ``MAX_JOBS``... or ``ICEPROD_DAG_MAX_JOBS``...), by default the
    environment; unset ones keep their default. A value that is not a positive integer is a ConfigError."""
    source: Mapping[str, Any] = os.environ if settings is None else settings
    values: dict[str, int] = {}
    for key, (attr, _default, _doc) in LIMITS.items():
        raw = source.get(PREFIX + key, source.get(key))
        if raw is None:
            continue
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = 0
        if value < 1:
            raise ConfigError(f"setting {PREFIX}{key}: expected a positive integer, got {raw!r}")
        values[attr] = value
    return InputLimits(**values)
