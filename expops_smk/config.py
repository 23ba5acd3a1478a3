"""Read and validate an ExpOps project into one internal model.

ExpOps configs exist in three layouts (early docs, later docs, the 0.1.27 package); they differ only
in where the pipeline lives and in a few key names. Everything below ``load_project`` sees a single
``ProjectConfig``, so no other module ever has to know which layout a user wrote.

Validation here covers what is knowable from the config and the scripts' source alone (names,
types, the DAG, functions and their signatures). Fan-out consistency (aggregations, merges of
different fan-outs) is checked where the layers are computed, in ``graph``.
"""

from __future__ import annotations

import keyword
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from expops_smk.codehash import FunctionInfo, ScriptError, find_function, module_functions
from expops_smk.errors import ConfigError
from expops_smk.resources import ExecutionSettings, parse_execution

if TYPE_CHECKING:
    from expops_smk.charts import ChartSpec

CONFIG_RELATIVE_PATH = Path("configs") / "project_config.yaml"
COMPUTE_CONFIG_RELATIVE_PATH = Path("configs") / "compute_config.yaml"

# Names become rule names and path segments under results/: letters, digits, '_' and '-' only.
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
# Keys of returned dicts become file names: also allow '.' inside, never a leading dot.
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

MAX_CONFIG_BYTES = 5 * 1024 * 1024
MAX_YAML_NODES = 200_000
MAX_FANOUT = 100_000
# Seeds become path segments (results/<process>/s<seed>/): bounding them to 64-bit integers keeps
# every segment short, and they are what numpy, torch and friends accept.
SEED_RANGE = (-(2**63), 2**64 - 1)
# Rule names the generated workflow defines itself.
_RESERVED_NAMES = {"all"}
DEFAULT_RANDOM_SEED = 42
DEFAULT_DATA_NAME = "data"

_TOP_LEVEL_KEYS = {
    "metadata", "scripts", "environment", "reproducibility", "data", "experiment", "model",
    "reporting", "project", "compute", "execution",
}
_PROCESS_KEYS = {
    "name", "description", "code", "code_function", "script", "script_path", "parameters",
    "hyperparameters", "data_parallelism", "seed_parallelism", "data_aggregation",
    "seed_aggregation", "depends_on", "resources", "environment", "type", "retries", "group",
    "localrule",
}
# A chart (a process with probe_paths) has no parameters, fan-out or outputs; see expops_smk.charts.
_CHART_KEYS = {"name", "description", "code", "code_function", "script", "script_path", "probe_paths",
               "chart_type", "type", "environment"}
_CHART_TYPES = ("static", "dynamic")
_PARALLELISM_KEYS = {"data_parallelism": {"size", "data_name", "aggregation"},
                     "seed_parallelism": {"seeds", "aggregation"}}
_RESOURCE_KEYS = {"cpus", "threads", "mem_mb", "runtime", "gpus", "gpu", "slurm_partition",
                  "slurm_account", "slurm_extra", "constraint", "qos", "disk_mb", "tmpdir"}


def is_safe_name(name: object) -> bool:
    """True when ``name`` can be a rule name and a single path segment (no '/', '..', spaces)."""
    return isinstance(name, str) and bool(_SAFE_NAME.match(name))


def _reserved_reason(name: str) -> str | None:
    """Why a safe-looking name still cannot be a Snakemake rule (a Python keyword, ``all``)."""
    rule = name.replace("-", "_")
    if keyword.iskeyword(rule):
        return f"'{name}' is a Python keyword and cannot name a Snakemake rule"
    if rule in _RESERVED_NAMES:
        return f"'{name}' is the name of the workflow's own target rule"
    return None


def is_safe_key(key: object) -> bool:
    """True when ``key`` can name an artifact file inside a node's results folder."""
    return isinstance(key, str) and bool(_SAFE_KEY.match(key)) and ".." not in key


@dataclass(frozen=True)
class DataSplit:
    """A data fan-out: ``count`` partitions, with explicit ``row_counts`` when the size was a list."""

    count: int
    row_counts: tuple[int, ...] | None
    data_name: str


