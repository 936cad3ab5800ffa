"""Log files of a run: found only inside the run's own ``logs/`` folder, tailed and searched without loading
the whole file, written by pilot uploads in chunks."""

from __future__ import annotations

import errno
import os
import re
import stat
from typing import IO, BinaryIO

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import AuthError

#: the log kinds of an attempt and their file names (iceprod_dag.common.names)
KINDS = {"stdout": names.STDOUT, "stderr": names.STDERR, "pilot": names.PILOT_LOG}
_NODE = re.compile(r"^[A-Za-z0-9_.+-]{1,255}$")
CHUNK = 1 << 16


class LogPathError(AuthError):
    """A log path points outside the run's log folders (``..``, absolute path, symlink out)."""


def _parts(rel: str) -> list[str]:
    """The components of a run-relative log path; refuses absolute paths and ``..`` before any disk access."""
    if not rel or rel.startswith(("/", "\\")) or os.path.isabs(rel) or "\x00" in rel:
        raise LogPathError(f"field 'path': log paths are relative to the run folder, got {rel!r}")
    parts = re.split(r"[\\/]+", rel)
    if any(p in ("..", ".", "") for p in parts):
        raise LogPathError(
            f"field 'path': '..', '.' and empty parts are not allowed in a log path, got {rel!r}"
        )
    if parts[0] != names.LOGS_DIR or len(parts) < 2:
        raise LogPathError(f"field 'path': {rel!r} is outside the run's {names.LOGS_DIR}/ folder")
    return parts


def _open_dir(parent: int, name: str, rel: str, create: bool = False) -> int:
    """The folder ``name`` inside the open folder ``parent``, never through a symlink (O_NOFOLLOW)."""
    if create:
        try:
            os.mkdir(name, 0o755, dir_fd=parent)
        except FileExistsError:
            pass
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise LogPathError(
                f"field 'path': {rel!r} goes through a link or a non-folder ({name!r})"
            ) from None
        raise


def _walk(run_dir: str, parts: list[str], rel: str, create: bool = False) -> int:
    """An fd of the folder ``run_dir/parts[0]/.../parts[-1]``, opened component by component from the run
    folder: a job that replaces any of them (``logs/`` itself included) by a symlink gets a LogPathError, and
    nothing can swap a component between the check and the use."""
    fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts:
            inner = _open_dir(fd, name, rel, create)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_log(run_dir: str, rel: str) -> BinaryIO:
    """The file ``rel`` (relative to the run folder, e.g. ``logs/gen_3/0/stderr``), opened for reading.

    LogPathError for a path outside ``logs/``, through a symlink at any depth, or to anything but a plain
    file with one link (a hard link to a server file is as bad as a symlink); FileNotFoundError if missing.
    """
    parts = _parts(rel)
    folder = _walk(run_dir, parts[:-1], rel)
    try:
        # O_NONBLOCK: a FIFO planted under logs/ must not hang the request thread in open()
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(parts[-1], flags, dir_fd=folder)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise LogPathError(f"field 'path': {rel!r} is a link, not a log file") from None
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(f"field 'path': no log file {rel!r} in this run") from None
        raise
    finally:
        os.close(folder)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise FileNotFoundError(f"field 'path': {rel!r} is a folder, not a log file")
        raise LogPathError(f"field 'path': {rel!r} is not a plain log file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def attempt_log_rel(node: str, attempt: int, kind: str, recorded: str | None = None) -> str:
    """The run-relative path of one attempt's log: the one its stats record names, else the default."""
    if kind not in KINDS:
        raise ValueError(f"field 'kind': must be one of {', '.join(KINDS)}, got {kind!r}")
    return recorded or f"{names.attempt_log_dir(node, attempt)}/{KINDS[kind]}"


def check_node(node: str) -> str:
    if not _NODE.match(node) or node in (".", ".."):
        raise LogPathError(f"field 'node': not a node name: {node!r}")
    return node


def tail(f: BinaryIO, lines: int = 40) -> list[str]:
    """The last lines of an open file, reading blocks backwards from its end (a few KiB, whatever its size)."""
    if lines <= 0:
        return []
    pos = f.seek(0, os.SEEK_END)
    data = b""
    while pos > 0 and data.count(b"\n") <= lines:
        step = min(CHUNK, pos)
        pos -= step
        f.seek(pos)
        data = f.read(step) + data
    text = data.decode("utf-8", errors="replace").splitlines()
    return text[-lines:]


def search(
    f: BinaryIO, needle: str, limit: int = 1000, regex: bool = False
) -> tuple[list[tuple[int, str]], bool]:
    """(line number, line) of matching lines, streaming the open file; and whether the limit cut the list."""
    pattern = re.compile(needle if regex else re.escape(needle), re.IGNORECASE)
    found: list[tuple[int, str]] = []
    f.seek(0)
    for number, raw in enumerate(f, start=1):
        line = raw.decode("utf-8", errors="replace")
        if pattern.search(line):
            if len(found) >= limit:
                return found, True
            found.append((number, line.rstrip("\n")))
    return found, False


def write_upload(run_dir: str, node: str, attempt: int, kind: str, body: IO[bytes], max_bytes: int) -> int:
    """Store an uploaded log of one attempt (replacing an earlier upload atomically); returns its size.

    The folders are made and entered like :func:`open_log` reads them: never through a symlink."""
    check_node(node)
    rel = attempt_log_rel(node, attempt, kind)
    parts = _parts(rel)
    folder = _walk(run_dir, parts[:-1], rel, create=True)
    tmp = f".{parts[-1]}.upload"
    size = 0
    try:
        # a fresh file (O_EXCL): truncating a planted one could truncate a server file hard-linked to it
        try:
            os.unlink(tmp, dir_fd=folder)
        except FileNotFoundError:
            pass
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o644, dir_fd=folder)
        with os.fdopen(fd, "wb") as out:
            while chunk := body.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    out.close()
                    os.unlink(tmp, dir_fd=folder)
                    raise ValueError(f"body: a log upload may be at most {max_bytes} bytes")
                out.write(chunk)
        os.replace(tmp, parts[-1], src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.close(folder)
    return size
