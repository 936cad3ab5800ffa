"""Web UI settings: defaults < a config file < ``ICEPROD_DAG_*`` environment variables < explicit arguments.

Nothing is read at import time: :func:`load_config` runs inside ``create_app``. The file is a JSON or YAML
mapping named by the ``config_file`` argument or ``ICEPROD_DAG_WEB_CONFIG``. Keys are case-insensitive and may
be given without the ``ICEPROD_DAG_`` prefix (``db``, ``secret_key``...).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.dataset.limits import LIMITS

log = logging.getLogger(__name__)

PREFIX = "ICEPROD_DAG_"

#: every setting, its default and its type (used to convert environment strings)
DEFAULTS: dict[str, Any] = {
    "DB": None,  # stats database URL (None: iceprod_dag.stats.db's default)
    "SECRET_KEY": None,  # None: kept in <data home>/web-secret-key, made on first use
    "COOKIE_SECURE": True,  # session cookie only over HTTPS (browsers allow it on http://127.0.0.1)
    "RUNS_DIR": None,  # where datasets submitted through the API are compiled (None: <data home>/runs)
    "LOGIN_MAX_FAILURES": 5,  # failed logins per user and address before the login is refused for a while
    "LOGIN_MAX_FAILURES_PER_ADDRESS": 20,  # failed logins from one address over all user names (spraying)
    "LOGIN_MAX_FAILURES_PER_NAME": 20,  # failed logins of one user name from all addresses
    "LOGIN_LOCK_S": 300.0,
    "MAX_UNFINISHED_JOBS_PER_USER": 2_000_000,  # quota: a submission past it is refused (429)
    "PAGE_SIZE": 50,
    "TAIL_LINES": 40,
    "MAX_UPLOAD_MB": 64,
    "HEARTBEAT_TIMEOUT_S": 600.0,
    "SQLITE_CACHE_MB": 128,  # page cache per SQLite connection
    "REPORT_INBOX": True,  # SQLite: single pilot reports go through iceprod_dag.stats.inbox (see there why)  # a claimed job with no heartbeat for this long is given to another pilot
    # input limits of submitted datasets (iceprod_dag.dataset.limits; docs/config.md): MAX_JOBS...
    **{key: default for key, (_attr, default, _doc) in LIMITS.items()},
}


def _convert(name: str, value: Any) -> Any:
    default = DEFAULTS.get(name)
    if not isinstance(value, str):
        return value
    try:
        if isinstance(default, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError as exc:
        raise ConfigError(f"web setting {name}: expected a {type(default).__name__}, got {value!r}") from exc
    return value


def _normal(key: str) -> str:
    key = key.upper()
    return key[len(PREFIX) :] if key.startswith(PREFIX) else key


def read_file(path: str | Path) -> dict[str, Any]:
    """A JSON or YAML mapping of settings; the error names the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read web config: {exc}", str(path)) from exc
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ValueError as exc:  # json and yaml errors both derive from ValueError
        raise ConfigError(f"{path}: not valid JSON/YAML: {exc}", str(path)) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the web config must be a mapping of settings", str(path))
    return data


def load_config(
    explicit: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Merge the four layers; unknown keys are kept (they may be Flask settings, e.g. TESTING)."""
    env = os.environ if environ is None else environ
    merged = dict(DEFAULTS)
    config_file = config_file or env.get(PREFIX + "WEB_CONFIG")
    if config_file:
        merged.update({_normal(k): _convert(_normal(k), v) for k, v in read_file(config_file).items()})
    for name in DEFAULTS:
        if PREFIX + name in env:
            merged[name] = _convert(name, env[PREFIX + name])
    for key, value in (explicit or {}).items():
        if value is not None:
            merged[_normal(key)] = _convert(_normal(key), value)
    return merged


def secret_key(config: Mapping[str, Any]) -> str:
    """The configured key, or one kept in a private file so that sessions survive restarts."""
    if config.get("SECRET_KEY"):
        return str(config["SECRET_KEY"])
    from iceprod_dag.stats.db import data_home

    path = data_home() / "web-secret-key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    # created with mode 0600 so that only the server's user can forge sessions
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key + "\n")
    log.info("made a new web session key in %s", path)
    return key


def runs_dir(config: Mapping[str, Any]) -> Path:
    """Where API-submitted datasets get their run folders."""
    if config.get("RUNS_DIR"):
        return Path(config["RUNS_DIR"])
    from iceprod_dag.stats.db import data_home

    return data_home() / "runs"
