"""The one topological order of the project (dataset tasks, the web UI's claim order)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from iceprod_dag.common.exceptions import ConfigError


def topological_order(parents: Mapping[str, Iterable[str]]) -> list[str]:
    """Names parents first, in layers: each name right after the deepest of its parents' layers, and within
    a layer in the mapping's order (stable, so a declaration order is kept where the graph allows).

    Raises ConfigError naming the names left on a cycle or waiting for an unknown parent.
    """
    index = {name: i for i, name in enumerate(parents)}
    children: dict[str, list[str]] = {name: [] for name in parents}
    waiting: dict[str, int] = {}
    for name, ps in parents.items():
        unique = set(ps)
        waiting[name] = len(unique)
        for p in unique:
            children.setdefault(p, []).append(name)
    order: list[str] = []
    layer = [name for name in parents if waiting[name] == 0]
    while layer:
        order += layer
        following: list[str] = []
        for name in layer:
            for child in children.get(name, ()):
                waiting[child] -= 1
                if waiting[child] == 0:
                    following.append(child)
        layer = sorted(following, key=index.__getitem__)
    if len(order) != len(parents):
        left = [name for name in parents if waiting[name] > 0]
        raise ConfigError(f"dependencies form a cycle or name an unknown task: {', '.join(left)}")
    return order