@dataclass(frozen=True)
class ProcessSpec:
    """One process as the rest of expops-smk needs it, whatever layout it was written in."""

    name: str
    description: str = ""
    script: Path | None = None
    function: FunctionInfo | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    data_split: DataSplit | None = None
    seeds: tuple[int, ...] | None = None
    data_aggregation: bool = False
    seed_aggregation: bool = False
    parents: tuple[str, ...] = ()
    resources: Mapping[str, Any] = field(default_factory=dict)
    retries: int = 0

    @property
    def is_split(self) -> bool:
        return self.data_split is not None or self.seeds is not None

    @property
    def is_aggregation(self) -> bool:
        return self.data_aggregation or self.seed_aggregation


@dataclass(frozen=True)
class ProjectConfig:
    """A validated project: processes in a topological order plus the project-wide settings."""

    root: Path
    config_file: Path
    name: str
    processes: Mapping[str, ProcessSpec]
    scripts: Mapping[str, Path]
    global_parameters: Mapping[str, Any]
    random_seed: int
    data_path: Path | None
    default_resources: Mapping[str, Any]
    warnings: tuple[str, ...] = ()
    # Resource defaults, chain groups, local processes, benchmarks: see expops_smk.resources.
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    # Static charts by name; they are not processes: no rule consumes them and they have no nodes.
    charts: Mapping[str, ChartSpec] = field(default_factory=dict)

    def children(self) -> dict[str, list[str]]:
        """Map each process to the processes that consume its outputs, in topological order."""
        result: dict[str, list[str]] = {name: [] for name in self.processes}
        for spec in self.processes.values():
            for parent in spec.parents:
                result[parent].append(spec.name)
        return result


def load_project(project_dir: str | Path) -> ProjectConfig:
    """Parse, normalise and validate ``<project_dir>/configs/project_config.yaml``."""
    root = Path(project_dir).resolve()
    config_file = root / CONFIG_RELATIVE_PATH
    raw = _read_yaml(config_file, root)
    return _Parser(root, config_file, raw).parse()


