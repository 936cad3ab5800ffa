"""The project's modules by their installed names, and the imports each one makes, read with ast.

setup.py installs plugins/ and webui/ as iceprod_dag.plugins and iceprod_dag.webui; imports inside functions
and TYPE_CHECKING blocks count too (a dependency hidden in a function is still a dependency of the design).
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: installed package name -> folder in the checkout (setup.py's package_dir)
PACKAGES = {
    "iceprod_dag": ROOT / "iceprod_dag",
    "iceprod_dag.plugins": ROOT / "plugins",
    "iceprod_dag.webui": ROOT / "webui",
}


@dataclasses.dataclass(frozen=True)
class Import:
    """One imported name: ``import a.b`` gives a.b; ``from a import b`` gives a and a.b (b may be a module)."""

    targets: tuple[str, ...]
    line: int
    #: inside a function: the module itself imports without it
    lazy: bool


def modules() -> dict[str, Path]:
    """Installed module name -> source file, for every module of the project."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def statements(name: str, path: Path) -> list[Import]:
    """Every import statement of module ``name`` (source ``path``), relative ones made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function.update(id(n) for n in ast.walk(node) if n is not node)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = tuple(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            targets = (base, *(f"{base}.{a.name}" for a in node.names))
        else:
            continue
        out.append(Import(targets, node.lineno, id(node) in in_function))
    return sorted(out, key=lambda s: s.line)


def project_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports, each the longest known prefix of what it names."""
    out: set[str] = set()
    for statement in statements(name, path):
        for target in statement.targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(f"{target}."):
                out.add(target)
    return out
