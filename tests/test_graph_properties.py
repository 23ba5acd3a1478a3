"""Property tests: random DAGs with random fan-outs and aggregations, checked against a small model.

The generator builds the project process by process (parents always come earlier) and, while doing
so, tracks the fan-out layers each process should be repeated over, in its own terms (layers named
by the process that opens them). ``build_graph`` is then checked against that model: the exact
set of nodes, every node's inputs and aggregation keys, unique ids, and inputs that point at
folders their producer actually writes. A second property feeds unconstrained (often invalid)
DAGs and requires a clean ``ConfigError`` or a graph that satisfies the model-free invariants.
"""

from __future__ import annotations

import itertools
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expops_smk.config.project import load_project
from expops_smk.errors import ConfigError
from expops_smk.graph.expansion import Graph, build_graph
from expops_smk.graph.nodes import Node
from projects import functions, pipeline, write_project

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Layer:
    kind: str                 # "data" | "seed"
    owner: str
    values: tuple[int, ...]   # partition numbers 1..N, or the seeds

    def key(self, value: int) -> str:
        return f"{self.kind}{value}"


@dataclass
class Expected:
    """What the generator knows about one process."""

    name: str
    parents: list[str]
    stack: list[Layer]
    popped: list[Layer]                 # data layer first, then seed layer
    child: Layer | None = None          # the layer it opens for its children
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def children_stack(self) -> list[Layer]:
        return self.stack + ([self.child] if self.child else [])

    @property
    def output_stack(self) -> list[Layer]:
        """Folders it writes: one per partition for a data split; a seed split writes its own."""
        return self.stack + ([self.child] if self.child and self.child.kind == "data" else [])


def node_at(name: str, layers: list[Layer], values: dict[str, int]) -> Node:
    return Node(name, tuple(values[l.owner] for l in layers if l.kind == "data"),
                tuple(values[l.owner] for l in layers if l.kind == "seed"))


def is_prefix(short: list[Layer], long: list[Layer]) -> bool:
    return [l.owner for l in long[: len(short)]] == [l.owner for l in short]


@st.composite
def valid_projects(draw: st.DrawFn) -> tuple[dict[str, Any], list[str], list[Expected]]:
    model: list[Expected] = []
    for index in range(draw(st.integers(1, 10))):
        name = f"n{index}"
        parents: list[str] = []
        merged: list[Layer] = []
        # (hypothesis favours the first entry of sampled_from: list the common case first)
        if model and draw(st.sampled_from([True, True, True, False])):
            # Mostly extend the deepest or the latest process, so that nested layers are common.
            how = draw(st.sampled_from(["deepest", "latest", "any"]))
            primary = (max(model, key=lambda p: len(p.children_stack)) if how == "deepest"
                       else model[-1] if how == "latest" else draw(st.sampled_from(model)))
            merged = primary.children_stack
            # Extra parents must carry a prefix of the primary's layers (an outer branch or an
            # un-fanned node broadcast into the fan-out); anything else is an invalid merge.
            candidates = [p for p in model if p is not primary and is_prefix(p.children_stack, merged)]
            extra = draw(st.lists(st.sampled_from(candidates), unique_by=lambda p: p.name, max_size=2)) \
                if candidates else []
            parents = [p.name for p in draw(st.permutations([primary, *extra]))]
        stack = list(merged)
        popped: list[Layer] = []
        config: dict[str, Any] = {"name": name}
        open_kinds = [kind for kind in ("data", "seed") if any(l.kind == kind for l in stack)]
        options: list[tuple[str, ...]] = [(), ()] + [(kind,) for kind in open_kinds]
        if len(open_kinds) == 2:
            options += [("data", "seed")] * 2
        for kind in draw(st.sampled_from(options)):
            innermost = [l for l in stack if l.kind == kind][-1]
            popped.append(innermost)
            stack.remove(innermost)
            spelled = draw(st.booleans())
            config.update({f"{kind}_aggregation": True} if spelled else
                          {f"{kind}_parallelism": {"aggregation": True}})
        child = None
        aggregated = {l.kind for l in popped}
        choice = draw(st.sampled_from(["data", "none", "seed", "none"])) if len(stack) < 3 else "none"
        if choice == "data" and "data" not in aggregated:
            size = draw(st.one_of(st.integers(1, 3), st.lists(st.integers(0, 5), min_size=1, max_size=3)))
            count = size if isinstance(size, int) else len(size)
            child = Layer("data", name, tuple(range(1, count + 1)))
            config.setdefault("data_parallelism", {})["size"] = size
        elif choice == "seed" and "seed" not in aggregated:
            seeds = draw(st.lists(st.integers(-5, 99), min_size=1, max_size=3, unique=True))
            child = Layer("seed", name, tuple(seeds))
            config.setdefault("seed_parallelism", {})["seeds"] = seeds
        model.append(Expected(name, parents, stack, popped, child, config))

    # Spell each edge either in process_adjlist or as depends_on, at random.
    lines = []
    for process in model:
        for parent in process.parents:
            if draw(st.booleans()):
                lines.append(f"{parent} {process.name}  # edge")
            else:
                process.config.setdefault("depends_on", []).append(parent)
    config = pipeline([p.config for p in model], "\n".join(lines) if lines else None)
    plain = [p.name for p in model if p.child is None]
    return config, plain, model


