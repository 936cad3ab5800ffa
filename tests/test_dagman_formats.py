"""HTCondor's on-disk formats: rescue DAG, job event log, node status file, jobstate log, submit files.

Files under tests/data/dags/condor/ were written by a real HTCondor 23.9 pool (DAGMan and the schedd) running
r1.dag (retries, POST, UNLESS-EXIT) and r3.dag (PRE/POST/PRE_SKIP/DEFER, a signal, FINAL; r3.scripts.trace is
what its scripts were given); our writers must reproduce them byte for byte and our readers must read them.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iceprod_dag.common.exceptions import DagSyntaxError
from iceprod_dag.dagman import nodestatus as ns
from iceprod_dag.dagman.eventlog import EventLogWriter, Usage
from iceprod_dag.dagman.jobstate import JobstateLogWriter, read_jobstate
from iceprod_dag.dagman.parser import load_rescue, parse_dag
from iceprod_dag.dagman.rescue import find_rescue, next_rescue_path, write_rescue
from iceprod_dag.dagman.submitdesc import read_submit
from iceprod_dag.dagman.submitsyntax import _split_new, parse_environment, parse_quantity, split_arguments

htcondor2 = pytest.importorskip("htcondor2")
classad2 = pytest.importorskip("classad2")

REAL = Path(__file__).parent / "data" / "dags" / "condor"
REPO = Path(__file__).resolve().parent.parent
CONDOR_ENV = {"CONDOR_CONFIG": "/srv/htc/condor_config.client"}


@pytest.fixture(scope="module")
def condor_schedd() -> object:
    """The real pool (.ci/services/htcondor-up.sh, safe to run twice); skips when it cannot start."""
    os.environ.update(CONDOR_ENV)
    htcondor2.reload_config()

    def alive() -> bool:
        try:
            htcondor2.Schedd().query("false", projection=["ClusterId"])
            return True
        except Exception:
            return False

    if not alive():
        if os.geteuid() != 0:
            pytest.skip("the HTCondor pool is down and starting it needs root")
        up = subprocess.run(
            ["bash", str(REPO / ".ci/services/htcondor-up.sh")], capture_output=True, timeout=900
        )
        htcondor2.reload_config()
        if up.returncode != 0 or not alive():
            pytest.skip(f"the HTCondor pool did not start: {up.stderr.decode()[-300:]}")
    return htcondor2.Schedd()


# ---- rescue DAG ----------------------------------------------------------------------------------------------------
def test_rescue_matches_dagman(tmp_path: Path) -> None:
    shutil.copy(REAL / "r1.dag", tmp_path / "r1.dag")
    dag = parse_dag(tmp_path / "r1.dag")
    # DAGMan's run: A, B done; C failed after 2 retries (exit 3), E failed on its UNLESS-EXIT value 4; D futile
    out = write_rescue(
        dag,
        done=["A", "B"],
        failed=["C", "E"],
        retries_used={"C": 2, "E": 0},
        last_return={"C": 3, "E": 4},
        now=datetime.datetime(2026, 11, 25, 1, 6, 3, tzinfo=datetime.UTC),
    )
    assert out == tmp_path / "r1.dag.rescue001"
    expected = (REAL / "r1.dag.rescue001").read_text().replace("/srv/htc/dagfmt/r1/r1.dag", str(dag.path))
    assert out.read_text() == expected
    assert find_rescue(tmp_path / "r1.dag") == out and next_rescue_path(tmp_path / "r1.dag").name.endswith(
        "002"
    )
    resumed = load_rescue(tmp_path / "r1.dag")
    assert [n.name for n in resumed.nodes.values() if n.done] == ["A", "B"]
    assert (resumed.nodes["C"].retry, resumed.nodes["E"].retry, resumed.nodes["E"].unless_exit) == (2, 3, 4)


def test_rescue_matches_dagman_with_final_node(tmp_path: Path) -> None:
    # r3: PRE/POST/PRE_SKIP/DEFER cases; Q (PRE failed) and T (signal 9, POST failed) failed, the FINAL node
    # ran after the rescue DAG was written; P needed one retry (its PRE failed once) and still gets RETRY P 2
    shutil.copy(REAL / "r3.dag", tmp_path / "r3.dag")
    dag = parse_dag(tmp_path / "r3.dag")
    assert dag.final == "F" and dag.nodes["V"].post.defer_status == 4  # type: ignore[union-attr]
    out = write_rescue(
        dag,
        done=["P", "S", "V", "W"],
        failed=["Q", "T"],
        retries_used={"P": 1},
        now=datetime.datetime(2026, 11, 25, 1, 24, 12, tzinfo=datetime.UTC),
    )
    expected = (REAL / "r3.dag.rescue001").read_text().replace("/srv/htc/dagfmt/r3/r3.dag", str(dag.path))
    assert out.read_text() == expected
    status = ns.read_node_status(REAL / "r3.status")  # the FINAL node's success made the DAG a success
    assert (status.dag_status, status.status_note, status.count("NodesFailed")) == (
        ns.NodeStatus.DONE,
        "success",
        2,
    )
    details = {n.node: n.details for n in status.nodes}
    assert details["Q"] == "PRE Script failed with status 7"
    assert details["T"] == "Job died on signal 9 and POST Script failed with status 1"


def test_rescue_without_reset_keeps_remaining_retries(tmp_path: Path) -> None:
    shutil.copy(REAL / "r1.dag", tmp_path / "r1.dag")
    dag = parse_dag(tmp_path / "r1.dag")
    out = write_rescue(dag, done=["A"], retries_used={"C": 1}, reset_retries=False)
    lines = out.read_text().splitlines()
    assert "DONE A" in lines and "# 1 of 2 retries already performed; 1 remaining" in lines
    assert "RETRY C 1" in lines and "RETRY E 3 UNLESS-EXIT 4" in lines
    assert load_rescue(tmp_path / "r1.dag").nodes["C"].retry == 1
    when = datetime.datetime(2026, 1, 5, 3, 4, 5, tzinfo=datetime.UTC)
    second = write_rescue(dag, done=["A", "B"], now=when)
    assert second.name == "r1.dag.rescue002" and load_rescue(tmp_path / "r1.dag").nodes["B"].done
    assert "# Created 1/5/2026 03:04:05 UTC\n" in second.read_text()  # DAGMan pads neither month nor day


# ---- job event log -------------------------------------------------------------------------------------------------
def test_event_log_read_by_htcondor(tmp_path: Path) -> None:
    path = tmp_path / "x.dag.nodes.log"
    t0 = 1795568749
    with EventLogWriter(path) as w:
        w.submit(1, 0, node="A", when=t0)
        w.submit(2, 0, node="B", when=t0)
        w.execute(1, 0, slot="slot1_1@local", props={"Cpus": 1, "Memory": 128}, when=t0 + 1)
        w.image_size(1, 0, memory_mb=5, rss_kb=4096, when=t0 + 2)
        usage = Usage(user_cpu_s=3661, sys_cpu_s=2, cpus_usage=0.5, memory_mb_usage=5, memory_mb_request=10)
        usage.disk_kb_usage, usage.disk_kb_request, usage.time_execute_s = 150, 1024, 4
        w.terminated(1, 0, return_value=3, usage=usage, when=t0 + 5)
        w.post_script_terminated(1, 0, node="A", return_value=0, when=t0 + 6)
    with EventLogWriter(path) as w:  # appending later, as a resumed engine does
        w.held(2, 0, "over memory", code=34, subcode=2, when=t0 + 7)
        w.released(2, 0, "by the user", when=t0 + 8)
        w.execute(2, 0, when=t0 + 9)
        w.evicted(2, 0, when=t0 + 10)
        w.execute(2, 0, when=t0 + 11)
        w.terminated(2, 0, signal=9, when=t0 + 12)
        w.submit(3, 1, node="C", when=t0 + 13)
        w.aborted(3, 1, "removed by iceprod-dag", when=t0 + 14)
    events = list(htcondor2.JobEventLog(str(path)).events(stop_after=0))
    T = htcondor2.JobEventType
    got = [(e.type, e.cluster, e.proc, e.timestamp - t0) for e in events]
    assert got == [
        (T.SUBMIT, 1, 0, 0), (T.SUBMIT, 2, 0, 0), (T.EXECUTE, 1, 0, 1), (T.IMAGE_SIZE, 1, 0, 2),
        (T.JOB_TERMINATED, 1, 0, 5), (T.POST_SCRIPT_TERMINATED, 1, 0, 6), (T.JOB_HELD, 2, 0, 7),
        (T.JOB_RELEASED, 2, 0, 8), (T.EXECUTE, 2, 0, 9), (T.JOB_EVICTED, 2, 0, 10), (T.EXECUTE, 2, 0, 11),
        (T.JOB_TERMINATED, 2, 0, 12), (T.SUBMIT, 3, 1, 13), (T.JOB_ABORTED, 3, 1, 14),
    ]  # fmt: skip
    sub_a, sub_c = events[0], events[12]
    assert sub_a["LogNotes"] == "DAG Node: A" and sub_c["LogNotes"] == "DAG Node: C"
    assert sub_a["EventTime"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0))
    assert events[2]["SlotName"] == "slot1_1@local" and events[2]["ExecuteProps"]["Memory"] == 128
    assert events[3]["MemoryUsage"] == 5 and events[3]["ResidentSetSize"] == 4096
    ok = events[4]
    assert ok["TerminatedNormally"] is True and ok["ReturnValue"] == 3
    assert ok["RunRemoteUsage"] == "Usr 0 01:01:01, Sys 0 00:00:02"
    assert (ok["MemoryUsage"], ok["RequestMemory"], ok["CpusUsage"], ok["DiskUsage"]) == (5, 10, 0.5, 150)
    assert ok["TimeExecuteUsage"] == 4
    assert events[5]["DAGNodeName"] == "A" and events[5]["ReturnValue"] == 0
    held = events[6]
    assert (held["HoldReason"], held["HoldReasonCode"], held["HoldReasonSubCode"]) == ("over memory", 34, 2)
    assert events[7]["Reason"] == "by the user"
    killed = events[11]
    assert killed["TerminatedNormally"] is False and killed["TerminatedBySignal"] == 9
    assert "ReturnValue" not in killed
    assert events[13]["Reason"] == "removed by iceprod-dag"


def test_event_log_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "k.log"
    code = (
        "import sys\n"
        "from iceprod_dag.dagman.eventlog import EventLogWriter\n"
        "w = EventLogWriter(sys.argv[1])\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        "    w.submit(i, 0, node=f'n{i}')\n"
        "    w.terminated(i, 0, return_value=0)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)])
    deadline = time.time() + 20
    while (not path.exists() or path.stat().st_size < 200_000) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    text = path.read_text()
    written = text.count("\n...\n")
    assert written > 100 and text.endswith("...\n")  # every write is one whole event
    events = list(htcondor2.JobEventLog(str(path)).events(stop_after=0))
    assert len(events) == written
    assert events[-1].cluster == (written + 1) // 2


def test_real_condor_logs_still_read() -> None:
    # the logs the real pool wrote are read by the same binding we test our writer with
    events = list(htcondor2.JobEventLog(str(REAL / "events.log")).events(stop_after=0))
    assert any(
        e.type == htcondor2.JobEventType.JOB_TERMINATED and e.get("TerminatedBySignal") == 9 for e in events
    )


# ---- node status file ----------------------------------------------------------------------------------------------
def test_node_status_reproduces_dagman_byte_for_byte(tmp_path: Path) -> None:
    text = (REAL / "r1.status").read_text()
    report = ns.read_node_status(REAL / "r1.status")
    assert report.dag_files == ["/srv/htc/dagfmt/r1/r1.dag"]
    assert (report.dag_status, report.status_note) == (ns.NodeStatus.ERROR, "failed")
    assert (
        report.count("NodesDone") == 2
        and report.count("NodesFailed") == 2
        and report.count("NodesFutile") == 1
    )
    c = report.nodes[2]
    assert (c.node, c.status, c.retry_count) == ("C", ns.NodeStatus.ERROR, 2)
    assert c.details == "Job exited with status 3 and POST Script failed with status 3 (after 2 node retries)"
    assert ns.render(report) == text
    # another layout of the same ads (tabs, no comments) goes through the general parser: same result
    other = tmp_path / "other.status"
    other.write_text(text.replace("\n  ", "\n\t").replace(' /* "STATUS_DONE" */', ""))
    again = ns.read_node_status(other)
    assert (again.nodes, again.counts, again.status_note) == (report.nodes, report.counts, "failed")


def test_node_status_written_is_parsed_by_classad2(tmp_path: Path) -> None:
    weird = 'say "hi"\\path\tand\nnewline é'
    nodes = [
        ns.NodeEntry("a", ns.NodeStatus.DONE),
        ns.NodeEntry("b", ns.NodeStatus.SUBMITTED, "idle", procs_queued=1),
        ns.NodeEntry("c", ns.NodeStatus.SUBMITTED, "not_idle", procs_queued=1, procs_held=1),
        ns.NodeEntry("d", ns.NodeStatus.ERROR, weird, retry_count=3),
        ns.NodeEntry("e", ns.NodeStatus.NOT_READY),
        ns.NodeEntry("f", ns.NodeStatus.PRERUN),
    ]
    report = ns.DagStatusReport(["/x/a.dag"], ns.NodeStatus.SUBMITTED, "", nodes, next_update=1795568800)
    path = tmp_path / "a.dag.status"
    ns.write_node_status(path, report)
    ads = list(classad2.parseAds(path.read_text()))
    assert [ad["Type"] for ad in ads] == ["DagStatus"] + ["NodeStatus"] * 6 + ["StatusEnd"]
    head = ads[0]
    assert head["DagFiles"] == ["/x/a.dag"] and head["DagStatus"] == 3
    expect = {
        "NodesTotal": 6,
        "NodesDone": 1,
        "NodesPre": 1,
        "NodesQueued": 2,
        "NodesPost": 0,
        "NodesReady": 0,
    }
    expect |= {"NodesUnready": 1, "NodesFutile": 0, "NodesFailed": 1, "JobProcsHeld": 1, "JobProcsIdle": 1}
    assert {k: head[k] for k in expect} == expect
    assert ads[4]["StatusDetails"] == weird and ads[4]["RetryCount"] == 3 and ads[4]["NodeStatus"] == 6
    assert ads[-1]["NextUpdate"] == 1795568800
    back = ns.read_node_status(path)
    assert back.nodes == nodes and back.counts == expect and back.next_update == 1795568800


def test_node_status_round_trip_of_many_nodes(tmp_path: Path) -> None:
    nodes = [ns.NodeEntry(f"t_{i}", ns.NodeStatus(i % 8), retry_count=i % 3) for i in range(20_000)]
    path = tmp_path / "big.status"
    ns.write_node_status(path, ns.DagStatusReport(["big.dag"], nodes=nodes))
    back = ns.read_node_status(path)
    assert back.nodes == nodes


#: what DAGMan's own r1 run says of each node, read through the one state table
R1_STATES = {"A": "done", "B": "done", "C": "failed", "D": "cancelled", "E": "failed"}


def test_node_states_of_dagmans_status_file_come_from_the_one_table() -> None:
    from iceprod_dag.common.states import JobState, NodeStatus, node_job_state

    report = ns.read_node_status(REAL / "r1.status")
    assert {n.node: n.job_state.value for n in report.nodes} == R1_STATES
    # a SUBMITTED node is refined by DAGMan's StatusDetails and held procs
    assert node_job_state(NodeStatus.SUBMITTED, "idle") is JobState.IDLE
    assert node_job_state(NodeStatus.SUBMITTED, "not_idle") is JobState.RUNNING
    assert node_job_state(NodeStatus.SUBMITTED, "not_idle", procs_held=1) is JobState.HELD


def test_the_local_and_condor_sites_read_dagmans_status_file_with_the_codec(tmp_path: Path) -> None:
    """The local site's status and the condor follower's end-of-run reader, given DAGMan's own file."""
    from iceprod_dag.plugins.condor.follow import final_node_states
    from iceprod_dag.sites.registry import load_site

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(REAL / "r1.dag", run / "r1.dag")
    shutil.copy(REAL / "r1.status", run / "r1.dag.status")
    (run / "run.json").write_text('{"site": "local", "exit_code": 1, "dag": "%s"}' % (run / "r1.dag"))
    status = load_site("local").status(run)
    assert {n: s.value for n, s in status.nodes.items()} == R1_STATES
    assert status.finished and status.exit_code == 1 and status.reasons["D"] == "Had an ancestor node fail"
    states, details = final_node_states(run / "r1.dag.status")
    assert {n: s.value for n, s in states.items()} == R1_STATES and details["C"].startswith("Job exited")
    assert final_node_states(run / "missing.status") == ({}, {})


