"""compile: turn a validated dataset into a DAGMan workflow in a run folder (layout in iceprod_dag.common.names)."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import secrets
import shutil
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
    """Write the run folder; the same dataset always gives byte-identical text files.

    Everything is written to a temporary folder next to run_dir, renamed into place once complete: a run
    folder never holds a partial compile (a kill mid-way leaves only the temporary folder, which a later
    compile does not look at), so a submit never resumes one."""
    run_dir = Path(run_dir)
    dataset = apply_prestage(dataset)
    _refuse_submitted(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(run_dir)
    tmp = run_dir.parent / f"{names.COMPILING_PREFIX}{run_dir.name}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        files = _write_run(dataset, tmp, progress, with_pilot)
        _publish(tmp, run_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already once renamed
    nodes = dataset.jobs * len(dataset.tasks) + 1
    log.info("compiled %s: %d nodes in %s", dataset.name, nodes, run_dir)
    return CompileResult(
        run_dir=run_dir,
        dag_file=run_dir / names.DAG_FILE,
        nodes=nodes,
        files=[run_dir / f.relative_to(tmp) for f in files],
    )


def _remove_abandoned(run_dir: Path) -> None:
    """Delete the temporary folders of compiles into run_dir whose process is gone (killed mid-way)."""
    prefix = f"{names.COMPILING_PREFIX}{run_dir.name}-"
    for folder in run_dir.parent.glob(prefix + "*"):
        pid = folder.name[len(prefix) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            log.info("removing %s, left by a compile that did not finish", folder)
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _refuse_submitted(run_dir: Path) -> None:
    if (run_dir / names.RUN_INFO).exists():
        raise IceprodDagError(f"{run_dir} holds a submitted run; compile into a new folder")


def _write_run(
    dataset: Dataset, folder: Path, progress: Callable[[int], None] | None, with_pilot: bool
) -> list[Path]:
    for sub in (names.SPECS_DIR, names.STATS_DIR, names.LOGS_DIR, names.HISTORY_DIR):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    files = [_write_text(folder / names.DATASET_FILE, dataset_to_json(dataset) + "\n")]
    for task in dataset.tasks:
        files.append(_write_text(folder / names.spec_file(task.name), task_spec_json(dataset, task)))
        files.append(_write_text(folder / names.submit_file(task.name), task_submit_file(dataset, task)))
    files.append(_write_text(folder / names.FINAL_SUBMIT, final_submit_file()))
    files.append(_write_text(folder / names.FINAL_SCRIPT, FINAL_SCRIPT, mode=0o755))
    files.append(_write_text(folder / names.DOT_FILE, dot_graph(dataset)))
    dag_path = folder / names.DAG_FILE
    with open(dag_path, "w", encoding="utf-8", buffering=1 << 20) as out:
        write_dag(dataset, out, progress)
    files.append(dag_path)
    if with_pilot:
        files.append(_install_pilot(folder / names.PILOT_ZIPAPP))
    return files


def _publish(tmp: Path, run_dir: Path) -> None:
    """Move a complete compile from tmp to run_dir: one rename when run_dir is absent or empty."""
    try:
        os.rename(tmp, run_dir)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise IceprodDagError(f"cannot move the compiled run into {run_dir}: {exc}") from exc
    _refuse_submitted(run_dir)
    marker = run_dir / names.DATASET_FILE
    if marker.exists() and marker.read_bytes() == (tmp / names.DATASET_FILE).read_bytes():
        return  # the same dataset, compiled meanwhile (a concurrent submit): the same files are there
    # an earlier compile, or a folder the user made: it stops looking compiled first, then each entry is
    # replaced, the dataset file (what a resubmit looks for) last
    marker.unlink(missing_ok=True)
    for entry in sorted(tmp.iterdir(), key=lambda p: p.name == names.DATASET_FILE):
        target = run_dir / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)


def _install_pilot(target: Path) -> Path:
    from iceprod_dag.compile.pilotzip import build_zipapp

    build_zipapp(target)
    return target
