"""docs/tutorial.md, run as written: its ```yaml file=NAME``` blocks are written to NAME, its ```bash``` blocks
run in order in a fresh folder, and the ```text``` block after a command holds lines its output must show.

Only these paths are rebased, so that concurrent runs of the suite do not share them: the store
/tmp/iceprod-tutorial and /srv/htc/iceprod-tutorial (to folders of this test), the site config
config/sites/local-condor.yaml (to a copy with this test's run_root), `--port 8080` (to any free port), and
the data home (ICEPROD_DAG_HOME, set to a folder of this test).
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any, NamedTuple

import pytest

REPO = Path(__file__).resolve().parent.parent
TUTORIAL = REPO / "docs" / "tutorial.md"
_BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.S | re.M)


class Block(NamedTuple):
    lang: str
    tag: str
    text: str
    #: the ```text``` block right after this one, if any
    expected: str | None


def blocks() -> list[Block]:
    found = [(m.group(1), m.group(2).strip(), m.group(3)) for m in _BLOCK.finditer(TUTORIAL.read_text())]
    out = []
    for i, (lang, tag, text) in enumerate(found):
        if lang == "text":
            continue
        after = found[i + 1] if i + 1 < len(found) else None
        out.append(Block(lang, tag, text, after[2] if after and after[0] == "text" else None))
    return out


class Tutorial:
    def __init__(self, folder: Path, substitutions: dict[str, str]) -> None:
        self.folder = folder
        self.subs = substitutions
        self.env = {**os.environ, "ICEPROD_DAG_HOME": str(folder / "home")}
        self.env.pop("ICEPROD_DAG_DB", None)

    def rebase(self, text: str) -> str:
        for old, new in self.subs.items():
            text = text.replace(old, new)
        return text

    def write_files(self) -> None:
        for block in blocks():
            if block.lang == "yaml":
                name = block.tag.removeprefix("file=")
                (self.folder / name).write_text(self.rebase(block.text))

    def run(self, block: Block, timeout: float = 300) -> str:
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", self.rebase(block.text)],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{block.text}\n---\n{output}"
        for line in (block.expected or "").splitlines():
            assert line in output.splitlines(), f"{block.text}: no line {line!r} in\n{output}"
        return output


@pytest.fixture
def tutorial(tmp_path: Path) -> Tutorial:
    store = tmp_path / "store"
    return Tutorial(tmp_path, {"/tmp/iceprod-tutorial": str(store), "--port 8080": "--port 0"})


def test_the_tutorial_is_what_the_docs_say() -> None:
    langs = [(b.lang, b.tag) for b in blocks()]
    assert langs[0] == ("yaml", "file=tutorial.yaml")
    assert ("bash", "serve") in langs and ("bash", "condor") in langs
    assert all(b.expected for b in blocks() if b.lang == "bash" and b.tag != "serve")


def test_tutorial_local_run_and_web_ui(tutorial: Tutorial) -> None:
    tutorial.write_files()
    for block in blocks():
        if block.lang == "bash" and block.tag == "":
            tutorial.run(block)
    serve = next(b for b in blocks() if b.tag == "serve")
    *setup, command = tutorial.rebase(serve.text).strip().splitlines()
    tutorial.run(Block("bash", "", "\n".join(setup), None))
    with served(tutorial, command) as url:
        session = Session(url)
        session.login("admin", (tutorial.folder / "admin-password").read_text())
        listing = session.get("/")
        pk = re.search(r'href="/datasets/(\d+)">tutorial<', listing).group(1)
        page = session.get(f"/datasets/{pk}")
        assert page.count('class="edge"') == 1  # generate -> count
        assert "3 jobs · done 3" in page


@pytest.mark.condor
def test_tutorial_condor_run(tutorial: Tutorial, condor_run_root: Path) -> None:
    site = tutorial.folder / "local-condor.yaml"
    text = (REPO / "config" / "sites" / "local-condor.yaml").read_text()
    site.write_text(text.replace("run_root: /srv/htc/runs", f"run_root: {condor_run_root}"))
    tutorial.subs["config/sites/local-condor.yaml"] = str(site)
    tutorial.subs["/srv/htc/iceprod-tutorial"] = str(condor_run_root / "store")
    tutorial.write_files()
    condor = next(b for b in blocks() if b.tag == "condor")
    tutorial.run(condor, timeout=600)
    from sqlalchemy import create_engine, select

    from iceprod_dag.stats.models import Dataset, Job

    # the one default database holds the Condor run and its jobs' statistics, for `serve` to show
    engine = create_engine(f"sqlite:///{tutorial.folder / 'home' / 'stats.sqlite'}")
    with engine.connect() as conn:
        states = conn.execute(
            select(Job.node, Job.state)
            .join(Dataset)
            .where(Dataset.name == "tutorial", Dataset.site == "condor")
        ).all()
    engine.dispose()
    assert sorted(states) == [(f"{t}_{j}", "done") for t in ("count", "generate") for j in range(3)]


# ---------------------------------------------------------------- a browser-less client of `serve`


class served:
    """`serve` started from the tutorial's command line; yields its URL once it listens."""

    def __init__(self, tutorial: Tutorial, command: str) -> None:
        self.tutorial, self.command = tutorial, command

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(
            ["bash", "-c", f"exec {self.command}"],
            cwd=self.tutorial.folder,
            env=self.tutorial.env,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
            if match:
                return match.group(1)
        raise AssertionError(f"{self.command} did not start")

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


class Session:
    """Keeps the session cookie by hand: it is Secure, which http.cookiejar would not send over http."""

    def __init__(self, url: str) -> None:
        self.host = urllib.parse.urlsplit(url).netloc
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: dict[str, str] | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection(self.host, timeout=30)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        data = None
        if body is not None:
            data = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, data, headers)
        response = conn.getresponse()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        text = response.read().decode()
        conn.close()
        return response.status, text

    def get(self, path: str) -> str:
        status, text = self.request("GET", path)
        assert status == 200, (path, status)
        return text

    def login(self, user: str, password: str) -> None:
        token = re.search(r'name="csrf_token" value="([^"]+)"', self.get("/login")).group(1)
        status, _ = self.request(
            "POST", "/login", {"username": user, "password": password, "csrf_token": token}
        )
        assert status == 302, "login refused"
