"""PRE and POST scripts as DAGMan runs them: the command line with its $MACROS, found from the DAG's folder."""

from __future__ import annotations

import os
import re
import shlex

from iceprod_dag.dagman.engine.executor import Launch
from iceprod_dag.dagman.engine.nodestate import DagStatus, NodeRun
from iceprod_dag.dagman.model import Dag, Script

_MACRO = re.compile(
    r"\$(JOBID|JOB|RETRY|MAX_RETRIES|RETURN|PRE_SCRIPT_RETURN|DAG_STATUS|FAILED_COUNT|NODE_NAME)"
)


def script_macros(run: NodeRun, kind: str, status: DagStatus, failed: int) -> dict[str, str]:
    """The values of the script macros DAGMan documents for one node's PRE or POST script."""
    return {
        "JOB": run.node.name,
        "NODE_NAME": run.node.name,
        "RETRY": str(run.retries),
        "MAX_RETRIES": str(run.node.retry),
        "RETURN": str(run.job_rc),
        "PRE_SCRIPT_RETURN": str(run.pre_rc),
        "JOBID": f"{run.cluster}.0" if kind == "POST" else "",
        "DAG_STATUS": str(int(status)),
        "FAILED_COUNT": str(failed),
    }


def script_launch(dag: Dag, run: NodeRun, script: Script, status: DagStatus, failed: int) -> Launch:
    """The launch of a node's script: macros expanded word by word, run in the node's DIR."""
    macros = script_macros(run, script.kind, status, failed)
    argv = [_MACRO.sub(lambda m: macros[m.group(1)], arg) for arg in shlex.split(script.command)]
    cwd = str(dag.directory / run.node.directory) if run.node.directory else str(dag.directory)
    if argv and not os.path.isabs(argv[0]) and os.path.exists(os.path.join(cwd, argv[0])):
        argv[0] = os.path.join(cwd, argv[0])  # DAGMan finds a script relative to the DAG's directory
    return Launch(argv=argv, cwd=cwd, key=f"{script.kind}:{run.node.name}", script=True)
