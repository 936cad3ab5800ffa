"""Pure translation from a site configuration to HTCondor submit commands, DAG lines and DAGMan options.

Nothing here touches the pool or the disk: text and mappings in, text and mappings out, so every rule is
unit-tested against expected values (tests/test_condor_translate.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from iceprod_dag.common import units
from iceprod_dag.plugins.condor.siteconfig import SiteConfig

#: marks the block the site appends to a compiled submit file, so applying it twice is a no-op
ADDITIONS_MARK = "# iceprod-dag condor site additions"
DAG_MARK = "# iceprod-dag condor site lines"
ATTEMPT_SCRIPT = "iceprod_attempt.sh"
#: the attempt number the pilot and the job ad get: DAGMan's $(retry), continued across resubmissions
ATTEMPT_MACRO = "iceprod_attempt"
#: set (VARS ALL_NODES) in a DAG submitted again, so attempt numbers continue after the earlier ones
RESUBMITTED_MACRO = "iceprod_resubmitted"
DAGMAN_CONFIG = "dagman.config"
#: empty copies of the jobs' output folders, sent as inputs (see apply_additions)
EMPTY_DIRS = "empty"
#: the submit macro the attempt script sets for a retry needing more memory; appended to the pilot's arguments
MEMORY_ARGS_MACRO = "iceprod_memory_args"
#: HoldReasonCode 1 is a user's condor_hold: never removed behind the user's back
SYSTEM_HOLD = "JobStatus == 5 && HoldReasonCode =!= 1"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cvmfs_attribute(repo: str) -> str:
    """The slot attribute glideins advertise for a mounted CVMFS repository."""
    return "HAS_CVMFS_" + re.sub(r"[.-]", "_", repo)


def requirements_clause(cfg: SiteConfig) -> str | None:
    """The site's constraints on execute slots as one ClassAd expression, or None."""
    req = cfg.requirements
    parts: list[str] = []
    if req.get("os"):
        parts.append("(" + " || ".join(f"OpSysAndVer == {_quote(o)}" for o in req["os"]) + ")")
    if req.get("arch"):
        parts.append("(" + " || ".join(f"Arch == {_quote(a)}" for a in req["arch"]) + ")")
    parts += [f"({cvmfs_attribute(repo)} =?= true)" for repo in req.get("cvmfs", ())]
    if req.get("expression"):
        parts.append(f"({req['expression']})")
    return " && ".join(parts) or None


def condor_submit_additions(cfg: SiteConfig) -> dict[str, str]:
    """Submit commands the site adds to every task's submit file (later lines override the compiler's)."""
    add: dict[str, str] = {}
    if cfg.accounting_group:
        add["accounting_group"] = cfg.accounting_group
    if cfg.accounting_group_user:
        add["accounting_group_user"] = cfg.accounting_group_user
    if cfg.project_name:
        add["+ProjectName"] = _quote(cfg.project_name)
    if cfg.desired_sites:
        add["+DESIRED_Sites"] = _quote(",".join(cfg.desired_sites))
    gpu = cfg.requirements.get("gpu") or {}
    if "min_capability" in gpu:
        add["gpus_minimum_capability"] = str(gpu["min_capability"])
    if "min_memory" in gpu:
        add["gpus_minimum_memory"] = str(units.parse_size_mb(gpu["min_memory"]))
    if cfg.container_image:
        if cfg.container_attribute == "container_image":
            add["universe"] = "container"
            add["container_image"] = cfg.container_image
        else:
            add["+SingularityImage"] = _quote(cfg.container_image)
    creds = cfg.credentials
    if creds.get("token_file"):
        add["scitokens_file"] = creds["token_file"]
    if creds.get("oauth_services"):
        add["use_oauth_services"] = ",".join(creds["oauth_services"])
    if creds.get("proxy"):
        add["x509userproxy"] = creds["proxy"]
    if cfg.remove_held_after_s:
        remove = f"({SYSTEM_HOLD} && time() - EnteredCurrentStatus > {cfg.remove_held_after_s})"
        add["periodic_remove"] = remove
    for name, value in cfg.extra_attributes.items():
        bare = name[3:] if name.startswith("My.") else name.lstrip("+")
        add[f"My.{bare}"] = value
    for name, value in cfg.submit_commands.items():
        if name.lower() == "periodic_remove" and "periodic_remove" in add:
            add["periodic_remove"] = f"({add['periodic_remove']}) || ({value})"
        else:
            add[name.lower()] = value
    return add


