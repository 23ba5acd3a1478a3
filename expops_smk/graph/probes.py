"""Chart probes: the XPath selectors of ``probe_paths`` resolved over the expanded node tree.

Chart code written for ExpOps runs unchanged, so three things follow ExpOps:

* The tree the selectors run on. Every node is a ``process`` element under one element per fan-out
  layer (data layers outside seed layers, as in canonical ids); a layer element is also a
  ``process`` element, named after the process that opened the layer, with its ``partition`` or
  ``seed`` attribute. Below each node, a ``step`` element per ``@step`` its function calls (found
  by reading the script, never importing it). So ``//*[@partition='p1']/*[@seed='41']/*[@name='train']``
  picks a node and ``//*[@name='train']/*[@name='fit']`` a step in each ``train`` node. A match on
  a layer element stands for the node of the process that opened it (ExpOps resolves it the same
  way). The engine is lxml's XPath 1.0 (libxml2), the engine ExpOps itself uses.
* The keys of ``metrics``. A selector matching one node keeps the user's key; one matching several
  expands to one entry per node keyed by the node's canonical id, in sorted order. Then every entry
  also gets an alias named after its process (``train``, ``train__2``, ...), which ExpOps' own
  chart templates group by.
* What an entry reads: a process entry holds what was logged outside any ``@step``; a step entry
  what was logged inside that step (see ``expops_smk.runtime.chart_job``).

Selectors are resolved when the project is validated (a selector matching nothing is a config error
naming ``probe_paths.<key>``), so the generated rule lists the probed nodes' manifests as literal
inputs and the chart job reads the resolved probes from the plan without building any tree.

Inside a growing-data split the partitions exist only once the split ran, so there validation
resolves over one stand-in partition and the chart is *growing*: its rule reads the split's
partition list and gets the nodes from ``current_locations`` once the split ran, and its job
resolves the selectors again over the partitions that exist (``current_probes``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from expops_smk.config.model import ChartSpec, ProcessSpec
from expops_smk.errors import ConfigError, shown_path
from expops_smk.graph.expansion import Graph
from expops_smk.graph.nodes import Node

NODE_FORMS = ("nodes look like //*[@partition='p1']/*[@seed='41']/process[@name='train'], "
              "steps add /step[@name='fit']")


@dataclass(frozen=True)
class Probe:
    """One entry of a chart's ``metrics``: a node, or a step inside it, under ``key``.

    ``source`` is the ``probe_paths`` key it came from (equal to ``key`` unless that selector
    matched several nodes).
    """

    key: str
    source: str
    process: str
    partition: tuple[int, ...] = ()
    seed: tuple[int, ...] = ()
    step: str | None = None

    @property
    def node(self) -> Node:
        return Node(self.process, self.partition, self.seed)

    @property
    def id(self) -> str:
        node_id = self.node.id
        return node_id if self.step is None else f"{node_id}/step[@name='{self.step}']"

    @property
    def label(self) -> str:
        return self.node.label if self.step is None else f"{self.node.label} step {self.step}"


@dataclass(frozen=True)
class ResolvedChart:
    """A chart whose selectors were resolved: its spec and its probes, in ``metrics`` order.

    ``growing`` names the growing-data splits whose partitions the probes depend on: then
    ``probes`` were resolved over a stand-in partition and only validate the selectors.
    """

    spec: ChartSpec
    probes: tuple[Probe, ...]
    growing: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name


def resolve_charts(graph: Graph) -> dict[str, ResolvedChart]:
    """Every static chart of the project with its probes; raises ``ConfigError`` naming
    ``probe_paths.<key>`` for a selector that fails. The XML tree is built only when there is a chart."""
    project = graph.project
    if not project.charts:
        return {}
    # A growing-data split's partitions exist only at run time: resolve over one stand-in partition
    # (not the ones on disk, which would make the plan depend on the last run).
    growing = [name for name, spec in project.processes.items() if spec.data_split and spec.data_split.dynamic]
    if growing:
        graph = Graph(project, {name: (1,) for name in growing})
    tree = ProbeTree(graph)
    charts: dict[str, ResolvedChart] = {}
    for name, spec in project.charts.items():
        try:
            probes, deferred = _stand_in_probes(tree, spec.selectors, bool(growing))
            splits = growing if deferred else _growing_splits(graph, probes)
        except ProbeError as exc:
            raise ConfigError(shown_path(project.config_file, project.root), f"probe_paths.{exc.key}", str(exc),
                              name) from None
        charts[name] = ResolvedChart(spec, probes, tuple(splits))
    return charts


def _stand_in_probes(tree: ProbeTree, selectors: Mapping[str, str], growing: bool) -> tuple[tuple[Probe, ...], bool]:
    """Probes over the validation tree, and whether a selector was left to the run: with growing
    splits, one naming a partition (``@partition='p7'``) may name one the stand-in lacks, so
    matching nothing there is no error yet; any other selector that matches nothing is one."""
    kept = {}
    for key, selector in selectors.items():
        try:
            tree.select(selector)
        except ValueError as exc:
            if not (growing and "partition" in selector and "matches no node" in str(exc)):
                raise ProbeError(key, str(exc)) from None
        else:
            kept[key] = selector
    return resolve_probes(tree, kept), len(kept) < len(selectors)


def _growing_splits(graph: Graph, probes: tuple[Probe, ...]) -> list[str]:
    """The growing-data splits whose layer holds a probed node (nested ones with those around them),
    in config order, so outer splits come before the splits inside them."""
    found: set[str] = set()
    for probe in probes:
        layout = graph.layouts[probe.process]
        found.update(layer.owner for layer in (*layout.stack, layout.child_layer) if layer is not None and layer.dynamic)
    return [name for name in graph.layouts if name in found]


def current_probes(graph: Graph, chart: ResolvedChart) -> tuple[Probe, ...]:
    """The chart's probes over ``graph``'s partitions (those on disk, by default): the plan's for a
    chart outside growing splits, else the selectors resolved again. Raises ``ProbeError``."""
    if not chart.growing:
        return chart.probes
    return resolve_probes(ProbeTree(graph), chart.spec.selectors)


def current_locations(graph: Graph, chart: ResolvedChart) -> list[Node]:
    """Folders of the nodes a growing chart's selectors match over ``graph``'s partitions, for its
    rule's inputs; a selector matching nothing adds none (the chart job then says so)."""
    tree = ProbeTree(graph)
    found: dict[Node, None] = {}
    for selector in chart.spec.selectors.values():
        try:
            targets = tree.select(selector)
        except ValueError:
            continue
        found.update(dict.fromkeys(graph.output_locations(node)[0] for node, _ in targets))
    return list(found)


