"""Expand fan-outs into concrete nodes.

A split process opens a *layer* (a data layer of N partitions or a seed layer of K seeds); every
process below it carries that layer in its *stack* until an aggregation of that kind pops the
innermost such layer. A process becomes one node per combination of its stack's values (a
cartesian product). ``ProcessLayout`` holds that per-process structure: it is O(processes) to
compute and is all the Snakefile generator and a single job need. ``Graph.nodes`` enumerates the nodes
(O(nodes)) for the CLI, tests and status; ``Graph.inputs`` resolves one node's inputs
without enumerating the others, so a job never pays for the size of the whole graph.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Container, Iterator, Mapping, Sequence

from expops_smk.config.model import ProcessSpec, ProjectConfig
from expops_smk.errors import ConfigError, shown_path
from expops_smk.graph.nodes import Layer, Node, NodeInput, Stack, parse_partition, parse_seed
from expops_smk.graph.partitions import read_partitions

LayerValues = Callable[[Layer, tuple[int, ...], tuple[int, ...]], tuple[int, ...]]
"""The values of a layer for a node at (partition, seed): a growing split nested in other fan-outs
has its own partitions in each of their branches (``Layer.branch``)."""


def fixed_values(layer: Layer, partition: tuple[int, ...], seed: tuple[int, ...]) -> tuple[int, ...]:
    return layer.values


@dataclass(frozen=True)
class ProcessLayout:
    """The fan-out structure of one process, independent of how many nodes it expands to."""

    spec: ProcessSpec
    merged: Stack        # layers arriving from the parents, before any aggregation pops
    stack: Stack         # layers the process itself is repeated over
    popped: Stack        # layers collapsed by this aggregation (data first, then seed)
    output_stack: Stack  # layers of the folders its outputs live in (a data split adds its layer)
    child_layer: Layer | None  # the layer this process opens for its children
    values: LayerValues = field(default=fixed_values, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def per_branch(self) -> bool:
        """True when a growing split nested in another fan-out is in the stack (values per branch)."""
        return any(layer.outer for layer in self.stack)

    def nodes(self) -> Iterator[Node]:
        if self.per_branch:
            yield from self._branch_nodes(0, (), ())
            return
        combinations = itertools.product(*(layer.values for layer in self.stack))
        data_positions = [i for i, layer in enumerate(self.stack) if layer.kind == "data"]
        if data_positions == list(range(len(data_positions))):
            # Data layers outside seed layers (the usual nesting): slice instead of regrouping.
            split = len(data_positions)
            for values in combinations:
                yield Node(self.name, values[:split], values[split:])
        else:
            for values in combinations:
                yield _node(self.name, self.stack, values)

    def _branch_nodes(self, depth: int, partition: tuple[int, ...], seed: tuple[int, ...]) -> Iterator[Node]:
        """Nodes in stack order, each layer's values taken in the branch chosen so far."""
        if depth == len(self.stack):
            yield Node(self.name, partition, seed)
            return
        layer = self.stack[depth]
        for value in self.values(layer, partition, seed):
            if layer.kind == "data":
                yield from self._branch_nodes(depth + 1, partition + (value,), seed)
            else:
                yield from self._branch_nodes(depth + 1, partition, seed + (value,))

    def contains(self, node: Node) -> bool:
        """True when ``node`` is one of this process's nodes (checked without enumerating them)."""
        data_members, seed_members = self._members
        if node.process != self.name or len(node.partition) != len(data_members) \
                or len(node.seed) != len(seed_members):
            return False
        for values, layers in ((node.partition, data_members), (node.seed, seed_members)):
            for value, members in zip(values, layers):
                if value not in members:
                    return False
        data_layers = [layer for layer in self.stack if layer.kind == "data"]
        return all(node.partition[depth] in self.values(layer, node.partition, node.seed)
                   for depth, layer in enumerate(data_layers) if layer.outer)

    @cached_property
    def _members(self) -> tuple[tuple[Container[int], ...], tuple[Container[int], ...]]:
        """Value sets of the data layers and of the seed layers: O(1) membership for large fan-outs."""
        def members(layer: Layer) -> Container[int]:
            return _ANY if layer.outer else frozenset(layer.values)  # a nested growing layer: per branch

        return (tuple(members(layer) for layer in self.stack if layer.kind == "data"),
                tuple(members(layer) for layer in self.stack if layer.kind == "seed"))

    def output_locations(self, node: Node) -> list[Node]:
        """Folders this node writes: itself, or one per partition for a data split."""
        if self.child_layer is None or self.child_layer.kind == "seed":
            return [node]
        return [Node(node.process, node.partition + (value,), node.seed)
                for value in self.values(self.child_layer, node.partition, node.seed)]

    def node_count(self) -> int:
        if self.per_branch:
            return sum(1 for _ in self.nodes())
        count = 1
        for layer in self.stack:
            count *= len(layer.values)
        return count