LIVE_DAG = """\
JOB A a.sub
JOB B b.sub
PARENT A CHILD B
NODE_STATUS_FILE live.dag.status 1 ALWAYS-UPDATE
"""
LIVE_SUB = "executable = /bin/sh\narguments = \"-c '{cmd}'\"\nlog = {name}.log\nqueue\n"


@pytest.mark.condor
def test_a_live_dagman_status_file_is_read_by_the_codec(tmp_path: Path, condor_run_root: Path) -> None:
    """A DAG on the real pool: while A runs, DAGMan's file says so (the codec agrees with the event-log
    follower); when the DAG ends, the file says every node done and the DAG a success."""
    from iceprod_dag.common.states import JobState, NodeStatus
    from iceprod_dag.sites.registry import load_site

    config = (REPO / "config" / "sites" / "local-condor.yaml").read_text()
    (tmp_path / "site.yaml").write_text(
        config.replace("run_root: /srv/htc/runs", f"run_root: {condor_run_root}")
    )
    gate = condor_run_root / "gate-open"
    run = tmp_path / "run"
    run.mkdir()
    (run / "live.dag").write_text(LIVE_DAG)
    (run / "a.sub").write_text(LIVE_SUB.format(name="a", cmd=f"while [ ! -e {gate} ]; do sleep 0.2; done"))
    (run / "b.sub").write_text(LIVE_SUB.format(name="b", cmd="true"))
    options = {"site_config": str(tmp_path / "site.yaml"), "db": f"sqlite:///{tmp_path / 's.sqlite'}"}
    site = load_site("condor", {**options, "quiet": True})
    site.submit(run, wait=False)
    live = condor_run_root / "run" / "live.dag.status"

    def a_running() -> ns.DagStatusReport | None:
        if not live.exists():
            return None
        report = ns.read_node_status(live)
        by_name = {n.node: n for n in report.nodes}
        return report if "A" in by_name and by_name["A"].job_state is JobState.RUNNING else None

    try:
        report = _wait(a_running, 180, "DAGMan's status file showing A running")
        assert report.dag_status is NodeStatus.SUBMITTED and report.next_update > 0
        assert [(n.node, n.status) for n in report.nodes] == [
            ("A", NodeStatus.SUBMITTED),
            ("B", NodeStatus.NOT_READY),
        ]
        assert _wait(lambda: site.status(run).nodes.get("A") is JobState.RUNNING, 60, "the follower")
        gate.touch()
        _wait(lambda: site.status(run).finished, 180, "the DAG ending")
        final = ns.read_node_status(live)
        assert (final.dag_status, final.status_note) == (NodeStatus.DONE, "success")
        assert {n.node: n.job_state for n in final.nodes} == {"A": JobState.DONE, "B": JobState.DONE}
        assert site.status(run).exit_code == 0
    finally:
        gate.touch()


