"""Log files of a run: found only inside the run's own ``logs/`` folder, tailed and searched without loading
the whole file, written by pilot uploads in chunks."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import IO

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import AuthError

#: the log kinds of an attempt and their file names (iceprod_dag.common.names)
KINDS = {"stdout": names.STDOUT, "stderr": names.STDERR, "pilot": names.PILOT_LOG}
_NODE = re.compile(r"^[A-Za-z0-9_.+-]{1,255}$")
CHUNK = 1 << 16


class LogPathError(AuthError):
    """A log path points outside the run's log folders (``..``, absolute path, symlink out)."""


def logs_root(run_dir: str) -> Path:
    return Path(run_dir) / names.LOGS_DIR


def safe_log_path(run_dir: str, rel: str) -> Path:
    """The file ``rel`` (relative to the run folder, e.g. ``logs/gen_3/0/stderr``) if it lies in ``logs/``.

    Refuses absolute paths and ``..`` components before touching the disk, then checks the real path
    (symlinks resolved) is still inside the real logs folder.
    """
    if not rel or rel.startswith(("/", "\\")) or os.path.isabs(rel) or "\x00" in rel:
        raise LogPathError(f"field 'path': log paths are relative to the run folder, got {rel!r}")
    parts = re.split(r"[\\/]+", rel)
    if any(p in ("..", ".") for p in parts):
        raise LogPathError(f"field 'path': '..' and '.' are not allowed in a log path, got {rel!r}")
    root = logs_root(run_dir).resolve()
    target = (Path(run_dir) / rel).resolve()
    if target != root and root not in target.parents:
        raise LogPathError(f"field 'path': {rel!r} is outside the run's {names.LOGS_DIR}/ folder")
    return target


def attempt_log_rel(node: str, attempt: int, kind: str, recorded: str | None = None) -> str:
    """The run-relative path of one attempt's log: the one its stats record names, else the default."""
    if kind not in KINDS:
        raise ValueError(f"field 'kind': must be one of {', '.join(KINDS)}, got {kind!r}")
    return recorded or f"{names.attempt_log_dir(node, attempt)}/{KINDS[kind]}"


def check_node(node: str) -> str:
    if not _NODE.match(node) or node in (".", ".."):
        raise LogPathError(f"field 'node': not a node name: {node!r}")
    return node


def tail(path: Path, lines: int = 40) -> list[str]:
    """The last lines of a file, reading blocks backwards from its end (a few KiB, whatever its size)."""
    if lines <= 0:
        return []
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = pos = f.tell()
        data = b""
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(CHUNK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
        del end
    text = data.decode("utf-8", errors="replace").splitlines()
    return text[-lines:]


def search(
    path: Path, needle: str, limit: int = 1000, regex: bool = False
) -> tuple[list[tuple[int, str]], bool]:
    """(line number, line) of matching lines, streaming the file; and whether the limit cut the list."""
    pattern = re.compile(needle if regex else re.escape(needle), re.IGNORECASE)
    found: list[tuple[int, str]] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if pattern.search(line):
                if len(found) >= limit:
                    return found, True
                found.append((number, line.rstrip("\n")))
    return found, False


def write_upload(run_dir: str, node: str, attempt: int, kind: str, body: IO[bytes], max_bytes: int) -> int:
    """Store an uploaded log of one attempt (replacing an earlier upload atomically); returns its size."""
    check_node(node)
    rel = attempt_log_rel(node, attempt, kind)
    target = logs_root(run_dir) / node / str(attempt) / KINDS[kind]
    safe_log_path(run_dir, rel)  # same checks as reading
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.upload")
    size = 0
    with open(tmp, "wb") as out:
        while chunk := body.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                out.close()
                tmp.unlink()
                raise ValueError(f"body: a log upload may be at most {max_bytes} bytes")
            out.write(chunk)
    os.replace(tmp, target)
    return size
