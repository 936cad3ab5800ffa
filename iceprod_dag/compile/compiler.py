"""compile: turn a validated dataset into a DAGMan workflow in a run folder (layout in iceprod_dag.common.names)."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import IceprodDagError
from iceprod_dag.compile.dagwriter import dot_graph, write_dag
from iceprod_dag.compile.submitfile import FINAL_SCRIPT, final_submit_file, task_submit_file
from iceprod_dag.compile.taskspec import task_spec_json
from iceprod_dag.dataset.loader import dataset_to_json
from iceprod_dag.dataset.model import Dataset
from iceprod_dag.dataset.prestage import apply_prestage

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CompileResult:
    """Where compile put the workflow and how big it is."""

    run_dir: Path
    dag_file: Path
    nodes: int
    files: list[Path]


def _write_text(path: Path, text: str, mode: int | None = None) -> Path:
    path.write_text(text, encoding="utf-8")
    if mode is not None:
        os.chmod(path, mode)
    return path


def compile_dataset(
    dataset: Dataset,
    run_dir: str | Path,
    progress: Callable[[int], None] | None = None,
    with_pilot: bool = True,
) -> CompileResult:
    """Write the run folder; the same dataset always gives byte-identical text files."""
    run_dir = Path(run_dir)
    dataset = apply_prestage(dataset)
    dag_path = run_dir / names.DAG_FILE
    if dag_path.exists() and (run_dir / names.RUN_INFO).exists():
        raise IceprodDagError(f"{run_dir} holds a submitted run; compile into a new folder")
    for sub in (names.SPECS_DIR, names.STATS_DIR, names.LOGS_DIR, names.HISTORY_DIR):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    files = [_write_text(run_dir / names.DATASET_FILE, dataset_to_json(dataset) + "\n")]
    for task in dataset.tasks:
        files.append(_write_text(run_dir / names.spec_file(task.name), task_spec_json(dataset, task)))
        files.append(_write_text(run_dir / names.submit_file(task.name), task_submit_file(dataset, task)))
    files.append(_write_text(run_dir / names.FINAL_SUBMIT, final_submit_file()))
    files.append(_write_text(run_dir / names.FINAL_SCRIPT, FINAL_SCRIPT, mode=0o755))
    files.append(_write_text(run_dir / names.DOT_FILE, dot_graph(dataset)))
    with open(dag_path, "w", encoding="utf-8", buffering=1 << 20) as out:
        write_dag(dataset, out, progress)
    files.append(dag_path)
    if with_pilot:
        files.append(_install_pilot(run_dir / names.PILOT_ZIPAPP))
    nodes = dataset.jobs * len(dataset.tasks) + 1
    log.info("compiled %s: %d nodes in %s", dataset.name, nodes, run_dir)
    return CompileResult(run_dir=run_dir, dag_file=dag_path, nodes=nodes, files=files)


def _install_pilot(target: Path) -> Path:
    from iceprod_dag.compile.pilotzip import build_zipapp

    build_zipapp(target)
    return target
