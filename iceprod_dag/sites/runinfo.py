"""A submitted run's run.json (written by its site when it submitted the run) and the site plugin it names."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import RunNotFoundError
from iceprod_dag.sites.base import Site


def run_info(run_dir: Path) -> dict[str, Any]:
    """The run.json a site wrote when it submitted the run."""
    path = run_dir / names.RUN_INFO
    try:
        info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunNotFoundError(f"{run_dir}: not a submitted run (no {names.RUN_INFO})") from exc
    except ValueError as exc:
        raise RunNotFoundError(f"{path}: not valid JSON: {exc}") from exc
    return info


def site_for(run_dir: Path) -> Site:
    """The site plugin that runs this run, built with the options it was submitted with."""
    from iceprod_dag.sites.registry import load_site

    info = run_info(run_dir)
    return load_site(str(info.get("site", "local")), dict(info.get("options") or {}))


def update_run_info(run_dir: Path, **fields: Any) -> None:
    """Merge fields into run.json (site, options, driver pid, exit status...), replacing it atomically."""
    path = Path(run_dir) / names.RUN_INFO
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    info.update(fields)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
