"""Read and validate an ExpOps project into one ``ProjectConfig``: the entry point of the config layer.

``load_project`` reads ``configs/project_config.yaml``, finds the pipeline in any of the three
layouts, and hands each section to its parser (``pipeline``, ``processes``, ``execution``,
``charts``). Validation here covers what is knowable from the config and the scripts' source
alone (names, types, the DAG, functions and their signatures). Fan-out consistency (aggregations,
merges of different fan-outs) and chart selectors are checked where the graph is expanded, in
``expops_smk.graph``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from expops_smk.config.charts import is_chart, parse_charts
from expops_smk.config.dataflow import check_dataflow
from expops_smk.config.environments import parse_environments, with_chart_environments, with_environments
from expops_smk.config.codehash import ScriptError
from expops_smk.config.execution import parse_execution
from expops_smk.config.imports import ScriptImports, script_imports
from expops_smk.config.libraries import library_versions
from expops_smk.config.model import DEFAULT_RANDOM_SEED, ChartSpec, ProcessSpec, ProjectConfig
from expops_smk.config.parser import ParseContext, is_int
from expops_smk.config.pipeline import (parse_adjlist, parse_depends_on, parse_process_list, topological_order,
                                        without_chart_edges)
from expops_smk.config.processes import build_process
from expops_smk.config.yaml_loading import read_yaml
from expops_smk.errors import ExpopsError
from expops_smk.layout import CONFIG_FILE

_TOP_LEVEL_KEYS = {
    "metadata", "scripts", "environment", "reproducibility", "data", "experiment", "model",
    "reporting", "project", "compute", "execution",
}


def load_project(project_dir: str | Path) -> ProjectConfig:
    """Parse, normalise and validate ``<project_dir>/configs/project_config.yaml``."""
    root = Path(project_dir).resolve()
    config_file = root / CONFIG_FILE
    ctx = ParseContext(root, config_file, read_yaml(config_file, root))
    return parse_project(ctx)


def parse_project(ctx: ParseContext) -> ProjectConfig:
    for key in ctx.raw:
        if not isinstance(key, str):
            raise ctx.error(None, f"top-level keys must be strings, got {key!r}")
    ctx.warn_unknown(ctx.raw, _TOP_LEVEL_KEYS, "top level")
    pipeline, global_parameters = locate_pipeline(ctx)
    scripts = parse_scripts(ctx)
    random_seed = parse_random_seed(ctx)
    data_path = parse_data_path(ctx)
    compute = ctx.mapping(ctx.raw.get("compute"), "compute")
    default_resources = ctx.parse_resources(compute.get("resources"), "compute.resources", None)
    environments = parse_environments(ctx)
    declared = parse_process_list(ctx, pipeline)
    ctx.declared = set(declared)
    chart_items = {name: item for name, item in declared.items() if is_chart(item)}
    declared = {name: item for name, item in declared.items() if name not in chart_items}
    edges = parse_adjlist(ctx, pipeline.get("process_adjlist"))
    ctx.process_items = {**declared, **{extra: {} for extra in ctx.adjlist_nodes if extra not in declared}}
    for name, spec_raw in declared.items():
        for parent in parse_depends_on(ctx, name, spec_raw):
            edges.append((parent, name, "depends_on"))
    edges = without_chart_edges(ctx, edges, chart_items)
    order = topological_order(ctx, declared, edges)
    if not order:
        raise ctx.error("pipeline.processes", "the pipeline has no processes: there is nothing to run")
    parents: dict[str, list[str]] = {name: [] for name in order}
    for source, target, _ in edges:
        if source not in parents[target]:
            parents[target].append(source)
    processes = {
        name: build_process(ctx, name, declared.get(name, {"name": name}), tuple(parents[name]),
                            scripts, global_parameters)
        for name in order
    }
    processes = with_environments(ctx, processes, declared, environments)
    check_dataflow(ctx, processes, global_parameters)
    metadata = ctx.mapping(ctx.raw.get("metadata"), "metadata")
    # One line: the name is written into comments of the generated Snakefile.
    name = ctx.one_line(metadata.get("name", ctx.root.name), "metadata.name", None) or ctx.root.name
    execution = parse_execution(ctx, processes, default_resources)
    charts = with_chart_environments(ctx, parse_charts(ctx, chart_items, processes, scripts), chart_items, environments)
    processes, charts = with_dependencies(ctx, processes, charts, scripts, execution.track_library_versions)
    return ProjectConfig(
        root=ctx.root,
        config_file=ctx.config_file,
        name=str(name),
        processes=processes,
        scripts=scripts,
        global_parameters=global_parameters,
        random_seed=random_seed,
        data_path=data_path,
        default_resources=default_resources,
        execution=execution,
        charts=charts,
        environments=environments,
        warnings=tuple(ctx.warnings),
    )


def with_dependencies(ctx: ParseContext, processes: dict[str, ProcessSpec], charts: dict[str, ChartSpec],
                      scripts: dict[str, Path], track_libraries: bool,
                      ) -> tuple[dict[str, ProcessSpec], dict[str, ChartSpec]]:
    """Each process and chart with the project modules and library versions its script reaches.

    Charts count like processes: a chart drawn by a helper module, or by a matplotlib that was
    upgraded, is re-drawn. A module that cannot be parsed fails validation in one line naming it and
    every process or chart whose script imports it (the runtime would fail importing it anyway).
    """
    entries: dict[str, ProcessSpec | ChartSpec] = {
        **{name: spec for name, spec in processes.items() if spec.script is not None and spec.function is not None},
        **charts}
    folders = sorted({path.resolve().parent for path in [*scripts.values(), *(
        spec.script for spec in entries.values() if spec.script is not None)]})
    found: dict[Path, tuple[ScriptImports, dict[str, str]]] = {}
    for name, spec in entries.items():
        assert spec.script is not None
        if spec.script not in found:
            try:
                imports = script_imports(spec.script, ctx.root, folders)
            except ScriptError as exc:
                users = [n for n, s in entries.items() if s.script == spec.script]
                raise ExpopsError(f"{exc} (imported by {_plural(users)} {', '.join(users)})") from None
            found[spec.script] = imports, library_versions(imports.external) if track_libraries else {}
    return ({name: _with_imports(spec, found) for name, spec in processes.items()},
            {name: _with_imports(spec, found) for name, spec in charts.items()})


_Spec = TypeVar("_Spec", ProcessSpec, ChartSpec)


def _with_imports(spec: _Spec, found: dict[Path, tuple[ScriptImports, dict[str, str]]]) -> _Spec:
    if spec.script not in found or spec.function is None:  # built-in splits have no script
        return spec
    imports, libraries = found[spec.script]
    return replace(spec, modules=imports.modules, libraries=libraries)


def _plural(users: list[str]) -> str:
    return "processes" if len(users) > 1 else "process"


def locate_pipeline(ctx: ParseContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """Find the pipeline in any of the three layouts; return it with the global parameters."""
    found: list[tuple[str, Any, str, dict[str, Any]]] = []  # (where, pipeline, globals field, globals)
    for prefix, section in (("model.parameters", ctx.raw.get("model")),
                           ("experiment.parameters", ctx.raw.get("experiment"))):
        section = ctx.mapping(section, prefix.split(".")[0])
        params = ctx.mapping(section.get("parameters"), prefix)
        if "pipeline" in params:
            found.append((f"{prefix}.pipeline", params["pipeline"], prefix,
                          {k: v for k, v in params.items() if k != "pipeline"}))
    experiment = ctx.mapping(ctx.raw.get("experiment"), "experiment")
    if "pipeline" in experiment:
        found.append(("experiment.pipeline", experiment["pipeline"], "experiment.parameters",
                      dict(ctx.mapping(experiment.get("parameters"), "experiment.parameters"))))
    if not found:
        raise ctx.error("pipeline", "no pipeline found under model.parameters.pipeline, "
                                    "experiment.parameters.pipeline or experiment.pipeline")
    where, pipeline, globals_field, global_parameters = found[0]
    if len(found) > 1:
        ctx.warnings.append(f"{ctx.file}: pipelines under {' and '.join(f[0] for f in found)}; "
                           f"using {where}, ignoring the others")
    ctx.check_plain_data(global_parameters, globals_field, None)
    return ctx.mapping(pipeline, where), global_parameters


def parse_scripts(ctx: ParseContext) -> dict[str, Path]:
    scripts = ctx.mapping(ctx.raw.get("scripts"), "scripts")
    result: dict[str, Path] = {}
    for key, rel in scripts.items():
        result[key] = ctx.project_file(rel, f"scripts.{key}", None)
    return result


def parse_random_seed(ctx: ParseContext) -> int:
    repro = ctx.mapping(ctx.raw.get("reproducibility"), "reproducibility")
    seed = repro.get("random_seed", DEFAULT_RANDOM_SEED)
    if not is_int(seed):
        raise ctx.error("reproducibility.random_seed", f"must be an integer, got {seed!r}")
    return int(seed)


def parse_data_path(ctx: ParseContext) -> Path | None:
    data = ctx.mapping(ctx.raw.get("data"), "data")
    if data.get("path") is None:
        return None
    path = ctx.project_file(data["path"], "data.path", None)
    if "{" in data["path"] or "}" in data["path"]:
        # The data file is an input of the first rules, and Snakemake reads '{x}' there as a wildcard.
        raise ctx.error("data.path", f"'{data['path']}' contains '{{' or '}}', which Snakemake reads as a "
                        "wildcard; rename the file")
    if not path.is_file():
        raise ctx.error("data.path", f"file '{data['path']}' does not exist")
    return path