_LINE = re.compile(r"^\s*([+A-Za-z_][A-Za-z0-9_.+]*)\s*=\s*(.*?)\s*$")


def keep_input_paths(inputs: str) -> str:
    """transfer_input_files that keep their folders: HTCondor puts `specs/a.json` at the sandbox top as
    `a.json`, while the pilot reads `specs/a.json`, so a file inside a folder is sent as its top folder."""
    out: list[str] = []
    for item in (i.strip() for i in inputs.split(",")):
        if not item:
            continue
        if "/" in item and "://" not in item and not item.startswith("/"):
            item = item.split("/", 1)[0]
        if item not in out:
            out.append(item)
    return ",".join(out)


def apply_additions(submit_text: str, additions: Mapping[str, str], task: str, memory_retry: bool) -> str:
    """A compiled submit file with the site's commands added before its `queue` line.

    `requirements` is AND-ed with the compiler's own. The pilot's `--attempt` becomes $(iceprod_attempt)
    and its arguments gain $(iceprod_memory_args); the attempt script sets them when DAGMan submits a retry
    (memory_retry) or a node of a resubmitted run (attempt numbers continue after the earlier records).
    """
    if ADDITIONS_MARK in submit_text:
        return submit_text
    lines = submit_text.rstrip("\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines or not lines[-1].strip().lower().startswith("queue"):
        raise ValueError("submit file does not end with a queue statement")
    queue = lines.pop()
    existing: dict[str, str] = {}
    for line in lines:
        if (m := _LINE.match(line)) and not line.lstrip().startswith("#"):
            existing[m.group(1).lower()] = m.group(2)
    out = [*lines, ADDITIONS_MARK]
    add = dict(additions)
    site_req = add.pop("requirements", None)
    if site_req:
        own = existing.get("requirements")
        out.append(f"requirements = ({own}) && ({site_req})" if own else f"requirements = {site_req}")
    inputs = existing.get("transfer_input_files")
    if inputs is not None and "transfer_input_files" not in add:
        kept = keep_input_paths(inputs)
        outputs = [o.strip() for o in existing.get("transfer_output_files", "").split(",") if o.strip()]
        # an output folder the job never made fails the whole transfer (and leaves the slot waiting
        # for the job lease): send each one empty, so it exists however early the job dies
        empty = ",".join(f"{EMPTY_DIRS}/{o}" for o in outputs if "/" not in o and "." not in o)
        kept = ",".join(x for x in (kept, empty) if x)
        if kept != inputs:
            out.append(f"transfer_input_files = {kept}")
    out += [f"{key} = {value}" for key, value in add.items()]
    args = existing.get("arguments")
    if args:
        inner = args[1:-1] if args.startswith('"') and args.endswith('"') else args
        inner = inner.replace("--attempt $(retry)", f"--attempt $({ATTEMPT_MACRO})")
        out.append(f'arguments = "{inner} $({MEMORY_ARGS_MACRO})"')
    node, memory = task + "_$(job)", int(memory_retry)
    out += [
        f"{ATTEMPT_MACRO} = $(retry)",
        f"{MEMORY_ARGS_MACRO} =",
        # the script runs only for retries and resubmitted runs: first attempts cost nothing extra
        f"if defined {RESUBMITTED_MACRO}",
        f"  include : ./{ATTEMPT_SCRIPT} {node} $(retry) 1 {memory} |",
    ]
    if memory_retry:
        out += ["elif $(retry)", f"  include : ./{ATTEMPT_SCRIPT} {node} $(retry) 0 1 |"]
    out.append("endif")
    out.append(queue)
    return "\n".join(out) + "\n"


def site_requirements(cfg: SiteConfig) -> dict[str, str]:
    """condor_submit_additions plus the requirements clause, the full mapping apply_additions takes."""
    add = condor_submit_additions(cfg)
    clause = requirements_clause(cfg)
    if clause:
        add["requirements"] = clause
    return add


def dag_lines(cfg: SiteConfig) -> list[str]:
    """Lines the site appends to a compiled DAG: category limits and the DAGMan config file."""
    lines = [DAG_MARK]
    for category, limit in sorted((cfg.dagman.get("categories") or {}).items()):
        lines.append(f"MAXJOBS {category} {limit}")
    if cfg.dagman.get("config"):
        lines.append(f"CONFIG {DAGMAN_CONFIG}")
    return lines


def dagman_config_text(cfg: SiteConfig) -> str:
    """The DAGMan configuration file of a run from the site's dagman.config knobs."""
    items = (cfg.dagman.get("config") or {}).items()
    return "".join(f"{key} = {str(v).lower() if isinstance(v, bool) else v}\n" for key, v in sorted(items))


def from_dag_options(
    cfg: SiteConfig, batch_name: str | None = None, resubmit: bool = False
) -> dict[str, Any]:
    """Options for htcondor2.Submit.from_dag (condor_submit_dag's command-line flags)."""
    dm = cfg.dagman
    opts: dict[str, Any] = {}
    for key, flag in (
        ("max_idle", "MaxIdle"),
        ("max_jobs", "MaxJobs"),
        ("max_pre", "MaxPre"),
        ("max_post", "MaxPost"),
        ("priority", "Priority"),
    ):
        if key in dm:
            opts[flag] = int(dm[key])
    name = dm.get("batch_name") or batch_name
    if name:
        opts["BatchName"] = name
    # a first submit replaces leftovers of an earlier failed submit; a resubmit must keep the rescue DAG
    opts["Force" if not resubmit else "UpdateSubmit"] = True
    return opts


def attempt_script_text() -> str:
    """The attempt script: submit commands for a retry or a node of a resubmitted run.

    DAGMan runs it (as the DAG's owner, /bin/sh only) when it submits such a node: `$1` node, `$2` retry,
    `$3` 1 to continue attempt numbers after the run folder's stats records and job ads (a resubmitted
    run, whose DAGMan counts retries from 0 again), `$4` 1 to ask for more memory: the newest earlier
    attempt's `next_memory_mb` (1.5x the peak of an attempt the pilot killed over memory) becomes
    request_memory and the pilot's --memory-mb.
    """
    return f"""#!/bin/sh
# iceprod-dag attempt script (written by the condor site); prints submit commands for DAGMan.
cd "$(dirname "$0")" || exit 0
node=$1; attempt=$2
if [ "$3" = 1 ]; then
  last=-1
  for f in stats/"$node".*.json history/"$node".*.ad; do
    k=${{f#*/"$node".}}; k=${{k%.*}}
    case $k in ''|*[!0-9]*) continue ;; esac
    [ "$k" -gt "$last" ] && last=$k
  done
  attempt=$((last + 1))
  echo "{ATTEMPT_MACRO} = $attempt"
fi
[ "$4" = 1 ] || exit 0
n=$attempt
while [ "$n" -gt 0 ]; do
  n=$((n - 1))
  mb=$(sed -n 's/.*"next_memory_mb": *\\([0-9][0-9]*\\).*/\\1/p' "stats/$node.$n.json" 2>/dev/null | head -n 1)
  if [ -n "$mb" ]; then
    printf 'request_memory = %s\\n{MEMORY_ARGS_MACRO} = --memory-mb %s\\n' "$mb" "$mb"
    exit 0
  fi
done
exit 0
"""