def _wait(check: object, timeout: float, what: str) -> object:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()  # type: ignore[operator]
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s")


# ---- jobstate log --------------------------------------------------------------------------------------------------
def test_jobstate_reproduces_dagman(tmp_path: Path) -> None:
    lines = read_jobstate(REAL / "r1.jobstate.log")
    assert lines[0].node == "INTERNAL" and (lines[0].event, lines[0].info) == ("DAGMAN_STARTED", "8.0")
    assert lines[-1].event == "DAGMAN_FINISHED" and lines[-1].info == "1"
    e_fail = next(ln for ln in lines if ln.event == "JOB_FAILURE" and ln.node == "E")
    assert (e_fail.info, e_fail.sequence) == ("4", 2)
    out = tmp_path / "r.jobstate.log"
    with JobstateLogWriter(out) as w:  # replay DAGMan's run through our writer
        for ln in lines:
            t = ln.timestamp
            if ln.event == "DAGMAN_STARTED":
                w.dagman_started(*map(int, ln.info.split(".")), when=t)
            elif ln.event == "DAGMAN_FINISHED":
                w.dagman_finished(int(ln.info), when=t)
            elif ln.event == "SUBMIT":
                w.submit(ln.node, *ln.condor_id, when=t)  # type: ignore[misc]
            elif ln.event in ("JOB_SUCCESS", "JOB_FAILURE"):
                w.job_result(ln.node, int(ln.info), when=t)
            elif ln.event == "POST_SCRIPT_STARTED":
                w.post_script_started(ln.node, *ln.condor_id, when=t)  # type: ignore[misc]
            elif ln.event in ("POST_SCRIPT_SUCCESS", "POST_SCRIPT_FAILURE"):
                rv = 0 if ln.event.endswith("SUCCESS") else 1
                w.post_script_result(ln.node, rv, *ln.condor_id, when=t)  # type: ignore[misc]
            else:
                w.job_event(ln.node, ln.event, *ln.condor_id, when=t)  # type: ignore[misc]
    assert out.read_text() == (REAL / "r1.jobstate.log").read_text()


