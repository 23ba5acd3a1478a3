"""ExpOps chart processes: XPath probes over the node tree, a rule per chart, and the chart job.

A chart is a process entry with ``probe_paths`` (key -> XPath selector) and ``code``. It returns
nothing and no process consumes it; it draws the metrics of the nodes its selectors pick, once they
exist, and writes PNGs into ``results/charts/<name>/``. Chart code written for ExpOps runs
unchanged (``from expops.reporting import chart, ChartContext``), so three things follow ExpOps:

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
* The value of each entry: ``{metric: {"<step>": float, ...}}`` for numbers and the latest value
  for non-numeric metrics. A process entry holds what was logged outside any ``@step``; a step
  entry what was logged inside that step (ExpOps keys metrics by process or step the same way).

Selectors are resolved when the config is loaded (a selector matching nothing is a config error),
so the generated rule lists the probed nodes' manifests as literal inputs and the job reads the
resolved probes from the plan without building any tree.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import inspect
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, TextIO

from expops_smk.codegen import MANIFEST, PLAN_FILE, WORKFLOW_DIR, rule_name, template
from expops_smk.codehash import FunctionInfo
from expops_smk.errors import ExpopsError
from expops_smk.graph import RESULTS_DIR, Graph, Node
from expops_smk.store import hash_bytes

if TYPE_CHECKING:
    from expops_smk.config import ProcessSpec, ProjectConfig

CHARTS_DIR = f"{RESULTS_DIR}/charts"
CHARTS_RULES_FILE = f"{WORKFLOW_DIR}/rules/charts.smk"
CHART_RECORD = "_chart.json"
REPORT_CATEGORY = "Charts"
NODE_FORMS = ("nodes look like //*[@partition='p1']/*[@seed='41']/process[@name='train'], "
              "steps add /step[@name='fit']")


# -- the API chart code imports ------------------------------------------------------------------

def chart(name: Any = None) -> Any:
    """Mark a chart function: ``@chart``, ``@chart()`` or ``@chart("name")``, as ExpOps accepts.

    expops-smk finds a chart's function through the config (``code``), so the mark changes nothing
    about how the function behaves when called directly.
    """
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        setattr(fn, "__expops_kind__", "chart")
        return fn

    return mark(name) if callable(name) else mark


@dataclass
class ChartContext:
    """What a chart function receives as ``ctx``.

    The first fields are ExpOps' (same names and order, so code that builds one for a unit test
    still works); ``probe_paths`` maps each key of ``metrics`` (aliases aside) to the canonical id
    it was read from, and ``project_dir`` is the project folder.
    """

    output_dir: Path
    project_id: str
    run_id: str
    theme: str
    chart_name: str
    metrics: dict[str, Any] = field(default_factory=dict)
    chart_type: str = "static"  # dynamic (JavaScript) charts are skipped at validation
    probe_paths: dict[str, str] = field(default_factory=dict)
    project_dir: Path | None = None

    def get_run_status(self) -> str:
        """A chart job starts only after every node it probes finished."""
        return "completed"

    def is_run_finished(self) -> bool:
        return True


# -- the model -----------------------------------------------------------------------------------

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
class ChartSpec:
    """A validated static chart: its function and its resolved probes, in ``metrics`` order."""

    name: str
    script: Path
    function: FunctionInfo
    probes: tuple[Probe, ...]
    description: str = ""


def chart_dir(name: str) -> str:
    return f"{CHARTS_DIR}/{name}"


# -- steps of a process, read from its script ----------------------------------------------------

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


# -- the node tree and selector resolution ------------------------------------------------------

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


# -- the generated rules -------------------------------------------------------------------------

def render_chart_rules(project: ProjectConfig, graph: Graph, header: Mapping[str, str]) -> str:
    """``rules/charts.smk``: one rule per chart and ``CHART_TARGETS`` for ``rule all``."""
    rule_template = template("chart_rule.smk.tmpl")
    module = project.execution.job_module("charts")
    rules = [render_chart_rule(graph, spec, rule_template, module) for spec in project.charts.values()]
    targets = [f'    "{chart_dir(name)}",' for name in project.charts]
    return template("charts.smk.tmpl").substitute(
        header, targets="\n".join(targets), rules="\n\n".join(rules)).rstrip() + "\n"


def render_chart_rule(graph: Graph, spec: ChartSpec, rule_template: Any, module: str) -> str:
    inputs = dict.fromkeys(f"{probe_location(graph, probe).results_dir}/{MANIFEST}" for probe in spec.probes)
    probes = hash_bytes(json.dumps([[probe.key, probe.id] for probe in spec.probes]).encode())
    doc = (spec.description.strip().rstrip(".") or f"Chart '{spec.name}'") + \
        f"; draws {len(spec.probes)} probe{'s' if len(spec.probes) != 1 else ''}."
    return rule_template.substitute(
        rule=rule_name(spec.name),
        chart=spec.name,
        doc=doc.replace("\\", "\\\\").replace('"""', "'''"),
        input="\n".join(f'        "{path}",' for path in inputs),
        output=chart_dir(spec.name),
        category=REPORT_CATEGORY,
        code=spec.function.code_hash,
        probes=probes,
        module=module,
    ).rstrip()