def probe_location(graph: Graph, probe: Probe) -> Node:
    """The folder holding the probed node's metrics (a data split writes one per partition)."""
    return graph.output_locations(probe.node)[0]


def _module(script: Path) -> ast.Module | None:
    try:
        return ast.parse(script.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None  # config validation already reported unreadable scripts of processes


def _step_name(function: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The step name a ``@step`` / ``@step(name=...)`` decorator records, else None."""
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
        if name != "step":
            continue
        for keyword in getattr(decorator, "keywords", []):
            if keyword.arg == "name" and isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
                return keyword.value.value
        return function.name
    return None


def process_steps(spec: ProcessSpec, modules: dict[Path, ast.Module | None] | None = None) -> tuple[str, ...]:
    """Names of the ``@step`` functions a process's function may run, sorted.

    Followed from the function through every top-level function of the same module it names
    (helpers calling steps count), plus ``@step`` functions defined inside those. A name that is
    referenced but not called only adds a step element that holds no metrics. ``modules`` caches
    parsed scripts across the processes of one project.
    """
    if spec.function is None or spec.script is None:
        return ()
    modules = {} if modules is None else modules
    if spec.script not in modules:
        modules[spec.script] = _module(spec.script)
    module = modules[spec.script]
    if module is None:
        return ()
    functions = {stmt.name: stmt for stmt in module.body if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))}
    steps: set[str] = set()
    seen: set[str] = set()
    todo = [spec.function.name]
    while todo:
        current = todo.pop()
        if current in seen or current not in functions:
            continue
        seen.add(current)
        definition = functions[current]
        if current != spec.function.name and (name := _step_name(definition)):
            steps.add(name)
        for item in ast.walk(definition):
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item is not definition:
                if name := _step_name(item):
                    steps.add(name)
            elif isinstance(item, ast.Name):
                todo.append(item.id)
            elif isinstance(item, ast.Attribute):
                todo.append(item.attr)
    return tuple(sorted(steps))


Target = tuple[Node, "str | None"]


class ProbeTree:
    """The expanded graph as an XML tree, and which node (or step) each element stands for."""

    def __init__(self, graph: Graph) -> None:
        from lxml import etree

        self._etree = etree
        self.root = etree.Element("pipeline")
        # Element proxies stay the same objects while referenced, so the index keys are stable.
        self.index: dict[Any, Target] = {}
        layers: dict[tuple[Any, ...], Any] = {}
        modules: dict[Path, ast.Module | None] = {}
        for layout in graph.layouts.values():
            steps = process_steps(layout.spec, modules)
            owners = {kind: [layer.owner for layer in layout.stack if layer.kind == kind] for kind in ("data", "seed")}
            for node in layout.nodes():
                parent, path = self.root, ()
                chain = [("partition", f"p{value}", owner) for value, owner in zip(node.partition, owners["data"])]
                chain += [("seed", str(value), owner) for value, owner in zip(node.seed, owners["seed"])]
                for link in chain:
                    path += (link,)
                    element = layers.get(path)
                    if element is None:
                        attribute, value, owner = link
                        element = etree.SubElement(parent, "process", {"name": owner, attribute: value})
                        layers[path] = element
                        self._index_layer(graph, element, owner)
                    parent = element
                element = etree.SubElement(parent, "process", name=node.process)
                self.index[element] = (node, None)
                for step in steps:
                    self.index[etree.SubElement(element, "step", name=step)] = (node, step)

    def _index_layer(self, graph: Graph, element: Any, owner: str) -> None:
        """A layer element stands for its owner's node at the layers enclosing it, when that exists."""
        ancestors = [item for item in element.iterancestors() if item.tag == "process"]
        partition = tuple(int(a.get("partition")[1:]) for a in reversed(ancestors) if a.get("partition"))
        seed = tuple(int(a.get("seed")) for a in reversed(ancestors) if a.get("seed") is not None)
        candidate = Node(owner, partition, seed)
        if graph.layouts[owner].contains(candidate):
            self.index[element] = (candidate, None)

    def select(self, selector: str) -> list[Target]:
        """Nodes and steps ``selector`` picks, each once, in document order; raises ValueError."""
        etree = self._etree
        try:
            result = etree.XPath(selector)(self.root)
        except etree.XPathSyntaxError as exc:
            raise ValueError(f"{selector!r} is not a valid XPath selector ({exc})") from None
        except etree.XPathError as exc:
            raise ValueError(f"{selector!r} cannot be evaluated ({exc})") from None
        if not isinstance(result, list):
            raise ValueError(f"{selector!r} evaluates to a {type(result).__name__}, not to nodes")
        targets = list(dict.fromkeys(self.index[item] for item in result
                                     if isinstance(item, etree._Element) and item in self.index))
        if not targets:
            raise ValueError(f"{selector!r} matches no node or step ({NODE_FORMS})")
        return targets


def resolve_probes(tree: ProbeTree, probe_paths: Mapping[str, str]) -> tuple[Probe, ...]:
    """The entries of ``metrics``: user keys for single matches, node ids for multiple ones.

    Raises ``ProbeError`` naming the ``probe_paths`` key whose selector failed.
    """
    probes: dict[str, Probe] = {}
    for source, selector in probe_paths.items():
        try:
            targets = tree.select(selector)
        except ValueError as exc:
            raise ProbeError(source, str(exc)) from None
        found = [Probe(source, source, node.process, node.partition, node.seed, step) for node, step in targets]
        if len(found) > 1:
            found = sorted((replace(probe, key=probe.id) for probe in found), key=lambda probe: probe.key)
        for probe in found:
            probes.setdefault(probe.key, probe)
    return tuple(probes.values())


class ProbeError(ValueError):
    """A selector that failed; ``key`` is its ``probe_paths`` key."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


def with_process_aliases(probes: tuple[Probe, ...]) -> dict[str, str]:
    """Key -> id of every probe plus, per probe, an alias named after its process: ``train``,
    ``train__2``, ... An alias never replaces a key naming another id; it moves on to the next number.
    """
    result = {probe.key: probe.id for probe in probes}
    counts: dict[str, int] = {}
    for probe in probes:
        counts[probe.process] = index = counts.get(probe.process, 0) + 1
        alias = probe.process if index == 1 else f"{probe.process}__{index}"
        while result.get(alias, probe.id) != probe.id:
            index += 1
            alias = f"{probe.process}__{index}"
        result.setdefault(alias, probe.id)
    return result
