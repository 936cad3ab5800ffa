"""The DAG parser: every supported keyword, DAGMan's quoting, errors naming file and line, speed, rescue."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from iceprod_dag.common.exceptions import DagSyntaxError
from iceprod_dag.dagman.parser import load_rescue, parse_dag

DATA = Path(__file__).parent / "data" / "dags"


def write(tmp_path: Path, text: str, name: str = "t.dag") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_diamond_every_keyword() -> None:
    dag = parse_dag(DATA / "diamond.dag")
    assert list(dag.nodes) == ["A", "B", "C", "D", "F"]
    a, b, c, d, f = (dag.nodes[n] for n in "ABCDF")
    assert (b.directory, c.noop, d.directory, d.noop, d.done) == ("sub/dir", True, "x", True, True)
    assert f.final and dag.final == "F" and not f.done
    assert a.children == ["B", "C"] and sorted(d.parents) == ["B", "C"]
    assert [n.name for n in dag.roots()] == ["A"]
    # VARS: DAGMan's escapes, empty values, spaces around '=', '+' -> My., ALL_NODES skips FINAL
    assert a.vars == {"retry": "$(RETRY)", "job": "1", "msg": 'say "hi" to C:\\path', "empty": ""}
    assert b.vars == {"retry": "$(RETRY)", "My.Attr": "v", "two": "2"}
    assert f.vars == {"job": "final"}
    assert (a.retry, b.retry, b.unless_exit, f.retry) == (2, 3, 2, 0)
    assert a.pre is not None and a.pre.command == "pre.sh $JOB $RETRY"
    assert (a.pre.kind, a.pre.defer_status, a.pre.defer_time) == ("PRE", 4, 10)
    assert b.post is not None and b.post.command == "post.sh   $JOB $RETURN  extra args"
    assert f.post is not None and f.post.command == "fin.sh $DAG_STATUS $FAILED_COUNT"
    assert a.pre_skip == 1
    assert (a.priority, c.priority, f.priority) == (5, 10, 0)
    assert (a.category, d.category, f.category) == ("light", "heavy", None)
    assert dag.max_jobs == {"light": 2, "heavy": 1}
    assert c.abort_dag_on == (3, 5) and b.abort_dag_on == (4, None)
    assert (dag.node_status_file, dag.node_status_interval, dag.node_status_always_update) == (
        "diamond.status",
        30,
        True,
    )
    assert dag.jobstate_log == "diamond.jobstate.log"
    assert (dag.dot_file, dag.dot_update, dag.config_file) == ("diamond.dot", True, "dagman.config")


def test_forward_references_and_many_to_many(tmp_path: Path) -> None:
    dag = parse_dag(
        write(tmp_path, 'PARENT a b CHILD c d\nVARS c x="1"\nJOB a s\nJOB b s\nJOB c s\nJOB d s\n')
    )
    assert dag.nodes["a"].children == ["c", "d"] and dag.nodes["d"].parents == ["a", "b"]
    assert dag.nodes["c"].vars == {"x": "1"}


def test_last_line_wins_between_all_nodes_and_node(tmp_path: Path) -> None:
    text = 'JOB a s\nJOB b s\nPRIORITY a 3\nPRIORITY ALL_NODES 1\nVARS a k="x"\n'
    text += 'VARS ALL_NODES k="y"\nVARS b k="z"\n'
    dag = parse_dag(write(tmp_path, text))
    assert (
        dag.nodes["a"].priority == 1 and dag.nodes["a"].vars["k"] == "y" and dag.nodes["b"].vars["k"] == "z"
    )


def test_comments_blank_case_continuation(tmp_path: Path) -> None:
    text = '  # comment\n\n\tjob a s\nvars a \\\n  x="1"   y="2"\nRetry a 1 unless-exit 0\n'
    dag = parse_dag(write(tmp_path, text))
    assert dag.nodes["a"].vars == {"x": "1", "y": "2"}
    assert (
        dag.nodes["a"].retry == 1 and dag.nodes["a"].unless_exit is None
    )  # UNLESS-EXIT 0 means none in DAGMan


def test_missing_submit_file_is_not_an_error(tmp_path: Path) -> None:
    assert (
        parse_dag(write(tmp_path, "JOB a does/not/exist.sub\n")).nodes["a"].submit_file
        == "does/not/exist.sub"
    )


@pytest.mark.parametrize(
    "text,line,words",
    [
        ("JOB a s\nSPLICE x y.dag\n", 2, "SPLICE keyword is not supported"),
        ("JOB a s\nSUBDAG EXTERNAL x y.dag\n", 2, "SUBDAG keyword is not supported"),
        ("INCLUDE x.dag\n", 1, "INCLUDE keyword is not supported"),
        ("JOB a s\nSET_JOB_ATTR x = 1\n", 2, "SET_JOB_ATTR keyword is not supported"),
        ("ENV GET PATH\n", 1, "ENV keyword is not supported"),
        ("SERVICE s x.sub\n", 1, "SERVICE keyword is not supported"),
        ("JOB a s\nREJECT\n", 2, "REJECT keyword is not supported"),
        ("JOB a s\nFROB a\n", 2, "unknown keyword 'FROB'"),
        ("JOB a s\n\nJOB a t\n", 3, "duplicate node name 'a' (first defined at line 1)"),
        ("JOB a s\nPARENT a CHILD b\n", 2, "unknown node 'b'"),
        ('JOB a s\nVARS b x="1"\n', 2, "unknown node 'b'"),
        ("JOB a s\nRETRY zz 2\n", 2, "unknown node 'zz'"),
        ("JOB a s\nSCRIPT POST q p.sh\n", 2, "unknown node 'q'"),
        ("JOB a s\nDONE q\n", 2, "unknown node 'q'"),
        ("JOB a s\nVARS a x=1\n", 2, "bad VARS pair"),
        ('JOB a s\nVARS a x="1\n', 2, "bad VARS pair"),
        ('JOB a s\nVARS a x="a\\nb"\n', 2, "unknown escape sequence"),
        ('JOB a s\nVARS a queue_x="1"\n', 2, "cannot begin with 'queue'"),
        ("JOB a s\nRETRY a -1\n", 2, "cannot be negative"),
        ("JOB a s\nRETRY a 1 UNLESS 2\n", 2, "bad RETRY option"),
        ("JOB a s\nPARENT a\n", 2, "expected CHILD"),
        ("JOB a s\nFINAL f s\nRETRY f 1\n", 3, "FINAL node 'f' cannot have a RETRY"),
        ("JOB a s\nFINAL f s\nPARENT a CHILD f\n", 3, "FINAL node 'f' cannot have parents"),
        ("JOB a s\nABORT-DAG-ON a 1 RETURN 300\n", 2, "between 0 and 255"),
        ("JOB a+b s\n", 1, "illegal character '+'"),
        ("JOB parent s\n", 1, "reserved word"),
        ("JOB a s\nSCRIPT PRE a\n", 2, "no script file name"),
        ("JOB a s DONE NOOP\n", 1, "invalid parameter 'NOOP'"),
        ("JOB a { executable = x }\n", 1, "inline submit descriptions"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(DagSyntaxError) as e:
        parse_dag(p)
    assert e.value.path == str(p) and e.value.line == line
    assert words in str(e.value) and str(e.value).startswith(f"{p}:{line}: ")


def test_cycle_names_its_nodes(tmp_path: Path) -> None:
    text = "JOB r s\nJOB a s\nJOB b s\nJOB c s\n"
    text += "PARENT r CHILD a\nPARENT a CHILD b\nPARENT b CHILD c\nPARENT c CHILD a\n"
    with pytest.raises(DagSyntaxError) as e:
        parse_dag(write(tmp_path, text))
    msg = str(e.value)
    assert "cycle" in msg and "r" not in msg.split("cycle: ")[1]
    cycle = msg.split("cycle: ")[1].split(" -> ")
    assert sorted(cycle[:-1]) == ["a", "b", "c"] and cycle[0] == cycle[-1]
    assert e.value.line in (6, 7, 8)


def test_self_loop(tmp_path: Path) -> None:
    with pytest.raises(DagSyntaxError, match="cycle: a -> a"):
        parse_dag(write(tmp_path, "JOB a s\nPARENT a CHILD a\n"))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(DagSyntaxError, match="cannot read DAG file"):
        parse_dag(tmp_path / "nope.dag")


def test_load_rescue_applies_newest(tmp_path: Path) -> None:
    for f in DATA.glob("rescue_base.dag*"):
        shutil.copy(f, tmp_path)
    dag = load_rescue(tmp_path / "rescue_base.dag")
    assert dag.rescue_file == tmp_path / "rescue_base.dag.rescue003"
    assert [n.name for n in dag.nodes.values() if n.done] == ["A", "B"]
    assert dag.nodes["C"].retry == 1
    (tmp_path / "rescue_base.dag.rescue003").unlink()
    dag = load_rescue(tmp_path / "rescue_base.dag")
    assert [n.name for n in dag.nodes.values() if n.done] == ["A"] and dag.nodes["C"].retry == 4
    (tmp_path / "rescue_base.dag.rescue001").unlink()
    assert load_rescue(tmp_path / "rescue_base.dag").rescue_file is None


def test_rescue_with_unknown_node_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "JOB a s\n", "x.dag")
    write(tmp_path, "DONE zz\n", "x.dag.rescue001")
    with pytest.raises(DagSyntaxError, match=r"x.dag.rescue001:1: DONE: unknown node 'zz'"):
        load_rescue(tmp_path / "x.dag")


def test_a_wide_dag_parses_with_all_nodes_vars_and_retry(tmp_path: Path) -> None:
    # speed is measured by bench/ (compile, local), not asserted here
    n = 30_000
    lines = ['VARS ALL_NODES retry="$(RETRY)"', "JOB root task.sub"]
    for i in range(n - 1):
        lines.append(f"JOB t_{i} task.sub")
        lines.append(f'VARS t_{i} job="{i}" seed="s{i}"')
        lines.append(f"PARENT root CHILD t_{i}")
    lines.append("RETRY ALL_NODES 2 UNLESS-EXIT 2")
    p = write(tmp_path, "\n".join(lines) + "\n", "big.dag")
    dag = parse_dag(p)
    assert len(dag.nodes) == n and len(dag.nodes["root"].children) == n - 1
    assert dag.nodes["t_7"].vars == {"retry": "$(RETRY)", "job": "7", "seed": "s7"}
    assert dag.nodes["t_7"].retry == 2