def probe_location(graph: Graph, probe: Probe) -> Node:
    """The folder holding the probed node's metrics (a data split writes one per partition)."""
    return graph.output_locations(probe.node)[0]


# -- the chart job -------------------------------------------------------------------------------

class ChartError(ExpopsError):
    """A chart that cannot run, named in one line."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"chart '{name}': {' '.join(message.split())}")


class ChartCodeError(Exception):
    """The chart function (or its import) raised; the traceback is in the job log."""


def node_metrics(record: Mapping[str, Any], step: str | None) -> dict[str, Any]:
    """One probe's metrics from a node's ``_metrics.json``: ``{metric: {"<step>": float}}`` for the
    numbers logged in ``step`` (None: outside any step), plus, for a node, its latest snapshots."""
    result: dict[str, Any] = {}
    for point in record.get("series", []):
        if point.get("step_name") == step:
            result.setdefault(point["metric"], {})[str(point["step"])] = float(point["value"])
    if step is None:
        result.update(record.get("snapshots", {}))
    return result


class ChartRun:
    """One execution of one chart, from the project folder."""

    def __init__(self, root: Path, name: str, log: TextIO) -> None:
        from expops_smk.plan import read_plan

        self.root = root
        self.name = name
        self.log = log
        try:
            self.project = read_plan(root / PLAN_FILE, root)
        except FileNotFoundError:
            raise ChartError(name, f"{PLAN_FILE} is missing; run `expops-smk generate`") from None
        if name not in self.project.charts:
            raise ChartError(name, f"not a chart of the plan {PLAN_FILE}; run `expops-smk generate`")
        self.spec = self.project.charts[name]
        self.graph = Graph(self.project)
        self.output_dir = root / chart_dir(name)

    def say(self, message: str) -> None:
        self.log.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {message}\n")
        self.log.flush()

    def load_metrics(self) -> tuple[dict[str, Any], str]:
        """``metrics`` (with process aliases) and a digest of the numbers drawn (the ``run_id``)."""
        from expops_smk.runtime import METRICS_FILE

        records: dict[Path, dict[str, Any]] = {}
        by_id: dict[str, dict[str, Any]] = {}
        for probe in self.spec.probes:
            folder = self.root / probe_location(self.graph, probe).results_dir
            path = folder / METRICS_FILE
            if folder not in records:
                try:
                    records[folder] = json.loads(path.read_text(encoding="utf-8"))
                except FileNotFoundError:
                    raise ChartError(self.name, f"probe '{probe.source}': '{probe.node.label}' has no "
                                     f"{path.relative_to(self.root)}; run its node first") from None
                except (OSError, ValueError) as exc:
                    raise ChartError(self.name, f"probe '{probe.source}': unreadable "
                                     f"{path.relative_to(self.root)} ({exc})") from None
            by_id[probe.id] = metrics = node_metrics(records[folder], probe.step)
            self.say(f"{probe.key}: {probe.label} ({len(metrics)} metrics)")
        metrics = {key: by_id[probe_id] for key, probe_id in with_process_aliases(self.spec.probes).items()}
        return metrics, hash_bytes(json.dumps(by_id, sort_keys=True, default=str).encode())

    def load_function(self) -> Callable[..., Any]:
        from expops_smk.compat import install_user_scripts

        scripts = [spec.script for spec in self.project.processes.values() if spec.script is not None]
        scripts += [*self.project.scripts.values(), *(spec.script for spec in self.project.charts.values())]
        modules = install_user_scripts(self.root, scripts)
        script = self.spec.script
        with contextlib.redirect_stdout(self.log), contextlib.redirect_stderr(self.log):
            try:
                module = importlib.import_module(modules[script.resolve()])
            except Exception as exc:
                traceback.print_exc(file=self.log)
                raise ChartCodeError(f"importing {script.name} raised {type(exc).__name__}: {exc}") from exc
        function = getattr(module, self.spec.function.name, None)
        if not callable(function):
            raise ChartError(self.name, f"{script.name} defines no function '{self.spec.function.name}' when imported")
        return function

    def arguments(self, function: Callable[..., Any], metrics: dict[str, Any], ctx: ChartContext) -> tuple[Any, ...]:
        """ExpOps' calling convention: two or more parameters get (metrics, ctx); one gets metrics
        when it is named ``metrics``, else ctx."""
        names = list(inspect.signature(function).parameters)
        if len(names) >= 2:
            return metrics, ctx
        if names:
            return (metrics,) if names[0] == "metrics" else (ctx,)
        raise ChartError(self.name, f"function '{self.spec.function.name}' must take (metrics), (metrics, ctx) or (ctx)")

    def run(self) -> list[str]:
        """Draw the chart; return the PNGs written, relative to its folder."""
        from expops_smk.runtime import seed_rngs

        self.say(f"chart {self.name}: {self.spec.function.name} in {self.spec.script.relative_to(self.root)}")
        metrics, run_id = self.load_metrics()
        # Chart code often uses pyplot; jobs have no display, and a GUI backend would fail or hang.
        os.environ.setdefault("MPLBACKEND", "Agg")
        function = self.load_function()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        ctx = ChartContext(
            output_dir=self.output_dir, project_id=self.project.name, run_id=run_id, theme="light",
            chart_name=self.name, metrics=metrics, probe_paths={p.key: p.id for p in self.spec.probes},
            project_dir=self.root)
        arguments = self.arguments(function, metrics, ctx)
        seed_rngs(self.project.random_seed, self.spec.script.read_text(encoding="utf-8"))
        previous = os.getcwd()
        os.chdir(self.output_dir)  # ExpOps chart code writes its PNGs into the current folder
        try:
            with contextlib.redirect_stdout(self.log), contextlib.redirect_stderr(self.log):
                function(*arguments)
        except Exception as exc:
            traceback.print_exc(file=self.log)
            raise ChartCodeError(f"the chart function raised {type(exc).__name__}: {exc}") from exc
        finally:
            os.chdir(previous)
        pngs = sorted(path.relative_to(self.output_dir).as_posix() for path in self.output_dir.rglob("*.png"))
        (self.output_dir / CHART_RECORD).write_text(json.dumps({
            "chart": self.name, "probes": ctx.probe_paths, "run_id": run_id, "pngs": pngs,
        }, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        self.say("wrote " + (", ".join(pngs) if pngs else "no PNG"))
        return pngs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m expops_smk.charts", description="Draw one expops-smk chart.")
    parser.add_argument("chart")
    parser.add_argument("--log", required=True, type=Path)
    args = parser.parse_args(argv)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with open(args.log, "w", encoding="utf-8") as log:
        try:
            ChartRun(Path.cwd(), args.chart, log).run()
        except ExpopsError as exc:
            log.write(f"error: {exc}\n")
            print(f"expops-smk: {exc} (log: {args.log})", file=sys.stderr)
            return 2
        except ChartCodeError as exc:
            print(f"expops-smk: chart '{args.chart}': {' '.join(str(exc).split())} (traceback in {args.log})",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy of it: ctx must be an instance of the very
    # ChartContext class that chart code imports (expops.reporting is an alias of expops_smk.charts).
    from expops_smk.charts import main as module_main

    sys.exit(module_main())
