"""The one topological order: parents first, layer by layer, declaration order within a layer."""

from __future__ import annotations

import pytest

from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.common.graph import topological_order


def test_parents_come_first_and_declaration_order_holds_within_a_layer() -> None:
    parents = {"merge": ["b", "a"], "b": ["root"], "a": ["root"], "root": [], "side": []}
    assert topological_order(parents) == ["root", "side", "b", "a", "merge"]


def test_a_node_waits_for_its_deepest_parent() -> None:
    assert topological_order({"c": ["a", "b"], "b": ["a"], "a": []}) == ["a", "b", "c"]


def test_a_cycle_or_unknown_parent_is_named() -> None:
    with pytest.raises(ConfigError, match="x, y"):
        topological_order({"x": ["y"], "y": ["x"], "z": []})
    with pytest.raises(ConfigError, match="q"):
        topological_order({"q": ["nowhere"]})
