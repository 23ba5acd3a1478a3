"""``expops-smk status`` for growing-data splits: which partitions are new, changed or unchanged.

What the next run will find is predicted: for ``files:`` the current files' content digests are
compared with those its partitions were made from; for ``rows_per_partition`` and ``by`` the split's
current input is cut and digested (results/partition_prediction.py). Where that input is not yet
known (an upstream will run first, a ``code:`` function makes it), status reports what the last
run found (recorded in ``_partitions.json`` against the run before) and why it cannot predict.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Mapping

from expops_smk.config.model import DataSplit, ProjectConfig
from expops_smk.graph.expansion import Graph, build_graph
from expops_smk.graph.nodes import Node
from expops_smk.results.partition_prediction import CannotPredict, predict_partitions
from expops_smk.graph.partitions import Partition, read_partitions, read_removed
from expops_smk.store.hashing import hash_file
from expops_smk.store.sources import source_files

_SHOWN = 5  # partitions named per kind of change; the rest are counted


def growing_split_lines(project: ProjectConfig, states: Mapping[Node, str]) -> list[str]:
    """One line per growing-data split node (none for a project without one): a split nested in
    other fan-outs has one per branch of them. ``states`` is each node's status state."""
    graph = build_graph(project)
    lines = []
    for layout in graph.layouts.values():
        split = layout.spec.data_split
        if split is None or not split.dynamic:
            continue
        for node in layout.nodes():
            lines.append(f"{node.label} ({split.describe()}): {_split_line(project, graph, node, states)}")
    return lines


def _split_line(project: ProjectConfig, graph: Graph, node: Node, states: Mapping[Node, str]) -> str:
    root = project.root
    split = project.processes[node.process].data_split
    assert split is not None
    recorded = read_partitions(root, node)
    if not recorded:
        return "not split yet; its partitions are decided when it runs"
    if split.files is not None:
        return f"next run: {_predicted_files(root, split, recorded)}"
    try:
        return f"next run: {_summary(predict_partitions(project, graph, node, recorded, states))}"
    except CannotPredict as exc:
        return (f"last run: {_last_run(recorded, read_removed(root, node))}; "
                f"cannot predict the next run: {exc}")


def _last_run(recorded: list[Partition], removed: list[Partition]) -> str:
    groups: dict[str, list[str]] = {}
    for partition in recorded:
        groups.setdefault(partition.change or "unchanged", []).append(f"{partition.id} {partition.label}")
    groups["removed"] = [f"{p.id} {p.label}" for p in removed]
    return _summary(groups)


def _predicted_files(root: Path, split: DataSplit, recorded: list[Partition]) -> str:
    assert split.files is not None
    try:
        files = source_files(root, split.files)
    except ValueError as exc:
        return f"cannot list the files: {exc}"
    known = {partition.key: partition for partition in recorded}
    groups: dict[str, list[str]] = {}
    for path in files:
        partition = known.pop(path, None)
        if partition is None:
            groups.setdefault("new", []).append(path)
        else:
            state = "unchanged" if partition.source == hash_file(root / path) else "changed"
            groups.setdefault(state, []).append(f"{partition.id} {path}")
    groups["removed"] = [f"{p.id} {p.key}" for p in known.values()]
    return _summary(groups)


def _summary(groups: dict[str, list[str]]) -> str:
    counts = Counter({state: len(items) for state, items in groups.items()})
    parts = []
    for state in ("new", "changed", "removed", "unchanged"):
        items = groups.get(state, [])
        if not items:
            continue
        if state == "unchanged":
            parts.append(f"{counts[state]} unchanged")
            continue
        shown = ", ".join(items[:_SHOWN]) + (f", … {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")
        parts.append(f"{counts[state]} {state} ({shown})")
    return "; ".join(parts) or "no partitions"
