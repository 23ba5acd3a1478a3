"""What the next run of a ``rows_per_partition`` or ``by`` split will find, without running it.

The split's current input (its upstream node's recorded outputs, or ``data.path`` for a source
split) is cut by the split's own code (``GrowingSplit.cut``, the one the split job runs), each
partition's values are digested as the store would record them (``value_digest``), and the digests
are compared with those in the partition's manifest on disk, which must still be the one the split
recorded in ``_partitions.json``. Nothing is written.

The prediction holds only if that input is what the next run cuts. When an upstream node will
run (or be restored to other outputs) first, or the split's own ``code:`` function makes what it
cuts, there is nothing to predict from: the reason is returned instead of a guess.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from expops_smk.config.model import ProjectConfig
from expops_smk.errors import ExpopsError
from expops_smk.graph.expansion import Graph
from expops_smk.graph.nodes import Node
from expops_smk.graph.partitions import Partition
from expops_smk.layout import MANIFEST
from expops_smk.results.status import NEVER_RUN, UP_TO_DATE, WILL_RESTORE, WILL_RUN
from expops_smk.runtime.datums import GrowingSplit
from expops_smk.runtime.source_data import SourceDataError, source_values
from expops_smk.runtime.splitting import SplitError
from expops_smk.store.artifact_store import Store
from expops_smk.store.hashing import hash_bytes
from expops_smk.store.value_digest import value_digest

Groups = dict[str, list[str]]

_FIRST = {WILL_RUN: "will run first", WILL_RESTORE: "will be restored to other outputs first",
          NEVER_RUN: "has never run"}


class CannotPredict(Exception):
    """Why the next run's partitions cannot be known before it runs (one line)."""


def predict_partitions(project: ProjectConfig, graph: Graph, split: Node, recorded: list[Partition],
                       states: Mapping[Node, str]) -> Groups:
    """Partitions of ``split``'s next run by change (new, changed, removed, unchanged), each as
    ``"p<number> <label>"``; raises CannotPredict. ``states`` is each node's status state."""
    spec = project.processes[split.process]
    if spec.function is not None:
        raise CannotPredict(f"its code: function {spec.function.name}() makes what it cuts, when the split runs")
    store = Store(project.root)
    values, passed = _input(project, graph, store, split, states)
    growing = GrowingSplit(project.root, project, split)
    try:
        parts = growing.cut(values)
    except (SplitError, ExpopsError) as exc:
        raise CannotPredict(f"cutting its input fails: {exc}") from None
    known = {partition.number: partition for partition in recorded}
    groups: Groups = {}
    data_name = spec.data_split.data_name if spec.data_split else ""
    for number, cut, part in zip(growing.numbers, growing.cuts, parts):
        item = f"p{number} {cut.label}"
        before = known.pop(number, None)
        if before is None:
            groups.setdefault("new", []).append(item)
            continue
        predicted = {**passed, data_name: value_digest(part[data_name])}
        same = _recorded_digests(project.root, growing.location(number), before) == predicted
        groups.setdefault("unchanged" if same else "changed", []).append(item)
    groups["removed"] = [f"{p.id} {p.label}" for p in known.values()]
    return groups


def _input(project: ProjectConfig, graph: Graph, store: Store, split: Node,
           states: Mapping[Node, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(values to cut, digests of the other keys the partitions pass on) of the split's next run."""
    spec = project.processes[split.process]
    assert spec.data_split is not None
    inputs = graph.inputs(split)
    if not inputs:
        try:
            values = source_values(spec, project.data_path)
        except SourceDataError as exc:
            raise CannotPredict(f"data.path: {exc}") from None
        if not values:
            raise CannotPredict("it has no upstream and no data.path to cut")
        return values, {}
    values: dict[str, Any] = {}
    passed: dict[str, str] = {}
    for item in inputs:
        producer = graph.producer(item.location)
        state = states.get(producer)
        if state != UP_TO_DATE:
            raise CannotPredict(f"upstream {producer.label} {_FIRST.get(state or '', 'is not known')}; "
                                "its outputs decide the partitions")
        if item.keys:
            raise CannotPredict(f"it aggregates the outputs of '{item.upstream}'")
        folder = project.root / item.location.results_dir
        try:
            for key, artifact in store.read_manifest(folder).items():
                if key == spec.data_split.data_name:
                    values[key] = store.read_value(folder, artifact)
                elif not key.startswith("__"):
                    passed[key] = artifact.digest
        except ExpopsError as exc:  # a missing or damaged artifact: the split's run will say so too
            raise CannotPredict(f"cannot read the outputs of {item.location.label}: {exc}") from None
    return values, passed


def _recorded_digests(root: Path, location: Node, partition: Partition) -> dict[str, str] | None:
    """Artifact digests of a partition's manifest; None when it is not the one the split recorded."""
    try:
        data = (root / location.results_dir / MANIFEST).read_bytes()
        if hash_bytes(data) != partition.digest:
            return None
        return {key: str(entry["digest"]) for key, entry in json.loads(data)["artifacts"].items()
                if not key.startswith("__")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