def _safe_loader() -> type:
    """The safe loader (plain data only, no Python tags), in its libyaml build when present (~5x faster)."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path, root: Path) -> dict[str, Any]:
    shown = _shown(path, root)
    if not path.is_file():
        raise ConfigError(shown, None, "project config not found (expected configs/project_config.yaml)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(shown, None, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(shown, None, f"file is {len(data)} bytes; the limit is {MAX_CONFIG_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(shown, None, f"file is not valid UTF-8 (byte {exc.start})") from None
    import yaml  # here, not at module top: jobs import this module (through the plan) but never read YAML

    try:
        loaded = yaml.load(text, Loader=_safe_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(shown, None, f"invalid YAML{where}: {problem}") from None
    except RecursionError:
        # PyYAML composes nested collections recursively: '[[[[...' would escape as a traceback.
        raise ConfigError(shown, None, "invalid YAML: collections nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - safe loading has no side effects to protect
        # Scalar constructors raise plain Python errors (`2020-13-45`: ValueError, `!!timestamp x`:
        # AttributeError, a 5,000-digit int: ValueError); each is a fault of the file, not a crash.
        raise ConfigError(shown, None, f"invalid YAML: {type(exc).__name__}: {exc}") from None
    _check_bounded(loaded, shown)
    if not isinstance(loaded, dict):
        raise ConfigError(shown, None, "top level must be a mapping")
    return loaded


def _check_bounded(value: Any, shown: str) -> None:
    """Reject alias bombs and self-referencing aliases before anything walks the structure.

    ``yaml.safe_load`` shares objects for aliases, so a "billion laughs" file loads in
    microseconds but explodes as soon as it is traversed; count nodes with a budget instead.
    """
    budget = MAX_YAML_NODES
    stack: list[tuple[Any, frozenset[int]]] = [(value, frozenset())]
    while stack:
        item, ancestors = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError(shown, None, f"config expands to more than {MAX_YAML_NODES} values (alias bomb?)")
        if isinstance(item, (dict, list)):
            if id(item) in ancestors:
                raise ConfigError(shown, None, "config contains a self-referencing alias")
            inner = ancestors | {id(item)}
            children = list(item.keys()) + list(item.values()) if isinstance(item, dict) else item
            stack.extend((child, inner) for child in children)


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.parent))
    except ValueError:
        return str(path)


class _Parser:
    """Turns the raw YAML mapping into a ``ProjectConfig``, raising ``ConfigError`` on the first fault."""

    def __init__(self, root: Path, config_file: Path, raw: dict[str, Any]) -> None:
        self.root = root
        self.raw = raw
        self.file = _shown(config_file, root)
        self.config_file = config_file
        self.warnings: list[str] = []
        # Processes named in process_adjlist -> the line that first names them: a process may be
        # listed there without an entry under processes.
        self.adjlist_nodes: dict[str, int] = {}
        self.declared: set[str] = set()

    # -- helpers -----------------------------------------------------------------------------
    def error(self, field_name: str | None, message: str, process: str | None = None) -> ConfigError:
        return ConfigError(self.file, field_name, message, process)

    def warn_unknown(self, mapping: Mapping[str, Any], known: set[str], where: str) -> None:
        for key in mapping:
            if key not in known:
                self.warnings.append(f"{self.file}: {where}: unknown key '{key}' ignored")

    def mapping(self, value: Any, field_name: str, process: str | None = None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(field_name, f"must be a mapping, got {type(value).__name__}", process)
        for key in value:
            if not isinstance(key, str):
                raise self.error(field_name, f"keys must be strings, got {key!r}", process)
        return value

    # -- top level ---------------------------------------------------------------------------
    def parse(self) -> ProjectConfig:
        for key in self.raw:
            if not isinstance(key, str):
                raise self.error(None, f"top-level keys must be strings, got {key!r}")
        self.warn_unknown(self.raw, _TOP_LEVEL_KEYS, "top level")
        pipeline, global_parameters = self.locate_pipeline()
        scripts = self.parse_scripts()
        random_seed = self.parse_random_seed()
        data_path = self.parse_data_path()
        compute = self.mapping(self.raw.get("compute"), "compute")
        default_resources = self.parse_resources(compute.get("resources"), "compute.resources", None)
        self.mapping(self.raw.get("environment"), "environment")
        declared = self.parse_process_list(pipeline)
        self.declared = set(declared)
        charts = {name: item for name, item in declared.items() if _is_chart(item)}
        declared = {name: item for name, item in declared.items() if name not in charts}
        edges = self.parse_adjlist(pipeline.get("process_adjlist"))
        for name, spec_raw in declared.items():
            for parent in self.parse_depends_on(name, spec_raw):
                edges.append((parent, name, "depends_on"))
        edges = self.without_chart_edges(edges, charts)
        order = self.topological_order(declared, edges)
        parents: dict[str, list[str]] = {name: [] for name in order}
        for source, target, _ in edges:
            if source not in parents[target]:
                parents[target].append(source)
        processes = {
            name: self.build_process(name, declared.get(name, {"name": name}), tuple(parents[name]),
                                     scripts, global_parameters)
            for name in order
        }
        metadata = self.mapping(self.raw.get("metadata"), "metadata")
        # One line: the name is written into comments of the generated Snakefile.
        name = " ".join(str(metadata.get("name", self.root.name)).split()) or self.root.name
        project = ProjectConfig(
            root=self.root,
            config_file=self.config_file,
            name=str(name),
            processes=processes,
            scripts=scripts,
            global_parameters=global_parameters,
            random_seed=random_seed,
            data_path=data_path,
            default_resources=default_resources,
            execution=parse_execution(self, processes, default_resources),
        )
        return replace(project, charts=self.parse_charts(charts, project), warnings=tuple(self.warnings))

    def locate_pipeline(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Find the pipeline in any of the three layouts; return it with the global parameters."""
        found: list[tuple[str, Any, str, dict[str, Any]]] = []  # (where, pipeline, globals field, globals)
        for prefix, section in (("model.parameters", self.raw.get("model")),
                                ("experiment.parameters", self.raw.get("experiment"))):
            section = self.mapping(section, prefix.split(".")[0])
            params = self.mapping(section.get("parameters"), prefix)
            if "pipeline" in params:
                found.append((f"{prefix}.pipeline", params["pipeline"], prefix,
                              {k: v for k, v in params.items() if k != "pipeline"}))
        experiment = self.mapping(self.raw.get("experiment"), "experiment")
        if "pipeline" in experiment:
            found.append(("experiment.pipeline", experiment["pipeline"], "experiment.parameters",
                          dict(self.mapping(experiment.get("parameters"), "experiment.parameters"))))
        if not found:
            raise self.error("pipeline", "no pipeline found under model.parameters.pipeline, "
                                         "experiment.parameters.pipeline or experiment.pipeline")
        where, pipeline, globals_field, global_parameters = found[0]
        if len(found) > 1:
            self.warnings.append(f"{self.file}: pipelines under {' and '.join(f[0] for f in found)}; "
                                 f"using {where}, ignoring the others")
        self.check_plain_data(global_parameters, globals_field, None)
        return self.mapping(pipeline, where), global_parameters

    def check_plain_data(self, value: Any, field_name: str, process: str | None) -> None:
        """Parameters must survive JSON unchanged: jobs read them back from the JSON plan and rule
        params hash them as JSON with sorted keys. A YAML date would reach functions as a date at
        validation and as a string in jobs; mixed int/str keys cannot be sorted at all."""
        stack: list[tuple[Any, str]] = [(value, field_name)]
        while stack:
            item, where = stack.pop()
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise self.error(where, f"key {key!r} must be a string (quote it)", process)
                    stack.append((child, f"{where}.{key}"))
            elif isinstance(item, list):
                stack.extend((child, f"{where}[{index}]") for index, child in enumerate(item))
            elif item is not None and not isinstance(item, (str, int, float)):
                raise self.error(where, f"{type(item).__name__} value '{item}' is not plain data "
                                 "(strings, numbers, booleans, null, lists, mappings); quote it", process)

    def parse_scripts(self) -> dict[str, Path]:
        scripts = self.mapping(self.raw.get("scripts"), "scripts")
        result: dict[str, Path] = {}
        for key, rel in scripts.items():
            result[key] = self.project_file(rel, f"scripts.{key}", None)
        return result

    def project_file(self, rel: Any, field_name: str, process: str | None) -> Path:
        """Resolve a path named in the config; it must stay inside the project folder."""
        if not isinstance(rel, str) or not rel.strip():
            raise self.error(field_name, "must be a relative file path", process)
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root):
            raise self.error(field_name, f"'{rel}' points outside the project folder", process)
        return path

    def parse_random_seed(self) -> int:
        repro = self.mapping(self.raw.get("reproducibility"), "reproducibility")
        seed = repro.get("random_seed", DEFAULT_RANDOM_SEED)
        if not _is_int(seed):
            raise self.error("reproducibility.random_seed", f"must be an integer, got {seed!r}")
        return int(seed)

    def parse_data_path(self) -> Path | None:
        data = self.mapping(self.raw.get("data"), "data")
        if data.get("path") is None:
            return None
        path = self.project_file(data["path"], "data.path", None)
        if not path.is_file():
            raise self.error("data.path", f"file '{data['path']}' does not exist")
        return path

    def parse_process_list(self, pipeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
        self.warn_unknown(pipeline, {"processes", "process_adjlist"}, "pipeline")
        items = pipeline.get("processes") or []
        if not isinstance(items, list):
            raise self.error("pipeline.processes", f"must be a list, got {type(items).__name__}")
        declared: dict[str, dict[str, Any]] = {}
        for index, item in enumerate(items):
            where = f"processes[{index}]"
            item = self.mapping(item, where)
            name = item.get("name")
            if name is None:
                raise self.error(f"{where}.name", "is missing")
            if not is_safe_name(name):
                raise self.error(f"{where}.name", f"{name!r} is not a safe process name "
                                 "(letters, digits, '_' and '-', starting with a letter or '_')")
            if _reserved_reason(name):
                raise self.error(f"{where}.name", _reserved_reason(name))
            if name in declared:
                raise self.error("name", "duplicate process name", name)
            declared[name] = item
        rule_names: dict[str, str] = {}
        for name in declared:
            rule = name.replace("-", "_")
            if rule in rule_names:
                raise self.error("name", f"clashes with '{rule_names[rule]}' once '-' becomes '_'", name)
            rule_names[rule] = name
        return declared

    def parse_adjlist(self, adjlist: Any) -> list[tuple[str, str, str]]:
        if adjlist is None:
            return []
        if isinstance(adjlist, str):
            lines = adjlist.splitlines()
        elif isinstance(adjlist, list) and all(isinstance(line, str) for line in adjlist):
            lines = adjlist
        else:
            raise self.error("process_adjlist", "must be a string or a list of strings")
        edges: list[tuple[str, str, str]] = []
        for number, line in enumerate(lines, start=1):
            tokens = line.split("#", 1)[0].split()
            if not tokens:
                continue
            for token in tokens:
                if not is_safe_name(token):
                    raise self.error(f"process_adjlist line {number}", f"{token!r} is not a safe process name")
                if _reserved_reason(token):
                    raise self.error(f"process_adjlist line {number}", _reserved_reason(token))
                self.adjlist_nodes.setdefault(token, number)
            source, *targets = tokens
            edges.extend((source, target, f"process_adjlist line {number}") for target in targets)
        return edges

    def parse_depends_on(self, name: str, item: dict[str, Any]) -> list[str]:
        depends = item.get("depends_on", [])
        if isinstance(depends, str):
            depends = [depends]
        if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
            raise self.error("depends_on", "must be a list of process names", name)
        return depends

    def without_chart_edges(self, edges: list[tuple[str, str, str]],
                            charts: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        """Drop edges into charts; a chart's probes, not the DAG, decide what it waits for.

        ExpOps' own templates list a chart in process_adjlist as the target of a process it draws,
        so such lines are accepted. A chart returns nothing, so it cannot feed a process.
        """
        kept = []
        for source, target, where in edges:
            if source in charts:
                raise self.error(where, f"'{source}' is a chart: it returns nothing another process could consume",
                                 source)
            if target not in charts:
                kept.append((source, target, where))
        for name in charts:
            self.adjlist_nodes.pop(name, None)
        return kept

    def topological_order(self, declared: dict[str, dict[str, Any]],
                          edges: list[tuple[str, str, str]]) -> list[str]:
        """Order processes parents-first, keeping declaration order where the DAG allows it."""
        names = list(declared)
        names += [extra for extra in self.adjlist_nodes if extra not in declared]
        known = set(names)
        for source, target, where in edges:
            for endpoint in (source, target):
                if endpoint not in known:
                    owner = target if where == "depends_on" else None
                    raise self.error(where, f"unknown process '{endpoint}'", owner)
            if source == target:
                raise self.error(where, f"cycle: {source} -> {source}", source)
        successors: dict[str, list[str]] = {name: [] for name in names}
        indegree = dict.fromkeys(names, 0)
        for source, target, _ in edges:
            if target not in successors[source]:
                successors[source].append(target)
                indegree[target] += 1
        position = {name: i for i, name in enumerate(names)}
        ready = sorted((n for n in names if indegree[n] == 0), key=position.__getitem__)
        order: list[str] = []
        while ready:
            current = ready.pop(0)
            order.append(current)
            for nxt in successors[current]:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    ready.append(nxt)
                    ready.sort(key=position.__getitem__)
        if len(order) < len(names):
            remaining = [n for n in names if indegree[n] > 0]
            predecessors = {n: [s for s in remaining if n in successors[s]] for n in remaining}
            cycle = _find_cycle(predecessors)
            # Start at the first-declared process of the cycle: the same message on every run.
            start = min(range(len(cycle) - 1), key=lambda i: position[cycle[i]])
            cycle = cycle[start:-1] + cycle[:start] + [cycle[start]]
            steps = set(zip(cycle, cycle[1:]))
            fields = sorted({"depends_on" if where == "depends_on" else "process_adjlist"
                             for source, target, where in edges if (source, target) in steps})
            raise self.error(" + ".join(fields), "cycle: " + " -> ".join(cycle), cycle[0])
        return order

    # -- charts --------------------------------------------------------------------------------
    def parse_charts(self, items: Mapping[str, dict[str, Any]], project: ProjectConfig) -> dict[str, ChartSpec]:
        """Validate chart entries and resolve their selectors over the expanded graph.

        The graph and its XML tree are built only when the project has a static chart.
        """
        from expops_smk.charts import CHARTS_DIR, ChartSpec, ProbeError, ProbeTree, resolve_probes
        from expops_smk.graph import build_graph

        charts: dict[str, ChartSpec] = {}
        tree = None
        for name, item in items.items():
            self.warn_unknown(item, _CHART_KEYS, f"chart '{name}'")
            chart_type = item.get("chart_type", "static")
            if chart_type not in _CHART_TYPES:
                raise self.error("chart_type", f"must be 'static' or 'dynamic', got {chart_type!r}", name)
            selectors = self.parse_probe_paths(name, item)
            if chart_type == "dynamic":
                self.warnings.append(f"{self.file}: chart '{name}': dynamic (JavaScript) charts are not "
                                     "supported; the chart is skipped")
                continue
            if tree is None:
                if "charts" in project.processes:
                    raise self.error("name", f"a process cannot be named 'charts' in a project with charts: "
                                     f"{CHARTS_DIR}/ holds the charts' PNGs", "charts")
                tree = ProbeTree(build_graph(project))
            script, function = self.resolve_function(name, item, dict(project.scripts), is_split=False,
                                                     is_aggregation=False)
            assert script is not None and function is not None
            try:
                probes = resolve_probes(tree, selectors)
            except ProbeError as exc:
                raise self.error(f"probe_paths.{exc.key}", str(exc), name) from None
            charts[name] = ChartSpec(name=name, script=script, function=function, probes=probes,
                                     description=str(item.get("description", "")))
        return charts

    def parse_probe_paths(self, name: str, item: dict[str, Any]) -> dict[str, str]:
        """``probe_paths``: key -> selector, as a mapping or a list of one-key mappings (both appear
        in ExpOps configs); a value may also be ``{path: selector, ...}``."""
        raw = item.get("probe_paths")
        if raw is None:
            raise self.error("probe_paths", "is missing: a chart needs at least one 'key: XPath selector'", name)
        if isinstance(raw, list):
            entries: list[tuple[Any, Any]] = []
            for index, entry in enumerate(raw):
                entries.extend(self.mapping(entry, f"probe_paths[{index}]", name).items())
        else:
            entries = list(self.mapping(raw, "probe_paths", name).items())
        if not entries:
            raise self.error("probe_paths", "is empty: a chart needs at least one 'key: XPath selector'", name)
        selectors: dict[str, str] = {}
        for key, value in entries:
            field_name = f"probe_paths.{key}"
            if not key:
                raise self.error("probe_paths", "keys must be non-empty strings", name)
            if key in selectors:
                raise self.error(field_name, "duplicate key", name)
            if isinstance(value, dict):
                value = value.get("path")
            if not isinstance(value, str) or not value.strip():
                raise self.error(field_name, f"must be an XPath selector string (or a mapping with 'path'), "
                                 f"got {value!r}", name)
            selectors[key] = value.strip()
        return selectors

    # -- one process -------------------------------------------------------------------------
    def build_process(self, name: str, item: dict[str, Any], parents: tuple[str, ...],
                      scripts: dict[str, Path], global_parameters: Mapping[str, Any]) -> ProcessSpec:
        self.warn_unknown(item, _PROCESS_KEYS, f"process '{name}'")
        description = item.get("description", "")
        own_parameters = self.parse_parameters(name, item)
        data_split, data_agg = self.parse_data_parallelism(name, item)
        seeds, seed_agg = self.parse_seed_parallelism(name, item)
        if data_split is not None and seeds is not None:
            raise self.error("seed_parallelism", "a process cannot fan out over both data and seeds; "
                             "put the seed fan-out on a separate process", name)
        if (data_split is not None and data_agg) or (seeds is not None and seed_agg):
            raise self.error("data_parallelism" if data_split is not None else "seed_parallelism",
                             "a process cannot both split and aggregate the same kind of fan-out", name)
        script, function = self.resolve_function(name, item, scripts, is_split=data_split is not None or seeds is not None,
                                                 is_aggregation=data_agg or seed_agg)
        retries = item.get("retries", 0)
        if not _is_int(retries) or retries < 0:
            raise self.error("retries", f"must be a non-negative integer, got {retries!r}", name)
        return ProcessSpec(
            name=name,
            description=str(description),
            script=script,
            function=function,
            parameters=own_parameters,
            data_split=data_split,
            seeds=seeds,
            data_aggregation=data_agg,
            seed_aggregation=seed_agg,
            parents=parents,
            resources=self.parse_resources(item.get("resources"), "resources", name),
            retries=int(retries),
        )

    def parse_parameters(self, name: str, item: dict[str, Any]) -> dict[str, Any]:
        if "parameters" in item and "hyperparameters" in item:
            raise self.error("hyperparameters", "give either 'parameters' or 'hyperparameters', not both", name)
        field_name = "hyperparameters" if "hyperparameters" in item else "parameters"
        parameters = dict(self.mapping(item.get(field_name), field_name, name))
        self.check_plain_data(parameters, field_name, name)
        return parameters

    def parse_data_parallelism(self, name: str, item: dict[str, Any]) -> tuple[DataSplit | None, bool]:
        section = self.mapping(item.get("data_parallelism"), "data_parallelism", name)
        self.warn_unknown(section, _PARALLELISM_KEYS["data_parallelism"], f"process '{name}': data_parallelism")
        aggregation = self.parse_flag(name, item, "data_aggregation", section)
        if "size" not in section:
            if "data_name" in section:
                raise self.error("data_parallelism.size", "is missing", name)
            return None, aggregation
        size = section["size"]
        data_name = section.get("data_name", DEFAULT_DATA_NAME)
        if not is_safe_key(data_name):
            raise self.error("data_parallelism.data_name", f"{data_name!r} is not a safe output key", name)
        if _is_int(size):
            if not 1 <= size <= MAX_FANOUT:
                raise self.error("data_parallelism.size", f"must be a positive integer (at most {MAX_FANOUT}), got {size}", name)
            return DataSplit(int(size), None, data_name), aggregation
        if isinstance(size, list) and size and len(size) <= MAX_FANOUT and all(_is_int(n) and n >= 0 for n in size):
            return DataSplit(len(size), tuple(int(n) for n in size), data_name), aggregation
        raise self.error("data_parallelism.size",
                         f"must be a positive integer or a non-empty list of non-negative integers, got {size!r}", name)

    def parse_seed_parallelism(self, name: str, item: dict[str, Any]) -> tuple[tuple[int, ...] | None, bool]:
        section = self.mapping(item.get("seed_parallelism"), "seed_parallelism", name)
        self.warn_unknown(section, _PARALLELISM_KEYS["seed_parallelism"], f"process '{name}': seed_parallelism")
        aggregation = self.parse_flag(name, item, "seed_aggregation", section)
        if "seeds" not in section:
            return None, aggregation
        seeds = section["seeds"]
        if _is_int(seeds):
            seeds = [seeds]
        if not isinstance(seeds, list) or not seeds or len(seeds) > MAX_FANOUT:
            raise self.error("seed_parallelism.seeds", f"must be an integer or a non-empty list of integers, got {seeds!r}", name)
        for seed in seeds:
            if not _is_int(seed):
                raise self.error("seed_parallelism.seeds", f"seed {seed!r} is not an integer", name)
            if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
                raise self.error("seed_parallelism.seeds", f"seed {seed} does not fit in 64 bits", name)
        duplicates = sorted(seed for seed, count in Counter(seeds).items() if count > 1)
        if duplicates:
            raise self.error("seed_parallelism.seeds", f"duplicate seed(s) {duplicates}", name)
        return tuple(int(s) for s in seeds), aggregation

    def parse_flag(self, name: str, item: dict[str, Any], flag: str, section: dict[str, Any]) -> bool:
        """Aggregation is spelled ``<kind>_aggregation: true`` or ``<kind>_parallelism: {aggregation: true}``."""
        values = []
        if flag in item:
            values.append((flag, item[flag]))
        if "aggregation" in section:
            values.append((f"{flag.split('_')[0]}_parallelism.aggregation", section["aggregation"]))
        result = False
        for field_name, value in values:
            if not isinstance(value, bool):
                raise self.error(field_name, f"must be true or false, got {value!r}", name)
            result = result or value
        return result

    def parse_resources(self, value: Any, field_name: str, name: str | None) -> dict[str, Any]:
        resources = self.mapping(value, field_name, name)
        self.warn_unknown(resources, _RESOURCE_KEYS, f"process '{name}': {field_name}" if name else field_name)
        for key, amount in resources.items():
            if key in {"cpus", "threads", "mem_mb", "runtime", "gpus", "gpu", "disk_mb"}:
                if not _is_int(amount) or amount < 0:
                    raise self.error(f"{field_name}.{key}", f"must be a non-negative integer, got {amount!r}", name)
            elif not isinstance(amount, (str, int)) or isinstance(amount, bool):
                raise self.error(f"{field_name}.{key}", f"must be a string, got {amount!r}", name)
        return dict(resources)

    def resolve_function(self, name: str, item: dict[str, Any], scripts: dict[str, Path], *,
                         is_split: bool, is_aggregation: bool) -> tuple[Path | None, FunctionInfo | None]:
        """Find the process's function by parsing its script (never importing it).

        ``code: key.fn`` names a script key; ``code: fn`` the default (first) script; without
        ``code`` a split process is a built-in split and any other process uses the function
        named like the process.
        """
        if "code" in item and "code_function" in item:
            raise self.error("code_function", "give either 'code' or 'code_function', not both", name)
        code_field = "code_function" if "code_function" in item else "code"
        code = item.get(code_field)
        if code is not None and (not isinstance(code, str) or not code.strip()):
            raise self.error(code_field, f"must be a function name, got {code!r}", name)
        if code is None and is_split:
            return None, None
        function_name = code or name
        script_key = None
        if code and "." in code:
            script_key, function_name = code.rsplit(".", 1)
        script_field = "script_path" if "script_path" in item else "script"
        if item.get(script_field) is not None:
            script = self.project_file(item[script_field], script_field, name)
        elif script_key is not None:
            if script_key not in scripts:
                raise self.error(code_field, f"unknown script key '{script_key}' (scripts: {sorted(scripts)})", name)
            script = scripts[script_key]
        elif scripts:
            script = next(iter(scripts.values()))
        else:
            raise self.error(code_field, "no script to look in: add a 'scripts' section or 'script_path'", name)
        if not script.is_file():
            raise self.error(script_field if item.get(script_field) else code_field,
                             f"script '{_shown(script, self.root)}' does not exist", name)
        try:
            info = find_function(script, function_name)
            available = sorted(module_functions(script)) if info is None else []
        except ScriptError as exc:
            raise self.error(code_field, str(exc), name) from None
        if info is None and name not in self.declared:
            # Only named in process_adjlist: most likely a typo there, so point at that line.
            raise self.error(f"process_adjlist line {self.adjlist_nodes[name]}",
                             f"unknown process '{name}': not under processes and no function '{name}' "
                             f"in {_shown(script, self.root)}", name)
        if info is None:
            what = f"function '{function_name}'" + ("" if code else " (named after the process; set 'code')")
            raise self.error(code_field, f"{what} not found in {_shown(script, self.root)}; "
                             f"available: {', '.join(available) or 'none'}", name)
        return script, info


def _is_chart(item: Mapping[str, Any]) -> bool:
    """ExpOps' test: probe_paths, a chart_type or ``type: chart`` make a process entry a chart."""
    return "probe_paths" in item or "chart_type" in item or item.get("type") == "chart"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _find_cycle(predecessors: Mapping[str, Iterable[str]]) -> list[str]:
    """Return one cycle, in edge direction, as a closed path (first == last).

    Every process left over by Kahn's algorithm still has an unprocessed predecessor, so walking
    predecessors from any of them must revisit a process: that loop is a cycle.
    """
    current = next(iter(predecessors))
    walk: list[str] = []
    seen: dict[str, int] = {}
    while current not in seen:
        seen[current] = len(walk)
        walk.append(current)
        current = next(iter(predecessors[current]))
    loop = walk[seen[current]:]
    loop.reverse()
    return loop + [loop[0]]
