"""The validated project, frozen as JSON beside the generated Snakefile for jobs to read.

Every Snakemake job starts a fresh Python process. Re-reading the YAML and re-parsing every script
there would cost each job tens of milliseconds and would let a config edited mid-run change what
a job does without Snakemake noticing. Instead ``expops-smk generate`` writes ``expops_plan.json``
(only when its content changes) and the runtime rebuilds the ``ProjectConfig`` from it with the
standard library's ``json`` alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expops_smk.codehash import FunctionInfo
from expops_smk.config import DataSplit, ProcessSpec, ProjectConfig
from expops_smk.resources import ExecutionSettings

if TYPE_CHECKING:
    from expops_smk.charts import ChartSpec

PLAN_FORMAT = 1


def plan_to_json(project: ProjectConfig) -> str:
    """Deterministic JSON (paths relative to the project) so unchanged projects give equal bytes."""
    root = project.root

    def rel(path: Path | None) -> str | None:
        return None if path is None else path.relative_to(root).as_posix()

    processes = []
    for spec in project.processes.values():
        function = spec.function
        processes.append({
            "name": spec.name,
            "description": spec.description,
            "script": rel(spec.script),
            "function": None if function is None else _function_to_json(function),
            "parameters": spec.parameters,
            "data_split": None if spec.data_split is None else {
                "count": spec.data_split.count,
                "row_counts": None if spec.data_split.row_counts is None else list(spec.data_split.row_counts),
                "data_name": spec.data_split.data_name,
            },
            "seeds": None if spec.seeds is None else list(spec.seeds),
            "data_aggregation": spec.data_aggregation,
            "seed_aggregation": spec.seed_aggregation,
            "parents": list(spec.parents),
            "resources": spec.resources,
            "retries": spec.retries,
        })
    payload = {
        "format": PLAN_FORMAT,
        "name": project.name,
        "config_file": rel(project.config_file),
        "scripts": {key: rel(path) for key, path in project.scripts.items()},
        "global_parameters": project.global_parameters,
        "random_seed": project.random_seed,
        "data_path": rel(project.data_path),
        "default_resources": project.default_resources,
        "execution": project.execution.to_json(),
        "processes": processes,
        "charts": [{
            "name": chart.name,
            "description": chart.description,
            "script": rel(chart.script),
            "function": _function_to_json(chart.function),
            "probes": [{"key": probe.key, "source": probe.source, "process": probe.process,
                        "partition": list(probe.partition), "seed": list(probe.seed), "step": probe.step}
                       for probe in chart.probes],
        } for chart in project.charts.values()],
    }
    return json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n"


def _function_to_json(function: FunctionInfo) -> dict[str, Any]:
    return {
        "name": function.name,
        "lineno": function.lineno,
        "params": list(function.params),
        "required": list(function.required),
        "has_var_kwargs": function.has_var_kwargs,
        "code_hash": function.code_hash,
        "positional_only": list(function.positional_only),
    }


def _function_from_json(f: dict[str, Any], script: Path | None, root: Path) -> FunctionInfo:
    return FunctionInfo(
        name=f["name"], script=script or root, lineno=f["lineno"], params=tuple(f["params"]),
        required=tuple(f["required"]), has_var_kwargs=f["has_var_kwargs"],
        code_hash=f["code_hash"], positional_only=tuple(f["positional_only"]),
    )


def plan_from_json(text: str, root: Path) -> ProjectConfig:
    payload = json.loads(text)
    if payload.get("format") != PLAN_FORMAT:
        raise ValueError("plan was written by another expops-smk version; run `expops-smk generate`")

    def path(rel: str | None) -> Path | None:
        return None if rel is None else root / rel

    processes: dict[str, ProcessSpec] = {}
    for item in payload["processes"]:
        script = path(item["script"])
        function = None if item["function"] is None else _function_from_json(item["function"], script, root)
        split = item["data_split"]
        processes[item["name"]] = ProcessSpec(
            name=item["name"],
            description=item["description"],
            script=script,
            function=function,
            parameters=item["parameters"],
            data_split=None if split is None else DataSplit(
                split["count"], None if split["row_counts"] is None else tuple(split["row_counts"]),
                split["data_name"]),
            seeds=None if item["seeds"] is None else tuple(item["seeds"]),
            data_aggregation=item["data_aggregation"],
            seed_aggregation=item["seed_aggregation"],
            parents=tuple(item["parents"]),
            resources=item["resources"],
            retries=item["retries"],
        )
    charts = _charts_from_json(payload.get("charts", []), root)  # plans from before charts have none
    return ProjectConfig(
        root=root,
        config_file=root / payload["config_file"],
        name=payload["name"],
        processes=processes,
        scripts={key: root / rel for key, rel in payload["scripts"].items()},
        global_parameters=payload["global_parameters"],
        random_seed=payload["random_seed"],
        data_path=path(payload["data_path"]),
        default_resources=payload["default_resources"],
        execution=ExecutionSettings.from_json(payload.get("execution")),  # plans from before it have none
        charts=charts,
    )


def _charts_from_json(items: list[dict[str, Any]], root: Path) -> dict[str, ChartSpec]:
    if not items:
        return {}  # most projects: node jobs do not import the charts module at all
    from expops_smk.charts import ChartSpec, Probe  # charts imports codegen, which imports this module

    charts = {}
    for item in items:
        script = root / item["script"]
        charts[item["name"]] = ChartSpec(
            name=item["name"],
            script=script,
            function=_function_from_json(item["function"], script, root),
            probes=tuple(Probe(p["key"], p["source"], p["process"], tuple(p["partition"]), tuple(p["seed"]),
                               p["step"]) for p in item["probes"]),
            description=item["description"],
        )
    return charts


def read_plan(plan_file: Path, root: Path) -> ProjectConfig:
    return plan_from_json(plan_file.read_text(encoding="utf-8"), root)


def effective_parameters(project: ProjectConfig, spec: ProcessSpec) -> dict[str, Any]:
    """Global parameters overridden by the process's own: what the function may receive."""
    return {**project.global_parameters, **spec.parameters}


def accepted_parameters(project: ProjectConfig, spec: ProcessSpec) -> dict[str, Any]:
    """The parameters the function actually receives (signature-filtered unless it takes **kwargs).

    Only these go into the rule's ``params:``, so editing a global parameter re-runs just the
    processes whose functions take it.
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
