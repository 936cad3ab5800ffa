"""Seeded random DAGs for the corpus: shapes, retries, failing jobs, PRE/POST results, categories.

``generate(seed, index)`` is deterministic (its own ``random.Random``), so only the recorded truth of a
generated case is committed. The DAGs use the shared job.sub (``VARS CODES``) and script.sh.
"""

from __future__ import annotations

import random


def _codes(rng: random.Random, fail_p: float) -> str:
    """A comma list of exit codes: mostly success, sometimes failing once or for good."""
    r = rng.random()
    if r > fail_p:
        return "0"
    return rng.choice(["1,0", "2,2,0", "1", "3", "1,1,0"])


def generate(seed: int, index: int) -> str:
    rng = random.Random(f"{seed}-{index}")
    n = rng.randint(2, 7)
    names = [f"N{i}" for i in range(n)]
    shape = rng.choice(["chain", "fan", "diamond", "layers", "random"])
    edges: set[tuple[str, str]] = set()
    if shape == "chain":
        edges = {(names[i], names[i + 1]) for i in range(n - 1)}
    elif shape == "fan":
        edges = {(names[0], c) for c in names[1:-1]} | {(c, names[-1]) for c in names[1:-1]}
    elif shape == "diamond":
        edges = {(names[0], c) for c in names[1:]}
    elif shape == "layers":
        cut = max(1, n // 2)
        edges = {(a, b) for a in names[:cut] for b in names[cut:]}
    else:
        edges = {(names[i], names[j]) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.35}
    fail_p = rng.choice([0.0, 0.2, 0.4])
    lines = [f"# generated case: seed {seed}, index {index}, shape {shape}"]
    for name in names:
        lines.append(f"JOB {name} job.sub")
        lines.append(f'VARS {name} CODES="{_codes(rng, fail_p)}"')
        if rng.random() < 0.5:
            lines.append(f"RETRY {name} {rng.randint(1, 2)}")
        if rng.random() < 0.25:
            pre = rng.choice(["0", "0", "1,0", "1"])
            lines.append(f"SCRIPT PRE {name} /bin/sh script.sh PRE $JOB $RETRY {pre}")
        if rng.random() < 0.25:
            post = rng.choice(["ret", "ret", "0", "1,0", "1"])
            lines.append(f"SCRIPT POST {name} /bin/sh script.sh POST $JOB $RETRY {post} $RETURN")
    if rng.random() < 0.3:
        cat = [x for x in names if rng.random() < 0.6]
        for x in cat:
            lines.append(f"CATEGORY {x} limited")
        lines.append("MAXJOBS limited 1")
    by_parent: dict[str, list[str]] = {}
    for a, b in sorted(edges):
        by_parent.setdefault(a, []).append(b)
    for a, kids in by_parent.items():
        lines.append(f"PARENT {a} CHILD {' '.join(kids)}")
    if rng.random() < 0.2:
        lines.append("FINAL F job.sub")
        lines.append('VARS F CODES="0"')
        lines.append("SCRIPT PRE F /bin/sh script.sh PRE $JOB $RETRY 0 $DAG_STATUS $FAILED_COUNT")
    return "\n".join(lines) + "\n"