def test_jobstate_pre_script_lines_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "j.log"
    with JobstateLogWriter(out) as w:
        w.pre_script_started("A", when=100)
        w.pre_script_result("A", 0, when=101)
        w.submit("A", 7, when=102)
    with JobstateLogWriter(out) as w:
        w.resume_sequence(read_jobstate(out))
        w.submit("B", 8, when=103)
        w.job_result("A", -9, when=104)
    assert out.read_text().splitlines() == [
        "100 A PRE_SCRIPT_STARTED - - - 0",
        "101 A PRE_SCRIPT_SUCCESS - - - 0",
        "102 A SUBMIT 7.0 - - 1",
        "103 B SUBMIT 8.0 - - 2",
        "104 A JOB_FAILURE -9 - - 1",
    ]
    with open(out, "a") as f:
        f.write("105 B EXEC")  # a line cut by a crash is skipped
    assert len(read_jobstate(out)) == 5


# ---- submit files --------------------------------------------------------------------------------------------------
SUBMIT = Path(__file__).parent / "data" / "dags" / "submit"


def test_submit_file_with_vars_like_dagman() -> None:
    # prepended VARS lose to the file (seed), APPEND ones win (extra), $(JOB)/$(RETRY) in VARS values expand
    d = read_submit(
        SUBMIT / "node.sub",
        node="gen_3",
        vars={"seed": "fromvars", "retry": "$(RETRY)", "extra": "$(JOB)-x"},
        vars_append=frozenset({"extra"}),
        retry=2,
    )
    assert d.executable == "/bin/sh"
    assert d.arguments == ["-c", 'echo gen_3 "fromfile" it\'s', "--retry", "2", "gen_3-x"]
    assert d.environment == {"SEED": "fromfile", "NAME": "a b", "TRY": "2"}
    assert (d.request_cpus, d.request_memory_mb, d.request_disk_kb) == (2, 1536, 2 * 1024 * 1024)
    assert (d.output, d.error, d.log) == ("logs/gen_3.2.out", "logs/gen_3.2.err", "../dag.nodes.log")
    assert (d.initialdir, d.queue_count, d.universe) == ("work", 1, "vanilla")


