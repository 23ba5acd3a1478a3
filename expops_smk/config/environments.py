"""ExpOps' ``environment:`` section and each process's ``environment: NAME``.

``environment: {NAME: {venv: [requirements.txt, ...]}}`` or ``{NAME: {conda: [env.yml]}}``. As in
ExpOps, the first entry is the default: a process without ``environment:`` runs in it. A project
without the section runs every job with the interpreter that runs Snakemake, as before.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from expops_smk.config.model import ChartSpec, EnvironmentSpec, ProcessSpec, ProjectConfig
from expops_smk.config.names import did_you_mean, is_safe_name
from expops_smk.config.parser import ParseContext
from expops_smk.store.environments import environment_digest

KINDS = ("venv", "conda")


def parse_environments(ctx: ParseContext) -> dict[str, EnvironmentSpec]:
    section = ctx.mapping(ctx.raw.get("environment"), "environment")
    result: dict[str, EnvironmentSpec] = {}
    for name, entry in section.items():
        where = f"environment.{name}"
        if not is_safe_name(name):
            raise ctx.error(where, "an environment name may hold letters, digits, '_' and '-' only")
        entry = ctx.mapping(entry, where)
        if len(entry) != 1 or next(iter(entry)) not in KINDS:
            raise ctx.error(where, f"must be {{venv: [requirements.txt, ...]}} or {{conda: [environment.yml]}}, "
                                   f"got {entry!r}")
        kind, files = next(iter(entry.items()))
        if isinstance(files, str):
            files = [files]
        if not isinstance(files, list) or not files:
            raise ctx.error(f"{where}.{kind}", f"must be a non-empty list of files, got {files!r}")
        paths = []
        for index, rel in enumerate(files):
            path = ctx.project_file(rel, f"{where}.{kind}[{index}]", None)
            if not path.is_file():
                raise ctx.error(f"{where}.{kind}[{index}]", f"file '{rel}' does not exist")
            paths.append(path)
        if kind == "conda" and len(paths) != 1:
            raise ctx.error(f"{where}.conda", "a conda environment is one environment file")
        content = [(p.relative_to(ctx.root).as_posix(), p.read_bytes()) for p in paths]
        result[name] = EnvironmentSpec(name, kind, tuple(paths), environment_digest(kind, content))
    return result


def with_environments(ctx: ParseContext, processes: dict[str, ProcessSpec], items: dict[str, dict[str, Any]],
                      environments: dict[str, EnvironmentSpec]) -> dict[str, ProcessSpec]:
    """Each process with its environment: its own ``environment:`` or the default (the first)."""
    return {name: replace(spec, environment=chosen_environment(ctx, name, items.get(name, {}), environments))
            for name, spec in processes.items()}


def with_chart_environments(ctx: ParseContext, charts: dict[str, ChartSpec], items: dict[str, dict[str, Any]],
                            environments: dict[str, EnvironmentSpec]) -> dict[str, ChartSpec]:
    """Charts choose their environment as processes do (premier-league's charts need matplotlib)."""
    return {name: replace(chart, environment=chosen_environment(ctx, name, items.get(name, {}), environments))
            for name, chart in charts.items()}


def chosen_environment(ctx: ParseContext, name: str, item: dict[str, Any],
                       environments: dict[str, EnvironmentSpec]) -> str | None:
    chosen = item.get("environment", next(iter(environments), None))
    if chosen is not None and chosen not in environments:
        declared = ", ".join(environments) or "none"
        raise ctx.error("environment", f"unknown environment {chosen!r}{did_you_mean(str(chosen), environments)}"
                                       f"; declared under environment: {declared}", name)
    return chosen


def environment_field(project: ProjectConfig, spec: ProcessSpec) -> str | None:
    """The process's environment as the run key and ``status`` show it: kind, name and digest, so a
    requirements edit re-runs exactly the processes using that environment."""
    if spec.environment is None:
        return None
    env = project.environments[spec.environment]
    return f"{env.kind} environment '{env.name}' {env.digest}"