def expected_nodes(process: Expected) -> list[Node]:
    return [node_at(process.name, process.stack, dict(zip((l.owner for l in process.stack), values)))
            for values in itertools.product(*(l.values for l in process.stack))]


def expected_inputs(process: Expected, node: Node, by_name: dict[str, Expected]) -> dict[str, list]:
    """upstream -> [(folder, keys)] in branch order (data layer before seed layer)."""
    values = {}
    data = iter(node.partition)
    seeds = iter(node.seed)
    for layer in process.stack:
        values[layer.owner] = next(data) if layer.kind == "data" else next(seeds)
    result: dict[str, list] = {}
    for parent_name in process.parents:
        parent = by_name[parent_name]
        collapsed = [l for l in process.popped if any(l.owner == o.owner for o in parent.output_stack)]
        entries = []
        for branch in itertools.product(*(l.values for l in collapsed)):
            assignment = {**values, **{l.owner: v for l, v in zip(collapsed, branch)}}
            keys = tuple(l.key(v) for l, v in zip(collapsed, branch))
            entries.append((node_at(parent.name, parent.output_stack, assignment), keys))
        result[parent_name] = entries
    return result


def build(config: dict[str, Any], plain: list[str]) -> Graph:
    with tempfile.TemporaryDirectory() as folder:
        root = write_project(Path(folder), config, functions(plain))
        return build_graph(load_project(root))


def check_model_free_invariants(graph: Graph) -> None:
    nodes = list(graph.nodes())
    assert graph.node_count() == len(nodes) == sum(layout.node_count() for layout in graph.layouts.values())
    assert len({node.id for node in nodes}) == len(nodes)
    assert len({node.label for node in nodes}) == len(nodes)
    assert len({node.results_dir for node in nodes}) == len(nodes)
    written: dict[str, set[Node]] = {}
    for node in nodes:
        written.setdefault(node.process, set()).update(graph.output_locations(node))
        assert graph.node(node.process, node.partition_value, node.seed_value) == node
    for node in nodes:
        layout = graph.layouts[node.process]
        items = graph.inputs(node)
        assert [item.upstream for item in items] == sorted(
            (item.upstream for item in items), key=list(layout.spec.parents).index)
        for upstream in layout.spec.parents:
            mine = [item for item in items if item.upstream == upstream]
            assert mine, f"{node.label} reads nothing from {upstream}"
            assert all(item.location in written[upstream] for item in mine)
            assert len({item.location for item in mine}) == len(mine)
            # Every branch key exactly once per upstream, and exactly the collapsed layers' branches.
            keys = Counter(item.keys for item in mine)
            assert set(keys.values()) == {1}
            carried = [layer for layer in layout.popped if layer in graph.layouts[upstream].output_stack]
            expected_keys = {tuple(l.key(v) for l, v in zip(carried, branch))
                             for branch in itertools.product(*(l.values for l in carried))}
            assert set(keys) == expected_keys


@SETTINGS
@given(valid_projects())
def test_expansion_matches_the_model(project: tuple[dict[str, Any], list[str], list[Expected]]) -> None:
    config, plain, model = project
    graph = build(config, plain)
    by_name = {p.name: p for p in model}

    assert graph.node_count() == sum(len(expected_nodes(p)) for p in model)
    for process in model:
        layout = graph.layouts[process.name]
        assert [(l.kind, l.owner, l.values) for l in layout.stack] == \
            [(l.kind, l.owner, l.values) for l in process.stack]
        nodes = [node for node in graph.nodes() if node.process == process.name]
        assert nodes == expected_nodes(process)
        for node in nodes:
            actual: dict[str, list] = {}
            for item in graph.inputs(node):
                actual.setdefault(item.upstream, []).append((item.location, item.keys))
            assert actual == {k: v for k, v in expected_inputs(process, node, by_name).items()}
    check_model_free_invariants(graph)


@st.composite
def any_projects(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """Random parents and flags with no regard for validity."""
    processes = []
    for index in range(draw(st.integers(1, 7))):
        config: dict[str, Any] = {"name": f"n{index}"}
        if index:
            config["depends_on"] = draw(st.lists(st.sampled_from([f"n{i}" for i in range(index)]),
                                                 unique=True, max_size=3))
        split = draw(st.sampled_from(["data", "none", "seed", "none"]))
        for kind in ("data", "seed"):
            if kind != split and draw(st.sampled_from([False, False, False, True])):
                config[f"{kind}_aggregation"] = True
        if split == "data":
            config["data_parallelism"] = {"size": draw(st.integers(1, 2))}
        elif split == "seed":
            config["seed_parallelism"] = {"seeds": draw(st.lists(st.integers(0, 9), min_size=1, max_size=2, unique=True))}
        processes.append(config)
    return pipeline(processes), [p["name"] for p in processes]


@SETTINGS
@given(any_projects())
def test_any_dag_expands_or_fails_with_a_config_error(project: tuple[dict[str, Any], list[str]]) -> None:
    config, names = project
    try:
        graph = build(config, names)
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message and "process '" in message and "field '" in message
        return
    check_model_free_invariants(graph)
