"""Shared fixtures: paths to test data, and the real services started by .ci/services scripts."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def repo_dir() -> Path:
    return REPO


@pytest.fixture
def pilot_spec(tmp_path: Path):
    """Factory writing a pilot task spec (docs/contracts.md) to tmp_path; returns its path as a string."""
    import json

    def write(
        modules: list | None = None,
        command: str | None = None,
        requirements: dict | None = None,
        data: list | None = None,
        pilot: dict | None = None,
        name: str = "gen",
        **task: object,
    ) -> str:
        if command is not None:
            modules = [{"name": "cmd", "executable": "/bin/sh", "args": ["-c", command], "env": {}}]
        spec = {
            "format": 1,
            "dataset": {"name": "demo", "dataset_id": 20001, "jobs": 10, "parameters": {"seed": "$(job)"}},
            "task": {
                "name": name,
                "modules": modules or [],
                "iterations": 1,
                "parameters": {},
                "requirements": {
                    "cpus": 1,
                    "memory_mb": 100,
                    "disk_mb": 100,
                    "gpus": 0,
                    "walltime_s": 60,
                    **(requirements or {}),
                },
                "data": data or [],
                **task,
            },
            "pilot": {
                "memory_allowance": 0.25,
                "sample_interval_s": 0.05,
                "kill_grace_s": 1.0,
                "transfer_retries": 1,
                "transfer_backoff_s": 0.01,
                "stderr_tail_lines": 5,
                **(pilot or {}),
            },
        }
        path = tmp_path / "specs" / f"{name}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(spec))
        return str(path)

    return write


# ---------------------------------------------------------------- real batch systems (Slurm, Grid Engine)

_SERVICES = REPO / ".ci" / "services"
SGE_SETTINGS = Path("/var/lib/gridengine/default/common/settings.sh")
#: the normal user Grid Engine jobs are submitted as in tests (created by sge-up.sh)
SGE_TEST_USER = "htcuser"


def _service_up(script: str, env: dict[str, str], probe: list[str], timeout: float = 600) -> str | None:
    """Run .ci/services/<script> unless probe already works; None when up, else why not."""
    import os
    import shutil
    import subprocess

    full = {**os.environ, **env}
    if (
        shutil.which(probe[0])
        and subprocess.run(probe, env=full, capture_output=True, timeout=30).returncode == 0
    ):
        return None
    if os.geteuid() != 0:
        return f"{script} needs root to install and start the service"
    try:
        proc = subprocess.run(
            ["bash", str(_SERVICES / script)], env=full, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"{script} did not finish within {timeout:g} s"
    if proc.returncode != 0:
        return f"{script} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-500:]}"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real one-node Slurm (.ci/services/slurm-up.sh); sets SLURM_CONF; skips with the reason if it cannot start."""
    import os

    conf = os.environ.get("SLURM_CONF", "/tmp/slurm-ci/slurm.conf")
    why = _service_up("slurm-up.sh", {"SLURM_CONF": conf}, ["sinfo", "-h"])
    if why:
        pytest.skip(f"no Slurm: {why}")
    os.environ["SLURM_CONF"] = conf
    return {"SLURM_CONF": conf}