def test_submit_file_old_syntax_and_defaults() -> None:
    d = read_submit(SUBMIT / "old.sub", node="n")
    assert d.arguments == ["one", '"two"', "'three'"]
    assert d.environment == {"A": "1", "B": "two words"}
    assert (d.request_cpus, d.request_memory_mb, d.request_disk_kb, d.queue_count) == (1, 100, None, 3)
    assert d.output is None and d.initialdir is None


@pytest.mark.parametrize(
    "name,words",
    [("bad.sub", "no executable"), ("items.sub", "not supported"), ("missing.sub", "cannot read")],
)
def test_submit_file_errors_name_the_file(name: str, words: str) -> None:
    with pytest.raises(DagSyntaxError, match=words) as e:
        read_submit(SUBMIT / name)
    assert e.value.path == str(SUBMIT / name)


def test_quantities_and_splitting() -> None:
    assert [parse_quantity(v, "MB") for v in ("100", "1GB", "1.5 G", "512K", "1t")] == [
        100,
        1024,
        1536,
        1,
        1048576,
    ]
    assert parse_quantity("1000", "KB") == 1000 and parse_quantity("1M", "KB") == 1024
    assert split_arguments("\"''\"") == [""] and split_arguments('"  a  "') == ["a"]
    with pytest.raises(ValueError):
        split_arguments('"\'open"')


