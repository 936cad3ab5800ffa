"""Build the pilot zipapp: one file that runs with only a Python >= 3.8 interpreter on the worker.

It holds the standard-library-only part of the package, marked by its folders: the lazy
``iceprod_dag/__init__.py``, ``common/`` (names, units, expressions, exceptions, states) and ``pilot/``, their
bytecode for the building Python, and a ``__main__`` calling the pilot's CLI. The archive is
written with fixed timestamps and a fixed file order, so the same sources always give the same bytes
(compile's output is deterministic and includes this file).
"""

from __future__ import annotations

import importlib.util
import io
import marshal
import os
import stat
import zipfile
from typing import List, Tuple, Union

import iceprod_dag

#: the folders of iceprod_dag that run on workers: standard library only, Python >= 3.8
WORKER_PACKAGES = ("common", "pilot")
INTERPRETER = "/usr/bin/env python3"
MAIN = (
    "import sys\n"
    "if sys.version_info < (3, 8):\n"
    "    sys.exit('the iceprod-dag pilot needs Python >= 3.8, this is ' + sys.version.split()[0])\n"
    "from iceprod_dag.pilot.__main__ import main\n"
    "sys.exit(main())\n"
)
_EPOCH = (1980, 1, 1, 0, 0, 0)


def sources() -> List[Tuple[str, str]]:
    """(archive name, file path) of every file the zipapp holds, in archive order."""
    package = os.path.dirname(os.path.abspath(iceprod_dag.__file__))
    files = [("iceprod_dag/__init__.py", os.path.join(package, "__init__.py"))]
    for folder in WORKER_PACKAGES:
        path = os.path.join(package, folder)
        if not os.path.isfile(os.path.join(path, "__init__.py")):
            raise FileNotFoundError(f"cannot build the pilot: {path} is not a package")
        files += [
            (f"iceprod_dag/{folder}/{name}", os.path.join(path, name))
            for name in sorted(os.listdir(path))
            if name.endswith(".py")
        ]
    return files


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    archive.writestr(info, data)


def bytecode(name: str, source: bytes) -> bytes:
    """An unchecked hash-based .pyc (PEP 552) of ``source`` for this Python.

    zipimport cannot cache compiled code, so without it every pilot start compiles ~3000 lines (a good part
    of a one-shot run's start-up). A worker whose Python has another magic number ignores it and compiles
    the .py next to it. Marshal format 2 has no back-references, whose presence depends on reference
    counts: the bytes depend on the source and the Python version only.
    """
    code = compile(source, name, "exec", dont_inherit=True)
    flags = (1).to_bytes(4, "little")  # hash-based, source not checked: the archive is immutable
    return importlib.util.MAGIC_NUMBER + flags + importlib.util.source_hash(source) + marshal.dumps(code, 2)


def build_bytes(with_bytecode: bool = True) -> bytes:
    """The zipapp's bytes: a shebang line followed by the zip archive."""
    buffer = io.BytesIO()
    buffer.write(f"#!{INTERPRETER}\n".encode())
    with zipfile.ZipFile(buffer, "w") as archive:
        _add(archive, "__main__.py", MAIN.encode())
        for name, path in sources():
            with open(path, "rb") as handle:
                source = handle.read()
            _add(archive, name, source)
            if with_bytecode:
                _add(archive, name[: -len(".py")] + ".pyc", bytecode(name, source))
    return buffer.getvalue()


def build_zipapp(target: Union[str, "os.PathLike[str]"]) -> str:
    """Write the pilot zipapp to ``target`` (executable); returns its path."""
    target = os.fspath(target)
    folder = os.path.dirname(os.path.abspath(target))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{target}.tmp{os.getpid()}"
    with open(tmp, "wb") as handle:
        handle.write(build_bytes())
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    return target
