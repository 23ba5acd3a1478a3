"""Render the expanded graph for people and tools: an indented tree, JSON, Graphviz dot, mermaid.

Edges point from the node that produced an input to the node that reads it; a data split's
per-partition folders are drawn as edges from the split node itself.
"""

from __future__ import annotations

import json
from typing import Iterator

from expops_smk.graph.expansion import Graph
from expops_smk.graph.nodes import Node
from expops_smk.graph.partitions import read_partitions


def edges(graph: Graph) -> Iterator[tuple[Node, Node, tuple[str, ...]]]:
    """(producer node, consumer node, aggregation keys) for every input of every node."""
    for node in graph.nodes():
        for item in graph.inputs(node):
            yield graph.producer(item.location), node, item.keys


def as_tree(graph: Graph) -> str:
    """Indented tree: nodes grouped by partition path, then seed path, labels in DAG order."""
    groups: dict[tuple[tuple[int, ...], tuple[int, ...]], list[Node]] = {}
    for node in graph.nodes():
        groups.setdefault((node.partition, node.seed), []).append(node)
    lines: list[str] = []
    printed_headers: set[tuple[str, ...]] = set()
    labels: dict[Node, dict[int, str]] = {}
    for (partition, seed) in sorted(groups):
        named = partition_labels(graph, groups[(partition, seed)][0], labels)
        path = [f"P{index}{name}" for index, name in zip(partition, named)] + [f"S{value}" for value in seed]
        for depth in range(1, len(path) + 1):
            header = tuple(path[:depth])
            if header not in printed_headers:
                printed_headers.add(header)
                lines.append("  " * (depth - 1) + header[-1])
        indent = "  " * len(path)
        for node in groups[(partition, seed)]:
            layout = graph.layouts[node.process]
            note = ""
            if layout.child_layer is not None:
                layer = layout.child_layer
                count = len(layout.output_locations(node)) if layer.kind == "data" else len(layer.values)
                note = f"  [splits into {count} {'partitions' if layer.kind == 'data' else 'seeds'}]"
            elif layout.popped:
                note = "  [aggregates " + " and ".join(f"{layer.kind} of '{layer.owner}'" for layer in layout.popped) + "]"
            lines.append(f"{indent}{node.label}{note}")
    return "\n".join(lines)


def partition_labels(graph: Graph, node: Node, known: dict[Node, dict[int, str]]) -> list[str]:
    """What each partition in ``node``'s path holds, for people: `` shop=east`` or `` data/a.png``
    for a growing split's partition (its label in the split's last list; ids are numbers derived
    from the key), nothing for a ``size:`` slice. ``known`` caches each split job's list."""
    data_layers = [layer for layer in graph.layouts[node.process].stack if layer.kind == "data"]
    names = []
    for index, layer in enumerate(data_layers):
        label = ""
        if layer.dynamic:
            split = layer.branch(node.partition, node.seed)
            if split not in known:
                known[split] = {p.number: p.label for p in read_partitions(graph.project.root, split)}
            label = known[split].get(node.partition[index], "")
        names.append(f" {label}" if label else "")
    return names


def as_json(graph: Graph) -> str:
    nodes = []
    for node in graph.nodes():
        nodes.append({
            "id": node.id,
            "label": node.label,
            "legacy_name": node.legacy_name,
            "process": node.process,
            "partition": node.partition_value,
            "seed": node.seed_value,
            "results_dir": node.results_dir,
            "inputs": [
                {"process": item.upstream, "from": graph.producer(item.location).id,
                 "results_dir": item.location.results_dir, "keys": list(item.keys)}
                for item in graph.inputs(node)
            ],
        })
    return json.dumps({"project": graph.project.name, "node_count": len(nodes), "nodes": nodes}, indent=2)


def as_dot(graph: Graph) -> str:
    ids = _diagram_ids(graph)
    lines = ["digraph expops {", "  rankdir=TB;", "  node [shape=box, style=rounded];"]
    for node, node_id in ids.items():
        lines.append(f'  {node_id} [label="{node.label}"];')
    for producer, consumer, keys in _unique_edges(graph):
        label = f' [label="{"/".join(keys)}"]' if keys else ""
        lines.append(f"  {ids[producer]} -> {ids[consumer]}{label};")
    lines.append("}")
    return "\n".join(lines)


def as_mermaid(graph: Graph) -> str:
    ids = _diagram_ids(graph)
    lines = ["flowchart TD"]
    for node, node_id in ids.items():
        lines.append(f'  {node_id}["{node.label}"]')
    for producer, consumer, _ in _unique_edges(graph):
        lines.append(f"  {ids[producer]} --> {ids[consumer]}")
    return "\n".join(lines)


def _diagram_ids(graph: Graph) -> dict[Node, str]:
    """Diagram identifiers n0, n1, ...: legacy names collide (process 'a' at partition 1 and a
    process named 'a_1' are both ``a_1``) and may hold characters mermaid reads as syntax."""
    return {node: f"n{index}" for index, node in enumerate(graph.nodes())}


def _unique_edges(graph: Graph) -> list[tuple[Node, Node, tuple[str, ...]]]:
    """One edge per (producer, consumer) pair. A data split feeding an aggregation directly is one
    pair for all of its partitions; that edge is labelled with the number of branches it carries."""
    keys_by_pair: dict[tuple[Node, Node], list[tuple[str, ...]]] = {}
    for producer, consumer, keys in edges(graph):
        keys_by_pair.setdefault((producer, consumer), []).append(keys)
    return [(producer, consumer, keys[0] if len(keys) == 1 else (f"{len(keys)} branches",))
            for (producer, consumer), keys in keys_by_pair.items()]


FORMATS = {"tree": as_tree, "json": as_json, "dot": as_dot, "mermaid": as_mermaid}
