"""No import cycles between the project's modules, counting imports inside functions and TYPE_CHECKING
blocks too (a cycle hidden in a function is still a cycle of the design)."""

from __future__ import annotations

from importgraph import modules, project_imports


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_checker_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_itself_back() -> None:
    mods = modules()
    known = set(mods)
    # a package's __init__ is imported on the way to its modules: leave those edges out
    graph = {
        name: {t for t in project_imports(name, path, known) if mods[t].name != "__init__.py"}
        for name, path in mods.items()
    }
    assert "iceprod_dag.plugins.batch.site" in graph and "iceprod_dag.dagman.engine.engine" in graph
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"
