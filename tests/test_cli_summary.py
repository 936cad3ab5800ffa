"""`submit` and `watch` as a user sees them: one progress line format, a newline after it when the output is
not a terminal, a summary at the end (done/failed per task, failed nodes in natural order, `dag why`)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

from iceprod_dag.common.names import natural_key
from iceprod_dag.sites.progress import ProgressLine, render_progress

FAILING = """\
name: failing
jobs: 12
tasks:
  - name: make
    command: "echo $(job) > out.txt"
  - name: use
    depends: [make]
    command: "test $(job) -lt 9"
"""
PROGRESS = re.compile(r"^nodes \d+/25 done, \d+ running, \d+ failed \| \d+\.\d jobs/s \| \d+s$", re.M)


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from iceprod_dag.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "ICEPROD_DAG_HOME": str(home), "HOME": str(home)},
        timeout=300,
    )


def test_natural_order() -> None:
    nodes = ["n_10", "n_2", "FINAL", "n_1", "m_3"]
    assert sorted(nodes, key=natural_key) == ["FINAL", "m_3", "n_1", "n_2", "n_10"]


def test_plain_progress_lines_end_with_newlines_and_the_last_is_always_shown() -> None:
    out = io.StringIO()  # not a terminal
    with ProgressLine(out, plain_interval_s=3600) as line:
        for done in range(5):
            line.show(render_progress({"done": done, "running": 1}, 5, 0.5, 3))
    assert out.getvalue() == (
        "nodes 0/5 done, 1 running, 0 failed | 0.5 jobs/s | 3s\n"
        "nodes 4/5 done, 1 running, 0 failed | 0.5 jobs/s | 3s\n"
    )
    assert render_progress({"done": 1, "held": 2, "idle": 3}, 9, None, 61) == (
        "nodes 1/9 done, 0 running, 3 idle, 2 held, 0 failed | 61s"
    )


def test_failed_submit_ends_with_a_summary_and_watch_shows_the_same(tmp_path: Path) -> None:
    dataset = tmp_path / "failing.yaml"
    dataset.write_text(FAILING)
    run = tmp_path / "run"
    submit = cli("submit", str(dataset), "--run-dir", str(run), home=tmp_path)
    assert submit.returncode == 1, submit.stderr
    out = submit.stdout
    assert out.endswith("\n") and PROGRESS.search(out), out
    assert "DAG finished with exit status 1" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  ")}
    assert rows["make"] == ["12", "0", "0"] and rows["use"] == ["9", "3", "0"]
    # natural order; the FINAL node comes last, failed because the DAG did, as DAGMan reports it
    assert "failed nodes (4): use_9, use_10, use_11, FINAL" in out
    assert f"why: iceprod-dag dag why {run} use_9" in out

    watch = cli("watch", str(run), home=tmp_path)
    assert watch.returncode == 1
    assert PROGRESS.search(watch.stdout) and watch.stdout.endswith(out[out.index("DAG finished") :])

    why = cli("dag", "why", str(run), "use_9", home=tmp_path)
    assert "state: failed" in why.stdout and "exit_code: 1" in why.stdout
