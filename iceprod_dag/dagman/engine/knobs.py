"""DAGMan's configuration knobs the engine honours, read from the DAG's CONFIG file.

The file is HTCondor configuration syntax (``NAME = value`` lines, ``#`` comments, names in any case); knobs
the engine does not act on are left alone, as DAGMan leaves knobs of other daemons alone. Defaults are
condor_dagman 23.x's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from iceprod_dag.common.exceptions import DagSyntaxError
from iceprod_dag.dagman.model import Dag

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


@dataclasses.dataclass(frozen=True)
class Knobs:
    """The knobs that change what the engine runs, and when (0 means no limit)."""

    max_jobs_submitted: int = 0  # DAGMAN_MAX_JOBS_SUBMITTED: node jobs in flight at once
    max_pre_scripts: int = 20  # DAGMAN_MAX_PRE_SCRIPTS: PRE scripts running at once
    max_post_scripts: int = 20  # DAGMAN_MAX_POST_SCRIPTS: POST scripts running at once
    always_run_post: bool = False  # DAGMAN_ALWAYS_RUN_POST: a failed PRE still runs the POST ($RETURN -1004)


_INTS = {
    "DAGMAN_MAX_JOBS_SUBMITTED": "max_jobs_submitted",
    "DAGMAN_MAX_PRE_SCRIPTS": "max_pre_scripts",
    "DAGMAN_MAX_POST_SCRIPTS": "max_post_scripts",
}
_BOOLS = {"DAGMAN_ALWAYS_RUN_POST": "always_run_post"}


def read_knobs(dag: Dag) -> Knobs:
    """The knobs of the DAG's CONFIG file (relative to the DAG's folder), or the defaults without one."""
    if not dag.config_file:
        return Knobs()
    path = Path(dag.config_file)
    path = path if path.is_absolute() else dag.directory / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DagSyntaxError(f"cannot read its CONFIG file {path}: {exc}", path=str(dag.path)) from exc
    values: dict[str, object] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name, value = name.strip().upper(), value.strip()
        if not sep:
            raise DagSyntaxError(f"expected 'NAME = value', got {line!r}", path=str(path), line=number)
        if name in _INTS:
            try:
                values[_INTS[name]] = max(0, int(value))
            except ValueError:
                raise DagSyntaxError(
                    f"{name} must be a whole number, not {value!r}", path=str(path), line=number
                ) from None
        elif name in _BOOLS:
            if value.lower() not in _TRUE | _FALSE:
                raise DagSyntaxError(
                    f"{name} must be True or False, not {value!r}", path=str(path), line=number
                )
            values[_BOOLS[name]] = value.lower() in _TRUE
    return Knobs(**values)  # type: ignore[arg-type]
