"""Where and how the nodes run: resources, retries, chain groups, local rules and benchmarks.

The same generated rules run on a laptop and on a cluster; only the Snakemake profile differs
(see ``profiles``). So everything a process needs is written into its rule, where every executor
sees it: ``threads:`` (Slurm's ``--cpus-per-task``), ``resources:`` (``mem_mb`` -> ``--mem``,
``runtime`` minutes -> ``-t``, ``gpu``, ``slurm_partition``, ``slurm_extra``, ...), ``retries:`` with
memory that grows with each attempt, ``group:`` to bundle a partition x seed chain into one cluster
submission, ``localrule:`` for cheap nodes, and ``benchmark:``. A local run ignores what it has no
use for (groups, partitions, run times) and caps threads at ``--cores``.

Project-wide defaults come, lowest precedence first, from ExpOps' ``configs/compute_config.yaml``
(its Dask-on-Slurm worker options), ``compute.resources`` and ``execution.resources``. They go to
the cluster profile's ``default-resources``, which Snakemake applies to every rule that does not set
a value itself, with two exceptions rendered into the rules: the default thread count (Snakemake has
no default for threads) and the memory of a process with ``retries`` (it scales with the attempt).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol

from expops_smk.errors import ConfigError

if TYPE_CHECKING:
    from expops_smk.config import ProcessSpec, ProjectConfig
    from expops_smk.graph import Graph, ProcessLayout

EXECUTION_KEYS = {"resources", "group_chains", "local_processes", "benchmark", "jobs", "warm_start"}
LOCAL_SPLITS = "splits"
BENCHMARK_DIR = "benchmarks"

# Config spelling (after `normalized`) -> Snakemake resource name. cpus become the rule's `threads:`.
_SNAKEMAKE_NAMES = {
    "mem_mb": "mem_mb", "runtime": "runtime", "disk_mb": "disk_mb", "gpus": "gpu",
    "tmpdir": "tmpdir", "slurm_partition": "slurm_partition", "slurm_account": "slurm_account",
    "slurm_extra": "slurm_extra", "constraint": "constraint", "qos": "qos",
}
_ALIASES = {"threads": "cpus", "gpu": "gpus"}
_STRING_RESOURCES = {"tmpdir", "slurm_partition", "slurm_account", "slurm_extra", "constraint", "qos"}
_INDENT = " " * 8


@dataclass(frozen=True)
class ExecutionSettings:
    """The validated ``execution:`` section merged with the project's other resource defaults.

    ``resources`` uses the config's spelling (``cpus``, ``gpus``); ``group_chains`` is the number
    of partition x seed chains bundled into one cluster submission (0: no groups);
    ``local_processes`` are resolved process names; ``jobs`` is how many cluster jobs may be
    queued or running at once (``None``: the profile's default); ``warm_start``: local jobs are
    forked from a warm interpreter (see ``expops_smk.launch``).
    """

    resources: Mapping[str, Any] = field(default_factory=dict)
    group_chains: int = 0
    local_processes: tuple[str, ...] = ()
    benchmark: bool = False
    jobs: int | None = None
    warm_start: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"resources": dict(self.resources), "group_chains": self.group_chains,
                "local_processes": list(self.local_processes), "benchmark": self.benchmark, "jobs": self.jobs,
                "warm_start": self.warm_start}

    @classmethod
    def from_json(cls, payload: Mapping[str, Any] | None) -> ExecutionSettings:
        if not payload:
            return cls()
        return cls(resources=dict(payload["resources"]), group_chains=payload["group_chains"],
                   local_processes=tuple(payload["local_processes"]), benchmark=payload["benchmark"],
                   jobs=payload["jobs"], warm_start=payload["warm_start"])

    def job_module(self, entry: str) -> str:
        """What a rule's command runs with ``python -m``: ``runtime`` or ``charts`` through the
        warm-start launcher, or directly when warm start is off or jobs are benchmarked (Snakemake
        measures the job's own process tree, which a forked job is not part of)."""
        if self.warm_start and not self.benchmark:
            return f"expops_smk.launch {entry}"
        return f"expops_smk.{entry}"


class ConfigParser(Protocol):
    """What ``parse_execution`` uses of ``config._Parser`` (the project config being parsed)."""

    root: Path
    raw: dict[str, Any]
    file: str
    warnings: list[str]

    def error(self, field_name: str | None, message: str, process: str | None = None) -> ConfigError: ...
    def mapping(self, value: Any, field_name: str, process: str | None = None) -> dict[str, Any]: ...
    def warn_unknown(self, mapping: Mapping[str, Any], known: set[str], where: str) -> None: ...
    def parse_resources(self, value: Any, field_name: str, name: str | None) -> dict[str, Any]: ...


# -- parsing ------------------------------------------------------------------------------------

def parse_execution(parser: ConfigParser, processes: Mapping[str, ProcessSpec],
                    compute_resources: Mapping[str, Any]) -> ExecutionSettings:
    """Validate ``execution:`` and every process's ``resources``; merge the resource defaults.

    ``compute_resources`` is the already validated ``compute.resources`` mapping.
    """
    raw = parser.mapping(parser.raw.get("execution"), "execution")
    parser.warn_unknown(raw, EXECUTION_KEYS, "execution")
    for spec in processes.values():
        normalized(spec.resources, parser, "resources", spec.name)
    compute_defaults, compute_jobs = read_compute_config(parser.root, parser.warnings)
    explicit = parser.parse_resources(raw.get("resources"), "execution.resources", None)
    defaults = {
        **compute_defaults,
        **normalized(compute_resources, parser, "compute.resources", None),
        **normalized(explicit, parser, "execution.resources", None),
    }
    return ExecutionSettings(
        resources=defaults,
        group_chains=_parse_group_chains(parser, raw.get("group_chains", False)),
        local_processes=_parse_local(parser, raw.get("local_processes"), processes),
        benchmark=_parse_flag(parser, raw.get("benchmark", False), "execution.benchmark"),
        jobs=_parse_jobs(parser, raw.get("jobs"), compute_jobs),
        warm_start=_parse_flag(parser, raw.get("warm_start", True), "execution.warm_start"),
    )


def normalized(resources: Mapping[str, Any], parser: ConfigParser | None, field_name: str,
               process: str | None) -> dict[str, Any]:
    """``threads`` -> ``cpus`` and ``gpu`` -> ``gpus``; both spellings at once must agree."""
    result: dict[str, Any] = {}
    for key, value in resources.items():
        name = _ALIASES.get(key, key)
        if name in result and result[name] != value and parser is not None:
            raise parser.error(f"{field_name}.{key}", f"conflicts with '{name}: {result[name]}'; give one of them",
                               process)
        result[name] = value
    if result.get("cpus") == 0 and parser is not None:
        raise parser.error(f"{field_name}.cpus", "must be at least 1", process)
    return result


def _parse_flag(parser: ConfigParser, value: Any, field_name: str) -> bool:
    if not isinstance(value, bool):
        raise parser.error(field_name, f"must be true or false, got {value!r}")
    return value


def _parse_group_chains(parser: ConfigParser, value: Any) -> int:
    """``true`` = one chain per submission; an integer N bundles N chains into each submission."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value >= 0:
        return value
    raise parser.error("execution.group_chains", "must be true, false or the number of chains per cluster job, "
                       f"got {value!r}")


def _parse_jobs(parser: ConfigParser, value: Any, fallback: int | None) -> int | None:
    if value is None:
        return fallback
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise parser.error("execution.jobs", f"must be a positive integer, got {value!r}")
    return value


def _parse_local(parser: ConfigParser, value: Any, processes: Mapping[str, ProcessSpec]) -> tuple[str, ...]:
    """``"splits"``: every built-in split and every aggregation; else a list of process names."""
    if value is None:
        return ()
    if value == LOCAL_SPLITS:
        return tuple(name for name, spec in processes.items()
                     if (spec.is_split and spec.function is None) or spec.is_aggregation)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise parser.error("execution.local_processes",
                           f"must be \"{LOCAL_SPLITS}\" or a list of process names, got {value!r}")
    unknown = [name for name in value if name not in processes]
    if unknown:
        raise parser.error("execution.local_processes",
                           f"unknown process(es) {', '.join(map(repr, unknown))}; processes: {', '.join(processes)}")
    return tuple(name for name in processes if name in value)


# -- ExpOps' compute_config.yaml -----------------------------------------------------------------

def read_compute_config(root: Path, warnings: list[str]) -> tuple[dict[str, Any], int | None]:
    """Resource defaults and job count from ``configs/compute_config.yaml`` when it targets Slurm.

    ExpOps runs Dask workers through dask-jobqueue with ``options: {worker_cores, worker_memory,
    walltime, queue, ...}`` and ``num_workers``; a Snakemake job plays the role of a worker, so
    those become the default cpus, mem_mb, runtime and partition of every job, and the number of
    jobs in flight. Other providers (``local``) have nothing to translate.
    """
    from expops_smk.config import COMPUTE_CONFIG_RELATIVE_PATH, _read_yaml, _shown

    path = root / COMPUTE_CONFIG_RELATIVE_PATH
    if not path.is_file():
        return {}, None
    raw = _read_yaml(path, root)
    shown = _shown(path, root)
    if str(raw.get("provider", "")).lower() != "slurm":
        return {}, None
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(shown, "options", f"must be a mapping, got {type(options).__name__}")
    defaults: dict[str, Any] = {}
    for key, convert, name in (("worker_cores", _positive_int, "cpus"), ("worker_memory", memory_mb, "mem_mb"),
                               ("walltime", walltime_minutes, "runtime"), ("queue", _text, "slurm_partition"),
                               ("account", _text, "slurm_account"), ("project", _text, "slurm_account"),
                               ("job_extra_directives", _directives, "slurm_extra"),
                               ("job_extra", _directives, "slurm_extra")):
        if options.get(key) is not None and name not in defaults:
            try:
                defaults[name] = convert(options[key])
            except ValueError as exc:
                raise ConfigError(shown, f"options.{key}", str(exc)) from None
    jobs = raw.get("num_workers")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ConfigError(shown, "num_workers", f"must be a positive integer, got {jobs!r}")
    if not defaults and jobs is None:
        warnings.append(f"{shown}: provider slurm without options (worker_cores, worker_memory, walltime, queue): "
                        "nothing to translate")
    return defaults, jobs


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return str(value).strip()


def _directives(value: Any) -> str:
    """dask-jobqueue's extra ``#SBATCH`` directives (a list of ``--flag=value``) -> one slurm_extra."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"must be a list of sbatch options, got {value!r}")
    return " ".join(item.strip() for item in items if item.strip())


_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)b?\s*$", re.IGNORECASE)
_MEMORY_FACTORS_MB = {"k": 1e-3, "m": 1.0, "g": 1e3, "t": 1e6, "p": 1e9}
_BINARY_FACTORS_MB = {"k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0**2, "p": 1024.0**3}


def memory_mb(value: Any) -> int:
    """Dask's memory strings in whole megabytes (rounded up): '4GB' -> 4000, '4GiB' -> 4096, '512MB' -> 512.

    Binary units count in MiB, which is what Slurm's ``--mem`` means by its numbers. A bare number
    is rejected: Dask would read it as bytes, a user most likely meant megabytes.
    """
    match = _MEMORY.match(value) if isinstance(value, str) else None
    if match is None or not match.group(2):
        raise ValueError(f"must be a size with a unit such as '4GB', '4000MB' or '4GiB', got {value!r}")
    amount, unit, binary = float(match.group(1)), match.group(2).lower(), bool(match.group(3))
    megabytes = math.ceil(amount * (_BINARY_FACTORS_MB if binary else _MEMORY_FACTORS_MB)[unit])
    if megabytes < 1:
        raise ValueError(f"must be at least 1 MB, got {value!r}")
    return megabytes


_WALLTIME = re.compile(r"^\s*(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?\s*$")


def walltime_minutes(value: Any) -> int:
    """Slurm time formats in whole minutes (rounded up): '01:30:00' -> 90, '2-00:00:00' -> 2880, '45' -> 45.

    As in Slurm: 'MM', 'MM:SS', 'HH:MM:SS', 'D-HH', 'D-HH:MM', 'D-HH:MM:SS'.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _WALLTIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"must be a Slurm time such as '01:00:00' (HH:MM:SS) or minutes, got {value!r}")
    days, first, second, third = (int(part) if part is not None else None for part in match.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = days * 86400 + first * 3600 + (second or 0) * 60 + (third or 0)
    elif third is not None:  # HH:MM:SS
        seconds = first * 3600 + (second or 0) * 60 + third
    else:  # MM[:SS]
        seconds = first * 60 + (second or 0)
    if seconds < 1:
        raise ValueError(f"must be longer than zero, got {value!r}")
    return math.ceil(seconds / 60)


# -- rendering: rule directives -------------------------------------------------------------------

def rule_directives(project: ProjectConfig, graph: Graph, layout: ProcessLayout, wildcards: list[str]) -> str:
    """The rule's ``threads:``, ``resources:``, ``retries:``, ``group:``, ``localrule:`` and
    ``benchmark:`` lines (each ends with a newline; empty when the project sets none of them)."""
    spec = layout.spec
    execution = project.execution
    lines: list[str] = []
    threads = thread_count(spec, execution)
    if threads is not None:
        lines.append(f"    threads: {threads}")
    resources = rule_resources(spec, execution)
    if resources:
        lines.append("    resources:")
        lines.extend(f"{_INDENT}{name}={value}," for name, value in resources.items())
    if spec.retries:
        lines.append(f"    retries: {spec.retries}")
    group = chain_groups(project, graph).get(spec.name)
    if group is not None:
        lines.append(f'    group: "{group}"')
    if spec.name in execution.local_processes:
        lines.append("    localrule: True")
    if execution.benchmark:
        lines.append("    benchmark:")
        lines.append(f'{_INDENT}"{benchmark_path(spec.name, wildcards)}",')
    return "".join(line + "\n" for line in lines)


def thread_count(spec: ProcessSpec, execution: ExecutionSettings) -> int | None:
    own = normalized(spec.resources, None, "resources", spec.name)
    return own.get("cpus", execution.resources.get("cpus"))


def rule_resources(spec: ProcessSpec, execution: ExecutionSettings) -> dict[str, str]:
    """Snakemake resource name -> Python expression, for the rule's ``resources:`` block.

    With retries, memory is a function of the attempt (the default memory too, so that it scales):
    a job killed for exceeding its memory comes back with twice, then three times as much.
    """
    own = normalized(spec.resources, None, "resources", spec.name)
    result: dict[str, str] = {}
    for key, value in own.items():
        name = _SNAKEMAKE_NAMES.get(key)
        if name is not None:
            result[name] = repr(str(value)) if key in _STRING_RESOURCES else str(int(value))
    memory = own.get("mem_mb", execution.resources.get("mem_mb"))
    if spec.retries and memory:
        result["mem_mb"] = f"lambda wildcards, attempt: {int(memory)} * attempt"
    return result


def benchmark_path(process: str, wildcards: Iterable[str]) -> str:
    """``benchmarks/<process>/<partition>/s<seed>.tsv``, beside the layout of ``logs/``."""
    parts = ["{partition}" if wildcard == "partition" else "s{seed}" for wildcard in wildcards]
    if not parts:
        return f"{BENCHMARK_DIR}/{process}.tsv"
    return f"{BENCHMARK_DIR}/{process}/" + "/".join(parts) + ".tsv"


def default_resources(execution: ExecutionSettings) -> dict[str, Any]:
    """The project's defaults as Snakemake resources (for a profile's ``default-resources``).

    Threads are not a resource there; they are rendered into each rule (``thread_count``).
    """
    result: dict[str, Any] = {}
    for key, value in execution.resources.items():
        name = _SNAKEMAKE_NAMES.get(key)
        if name is not None:
            result[name] = str(value) if key in _STRING_RESOURCES else int(value)
    return result


# -- chain groups --------------------------------------------------------------------------------

def chain_groups(project: ProjectConfig, graph: Graph) -> dict[str, str]:
    """Process -> Snakemake group name, when ``execution.group_chains`` is on.

    Processes repeated over the same fan-out layers (the same partition x seed stack), asking for
    the same string resources (partition, account, sbatch options) and joined by direct edges form
    a segment; Snakemake turns each segment's jobs of one partition x seed into a
    connected component, i.e. one group job, and ``--group-components NAME=N`` bundles N of them into
    one submission. A segment is grouped only if no path leaves it and comes back (a node outside
    that depends on one member and feeds another): Snakemake rejects such a group, and bundling
    several chains could make one wait for another. Local processes and single-node processes (no
    fan-out above them) are never grouped.
    """
    execution = project.execution
    if not execution.group_chains:
        return {}
    kinds = {name: (layout.stack, _string_resources(layout.spec)) for name, layout in graph.layouts.items()
             if layout.stack and name not in execution.local_processes}
    children = project.children()
    segment_of: dict[str, int] = {}
    segments: list[list[str]] = []
    for name, kind in kinds.items():  # topological order: a segment's first member is its entry
        joined = {segment_of[parent] for parent in project.processes[name].parents
                  if parent in segment_of and kinds[parent] == kind}
        if not joined:
            segment_of[name] = len(segments)
            segments.append([name])
            continue
        target = min(joined)
        for other in sorted(joined - {target}):
            for member in segments[other]:
                segment_of[member] = target
            segments[target].extend(segments[other])
            segments[other] = []
        segment_of[name] = target
        segments[target].append(name)
    groups: dict[str, str] = {}
    for members in segments:
        if members and _is_convex(set(members), children):
            name = f"chain_{members[0].replace('-', '_')}"
            groups.update((member, name) for member in members)
    return groups


def _string_resources(spec: ProcessSpec) -> tuple[tuple[str, str], ...]:
    """A process's own string resources (partition, account, sbatch options...): one group job is one
    submission, so Snakemake requires all of its jobs to ask for the same ones. Own values only: the
    defaults come from the profile, so without it (a local run) the others have none at all."""
    own = normalized(spec.resources, None, "resources", spec.name)
    return tuple(sorted((key, str(value)) for key, value in own.items() if key in _STRING_RESOURCES))


def _is_convex(members: set[str], children: Mapping[str, list[str]]) -> bool:
    """True when no path from a member through non-members reaches a member again."""
    seen: set[str] = set()
    stack = [child for member in members for child in children[member] if child not in members]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for child in children[name]:
            if child in members:
                return False
            stack.append(child)
    return True