@pytest.fixture(scope="session")
def sge_cluster():
    """A real one-node Grid Engine (.ci/services/sge-up.sh) and its environment; skips with the reason if not."""
    import os
    import pwd

    env = {"SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}
    why = _service_up("sge-up.sh", env, ["qstat", "-f"])
    if why:
        pytest.skip(f"no Grid Engine: {why}")
    try:
        pwd.getpwnam(SGE_TEST_USER)
    except KeyError:
        pytest.skip(f"no user {SGE_TEST_USER} to submit Grid Engine jobs as")
    os.environ.update(env)
    return env


@pytest.fixture
def small_dataset(tmp_path: Path):
    """Factory: the small dataset every site runs (fan-out + fan-in, a job failing once, a job over its memory
    request) compiled by `iceprod-dag compile` into <base or tmp_path>/run; returns the run folder."""
    import subprocess

    def make(base: Path | None = None) -> Path:
        base = base or tmp_path
        marks = base / "marks"
        marks.mkdir(exist_ok=True)
        source = base / "small.yaml"
        source.write_text((DATA / "batch" / "small.yaml").read_text().replace("@MARKS@", str(marks)))
        run = base / "run"
        proc = subprocess.run(
            ["iceprod-dag", "compile", str(source), "-o", str(run)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            pytest.fail(f"iceprod-dag compile failed: {proc.stderr}")
        return run

    return make


# ---------------------------------------------------------------- PostgreSQL (stats database)


@pytest.fixture(scope="session")
def postgres() -> str:
    """URL of the throw-away PostgreSQL of .ci/services/pg-up.sh (server database); skips if it cannot start.

    Tests should not create tables in it directly: use ``postgres_db`` for an empty database of their own.
    """
    import os
    import subprocess

    if os.environ.get("ICEPROD_DAG_TEST_PG"):
        return os.environ["ICEPROD_DAG_TEST_PG"]
    if os.geteuid() != 0:
        pytest.skip("no PostgreSQL: .ci/services/pg-up.sh needs root to install and start it")
    try:
        proc = subprocess.run(
            ["bash", str(_SERVICES / "pg-up.sh")], capture_output=True, text=True, timeout=600
        )
    except subprocess.TimeoutExpired:
        pytest.skip("no PostgreSQL: pg-up.sh did not finish within 600 s")
    url = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not url.startswith("postgresql"):
        pytest.skip(f"no PostgreSQL: pg-up.sh failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return url


@pytest.fixture
def postgres_db(postgres: str):
    """URL of a new, empty PostgreSQL database for one test, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---------------------------------------------------------------- HTCondor pool with DAGMan

#: where the pool's jobs can see files (bind-mounted into the pool's chroot) and the uid they run as
HTC_SHARED = Path("/srv/htc")
HTC_UID = 2000


@pytest.fixture(scope="session")
def condor_pool() -> dict[str, str]:
    """The real HTCondor pool of .ci/services/htcondor-up.sh; sets CONDOR_CONFIG and PATH for the bindings.

    Safe to use while other sessions use the pool (the script is idempotent and never restarts a running
    pool). Skips with the reason when it cannot start (not root, no network for the first install).
    """
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("no HTCondor pool: .ci/services/htcondor-up.sh needs root to install and start it")
    try:
        proc = subprocess.run(
            ["bash", str(_SERVICES / "htcondor-up.sh")], capture_output=True, text=True, timeout=900
        )
    except subprocess.TimeoutExpired:
        pytest.skip("no HTCondor pool: htcondor-up.sh did not finish within 900 s")
    if proc.returncode != 0:
        pytest.skip(
            f"no HTCondor pool: htcondor-up.sh failed ({proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    env = {
        "CONDOR_CONFIG": str(HTC_SHARED / "condor_config.client"),
        # from_dag looks up condor_dagman in PATH: the pool's wrapper lives in /srv/htc/bin
        "PATH": f"{HTC_SHARED / 'bin'}:{os.environ.get('PATH', '')}",
    }
    os.environ.update(env)
    import htcondor2

    htcondor2.reload_config()
    return env


@pytest.fixture
def condor_run_root(condor_pool: dict[str, str]):
    """A fresh folder under /srv/htc owned by the pool's job user, for a test's run_root; removed after."""
    import os
    import shutil
    import uuid

    root = HTC_SHARED / "test-runs" / uuid.uuid4().hex[:12]
    root.mkdir(parents=True)
    for folder in (root.parent, root):
        os.chown(folder, HTC_UID, -1)
    yield root
    shutil.rmtree(root, ignore_errors=True)
