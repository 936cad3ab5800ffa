"""The local site's engine on real processes: DAGMan semantics, HTCondor-format outputs, the stats database."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import classad2
import htcondor2
import pytest

from iceprod_dag.plugins.local.runner import run_dag

DATA = Path(__file__).parent / "data" / "local"
SH = "executable = /bin/sh\narguments = \"-c '{cmd}'\"\noutput = out/$(name).out\nerror = out/$(name).err\nqueue\n"


def make_run(tmp_path: Path, dag: str, subs: dict[str, str]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "test.dag").write_text(dag)
    for name, cmd in subs.items():
        (run / name).write_text(SH.format(cmd=cmd))
    return run


def run(run_dir: Path, tmp_path: Path, **kw) -> int:
    return run_dag(run_dir, db_url=f"sqlite:///{tmp_path / 'stats.sqlite'}", **kw)


def count(run_dir: Path, node: str) -> int:
    path = run_dir / f"count.{node}"
    return len(path.read_text().splitlines()) if path.exists() else 0


def db_attempts(tmp_path: Path) -> list[tuple[str, int, str]]:
    with sqlite3.connect(tmp_path / "stats.sqlite") as conn:
        q = "select j.node, a.attempt, a.state from attempts a join jobs j on a.job_pk = j.id order by 1, 2"
        return list(conn.execute(q))


def test_diamond_runs_in_order_and_writes_condor_formats(tmp_path: Path) -> None:
    rd = tmp_path / "run"
    shutil.copytree(DATA / "diamond", rd)
    assert run(rd, tmp_path) == 0
    order = (rd / "order.txt").read_text().split()
    assert order[0] == "A" and order[-1] == "D" and sorted(order[1:3]) == ["B", "C"]
    assert all(count(rd, n) == 1 for n in "ABCD")

    events = list(htcondor2.JobEventLog(str(rd / "diamond.dag.nodes.log")).events(0))
    terminated = [e for e in events if e.type == htcondor2.JobEventType.JOB_TERMINATED]
    assert len(terminated) == 4 and all(e["ReturnValue"] == 0 for e in terminated)
    submitted = {e["LogNotes"] for e in events if e.type == htcondor2.JobEventType.SUBMIT}
    assert submitted == {f"DAG Node: {n}" for n in "ABCD"}

    ad = classad2.parseOne((rd / "history" / "D.0.ad").read_text(), classad2.ParserType.Old)
    for attr in ("ClusterId", "ProcId", "DAGManJobId", "Cmd", "Args", "Owner", "JobStatus", "RemoteUserCpu",
                 "RemoteSysCpu", "MemoryUsage", "ResidentSetSize", "RequestCpus", "CompletionDate", "LastRemoteHost",
                 "RemoteWallClockTime"):  # fmt: skip
        assert attr in ad, attr
    assert ad["DAGNodeName"] == "D" and ad["ExitCode"] == 0 and ad["RequestMemory"] == 10
    assert ad["Cmd"] == "/bin/sh"
    assert sorted(n for n, _, _ in db_attempts(tmp_path)) == list("ABCD")
    status = (rd / "diamond.dag.status").read_text()
    assert "NodesDone = 4;" in status and 'Type = "StatusEnd"' in status


def test_fan_out_fan_in_respects_maxjobs_and_priority(tmp_path: Path) -> None:
    rd = tmp_path / "run"
    shutil.copytree(DATA / "fan", rd)
    assert run(rd, tmp_path, cpus=4) == 0
    events = []
    for line in (rd / "times.txt").read_text().splitlines():
        kind, name, t = line.split()
        events.append((float(t), 0 if kind == "end" else 1, name))
    events.sort()
    running, peak, first_work = 0, 0, None
    for _, start, name in events:
        if name.startswith("work"):
            running += 1 if start else -1
            peak = max(peak, running)
            first_work = first_work or name
    assert peak == 2  # MAXJOBS work 2, with 4 cpus free
    assert first_work == "work_11"  # PRIORITY 10 goes first
    assert events[0][2] == "split" and events[-1][2] == "merge"
    assert len(db_attempts(tmp_path)) == 14


def test_retry_until_success_records_every_attempt(tmp_path: Path) -> None:
    dag = 'JOB A a.sub\nVARS A name="A"\nRETRY A 3\n'
    # fails twice, then succeeds; $(name) comes from VARS
    rd = make_run(tmp_path, dag, {"a.sub": "echo x >> count.A; test $(wc -l < count.A) -ge 3"})
    assert run(rd, tmp_path) == 0
    assert count(rd, "A") == 3
    assert db_attempts(tmp_path) == [("A", 0, "failed"), ("A", 1, "failed"), ("A", 2, "done")]
    assert sorted(p.name for p in (rd / "history").iterdir()) == ["A.0.ad", "A.1.ad", "A.2.ad"]


def test_retry_unless_exit_fails_the_dag_and_writes_a_rescue_dag(tmp_path: Path) -> None:
    dag = 'JOB A a.sub\nJOB B b.sub\nJOB C b.sub\nVARS ALL_NODES name="$(JOB)"\nRETRY A 5 UNLESS-EXIT 2\nPARENT B CHILD A\nPARENT A CHILD C\n'
    rd = make_run(tmp_path, dag, {"a.sub": "echo x >> count.A; exit 2", "b.sub": "echo x >> count.$(name)"})
    assert run(rd, tmp_path) == 1
    assert count(rd, "A") == 1 and count(rd, "B") == 1 and count(rd, "C") == 0
    rescue = (rd / "test.dag.rescue001").read_text()
    assert "DONE B" in rescue and "DONE A" not in rescue and "#   A,<ENDLIST>" in rescue
    # a resubmit runs from the rescue DAG: B is not run again
    assert run(rd, tmp_path) == 1
    assert count(rd, "B") == 1 and count(rd, "A") == 2
    assert [a for n, a, _ in db_attempts(tmp_path) if n == "A"] == [0, 1]


def test_post_script_decides_success_with_macros(tmp_path: Path) -> None:
    dag = (
        'JOB A a.sub\nJOB B b.sub\nJOB C b.sub\nVARS ALL_NODES name="$(JOB)"\n'
        "SCRIPT POST A post.sh $JOB $RETURN $JOBID $PRE_SCRIPT_RETURN\n"
        "SCRIPT POST B post.sh $JOB $RETURN $JOBID $PRE_SCRIPT_RETURN\n"
        "PARENT A CHILD B\nPARENT B CHILD C\n"
    )
    rd = make_run(tmp_path, dag, {"a.sub": "exit 3", "b.sub": "echo x >> count.$(name)"})
    post = rd / "post.sh"
    # A's job fails but its POST says success; B's job succeeds but its POST says failure
    post.write_text('#!/bin/sh\necho "$@" >> post.txt\ntest "$1" = A\n')
    post.chmod(0o755)
    assert run(rd, tmp_path) == 1
    lines = [line.split() for line in (rd / "post.txt").read_text().splitlines()]
    assert lines[0][:2] == ["A", "3"] and lines[0][2].endswith(".0") and lines[0][3] == "-1"
    assert lines[1][:2] == ["B", "0"]
    assert count(rd, "B") == 1 and count(rd, "C") == 0
    events = list(htcondor2.JobEventLog(str(rd / "test.dag.nodes.log")).events(0))
    posts = [e for e in events if e.type == htcondor2.JobEventType.POST_SCRIPT_TERMINATED]
    assert [e["ReturnValue"] for e in posts] == [0, 1]


def test_abort_dag_on_returns_its_value_and_stops_the_rest(tmp_path: Path) -> None:
    dag = (
        'JOB A a.sub\nJOB SLOW s.sub\nJOB B s.sub\nVARS ALL_NODES name="$(JOB)"\n'
        "ABORT-DAG-ON A 3 RETURN 7\nPARENT A CHILD B\n"
    )
    rd = make_run(tmp_path, dag, {"a.sub": "sleep 0.2; exit 3", "s.sub": "sleep 30; echo x >> count.$(name)"})
    assert run(rd, tmp_path, cpus=2) == 7
    assert count(rd, "SLOW") == 0 and count(rd, "B") == 0  # SLOW was killed, B never started
    assert (rd / "test.dag.rescue001").exists()


def test_final_node_runs_last_with_dag_status(tmp_path: Path) -> None:
    dag = (
        'JOB A a.sub\nJOB B b.sub\nFINAL F b.sub\nVARS ALL_NODES name="$(JOB)"\nVARS F name="F"\n'
        "SCRIPT PRE F final.sh $DAG_STATUS $FAILED_COUNT\n"
    )
    rd = make_run(tmp_path, dag, {"a.sub": "exit 1", "b.sub": "echo x >> count.$(name)"})
    (rd / "final.sh").write_text('#!/bin/sh\necho "$@" > final.txt\n')
    (rd / "final.sh").chmod(0o755)
    # DAGMan: the FINAL node's outcome is the DAG's (it succeeded here)
    assert run(rd, tmp_path) == 0
    assert (rd / "final.txt").read_text().split() == ["2", "1"]
    assert count(rd, "F") == 1 and count(rd, "B") == 1


def test_pre_skip_defer_and_done_nodes(tmp_path: Path) -> None:
    dag = (
        'JOB A b.sub\nJOB B b.sub\nJOB C b.sub DONE\nJOB D b.sub\nVARS ALL_NODES name="$(JOB)"\n'
        "SCRIPT PRE A skip.sh\nPRE_SKIP A 3\n"
        "SCRIPT DEFER 4 1 PRE B defer.sh\n"
        "PARENT A B C CHILD D\n"
    )
    rd = make_run(tmp_path, dag, {"b.sub": "echo x >> count.$(name)"})
    (rd / "skip.sh").write_text("#!/bin/sh\nexit 3\n")
    (rd / "defer.sh").write_text(
        "#!/bin/sh\necho x >> defer.txt\ntest $(wc -l < defer.txt) -ge 2 || exit 4\n"
    )
    for s in ("skip.sh", "defer.sh"):
        (rd / s).chmod(0o755)
    assert run(rd, tmp_path) == 0
    assert count(rd, "A") == 0  # PRE_SKIP: done without its job
    assert count(rd, "B") == 1 and len((rd / "defer.txt").read_text().splitlines()) == 2
    assert count(rd, "C") == 0 and count(rd, "D") == 1


def test_unsupported_keyword_names_file_and_line(tmp_path: Path) -> None:
    from iceprod_dag.common.exceptions import DagSyntaxError

    rd = make_run(tmp_path, "JOB A b.sub\nSUBDAG EXTERNAL X x.dag\n", {"b.sub": "true"})
    with pytest.raises(DagSyntaxError, match=r"test.dag:2"):
        run(rd, tmp_path)
