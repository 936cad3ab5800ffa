"""Every on-disk name of a run folder, in one place: nobody guesses a path.

Standard library only: the pilot and the submit side share these names.

A run folder (RUNDIR) made by ``iceprod-dag compile`` holds::

    dataset.dag                 the DAGMan workflow
    dataset.dot                 the DOT drawing of the task graph
    dataset.json                the validated, normalized dataset the DAG was compiled from
    <task>.sub                  one submit file per task
    final.sub                   the FINAL node that marks the dataset done
    specs/<task>.json           one task spec per task (resolved per job by the pilot)
    pilot.pyz                   the pilot zipapp every node runs
    dataset.dag.nodes.log       the nodes' job event log (HTCondor format)
    dataset.dag.status          NODE_STATUS_FILE
    dataset.dag.jobstate.log    JOBSTATE_LOG
    dataset.dag.rescueNNN       rescue DAGs
    dataset.dag.halt            DAGMan's halt file: present while the run is suspended
    stats/<node>.<attempt>.json one pilot stats record per attempt
    logs/<node>/<attempt>/      stdout, stderr and pilot.log of one attempt
    history/<node>.<attempt>.ad the job ClassAd of one finished attempt (condor_history -long format)
    run.json                    which site runs it and how to find it there
    run.lock                    locked (fcntl) by the one process that runs the folder; holds its pid
"""

from __future__ import annotations

import os
import re

DAG_FILE = "dataset.dag"
DOT_FILE = "dataset.dot"
DATASET_FILE = "dataset.json"
FINAL_SUBMIT = "final.sub"
FINAL_NODE = "FINAL"
FINAL_SCRIPT = "final.sh"
PILOT_ZIPAPP = "pilot.pyz"
SPECS_DIR = "specs"
STATS_DIR = "stats"
LOGS_DIR = "logs"
HISTORY_DIR = "history"
RUN_INFO = "run.json"
RUN_LOCK = "run.lock"
#: prefix of the temporary folder a compile writes before renaming it to the run folder
COMPILING_PREFIX = ".compiling-"
#: batch sites (slurm, sge, pbs, lsf): the submit-side watcher's folder, rescue state, exit markers
BATCH_DIR = "batch"
BATCH_STATE = "batch/state.json"
BATCH_EXIT_DIR = "batch/exit"
BATCH_OUT_DIR = "batch/out"
BATCH_SCRIPTS_DIR = "batch/scripts"
BATCH_WATCHER_LOG = "batch/watcher.log"
DONE_MARKER = "dataset.done"

NODES_LOG_SUFFIX = ".nodes.log"
STATUS_SUFFIX = ".status"
JOBSTATE_SUFFIX = ".jobstate.log"
RESCUE_SUFFIX = ".rescue"
HALT_SUFFIX = ".halt"

STDOUT = "stdout"
STDERR = "stderr"
PILOT_LOG = "pilot.log"


def submit_file(task: str) -> str:
    """Submit file of one task, relative to the run folder."""
    return f"{task}.sub"


def spec_file(task: str) -> str:
    """Task spec of one task, relative to the run folder."""
    return f"{SPECS_DIR}/{task}.json"


def node_name(task: str, job: int) -> str:
    """DAG node name of one job of one task."""
    return f"{task}_{job}"


def split_node_name(node: str) -> tuple[str, int] | None:
    """Inverse of node_name; None for nodes that are not task jobs (FINAL, hand-written DAG nodes)."""
    task, sep, job = node.rpartition("_")
    if not sep or not job.isdigit():
        return None
    return task, int(job)


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders the digits in a name by value: ``n_2`` before ``n_10``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(name) if part)


def stats_record(node: str, attempt: int) -> str:
    """Stats record of one attempt, relative to the run folder."""
    return f"{STATS_DIR}/{node}.{attempt}.json"


def attempt_log_dir(node: str, attempt: int) -> str:
    """Folder of one attempt's stdout, stderr and pilot.log, relative to the run folder."""
    return f"{LOGS_DIR}/{node}/{attempt}"


def job_ad(node: str, attempt: int) -> str:
    """Job ClassAd of one finished attempt, relative to the run folder."""
    return f"{HISTORY_DIR}/{node}.{attempt}.ad"


def nodes_log(dag_file: str) -> str:
    """DAGMan's default node job event log for a DAG file."""
    return dag_file + NODES_LOG_SUFFIX


def status_file(dag_file: str) -> str:
    return dag_file + STATUS_SUFFIX


def jobstate_log(dag_file: str) -> str:
    return dag_file + JOBSTATE_SUFFIX


def halt_file(dag_file: str) -> str:
    """DAGMan's halt file of a DAG: while it exists no new node job or PRE script starts."""
    return dag_file + HALT_SUFFIX


def rescue_file(dag_file: str, number: int) -> str:
    """DAGMan's rescue DAG name: dataset.dag.rescue001."""
    return f"{dag_file}{RESCUE_SUFFIX}{number:03d}"


def find_dag_file(run_dir: str) -> str:
    """The DAG file of a run folder: ours, or the only *.dag a hand-written run holds."""
    ours = os.path.join(run_dir, DAG_FILE)
    if os.path.exists(ours):
        return ours
    dags = sorted(f for f in os.listdir(run_dir) if f.endswith(".dag"))
    if len(dags) != 1:
        raise FileNotFoundError(f"{run_dir}: expected one .dag file, found {len(dags)}")
    return os.path.join(run_dir, dags[0])
