"""PRE and POST scripts of DAG nodes, run on the submit side with DAGMan's macros, as DAGMan runs them."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

from iceprod_dag.common.exceptions import CommandError
from iceprod_dag.dagman.model import Dag, Node, Script
from iceprod_dag.plugins.batch import state as st
from iceprod_dag.sites.runner import run_command

log = logging.getLogger(__name__)

#: a script that runs longer than this is killed and counts as failed
SCRIPT_TIMEOUT_S = 3600.0


def script_argv(
    node: Node, script: Script, ns: st.NodeState, run: st.RunState, job_return: int | None
) -> list[str]:
    """The script's command line with $JOB, $RETRY, $MAX_RETRIES, $RETURN, $JOBID... expanded word by word."""
    failed = sum(1 for s in run.nodes.values() if s.status == st.FAILED)
    macros = {
        "$JOB": node.name,
        "$RETRY": str(ns.failures),
        "$MAX_RETRIES": str(node.retry),
        "$JOBID": ns.job_id or "",
        "$RETURN": "" if job_return is None else str(job_return),
        "$DAG_STATUS": "0" if failed == 0 else "2",
        "$FAILED_COUNT": str(failed),
    }
    words = []
    # longest first: $RETRY must not eat the start of $RETURN's neighbours
    keys = sorted(macros, key=len, reverse=True)
    for word in shlex.split(script.command):
        for key in keys:
            word = word.replace(key, macros[key])
        words.append(word)
    return words


def run_script(
    node: Node, script: Script, dag: Dag, ns: st.NodeState, run: st.RunState, job_return: int | None = None
) -> int:
    """Run a PRE (job_return None) or POST script; its exit code (-1 if it could not run or timed out)."""
    argv = script_argv(node, script, ns, run, job_return)
    cwd = Path(dag.directory) / (node.directory or "")
    if "/" not in argv[0] and (cwd / argv[0]).exists():
        argv[0] = str(cwd / argv[0])  # DAGMan finds a script next to the DAG, not on PATH
    try:
        run_command(argv, SCRIPT_TIMEOUT_S, cwd=cwd)
        return 0
    except CommandError as exc:
        log.warning("%s script of %s: %s", script.kind, node.name, exc)
        return exc.returncode if exc.returncode is not None else -1
