"""The validated project and its resolved chart probes, frozen as JSON beside the generated Snakefile.

Every Snakemake job starts a fresh Python process. Re-reading the YAML and re-parsing every script
there would cost each job tens of milliseconds and would let a config edited mid-run change what
a job does without Snakemake noticing. Instead ``expops-smk generate`` writes
``workflow/expops_plan.json`` (only when its content changes) and each job rebuilds the
``ProjectConfig`` and its ``Graph`` from it with the standard library's ``json`` alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from expops_smk.config.codehash import FunctionInfo
from expops_smk.config.model import (ChartSpec, DataSplit, EnvironmentSpec, ExecutionSettings, ProcessSpec,
                                    ProjectConfig)
from expops_smk.graph.probes import Probe, ResolvedChart

PLAN_FORMAT = 5
"""2: charts carry their selectors beside the resolved probes. 3: processes carry the project
modules and library versions their scripts import. 4: so do charts. 5: data splits carry the
growing-data modes."""
_SPLIT_MODES = ("rows_per_partition", "by", "buckets", "files")


@dataclass(frozen=True)
class Plan:
    """What a job knows of its project: the config and every chart with its resolved probes."""

    project: ProjectConfig
    charts: Mapping[str, ResolvedChart]


def plan_to_json(project: ProjectConfig, charts: Mapping[str, ResolvedChart]) -> str:
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
                **{mode: getattr(spec.data_split, mode) for mode in _SPLIT_MODES},
            },
            "seeds": None if spec.seeds is None else list(spec.seeds),
            "data_aggregation": spec.data_aggregation,
            "seed_aggregation": spec.seed_aggregation,
            "parents": list(spec.parents),
            "resources": spec.resources,
            "retries": spec.retries,
            "modules": dict(spec.modules),
            "libraries": dict(spec.libraries),
            "environment": spec.environment,
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
        "environments": [env.to_json(project.root) for env in project.environments.values()],
        "charts": [{
            "name": chart.name,
            "description": chart.spec.description,
            "script": rel(chart.spec.script),
            "function": _function_to_json(chart.spec.function),
            "selectors": dict(chart.spec.selectors),
            "modules": dict(chart.spec.modules),
            "libraries": dict(chart.spec.libraries),
            "environment": chart.spec.environment,
            "probes": [{"key": probe.key, "source": probe.source, "process": probe.process,
                        "partition": list(probe.partition), "seed": list(probe.seed), "step": probe.step}
                       for probe in chart.probes],
            "growing": list(chart.growing),
        } for chart in charts.values()],
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


def plan_from_json(text: str, root: Path) -> Plan:
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
                split["data_name"], **{mode: split.get(mode) for mode in _SPLIT_MODES}),
            seeds=None if item["seeds"] is None else tuple(item["seeds"]),
            data_aggregation=item["data_aggregation"],
            seed_aggregation=item["seed_aggregation"],
            parents=tuple(item["parents"]),
            resources=item["resources"],
            retries=item["retries"],
            modules=item["modules"],
            libraries=item["libraries"],
            environment=item.get("environment"),
        )
    charts = _charts_from_json(payload["charts"], root)
    project = ProjectConfig(
        root=root,
        config_file=root / payload["config_file"],
        name=payload["name"],
        processes=processes,
        scripts={key: root / rel for key, rel in payload["scripts"].items()},
        global_parameters=payload["global_parameters"],
        random_seed=payload["random_seed"],
        data_path=path(payload["data_path"]),
        default_resources=payload["default_resources"],
        execution=ExecutionSettings.from_json(payload["execution"]),
        charts={name: chart.spec for name, chart in charts.items()},
        environments={env["name"]: EnvironmentSpec.from_json(env, root) for env in payload.get("environments", [])},
    )
    return Plan(project, charts)


def _charts_from_json(items: list[dict[str, Any]], root: Path) -> dict[str, ResolvedChart]:
    charts = {}
    for item in items:
        script = root / item["script"]
        spec = ChartSpec(name=item["name"], script=script, function=_function_from_json(item["function"], script, root),
                         selectors=item["selectors"], description=item["description"],
                         modules=item["modules"], libraries=item["libraries"],
                         environment=item.get("environment"))
        probes = tuple(Probe(p["key"], p["source"], p["process"], tuple(p["partition"]), tuple(p["seed"]), p["step"])
                       for p in item["probes"])
        charts[spec.name] = ResolvedChart(spec, probes, tuple(item.get("growing", ())))
    return charts


def read_plan(plan_file: Path, root: Path) -> Plan:
    return plan_from_json(plan_file.read_text(encoding="utf-8"), root)