@dataclass(frozen=True)
class _InputPlan:
    """How a node finds one parent's output folder, fixed per edge so each node only indexes tuples.

    Each component of the folder's partition (seed) path is ``(from_branch, index)``: copied from
    the node's own partition (seed) path at ``index``, or, for a layer the node aggregates, from the
    branch being enumerated (``collapsed[index]``).
    """

    upstream: str
    collapsed: Stack
    partition: tuple[tuple[bool, int], ...]
    seed: tuple[tuple[bool, int], ...]

    def location(self, node: Node, branch: tuple[int, ...]) -> Node:
        if not self.collapsed:
            # A plain edge: the parent's layers are the outer layers of the node's own (a prefix).
            return Node(self.upstream, node.partition[: len(self.partition)], node.seed[: len(self.seed)])
        return Node(self.upstream,
                    tuple(branch[i] if from_branch else node.partition[i] for from_branch, i in self.partition),
                    tuple(branch[i] if from_branch else node.seed[i] for from_branch, i in self.seed))


class Graph:
    """The expanded graph of a project, computed per process (cheap) and per node (on demand)."""

    def __init__(self, project: ProjectConfig, partitions: Mapping[str | Node, tuple[int, ...]] | None = None) -> None:
        """``partitions`` gives the numbers of growing-data splits' partitions, per split node or per
        split process (every branch alike); by default each split node's are read from its
        ``_partitions.json`` (graph/partitions.py), once, when a node needs them."""
        self.project = project
        self._partitions = partitions or {}
        self._branches: dict[Node, tuple[int, ...]] = {}
        self.layouts: dict[str, ProcessLayout] = {}
        self._plans: dict[str, list[_InputPlan]] = {}
        for spec in project.processes.values():
            self.layouts[spec.name] = layout = self._layout(spec)
            self._plans[spec.name] = [self._input_plan(layout, parent) for parent in spec.parents]
        self._check_size()

    def _check_size(self) -> None:
        """Bound the node count (arithmetic on the layouts, no enumeration): a typo such as
        ``size: 1000`` under 1000 seeds must fail at validation, not hang ``snakemake -n``."""
        limit = self.project.execution.max_nodes
        total = self.node_count()
        if total <= limit:
            return
        largest = max(self.layouts.values(), key=ProcessLayout.node_count)
        product = " × ".join(f"{'the' if layer.outer else f'{len(layer.values):,}'} "
                             f"{'partitions' if layer.kind == 'data' else 'seeds'} of '{layer.owner}'"
                             for layer in largest.stack)
        raise self._error(largest.spec, "execution.max_nodes",
                          f"the fan-outs expand the project to {total:,} nodes ('{largest.name}' alone has "
                          f"{largest.node_count():,}: {product}); the limit is {limit:,} (execution.max_nodes)")

    # -- structure ----------------------------------------------------------------------------
    def _error(self, spec: ProcessSpec, field: str, message: str) -> ConfigError:
        return ConfigError(shown_path(self.project.config_file, self.project.root), field, message, spec.name)

    def _layout(self, spec: ProcessSpec) -> ProcessLayout:
        merged = self._merge_parent_stacks(spec)
        popped: list[Layer] = []
        stack = list(merged)
        for kind, flag in (("data", spec.data_aggregation), ("seed", spec.seed_aggregation)):
            if not flag:
                continue
            innermost = next((layer for layer in reversed(stack) if layer.kind == kind), None)
            if innermost is None:
                raise self._error(spec, f"{kind}_aggregation",
                                  f"no open {kind} fan-out above this aggregation")
            stack.remove(innermost)
            popped.append(innermost)
        self._check_growing_branches(spec, merged, popped)
        child_layer = None
        if spec.data_split is not None and spec.data_split.dynamic:
            # Nested in other fan-outs, each of their branches has its own partitions (read per branch).
            values = () if stack else self._branch_values(Node(spec.name))
            child_layer = Layer("data", spec.name, values, dynamic=True, outer=tuple(stack),
                                below_split=self._below_split(spec))
        elif spec.data_split is not None:
            count = spec.data_split.count
            child_layer = Layer("data", spec.name, tuple(range(1, count + 1)), spec.data_split.row_counts)
        elif spec.seeds is not None:
            child_layer = Layer("seed", spec.name, spec.seeds)
        output_stack = tuple(stack) + ((child_layer,) if child_layer and child_layer.kind == "data" else ())
        return ProcessLayout(spec, tuple(merged), tuple(stack), tuple(popped), output_stack, child_layer,
                             self.layer_values)

    def _below_split(self, spec: ProcessSpec) -> bool:
        """True when a data split (a Snakemake checkpoint) lies anywhere above ``spec``."""
        seen: set[str] = set()
        pending = list(spec.parents)
        while pending:
            name = pending.pop()
            if name not in seen:
                seen.add(name)
                pending.extend(self.project.processes[name].parents)
        return any(self.project.processes[name].data_split is not None for name in seen)

    def _check_growing_branches(self, spec: ProcessSpec, merged: Stack, popped: Sequence[Layer]) -> None:
        """A nested growing split's partitions exist per branch of the fan-outs around it, so those
        fan-outs can be aggregated only once its own layer has been."""
        for layer in merged:
            around = next((outer for outer in layer.outer if outer in popped), None)
            if around is not None:
                raise self._error(spec, f"{around.kind}_aggregation",
                                  f"aggregates the {around.kind} fan-out of '{around.owner}' around the growing-data "
                                  f"split '{layer.owner}', whose partitions differ per branch; aggregate the "
                                  f"partitions of '{layer.owner}' first, in a process of its own")

    def layer_values(self, layer: Layer, partition: tuple[int, ...], seed: tuple[int, ...]) -> tuple[int, ...]:
        """The values of ``layer`` for a node at ``partition``/``seed`` (see ``LayerValues``)."""
        if not layer.outer:
            return layer.values
        return self._branch_values(layer.branch(partition, seed))

    def _branch_values(self, split: Node) -> tuple[int, ...]:
        if split in self._partitions:
            return tuple(self._partitions[split])
        if split.process in self._partitions:
            return tuple(self._partitions[split.process])
        if split not in self._branches:
            self._branches[split] = tuple(p.number for p in read_partitions(self.project.root, split))
        return self._branches[split]

    def _input_plan(self, layout: ProcessLayout, parent: str) -> _InputPlan:
        """Every layer of the parent's folders is either one of the node's own layers or one it
        aggregates: the parent's stack is a prefix of ``merged`` and ``stack`` is ``merged`` minus
        ``popped``."""
        folder_stack = self.layouts[parent].output_stack
        collapsed = tuple(layer for layer in layout.popped if layer in folder_stack)
        sources: dict[str, list[tuple[bool, int]]] = {"data": [], "seed": []}
        for layer in folder_stack:
            if layer in collapsed:
                sources[layer.kind].append((True, collapsed.index(layer)))
            else:
                own = [other for other in layout.stack if other.kind == layer.kind]
                sources[layer.kind].append((False, own.index(layer)))
        return _InputPlan(parent, collapsed, tuple(sources["data"]), tuple(sources["seed"]))

    def children_stack(self, layout: ProcessLayout) -> Stack:
        """Layers a child of this process inherits: its stack plus any layer it opens."""
        return layout.stack + ((layout.child_layer,) if layout.child_layer else ())

    def _merge_parent_stacks(self, spec: ProcessSpec) -> Stack:
        """Parents' stacks must nest (one a prefix of the other): else branches of different
        fan-outs are being merged without aggregating first."""
        merged: Stack = ()
        merged_from = None
        for parent in spec.parents:
            stack = self.children_stack(self.layouts[parent])
            longer, shorter = (stack, merged) if len(stack) >= len(merged) else (merged, stack)
            if longer[: len(shorter)] != shorter:
                raise self._error(
                    spec, "depends_on",
                    f"merges '{merged_from}' ({_describe(merged)}) and '{parent}' ({_describe(stack)}), "
                    "branches of different fan-outs; aggregate one of them first")
            if len(stack) >= len(merged):
                merged, merged_from = stack, parent
        return merged

    # -- nodes ---------------------------------------------------------------------------------
    def nodes(self) -> Iterator[Node]:
        """Every node, processes in topological order."""
        for layout in self.layouts.values():
            yield from layout.nodes()

    def node_count(self) -> int:
        return sum(layout.node_count() for layout in self.layouts.values())

    def node(self, process: str, partition_value: str = "", seed_value: str = "") -> Node:
        """The node of ``process`` at the given wildcard values; raises KeyError if it does not exist."""
        node = Node(process, parse_partition(partition_value), parse_seed(seed_value))
        if not self.layouts[process].contains(node):
            raise KeyError(f"{process} has no node at partition={partition_value!r} seed={seed_value!r}")
        return node

    def inputs(self, node: Node) -> list[NodeInput]:
        """Upstream output folders of ``node`` and their aggregation keys, in parent order."""
        if not self.layouts[node.process].contains(node):
            raise KeyError(node)
        result: list[NodeInput] = []
        for plan in self._plans[node.process]:
            ranges = (self.layer_values(layer, node.partition, node.seed) for layer in plan.collapsed)
            for branch in itertools.product(*ranges):
                keys = tuple(layer.key(value) for layer, value in zip(plan.collapsed, branch))
                result.append(NodeInput(plan.upstream, plan.location(node, branch), keys))
        return result

    def output_locations(self, node: Node) -> list[Node]:
        return self.layouts[node.process].output_locations(node)

    def producer(self, location: Node) -> Node:
        """The node that writes the folder ``location``: a data split writes its partitions' folders."""
        layout = self.layouts[location.process]
        if layout.child_layer is not None and layout.child_layer.kind == "data":
            return Node(location.process, location.partition[:-1], location.seed)
        return location


def build_graph(project: ProjectConfig) -> Graph:
    return Graph(project)


class _Any:
    """Membership that a per-branch layer checks later, against its branch's values."""

    def __contains__(self, value: object) -> bool:
        return True


_ANY = _Any()


def _node(process: str, stack: Sequence[Layer], values: Sequence[int]) -> Node:
    partition = tuple(v for layer, v in zip(stack, values) if layer.kind == "data")
    seed = tuple(v for layer, v in zip(stack, values) if layer.kind == "seed")
    return Node(process, partition, seed)


def _describe(stack: Stack) -> str:
    if not stack:
        return "no fan-out"
    return ", ".join(f"{layer.kind} fan-out of '{layer.owner}'" for layer in stack)
