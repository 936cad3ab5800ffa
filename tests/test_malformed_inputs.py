"""The corpus of malformed inputs (tests/data/malformed/): every command and the API answer each with exit 2
or a 4xx naming the file, line or field, never a traceback or a 500, and within bounded time and memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from webui_support import alice, app, demo, engine  # noqa: F401

CORPUS = Path(__file__).resolve().parent / "data" / "malformed"

#: file -> the place its error must name (after the file name)
PLACES = {
    "alias_bomb.yaml": ":12",
    "binary.dag": ":2",
    "dag_bad_keyword.dag": ":2",
    "dag_cycle.dag": ":",  # then 3 or 4: the edge that closes the cycle the search meets first
    "dag_latin1.dag": ":1",
    "dag_nul.dag": ":1",
    "deep.yaml": ":7",
    "empty.yaml": ":1",
    "eval_parens.yaml": ":5 tasks[0].command",
    "eval_terms.yaml": ":5 tasks[0].command",
    "jobs_2_63.yaml": ":2 jobs",
    "json_deep.json": ":1",
    "latin1.yaml": ":1",
    "list_key.yaml": ":6",
    "long_number.yaml": ":2",
    "long_number_eval.yaml": ":5 tasks[0].command",
    "map_key.yaml": ":6",
    "modules_null.json": " tasks[0].trays[0].modules[0]",
    "nested_calls.yaml": ":5 tasks[0].command",
    "not_a_mapping.yaml": ":1",
    "nul.yaml": ":5",
    "recursive_alias.yaml": ":7",
    "sprintf_width.yaml": ":5 tasks[0].command",
    "steering_list.json": " steering",
    "tabs.yaml": ":4",
    "tasks_null.json": " tasks[0]",
    "too_many_jobs.yaml": ":2 jobs",
    "trays_null.json": " tasks[0].trays[0]",
    "unclosed_quote.yaml": ":6 tasks[0].modules[0].args",
    "utf16.yaml": ":1",
}
FILES = sorted(p.name for p in CORPUS.iterdir())
DATASETS = [f for f in FILES if not f.endswith(".dag")]
#: bounded memory: a document that expanded like the alias bomb did (2.2 GB) fails here instead
MEMORY_LIMIT = 1 << 30


def test_every_corpus_file_has_its_expected_place() -> None:
    assert sorted(PLACES) == FILES


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT * 2, MEMORY_LIMIT * 2))

    return subprocess.run(
        [sys.executable, "-c", "from iceprod_dag.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        preexec_fn=limit,
    )


def _check(result: subprocess.CompletedProcess[str], source: Path, place: str) -> None:
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Traceback" not in out, out
    assert f"{source}{place}" in out, out


def test_validate_names_the_place_of_every_file(tmp_path: Path) -> None:
    """One `validate` of the whole corpus: it reports every file, each with its place."""
    result = _run(["validate", *(str(CORPUS / name) for name in FILES)], tmp_path)
    for name in FILES:
        _check(result, CORPUS / name, "" if name.endswith(".dag") else PLACES[name])
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("command", ["compile", "submit"])
def test_cli_names_the_place_and_exits_2(name: str, command: str, tmp_path: Path) -> None:
    source = tmp_path / name
    source.write_bytes((CORPUS / name).read_bytes())  # submit of a .dag writes next to it
    run = tmp_path / "run"
    args = {
        "compile": ["compile", str(source), "-o", str(run)],
        "submit": ["submit", "--site", "local", "--detach", "--run-dir", str(run), str(source)],
    }[command]
    _check(
        _run(args, tmp_path), source, PLACES[name] if command == "submit" or not name.endswith(".dag") else ""
    )
    assert not run.exists() or not any(run.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "run") == [name]  # nothing written


def test_api_names_the_place_with_a_400(alice, app) -> None:  # noqa: F811
    """Each dataset of the corpus posted as a file and as a YAML body (one server for all: its set-up
    is most of the cost)."""
    import io

    from webui_support import csrf_of

    h = {"X-CSRF-Token": csrf_of(alice)}
    for name in DATASETS:
        raw = (CORPUS / name).read_bytes()
        # IceProd configs are not converted by the API: their error is about our schema, still naming the file
        place = PLACES[name] if name.endswith(".yaml") else ""
        upload = {"file": (io.BytesIO(raw), name)}
        response = alice.post("/api/datasets", data=upload, headers=h, content_type="multipart/form-data")
        assert response.status_code == 400, (name, response.status_code, response.text)
        assert f"{name}{place}" in response.get_json()["error"], (name, response.text)
        response = alice.post("/api/datasets", data=raw, headers=h, content_type="application/yaml")
        assert response.status_code == 400, (name, response.status_code, response.text)
        assert f"<body>{place}" in response.get_json()["error"], (name, response.text)


def test_api_refuses_a_billion_jobs_and_a_document_past_the_limit(alice, app) -> None:  # noqa: F811
    from webui_support import csrf_of

    h = {"X-CSRF-Token": csrf_of(alice)}
    body = {"name": "big", "jobs": 1_000_000_000, "tasks": [{"name": "t", "command": "true"}]}
    response = alice.post("/api/datasets", json=body, headers=h)
    assert response.status_code == 400 and response.get_json()["field"] == "jobs", response.text
    assert "1000000000" in response.get_json()["error"]
    app.extensions["iceprod_dag_limits"] = __import__("dataclasses").replace(
        app.extensions["iceprod_dag_limits"], max_document_bytes=1000
    )
    big = "name: big\njobs: 1\ntasks: [{name: t, command: 'true'}]\n" + "# padding\n" * 200
    response = alice.post("/api/datasets", data=big, headers=h, content_type="application/yaml")
    assert response.status_code == 400 and "1000 bytes" in response.get_json()["error"], response.text
    deep = {"name": "deep", "jobs": 1, "tasks": [{"name": "t", "command": "true"}], "parameters": {"p": []}}
    inner = deep["parameters"]["p"]
    for _ in range(200):
        inner.append([])
        inner = inner[0]
    response = alice.post("/api/datasets", json=deep, headers=h)
    assert response.status_code == 400 and "nested more than" in response.get_json()["error"], response.text


def test_integers_beyond_64_bits_in_paths_and_cursors_are_4xx(alice, demo) -> None:  # noqa: F811
    import base64
    import json

    huge = str(2**63)
    for url in (
        f"/api/datasets/{huge}",
        f"/api/jobs/{huge}",
        f"/api/jobs/{huge}/attempts/0",
        f"/api/jobs/1/attempts/{huge}",
        f"/datasets/{huge}",
        f"/jobs/{huge}",
        f"/api/datasets/{demo}/files?path=logs/x&x={huge}",
    ):
        response = alice.get(url)
        assert 400 <= response.status_code < 500, (url, response.status_code)
    for cursor in ([1, 2**63], [2**64, 1], ["x", -(2**63) - 1]):
        text = base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode().rstrip("=")
        response = alice.get(f"/api/jobs?after={text}")
        assert response.status_code == 400 and response.get_json()["field"] == "after", response.text
    assert alice.get(f"/api/jobs?limit={'9' * 5000}").status_code == 400
    # and in JSON bodies
    from webui_support import csrf_of

    h = {"X-CSRF-Token": csrf_of(alice)}
    for dataset in (2**63, -(2**63) - 1):
        response = alice.post("/api/tokens", json={"kind": "pilot", "dataset": dataset}, headers=h)
        assert response.status_code == 404, response.text
    body = {"name": "x", "jobs": 1, "dataset_id": 2**63, "tasks": [{"name": "t", "command": "true"}]}
    response = alice.post("/api/datasets", json=body, headers=h)
    assert response.status_code == 400 and response.get_json()["field"] == "dataset_id", response.text


def test_expressions_resolved_per_job_are_bounded() -> None:
    """What validation cannot compute (it only checks syntax) is refused when a job resolves it."""
    from iceprod_dag.common.exceptions import ExpressionError
    from iceprod_dag.common.expressions import Context, resolve

    ctx = Context(job=1, dataset_id=5)
    for text in (
        "$eval(" + "*".join(["2**4000"] * 40) + ")",  # each power allowed, the product 160,000 bits
        "$sprintf('%999999999d', $(job))",
        "$sprintf('%.5000f', $(job))",
        "$eval(" + "+".join(["1"] * 3000) + ")",
    ):
        with pytest.raises(ExpressionError):
            resolve(text, ctx)
    assert resolve("$sprintf('%06d', $(job))", ctx) == "000001"
