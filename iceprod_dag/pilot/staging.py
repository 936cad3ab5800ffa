"""Stage files into and out of a job's work dir: file:// and http(s) with checksums, retries and backoff.

A failed or corrupt transfer is never a silent success: every transfer yields a record (url, bytes, seconds,
checksum, ok, error) for the stats record, and a required one that fails raises TransferError. Downloads land
in ``<name>.part`` and are renamed only after the checksum matched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import urllib.parse
import zlib
from typing import Any, Callable, Dict, List, Optional, Tuple

from iceprod_dag.common.exceptions import ConfigError, TransferError
from iceprod_dag.pilot.spec import DataSpec, PilotSettings

log = logging.getLogger(__name__)

CHUNK = 1 << 20
ALGORITHMS = ("md5", "sha1", "sha256", "sha512", "adler32")
DEFAULT_ALGORITHM = "sha256"
MAX_BACKOFF_S = 60.0


class _Missing(TransferError):
    """The source does not exist (HTTP 404, no such file): fine for transfer 'maybe', never retried."""


class _Permanent(TransferError):
    """A failure retrying cannot fix (unsupported scheme, HTTP 4xx)."""


class _Adler32:
    """hashlib-like adler32, the checksum IceProd's data catalog uses."""

    def __init__(self) -> None:
        self.value = 1

    def update(self, data: bytes) -> None:
        self.value = zlib.adler32(data, self.value)

    def hexdigest(self) -> str:
        return "%08x" % (self.value & 0xFFFFFFFF)


def parse_checksum(text: str) -> Tuple[str, str]:
    """Split "sha256:abc..." into (algorithm, lowercase hex); a bare hex string is sha256."""
    algo, sep, digest = text.partition(":")
    if not sep:
        algo, digest = DEFAULT_ALGORITHM, text
    algo = algo.lower().replace("-", "")
    if algo not in ALGORITHMS:
        raise ConfigError(f"checksum {text!r}: algorithm must be one of {', '.join(ALGORITHMS)}")
    return algo, digest.strip().lower()


def new_hasher(algo: str) -> Any:
    return _Adler32() if algo == "adler32" else hashlib.new(algo)


