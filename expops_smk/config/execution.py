"""``execution:``: where and how the nodes run, and each process's ``resources``, validated.

The same generated rules run on a laptop and on a cluster; only the Snakemake profile differs.
So the project-wide defaults are merged here, lowest precedence first, from ExpOps'
``configs/compute_config.yaml`` (see ``expops_smk.config.compute``), ``compute.resources`` and
``execution.resources``; ``expops_smk.codegen.directives`` renders them into rules and profiles.
"""

from __future__ import annotations

from typing import Any, Mapping

from expops_smk.config.compute import read_compute_config
from expops_smk.config.model import DEFAULT_MAX_NODES, ExecutionSettings, ProcessSpec
from expops_smk.config.parser import ParseContext

EXECUTION_KEYS = {"resources", "group_chains", "local_processes", "benchmark", "jobs", "warm_start", "max_nodes",
                  "track_library_versions"}
LOCAL_SPLITS = "splits"
_ALIASES = {"threads": "cpus", "gpu": "gpus"}


def parse_execution(parser: ParseContext, processes: Mapping[str, ProcessSpec],
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
        max_nodes=_parse_max_nodes(parser, raw.get("max_nodes", DEFAULT_MAX_NODES)),
        track_library_versions=_parse_flag(parser, raw.get("track_library_versions", True),
                                           "execution.track_library_versions"),
    )


def normalized(resources: Mapping[str, Any], parser: ParseContext | None, field_name: str,
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


def _parse_flag(parser: ParseContext, value: Any, field_name: str) -> bool:
    if not isinstance(value, bool):
        raise parser.error(field_name, f"must be true or false, got {value!r}")
    return value


def _parse_group_chains(parser: ParseContext, value: Any) -> int:
    """``true`` = one chain per submission; an integer N bundles N chains into each submission."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value >= 0:
        return value
    raise parser.error("execution.group_chains", "must be true, false or the number of chains per cluster job, "
                       f"got {value!r}")


def _parse_jobs(parser: ParseContext, value: Any, fallback: int | None) -> int | None:
    if value is None:
        return fallback
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise parser.error("execution.jobs", f"must be a positive integer, got {value!r}")
    return value


def _parse_max_nodes(parser: ParseContext, value: Any) -> int:
    """The bound on the expanded graph's node count, checked where the graph is expanded."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise parser.error("execution.max_nodes", f"must be a positive integer, got {value!r}")
    return value


def _parse_local(parser: ParseContext, value: Any, processes: Mapping[str, ProcessSpec]) -> tuple[str, ...]:
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
