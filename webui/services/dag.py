"""Lay out a dataset's task graph for drawing: tasks in columns by depth, edges from parents to children.

Only positions are computed here; the template draws the boxes (with per-task state counts) and edges.
"""

from __future__ import annotations

import dataclasses
from typing import Any

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 190, 74, 70, 24, 10


@dataclasses.dataclass
class Box:
    name: str
    x: int
    y: int
    counts: dict[str, int]
    total: int


@dataclasses.dataclass
class Edge:
    path: str  #: SVG path data of a smooth curve from the parent's right side to the child's left side


@dataclasses.dataclass
class Layout:
    boxes: list[Box]
    edges: list[Edge]
    width: int
    height: int
    box_w: int = BOX_W
    box_h: int = BOX_H


def task_graph(config: dict[str, Any] | None, counts: dict[str, dict[str, int]]) -> dict[str, list[str]]:
    """task -> parent tasks, from the dataset config; without a config, the tasks seen in the jobs table."""
    tasks = (config or {}).get("tasks") or []
    graph = {t["name"]: list(t.get("depends") or []) for t in tasks if isinstance(t, dict) and t.get("name")}
    for name in counts:
        graph.setdefault(name, [])
    return graph


def layout(graph: dict[str, list[str]], counts: dict[str, dict[str, int]]) -> Layout:
    depth: dict[str, int] = {}

    def level(task: str, seen: frozenset[str] = frozenset()) -> int:
        if task in depth:
            return depth[task]
        if task in seen:  # a cycle cannot come from a validated dataset; draw it flat rather than recurse
            return 0
        parents = [p for p in graph.get(task, []) if p in graph]
        depth[task] = 1 + max((level(p, seen | {task}) for p in parents), default=-1)
        return depth[task]

    for task in graph:
        level(task)
    columns: dict[int, list[str]] = {}
    for task in graph:  # declaration order within a column
        columns.setdefault(depth[task], []).append(task)
    boxes: dict[str, Box] = {}
    tallest = max((len(c) for c in columns.values()), default=0)
    height = PAD * 2 + tallest * BOX_H + max(tallest - 1, 0) * GAP_Y
    for col, tasks in sorted(columns.items()):
        used = len(tasks) * BOX_H + (len(tasks) - 1) * GAP_Y
        top = PAD + (height - 2 * PAD - used) // 2
        for i, task in enumerate(tasks):
            c = counts.get(task, {})
            boxes[task] = Box(
                task, PAD + col * (BOX_W + GAP_X), top + i * (BOX_H + GAP_Y), c, sum(c.values())
            )
    edges = []
    for child, parents in graph.items():
        for parent in parents:
            if parent not in boxes:
                continue
            a, b = boxes[parent], boxes[child]
            x1, y1 = a.x + BOX_W, a.y + BOX_H // 2
            x2, y2 = b.x, b.y + BOX_H // 2
            mid = (x1 + x2) // 2
            edges.append(Edge(f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 6},{y2}"))
    width = PAD * 2 + (max(columns, default=0) + 1) * (BOX_W + GAP_X) - GAP_X
    return Layout(list(boxes.values()), edges, width, max(height, BOX_H + 2 * PAD))
