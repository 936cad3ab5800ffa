"""The one rule of the layers (docs/architecture.md), checked on the imports of every module.

- The core (common, dataset, compile, dagman, sites, stats, pilot) imports only the core: never the site
  plugins' implementations (iceprod_dag.plugins), the web UI or the CLI.
- A plugin imports the core and itself; the batch sites also share iceprod_dag.plugins.batch. Never another
  plugin's internals, the web UI or the CLI.
- The web UI imports the core (sites through the registry), never a plugin or the CLI.
- Only the CLI may import everything.
- What the pilot zipapp ships to workers (iceprod_dag/__init__.py and its worker folders, common/ and pilot/)
  imports only the standard library and those folders; common/ imports only itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

from importgraph import Import, modules, statements

from iceprod_dag.compile.pilotzip import WORKER_PACKAGES

#: the core's folders under iceprod_dag/
CORE = frozenset({"common", "dataset", "compile", "dagman", "sites", "stats", "pilot"})
#: the machinery the batch-system sites share: the one plugin package other plugins may import
SHARED_PLUGIN = "plugins.batch"
#: third-party packages the pilot uses when a worker has them, imported inside a function (psutil: else /proc)
OPTIONAL_ON_WORKERS = frozenset({"psutil"})


def layer(module: str) -> str:
    """A core folder, 'cli', 'webui', 'plugins.<name>', 'plugins' or 'iceprod_dag' (the package's __init__)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "iceprod_dag"
    if parts[1] == "plugins" and len(parts) > 2:
        return f"plugins.{parts[2]}"
    return parts[1]


def may_import(importer: str, imported: str) -> bool:
    if importer == imported or importer == "cli":
        return True
    if imported in CORE or imported == "iceprod_dag":
        return True
    return importer.startswith("plugins.") and imported == SHARED_PLUGIN


def resolve(target: str, known: set[str]) -> str | None:
    """The project module a dotted name is (or is an attribute of); None outside the project."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def project_edges() -> list[tuple[str, Import, str]]:
    """(module, import statement, project module it names) for every import of a project module."""
    mods = modules()
    known = set(mods)
    edges = []
    for name, path in sorted(mods.items()):
        for statement in statements(name, path):
            for target in statement.targets:
                found = resolve(target, known)
                if found and found != name:
                    edges.append((name, statement, found))
    return edges


def test_every_module_is_in_a_known_layer() -> None:
    layers = {layer(name) for name in modules()}
    assert {"cli", "webui", "plugins.local", "plugins.condor"} <= layers
    unknown = sorted(x for x in layers if x not in CORE | {"iceprod_dag", "cli", "webui", "plugins"})
    unknown = [x for x in unknown if not x.startswith("plugins.")]
    assert not unknown, f"folders outside the layers of docs/architecture.md: {unknown}"


def test_layers_import_only_what_the_rule_allows() -> None:
    breaches = sorted(
        {
            (name, statement.line, target)
            for name, statement, target in project_edges()
            if not may_import(layer(name), layer(target))
        }
    )
    problems = [
        f"{name}:{line} ({layer(name)}) imports {target} ({layer(target)})" for name, line, target in breaches
    ]
    assert not problems, "imports breaking the rule of the layers:\n" + "\n".join(problems)


def worker_problems(name: str, path: Path, known: set[str]) -> list[str]:
    """Why module ``name``, shipped to workers in the pilot zipapp, would not run there."""
    shipped = {*WORKER_PACKAGES, "iceprod_dag"}
    if layer(name) == "common":
        shipped = {"common"}
    problems = []
    for statement in statements(name, path):
        base = statement.targets[0]
        where = f"{name}:{statement.line} imports {base}"
        found = resolve(base, known) if base.split(".")[0] == "iceprod_dag" else None
        if found:
            if layer(found) not in shipped:
                problems.append(
                    f"{where}, which {'common/' if layer(name) == 'common' else 'the pilot'} lacks"
                )
        elif base.split(".")[0] in OPTIONAL_ON_WORKERS:
            if not statement.lazy:
                problems.append(f"{where} at import time: workers without it could not load the pilot")
        elif base.split(".")[0] not in sys.stdlib_module_names and base != "__future__":
            problems.append(f"{where}: not in the standard library")
    return problems


def test_what_the_pilot_ships_imports_only_the_standard_library_and_itself() -> None:
    mods = modules()
    shipped = {n: p for n, p in mods.items() if layer(n) in {*WORKER_PACKAGES, "iceprod_dag"}}
    assert "iceprod_dag.pilot.runjob" in shipped and "iceprod_dag.common.units" in shipped
    problems = [p for name, path in sorted(shipped.items()) for p in worker_problems(name, path, set(mods))]
    assert not problems, "\n".join(problems)


def test_the_checks_see_a_breach(tmp_path: Path) -> None:
    """The checkers on a module written to break every rule (relative imports resolved, lazy ones seen)."""
    source = tmp_path / "bad.py"
    source.write_text(
        "import yaml\n"
        "from ..plugins.local import site\n"
        "from . import units\n"
        "def sample():\n"
        "    import psutil\n"
        "import psutil\n"
    )
    name = "iceprod_dag.common.bad"
    found = statements(name, source)
    assert [(s.targets[0], s.line, s.lazy) for s in found] == [
        ("yaml", 1, False),
        ("iceprod_dag.plugins.local", 2, False),
        ("iceprod_dag.common", 3, False),
        ("psutil", 5, True),
        ("psutil", 6, False),
    ]
    known = set(modules()) | {name}
    assert worker_problems(name, source, known) == [
        f"{name}:1 imports yaml: not in the standard library",
        f"{name}:2 imports iceprod_dag.plugins.local, which common/ lacks",
        f"{name}:6 imports psutil at import time: workers without it could not load the pilot",
    ]
    assert not may_import("dagman", "plugins.local") and not may_import("plugins.slurm", "plugins.local")
    assert not may_import("webui", "cli") and may_import("plugins.slurm", "plugins.batch")
