"""Expanded nodes and their names: a process at one partition path and one seed path.

Naming (data layers always before seed layers):
  canonical id  //*[@partition='p1']/*[@seed='41']/process[@name='train']
  label         train P1 S41
  legacy name   train_1_seed41
  results dir   results/train/p1/s41   (nested layers join with '-': p1-p2, s41-7)

Canonical ids are ExpOps' own: charts select nodes by them and per-task RNG seeds derive from
them, so they must match ExpOps character for character.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from expops_smk.layout import results_dir

LayerKind = Literal["data", "seed"]


@dataclass(frozen=True)
class Layer:
    """One fan-out: opened by ``owner``; ``values`` are partition numbers (1-based) or seeds."""

    kind: LayerKind
    owner: str
    values: tuple[int, ...]
    row_counts: tuple[int, ...] | None = None
    dynamic: bool = False  # a growing-data split: its partitions are those its last run produced
    outer: tuple["Layer", ...] = ()  # a growing split's own stack: each branch of it has its own partitions
    below_split: bool = False  # a growing split below another data split: its job may drop out of a run

    def key(self, value: int) -> str:
        """The key an aggregation uses for one branch of this layer: ``data1`` or ``seed41``."""
        return f"data{value}" if self.kind == "data" else f"seed{value}"

    def branch(self, partition: tuple[int, ...], seed: tuple[int, ...]) -> "Node":
        """The split node whose run decided this growing layer's partitions for a node at
        ``partition``/``seed``: every stack holding the layer starts with the split's own layers
        (graph/expansion.py refuses aggregating them first), so their values are a prefix per kind."""
        data = sum(1 for layer in self.outer if layer.kind == "data")
        seeds = len(self.outer) - data
        return Node(self.owner, partition[:data], seed[:seeds])


Stack = tuple[Layer, ...]


@dataclass(frozen=True, order=True)
class Node:
    """One expanded node: a process at one partition path and one seed path."""

    process: str
    partition: tuple[int, ...] = ()
    seed: tuple[int, ...] = ()

    @property
    def partition_value(self) -> str:
        """The ``{partition}`` wildcard value: ``p1`` or ``p1-p2`` for nested data layers."""
        return "-".join(f"p{index}" for index in self.partition)

    @property
    def seed_value(self) -> str:
        """The ``{seed}`` wildcard value: ``41`` or ``41-7`` for nested seed layers."""
        return "-".join(str(seed) for seed in self.seed)

    @property
    def id(self) -> str:
        steps = [f"*[@partition='p{index}']" for index in self.partition]
        steps += [f"*[@seed='{seed}']" for seed in self.seed]
        steps.append(f"process[@name='{self.process}']")
        return "//" + "/".join(steps)

    @property
    def label(self) -> str:
        parts = [self.process]
        if self.partition:
            parts.append("-".join(f"P{index}" for index in self.partition))
        if self.seed:
            parts.append("-".join(f"S{seed}" for seed in self.seed))
        return " ".join(parts)

    @property
    def legacy_name(self) -> str:
        return "_".join([self.process, *map(str, self.partition), *(f"seed{s}" for s in self.seed)])

    @property
    def results_dir(self) -> str:
        """Folder (relative to the project) that holds this node's artifacts."""
        return results_dir(self.process, self.partition_value, self.seed_value)


@dataclass(frozen=True)
class NodeInput:
    """Where one node reads one upstream's outputs, and under which aggregation keys they go.

    ``location`` is the folder of the upstream's artifacts: for a data split it is the folder of one
    partition, not the split's own node. ``keys`` is empty for a plain edge, else the nesting an
    aggregation wraps the values in (``("data1",)``, ``("seed41",)``, ``("data1", "seed41")``).
    """

    upstream: str
    location: Node
    keys: tuple[str, ...] = ()


def parse_partition(value: str) -> tuple[int, ...]:
    if not value:
        return ()
    parts = value.split("-")
    if not all(part.startswith("p") and part[1:].isdigit() for part in parts):
        raise KeyError(value)
    return tuple(int(part[1:]) for part in parts)


def parse_seed(value: str) -> tuple[int, ...]:
    """Seeds join with '-', and a seed may itself be negative: '41--7' is (41, -7)."""
    if not value:
        return ()
    seeds: list[int] = []
    token = ""
    for char in value:
        if char == "-" and token and token != "-":
            seeds.append(int(token))
            token = ""
        else:
            token += char
    seeds.append(int(token))
    return tuple(seeds)
