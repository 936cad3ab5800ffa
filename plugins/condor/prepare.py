"""Make a run folder ready for the schedd: copy it under the site's run_root, apply the site's submit
additions to the compiled submit files, and add the attempt script and DAG lines. Idempotent: preparing a
prepared folder changes nothing, so a resubmit can call it again.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from iceprod_dag.common import names
from iceprod_dag.plugins.condor import translate
from iceprod_dag.plugins.condor.siteconfig import SiteConfig

log = logging.getLogger(__name__)

#: first line the compiler writes in a task's submit file; hand-written submit files are left alone
COMPILED_HEADER = "# iceprod-dag: task "


def submit_dir_for(run_dir: Path, cfg: SiteConfig) -> Path:
    """Where the schedd sees the run: run_root/<run folder name>, or the run folder itself."""
    if not cfg.run_root:
        return run_dir
    return Path(cfg.run_root).expanduser().resolve() / run_dir.name


def copy_run(run_dir: Path, target: Path) -> None:
    """Copy the run folder's inputs to the submit-side folder (outputs of an earlier submit are kept)."""
    if target == run_dir:
        return
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(run_dir, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(names.RUN_INFO))


def is_compiled(submit_dir: Path, dag_file: Path) -> bool:
    """A DAG written by `iceprod-dag compile` (the site may add to it), not a hand-written one."""
    return dag_file.name == names.DAG_FILE and (submit_dir / names.DATASET_FILE).exists()


def apply_site(submit_dir: Path, dag_file: Path, cfg: SiteConfig) -> list[Path]:
    """Rewrite the compiled submit files and DAG with the site's additions; return the files written."""
    written: list[Path] = []
    for folder in (names.STATS_DIR, names.LOGS_DIR):
        (submit_dir / translate.EMPTY_DIRS / folder).mkdir(parents=True, exist_ok=True)
    additions = translate.site_requirements(cfg)
    for sub in sorted(submit_dir.glob("*.sub")):
        text = sub.read_text(encoding="utf-8")
        if not text.startswith(COMPILED_HEADER):
            continue
        task = sub.name[: -len(".sub")]
        extra = {**additions, "My.IceProdAttempt": f"$({translate.ATTEMPT_MACRO})"}
        new = translate.apply_additions(text, extra, task, cfg.memory_retry)
        if new != text:
            sub.write_text(new, encoding="utf-8")
            written.append(sub)
    script = submit_dir / translate.ATTEMPT_SCRIPT
    script.write_text(translate.attempt_script_text(), encoding="utf-8")
    os.chmod(script, 0o755)
    written.append(script)
    if cfg.dagman.get("config"):
        conf = submit_dir / translate.DAGMAN_CONFIG
        conf.write_text(translate.dagman_config_text(cfg), encoding="utf-8")
        written.append(conf)
    dag_text = dag_file.read_text(encoding="utf-8")
    if translate.DAG_MARK not in dag_text:
        lines = translate.dag_lines(cfg)
        if len(lines) > 1:
            with open(dag_file, "a", encoding="utf-8") as out:
                out.write(("" if dag_text.endswith("\n") else "\n") + "\n".join(lines) + "\n")
            written.append(dag_file)
    return written


def match_owner(folder: Path) -> None:
    """When we run as root, give the folder's contents the folder's owner.

    HTCondor refuses root-owned jobs and DAGMan runs as the folder's owner, so files root created there
    (the copy, the rewritten submit files, the DAGMan submit file) must belong to that user. A no-op for
    everyone else, and when the folder (or, for a new one, its parent) belongs to root.
    """
    if os.geteuid() != 0:
        return
    st = folder.stat()
    if st.st_uid == 0:
        st = folder.parent.stat()  # a folder we just made under run_root: take run_root's owner
        if st.st_uid == 0:
            return
        os.chown(folder, st.st_uid, st.st_gid)
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            if os.lstat(path).st_uid != st.st_uid:
                os.lchown(path, st.st_uid, st.st_gid)


def mark_resubmitted(dag_file: Path) -> None:
    """Tell the node submit files (VARS) that this DAG ran before, so attempt numbers continue."""
    line = f'VARS ALL_NODES {translate.RESUBMITTED_MACRO}="1"'
    text = dag_file.read_text(encoding="utf-8")
    if line not in text:
        with open(dag_file, "a", encoding="utf-8") as out:
            out.write(("" if text.endswith("\n") else "\n") + line + "\n")