def _local_path(url: str, base_dir: str) -> Optional[str]:
    """The filesystem path of a file:// URL or bare path; None for other schemes."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise _Permanent(f"{url}: file:// URLs must not name a host")
        return urllib.parse.unquote(parsed.path)  # POSIX url2pathname, without importing urllib.request
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return os.path.join(base_dir, url)
    return None


def _copy(src: Any, dst: Any, hasher: Any) -> int:
    size = 0
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            return size
        hasher.update(chunk)
        dst.write(chunk)
        size += len(chunk)


def _http_error(url: str, exc: Exception) -> TransferError:
    code = getattr(exc, "code", None)  # urllib's HTTPError (imported lazily: it pulls in http and ssl)
    if isinstance(code, int):
        if code == 404:
            return _Missing(f"{url}: HTTP 404 not found")
        message = f"{url}: HTTP {code} {getattr(exc, 'reason', '')}"
        return _Permanent(message) if 400 <= code < 500 and code not in (408, 429) else TransferError(message)
    reason = getattr(exc, "reason", None) or exc
    return TransferError(f"{url}: {reason}")


def fetch(url: str, dest: str, algo: str, timeout: float, base_dir: str) -> Tuple[int, str]:
    """Copy ``url`` to ``dest`` once; returns (bytes, hex digest)."""
    hasher = new_hasher(algo)
    path = _local_path(url, base_dir)
    try:
        with open(dest, "wb") as out:
            if path is not None:
                with open(path, "rb") as src:
                    return _copy(src, out, hasher), hasher.hexdigest()
            if urllib.parse.urlparse(url).scheme not in ("http", "https"):
                raise _Permanent(f"{url}: unsupported URL scheme (use file://, http:// or https://)")
            from urllib.request import urlopen  # lazily: it pulls in http.client and ssl

            with urlopen(url, timeout=timeout) as response:
                return _copy(response, out, hasher), hasher.hexdigest()
    except FileNotFoundError as exc:
        if path is not None and exc.filename == path:
            raise _Missing(f"{url}: no such file") from exc
        raise TransferError(f"{url}: {exc}") from exc
    except OSError as exc:  # urllib's URLError and HTTPError are OSErrors
        raise _http_error(url, exc) from exc


def put(src_path: str, url: str, algo: str, timeout: float, base_dir: str) -> Tuple[int, str]:
    """Copy the local file ``src_path`` to ``url`` once (file:// copy or HTTP PUT); returns (bytes, digest)."""
    hasher = new_hasher(algo)
    path = _local_path(url, base_dir)
    try:
        size = os.path.getsize(src_path)
        with open(src_path, "rb") as src:
            if path is not None:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                tmp = path + ".part"
                with open(tmp, "wb") as out:
                    _copy(src, out, hasher)
                os.replace(tmp, path)
                return size, hasher.hexdigest()
            if urllib.parse.urlparse(url).scheme not in ("http", "https"):
                raise _Permanent(f"{url}: unsupported URL scheme (use file://, http:// or https://)")
            from urllib.request import Request, urlopen

            body = _HashingReader(src, hasher)
            request = Request(url, data=body, method="PUT")
            request.add_header("Content-Length", str(size))
            request.add_header("Content-Type", "application/octet-stream")
            with urlopen(request, timeout=timeout) as response:
                response.read()
            return size, hasher.hexdigest()
    except FileNotFoundError as exc:
        if exc.filename == src_path:
            raise _Missing(f"{src_path}: the job did not write this output") from exc
        raise TransferError(f"{url}: {exc}") from exc
    except OSError as exc:  # urllib's URLError and HTTPError are OSErrors
        raise _http_error(url, exc) from exc


class _HashingReader:
    """A file wrapper that hashes what http.client reads from it while uploading."""

    def __init__(self, handle: Any, hasher: Any) -> None:
        self.handle, self.hasher = handle, hasher

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.hasher.update(data)
        return data


def _with_retries(
    what: str, action: Callable[[], Tuple[int, str]], settings: PilotSettings
) -> Tuple[Any, int]:
    """Run ``action`` up to 1 + transfer_retries times with exponential backoff; returns (result, attempts)."""
    attempts = max(1, settings.transfer_retries + 1)
    for attempt in range(1, attempts + 1):
        try:
            return action(), attempt
        except (_Missing, _Permanent):
            raise
        except TransferError as exc:
            if attempt == attempts:
                raise TransferError(f"{exc} (after {attempts} attempts)") from exc
            delay = min(MAX_BACKOFF_S, settings.transfer_backoff_s * 2 ** (attempt - 1))
            log.warning(
                "%s failed (attempt %d of %d): %s; retrying in %.2f s", what, attempt, attempts, exc, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def _record(item: DataSpec, direction: str) -> Dict[str, Any]:
    return {
        "url": item.url, "local": item.local, "direction": direction, "transfer": item.transfer,
        "bytes": 0, "seconds": 0.0, "checksum": None, "ok": False, "error": None, "attempts": 0,
    }  # fmt: skip


def _stage_one(item: DataSpec, direction: str, workdir: str, settings: PilotSettings, base_dir: str) -> Dict:
    rec = _record(item, direction)
    if item.transfer == "no":
        rec.update(ok=True, error="not transferred (transfer: no)")
        return rec
    local = os.path.join(workdir, item.local)
    algo, expected = parse_checksum(item.checksum) if item.checksum else (DEFAULT_ALGORITHM, None)
    start = time.monotonic()
    try:
        if direction == "input":
            os.makedirs(os.path.dirname(local), exist_ok=True)
            part = local + ".part"

            def action() -> Tuple[int, str]:
                size, digest = fetch(item.url, part, algo, settings.transfer_timeout_s, base_dir)
                if expected is not None and digest != expected:
                    raise TransferError(
                        f"{item.url}: {algo} checksum mismatch: expected {expected}, got {digest}"
                    )
                return size, digest

            try:
                (size, digest), rec["attempts"] = _with_retries(f"stage-in of {item.url}", action, settings)
            except TransferError:
                if os.path.exists(part):
                    os.unlink(part)
                raise
            os.replace(part, local)
        else:
            action = lambda: put(local, item.url, algo, settings.transfer_timeout_s, base_dir)  # noqa: E731
            (size, digest), rec["attempts"] = _with_retries(f"stage-out of {item.url}", action, settings)
        rec.update(ok=True, bytes=size, checksum=f"{algo}:{digest}")
    except TransferError as exc:
        rec["error"] = str(exc)
        if item.transfer == "maybe" and isinstance(exc, _Missing):
            log.info("%s: missing, fine for transfer: maybe", item.url)
        else:
            rec["seconds"] = round(time.monotonic() - start, 6)
            raise _Failed(rec) from exc
    rec["seconds"] = round(time.monotonic() - start, 6)
    log.info("%s %s %s: %d bytes in %.3f s", direction, item.url, item.local, rec["bytes"], rec["seconds"])
    return rec


class _Failed(Exception):
    def __init__(self, record: Dict[str, Any]) -> None:
        super().__init__(record["error"])
        self.record = record


def stage(
    data: List[DataSpec], direction: str, workdir: str, settings: PilotSettings, base_dir: str
) -> Tuple[List[Dict[str, Any]], Optional[str]]:
    """Stage every item of ``direction`` ("input" or "output"; "both" items take part in each).

    Returns the transfer records and the error of the first required transfer that failed (None if all
    went well); staging stops at that failure.
    """
    records = []
    for item in data:
        if item.direction not in (direction, "both"):
            continue
        try:
            records.append(_stage_one(item, direction, workdir, settings, base_dir))
        except _Failed as failed:
            records.append(failed.record)
            log.error("stage-%s failed: %s", "in" if direction == "input" else "out", failed.record["error"])
            return records, failed.record["error"]
    return records, None