ARG_CASES = [
    "\"-c 'echo hi'\"",
    "\"a \"\"b\"\" 'c d' 'it''s'\"",
    "\"x\\y  'multi   space'  \"",
    'a b\\"c d',
    "one   two",
    "\"'a'b'c' d\"",
    "\"''\"",
    "plain 'single' x",
]
ENV_CASES = ['"T_A=1 T_B=\'x y\' T_C=""q"" T_D=it\'\'s"', "T_A=1;T_B=two words"]


@pytest.mark.condor
def test_arguments_and_environment_as_the_schedd_reads_them(condor_schedd: object) -> None:
    # submit held jobs with each line and compare our argv/env with the job ads the real schedd made
    schedd = htcondor2.Schedd()
    clusters = []
    try:
        for i, args in enumerate(ARG_CASES):
            env = ENV_CASES[i % 2]
            sub = htcondor2.Submit(
                f"executable = /bin/true\narguments = {args}\nenvironment = {env}\nhold = true\n"
            )
            clusters.append(schedd.submit(sub).cluster())
        ads = {
            ad["ClusterId"]: ad
            for ad in schedd.query(f"ClusterId >= {clusters[0]} && ClusterId <= {clusters[-1]}")
        }
        for i, (cluster, args) in enumerate(zip(clusters, ARG_CASES, strict=True)):
            ad = ads[cluster]
            theirs = _split_new(ad["Arguments"]) if "Arguments" in ad else ad.get("Args", "").split()
            assert split_arguments(args) == theirs, args
            their_env = dict(item.split("=", 1) for item in _split_new(ad["Environment"]))
            assert parse_environment(ENV_CASES[i % 2]) == their_env
    finally:
        for cluster in clusters:
            schedd.act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}")
