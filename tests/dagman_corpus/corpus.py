"""The DAGMan conformance corpus: its cases, how one is laid out to run, and the outcome judged from what ran.

A case is a folder with ``case.dag`` (and, for a recorded case, ``truth.json``). Hand-written cases live in
``cases/<name>/``; generated ones (``gen-NNN``) are made from a seed by :mod:`generator` and only their
``generated/<name>/truth.json`` is committed. Every case's jobs run the shared ``job.sub``/``job.sh`` and its
scripts ``script.sh``; both append ``NODE STEP RETRY EXIT`` lines to ``steps.log`` in the run folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
CASES = HERE / "cases"
GENERATED = HERE / "generated"
SHARED = ("job.sh", "script.sh", "job.sub")
DAG = "case.dag"
N_GENERATED = 200
SEED = 13


def case_names() -> list[str]:
    hand = sorted(p.name for p in CASES.iterdir() if (p / DAG).exists())
    return hand + [f"gen-{i:03d}" for i in range(N_GENERATED)]


def truth_path(case: str) -> Path:
    return (GENERATED if case.startswith("gen-") else CASES) / case / "truth.json"


def truth(case: str) -> dict[str, Any] | None:
    path = truth_path(case)
    return json.loads(path.read_text()) if path.exists() else None


def dag_text(case: str) -> str:
    if case.startswith("gen-"):
        from .generator import generate

        return generate(SEED, int(case[4:]))
    return (CASES / case / DAG).read_text()


def materialize(case: str, dest: Path, uid: int | None = None) -> Path:
    """The case laid out in dest/<case> ready to run (the DAG, the shared job and scripts); chowned to uid."""
    run = dest / case
    run.mkdir(parents=True)
    if not case.startswith("gen-"):
        for p in (CASES / case).iterdir():
            if p.is_file() and p.name != "truth.json":
                shutil.copy2(p, run)
    (run / DAG).write_text(dag_text(case))
    (run / "steps.log").touch()
    os.chmod(run / "steps.log", 0o666)  # scripts (the engine's user) and jobs (a batch user) both append
    for name in SHARED:
        shutil.copy2(HERE / name, run)
    if uid is not None:
        for path in (dest, run, *run.iterdir()):
            os.chown(path, uid, -1)
    return run


class _Shape:
    """What the outcome needs of a case's DAG (nodes, edges, categories), read here so a DAG our parser
    refuses can still be recorded and judged."""

    def __init__(self, path: Path) -> None:
        self.nodes: list[str] = []
        self.final: set[str] = set()
        self.done: set[str] = set()
        self.edges: set[tuple[str, str]] = set()
        self.category: dict[str, str] = {}
        self.max_jobs: dict[str, int] = {}
        for line in path.read_text().splitlines():
            w = line.split()
            if not w or w[0].startswith("#"):
                continue
            key = w[0].upper().replace("_", "-")
            if key in ("JOB", "FINAL") and len(w) >= 3:
                self.nodes.append(w[1])
                if key == "FINAL":
                    self.final.add(w[1])
                if "DONE" in (x.upper() for x in w[3:]):
                    self.done.add(w[1])
            elif key == "DONE":
                self.done.add(w[1])
            elif key == "PARENT" and "CHILD" in (x.upper() for x in w):
                i = [x.upper() for x in w].index("CHILD")
                self.edges |= {(a, b) for a in w[1:i] for b in w[i + 1 :]}
            elif key == "CATEGORY":
                self.category[w[1]] = w[2]
            elif key == "MAXJOBS":
                self.max_jobs[w[1]] = int(w[2])


_LINE = re.compile(r"^(\S+) (PRE|JOB|POST) (\d+) (\S+)(?: (.*))?$")


def _rescue_done(run: Path) -> list[str] | None:
    rescues = sorted(run.glob(DAG + ".rescue[0-9][0-9][0-9]"))
    if not rescues:
        return None
    done = []
    for line in rescues[-1].read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].upper() == "DONE":
            done.append(words[1])
    return sorted(done)


def outcome(run: Path, exit_code: int) -> dict[str, Any]:
    """What happened in a run of the case: per node steps, attempts and state, ordering, exit, rescue DONE."""
    dag = _Shape(run / DAG)
    lines = (run / "steps.log").read_text().splitlines() if (run / "steps.log").exists() else []
    steps: dict[str, list[str]] = {name: [] for name in dag.nodes}
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    running: dict[str, tuple[int, int]] = {}  # job spans (start, end line) per node attempt, for overlaps
    spans: list[tuple[str, int, int]] = []
    for i, line in enumerate(lines):
        m = _LINE.match(line)
        if not m:
            raise AssertionError(f"{run / 'steps.log'}: malformed line {i + 1}: {line!r}")
        node, step, retry, code, extra = m.groups()
        first.setdefault(node, i)
        last[node] = i
        if code == "start":
            running[node] = (i, -1)
            continue
        if step == "JOB" and node in running:
            spans.append((node, running.pop(node)[0], i))
        steps.setdefault(node, []).append(" ".join(x for x in (step, retry, code, extra) if x))
    done = _rescue_done(run)
    nodes: dict[str, dict[str, Any]] = {}
    for name in dag.nodes:
        ran = steps.get(name, [])
        final = name in dag.final
        if done is not None and not final:
            state = "done" if name in done else ("failed" if ran else "unrun")
        elif final:
            last_code = ran[-1].split()[2] if ran else None
            state = "unrun" if not ran else ("done" if last_code == "0" else "failed")
        else:
            # no rescue DAG: DAGMan ended without undone nodes, or by an ABORT-DAG-ON ... RETURN 0
            state = "unrun" if not (ran or name in dag.done) else ("done" if exit_code == 0 else "failed")
        nodes[name] = {
            "state": state,
            "attempts": len({s.split()[1] for s in ran}),
            "steps": ran,
        }
    order = sorted([p, c] for p, c in dag.edges if p in last and c in first and last[p] < first[c])
    overlaps = []
    for cat, limit in dag.max_jobs.items():
        members = {n for n, c in dag.category.items() if c == cat}
        most = _most_concurrent(s for s in spans if s[0] in members)
        overlaps.append([cat, min(most, limit + 1)])  # over the limit is what counts, not by how much
    return {
        "exit": exit_code,
        "nodes": nodes,
        "order": order,
        "rescue_done": done,
        "category_concurrency": sorted(overlaps),
        "job_order": [s.split()[0] for s in lines if s.split()[1] == "JOB" and s.split()[3] == "start"],
    }


def _most_concurrent(spans: Iterable[tuple[str, int, int]]) -> int:
    events = sorted([(a, 1) for _, a, _ in spans] + [(b, -1) for _, _, b in spans])
    most = now = 0
    for _, d in events:
        now += d
        most = max(most, now)
    return most


def comparable(result: dict[str, Any], case: str) -> dict[str, Any]:
    """The parts of an outcome compared with the truth; job_order only where the case asks (serial cases)."""
    if "refused" in result:
        return {"refused": True}  # both refused the DAG file; the messages are each its own
    keep = dict(result)
    if "# corpus: job_order" not in dag_text(case):
        keep.pop("job_order", None)
    return keep


def pool_refusal(run: Path) -> str | None:
    """DAGMan's parse error when it refused the DAG file (it ran nothing), else None."""
    out = run / (DAG + ".dagman.out")
    text = out.read_text() if out.exists() else ""
    if "Failed to parse" not in text:
        return None
    errors = [line.split("ERROR:", 1)[1].strip() for line in text.splitlines() if "ERROR:" in line]
    return (errors[0] if errors else "Failed to parse").replace(f"{run}/", "")


def pool_exit_status(run: Path) -> int | None:
    out = run / (DAG + ".dagman.out")
    m = re.search(r"EXITING WITH STATUS (\d+)", out.read_text()) if out.exists() else None
    return int(m.group(1)) if m else None
