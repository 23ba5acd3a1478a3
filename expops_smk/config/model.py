"""The validated project, as every later layer sees it, whatever layout the user wrote.

ExpOps configs come in three layouts (early docs, later docs, the 0.1.27 package). Parsing
(``expops_smk.config.project``) turns any of them into these frozen dataclasses, so no other
module ever has to know which layout a project uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from expops_smk.config.codehash import FunctionInfo

DEFAULT_RANDOM_SEED = 42
DEFAULT_DATA_NAME = "data"
DEFAULT_MAX_NODES = 200_000


@dataclass(frozen=True)
class DataSplit:
    """A data fan-out: ``count`` partitions, with explicit ``row_counts`` when the size was a list.

    The growing-data modes (``rows_per_partition``, ``by``, ``files``; see runtime/datums.py) set
    one of the fields below. ``by`` with ``buckets`` still has a fixed count (``count`` = buckets);
    the others are *dynamic*: the split job decides how many partitions there are (``count`` 0).
    """

    count: int
    row_counts: tuple[int, ...] | None
    data_name: str
    rows_per_partition: int | None = None
    by: str | None = None
    buckets: int | None = None
    files: str | None = None

    @property
    def mode(self) -> str:
        """``size``, ``rows_per_partition``, ``by`` or ``files``."""
        for name in ("rows_per_partition", "by", "files"):
            if getattr(self, name) is not None:
                return name
        return "size"

    @property
    def dynamic(self) -> bool:
        """True when the number of partitions depends on the data (known only after the split ran)."""
        return self.mode in ("rows_per_partition", "files") or (self.mode == "by" and self.buckets is None)

    def describe(self) -> str:
        """The fan-out as the config spells it (rule commands, run key, messages)."""
        if self.mode == "size":
            return f"size={list(self.row_counts) if self.row_counts is not None else self.count}"
        if self.mode == "by":
            return f"by={self.by}" + (f" buckets={self.buckets}" if self.buckets is not None else "")
        return f"{self.mode}={getattr(self, self.mode)}"


@dataclass(frozen=True)
class ExecutionSettings:
    """The validated ``execution:`` section merged with the project's other resource defaults.

    ``resources`` uses the config's spelling (``cpus``, ``gpus``); ``group_chains`` is the number
    of partition x seed chains bundled into one cluster submission (0: no groups);
    ``local_processes`` are resolved process names; ``jobs`` is how many cluster jobs may be
    queued or running at once (``None``: the profile's default); ``warm_start``: local jobs are
    forked from a warm interpreter (see ``expops_smk.runtime.launch``); ``max_nodes`` bounds the
    expanded graph (Snakemake needs seconds per few thousand jobs just to plan, so a fan-out typo
    must fail at validation instead of hanging ``snakemake -n``); ``track_library_versions``:
    installed library versions are part of the run key.
    """

    resources: Mapping[str, Any] = field(default_factory=dict)
    group_chains: int = 0
    local_processes: tuple[str, ...] = ()
    benchmark: bool = False
    jobs: int | None = None
    warm_start: bool = True
    max_nodes: int = DEFAULT_MAX_NODES
    track_library_versions: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"resources": dict(self.resources), "group_chains": self.group_chains,
                "local_processes": list(self.local_processes), "benchmark": self.benchmark, "jobs": self.jobs,
                "warm_start": self.warm_start, "max_nodes": self.max_nodes,
                "track_library_versions": self.track_library_versions}

    @classmethod
    def from_json(cls, payload: Mapping[str, Any] | None) -> ExecutionSettings:
        if not payload:
            return cls()
        return cls(resources=dict(payload["resources"]), group_chains=payload["group_chains"],
                   local_processes=tuple(payload["local_processes"]), benchmark=payload["benchmark"],
                   jobs=payload["jobs"], warm_start=payload["warm_start"], max_nodes=payload["max_nodes"],
                   track_library_versions=payload["track_library_versions"])


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
    # Project modules the script reaches (relative path -> canonical hash) and the installed
    # distributions it imports (name -> version at generation); see config.imports/libraries.
    modules: Mapping[str, str] = field(default_factory=dict)
    libraries: Mapping[str, str] = field(default_factory=dict)
    # The name of its entry in the project's ``environment:`` section (None: Snakemake's own).
    environment: str | None = None

    @property
    def is_split(self) -> bool:
        return self.data_split is not None or self.seeds is not None

    @property
    def is_aggregation(self) -> bool:
        return self.data_aggregation or self.seed_aggregation


@dataclass(frozen=True)
class EnvironmentSpec:
    """One entry of ExpOps' ``environment:`` section: ``venv`` (requirement files) or ``conda``
    (environment files); ``digest`` covers the files' content (``expops_smk.store.environments``)."""

    name: str
    kind: str
    files: tuple[Path, ...]
    digest: str

    def to_json(self, root: Path) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "digest": self.digest,
                "files": [path.relative_to(root).as_posix() for path in self.files]}

    @classmethod
    def from_json(cls, payload: Mapping[str, Any], root: Path) -> EnvironmentSpec:
        return cls(payload["name"], payload["kind"], tuple(root / f for f in payload["files"]), payload["digest"])


@dataclass(frozen=True)
class ChartSpec:
    """A static chart: a process entry with ``probe_paths``, drawn from other nodes' metrics.

    ``selectors`` maps each ``probe_paths`` key to its XPath selector, as written; the graph
    resolves them to nodes (``expops_smk.graph.probes``).
    """

    name: str
    script: Path
    function: FunctionInfo
    selectors: Mapping[str, str]
    description: str = ""
    modules: Mapping[str, str] = field(default_factory=dict)  # as for ProcessSpec
    libraries: Mapping[str, str] = field(default_factory=dict)
    environment: str | None = None  # as for a process


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
    # Resource defaults, chain groups, local processes, benchmarks: see expops_smk.config.execution.
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    # Static charts by name; they are not processes: no rule consumes them and they have no nodes.
    charts: Mapping[str, ChartSpec] = field(default_factory=dict)
    # ExpOps' ``environment:`` section by name, in the order written (the first is the default).
    environments: Mapping[str, EnvironmentSpec] = field(default_factory=dict)

    def children(self) -> dict[str, list[str]]:
        """Map each process to the processes that consume its outputs, in topological order."""
        result: dict[str, list[str]] = {name: [] for name in self.processes}
        for spec in self.processes.values():
            for parent in spec.parents:
                result[parent].append(spec.name)
        return result

    def all_scripts(self) -> list[Path]:
        """Every script file the project names (processes, charts, the ``scripts`` section), sorted."""
        scripts = {spec.script for spec in self.processes.values() if spec.script is not None}
        scripts.update(self.scripts.values())
        scripts.update(chart.script for chart in self.charts.values())
        return sorted(scripts)


def effective_parameters(project: ProjectConfig, spec: ProcessSpec) -> dict[str, Any]:
    """Global parameters overridden by the process's own: what the function may receive."""
    return {**project.global_parameters, **spec.parameters}


def accepted_parameters(project: ProjectConfig, spec: ProcessSpec) -> dict[str, Any]:
    """The parameters the function actually receives (signature-filtered unless it takes **kwargs).

    Only these go into the ``# parameters:`` line of the rule's command, so editing a global
    parameter re-runs just the processes whose functions take it.
    """
    params = effective_parameters(project, spec)
    function = spec.function
    if function is None:
        return {}
    if function.has_var_kwargs:
        return params
    wanted = set(function.params)
    if "hyperparameters" in wanted:
        return params
    return {key: value for key, value in params.items() if key in wanted}
