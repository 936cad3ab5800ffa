"""The submit reader's template cache: one parse per file, DAGMan's macros per node, nothing carried over.

What the macros expand to is judged against the real pool in test_dagman_handwritten.py; here, that reading a
file once and expanding it for many nodes gives each node what a fresh read would.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iceprod_dag.common.exceptions import DagSyntaxError
from iceprod_dag.dagman.submitdesc import read_submit, template

SUB = """\
executable = /bin/sh
arguments = "job.sh $(JOB) $(tag:none) $(Cluster).$(Process) $(name)"
output = $(JOB).$(RETRY).out
error = $(DAG_PARENT_NAMES).err
seed = file
request_memory = $(mem)
mem = 100
queue
"""


def test_one_template_serves_many_nodes_without_carrying_macros_over(tmp_path: Path) -> None:
    sub = tmp_path / "n.sub"
    sub.write_text(SUB)
    a = read_submit(sub, node="A", vars={"tag": "x", "name": "$(JOB)-n"}, retry=2, parents=("P", "Q"))
    b = read_submit(sub, node="B")
    assert template(sub) is template(sub)  # parsed once
    # $(Cluster) is left for the site, which knows the job's id only when it starts it
    assert a.arguments == ["job.sh", "A", "x", "$(Cluster).0", "A-n"]
    assert (a.output, a.error, a.request_memory_mb) == ("A.2.out", "P,Q.err", 100)
    # B has no VARS and no parents: A's tag, name and DAG_PARENT_NAMES are gone, the default is back
    assert b.arguments == ["job.sh", "B", "none", "$(Cluster).0"]
    assert (b.output, b.error) == ("B.0.out", ".err")


def test_append_vars_override_the_file_prepended_ones_do_not(tmp_path: Path) -> None:
    sub = tmp_path / "n.sub"
    sub.write_text(SUB)
    kept = read_submit(sub, node="A", vars={"mem": "300"})
    over = read_submit(sub, node="A", vars={"mem": "300"}, vars_append={"mem"})
    again = read_submit(sub, node="A")
    assert (kept.request_memory_mb, over.request_memory_mb, again.request_memory_mb) == (100, 300, 100)


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    sub = tmp_path / "n.sub"
    sub.write_text(SUB)
    first = template(sub)
    sub.write_text(SUB.replace("mem = 100", "mem = 2000"))
    os.utime(sub, ns=(0, 1))  # a different mtime even within the filesystem's timestamp resolution
    assert template(sub) is not first
    assert read_submit(sub, node="A").request_memory_mb == 2000


def test_statements_read_while_parsing_see_the_node_macros(tmp_path: Path) -> None:
    # `if defined` runs while the file is read: DAGMan's macros are set before, so it sees them
    sub = tmp_path / "n.sub"
    sub.write_text("if defined big\n  request_memory = 4000\nelse\n  request_memory = 10\nendif\n"
                   "executable = /bin/true\nqueue\n")  # fmt: skip
    assert read_submit(sub, node="A", vars={"big": "1"}).request_memory_mb == 4000
    assert read_submit(sub, node="B").request_memory_mb == 10


@pytest.mark.parametrize(
    "text,vars,words",
    [
        ("executable = /bin/true\na = $(b)\nb = $(a)\nqueue\n", {}, "refers to itself"),
        ("executable = /bin/true\narguments = $(x)\nqueue\n", {"x": "$(y)", "y": "$(x)"}, "refers to itself"),
        ("executable = /bin/true\nqueue x from (a b)\n", {}, "not supported"),
    ],
)
def test_bad_files_are_errors_naming_the_file(
    tmp_path: Path, text: str, vars: dict[str, str], words: str
) -> None:
    sub = tmp_path / "bad.sub"
    sub.write_text(text)
    with pytest.raises(DagSyntaxError, match=words) as e:
        read_submit(sub, node="A", vars=vars)
    assert e.value.path == str(sub)
