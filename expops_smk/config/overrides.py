"""Parameter overrides from ``snakemake --config`` / ``--configfile``: the command line beats the config.

Snakemake users change a run with ``--config``; the generated Snakefile hands Snakemake's
``config`` to ``prepare``, which reads it here. The accepted forms, all keys of that mapping:

    C=0.5                          a parameter name: every process that takes C gets 0.5
    parameters='{C: 0.5}'          the same, for several parameters at once
    train='{C: 0.5}'               a process name: only that process
    processes='{train: {C: 0.5}}'  several processes (the natural form in a --configfile)

A global override wins over a process's own value too, and a per-process one over both. The
overridden project is what every later layer sees (rule commands, run key, status), so an override
re-runs exactly the processes that take the parameter, and removing it restores their previous
results from the run cache. Any key or parameter nothing uses gives one warning line.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from expops_smk.config.model import ProjectConfig, accepted_parameters
from expops_smk.config.names import did_you_mean
from expops_smk.layout import OVERRIDES_FILE

GLOBAL_KEY = "parameters"
PROCESSES_KEY = "processes"
_MISSING = object()


@dataclass(frozen=True)
class Overrides:
    """Global parameter overrides and per-process ones (process name -> parameters)."""

    parameters: Mapping[str, Any] = field(default_factory=dict)
    processes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.parameters or self.processes)

    def to_json(self) -> str:
        return json.dumps({GLOBAL_KEY: self.parameters, PROCESSES_KEY: self.processes}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Overrides:
        """The overrides ``to_json`` wrote; none for an empty or unreadable text."""
        try:
            payload = json.loads(text or "{}")
            return cls(dict(payload.get(GLOBAL_KEY) or {}), dict(payload.get(PROCESSES_KEY) or {}))
        except (ValueError, TypeError, AttributeError):
            return cls()

    def describe(self) -> str:
        """``C=0.5, train.C=0.1``: what a status line shows."""
        items = [f"{key}={json.dumps(value)}" for key, value in sorted(self.parameters.items())]
        items += [f"{process}.{key}={json.dumps(value)}" for process, values in sorted(self.processes.items())
                  for key, value in sorted(values.items())]
        return ", ".join(items)


def recorded_overrides(project_dir: str | Path) -> Overrides:
    """The overrides of the last ``snakemake --config`` (none after a run without one), as the
    Snakefile recorded them: what ``status`` and the report assume the results were made with."""
    try:
        return Overrides.from_json((Path(project_dir) / OVERRIDES_FILE).read_text(encoding="utf-8"))
    except OSError:
        return Overrides()


def read_overrides(config: Mapping[str, Any], project: ProjectConfig) -> tuple[Overrides, list[str]]:
    """The overrides in Snakemake's ``config`` and one warning per key or parameter nothing uses."""
    warnings: list[str] = []
    global_values: dict[str, Any] = {}
    per_process: dict[str, dict[str, Any]] = {}
    names = _parameter_names(project)
    for key, value in config.items():
        if key == GLOBAL_KEY and isinstance(value, Mapping):
            global_values.update(value)
        elif key == PROCESSES_KEY and isinstance(value, Mapping):
            for process, values in value.items():
                _add_process(project, str(process), values, f"{PROCESSES_KEY}.{process}", per_process, warnings)
        elif key in (GLOBAL_KEY, PROCESSES_KEY):
            example = "'{C: 0.5}'" if key == GLOBAL_KEY else "'{train: {C: 0.5}}'"
            warnings.append(f"--config {key}: expected a mapping, e.g. {key}={example}")
        elif key in project.processes:
            _add_process(project, key, value, key, per_process, warnings)
        elif key in names:
            global_values[key] = value
        else:
            warnings.append(f"--config {key}: not used by this workflow{did_you_mean(key, [*names, *project.processes])}"
                            f" (set a parameter with NAME=VALUE, {GLOBAL_KEY}='{{NAME: VALUE}}' or PROCESS='{{NAME: VALUE}}')")
    overrides = Overrides(
        {key: _typed(value, _original(project, None, key)) for key, value in global_values.items()},
        {process: {key: _typed(value, _original(project, process, key)) for key, value in values.items()}
         for process, values in per_process.items()},
    )
    warnings += _unused_parameters(project, overrides)
    return overrides, warnings


def apply_overrides(project: ProjectConfig, overrides: Overrides) -> ProjectConfig:
    """``project`` with the overrides in place of the configured parameters."""
    if not overrides:
        return project
    processes = {}
    for name, spec in project.processes.items():
        own = {key: overrides.parameters.get(key, value) for key, value in spec.parameters.items()}
        own.update(overrides.processes.get(name, {}))
        processes[name] = dataclasses.replace(spec, parameters=own)
    return dataclasses.replace(project, processes=processes,
                               global_parameters={**project.global_parameters, **overrides.parameters})


def _add_process(project: ProjectConfig, process: str, values: Any, where: str,
                 per_process: dict[str, dict[str, Any]], warnings: list[str]) -> None:
    if process not in project.processes:
        warnings.append(f"--config {where}: no process '{process}' in this workflow{did_you_mean(process, project.processes)}")
    elif not isinstance(values, Mapping):
        warnings.append(f"--config {where}: expected a mapping of parameters, e.g. {process}='{{C: 0.5}}'")
    else:
        per_process.setdefault(process, {}).update(values)


def _unused_parameters(project: ProjectConfig, overrides: Overrides) -> list[str]:
    """A warning per overridden parameter that no (or not the named) process's function receives."""
    applied = apply_overrides(project, overrides)
    taken = {name: accepted_parameters(applied, spec) for name, spec in applied.processes.items()}
    warnings = [f"--config {key}: no process takes parameter '{key}'"
                for key in overrides.parameters if not any(key in params for params in taken.values())]
    warnings += [f"--config {process}.{key}: process '{process}' does not take parameter '{key}'"
                 for process, values in overrides.processes.items() for key in values if key not in taken[process]]
    return warnings


def _parameter_names(project: ProjectConfig) -> set[str]:
    """Names a bare ``--config NAME=VALUE`` may set: configured parameters and optional arguments."""
    names = set(project.global_parameters)
    for spec in project.processes.values():
        names.update(spec.parameters)
        if spec.function is not None:
            names.update(set(spec.function.params) - set(spec.function.required))
    return names


def _original(project: ProjectConfig, process: str | None, key: str) -> Any:
    if process is not None and key in project.processes[process].parameters:
        return project.processes[process].parameters[key]
    if key in project.global_parameters:
        return project.global_parameters[key]
    return next((spec.parameters[key] for spec in project.processes.values() if key in spec.parameters), _MISSING)


def _typed(value: Any, original: Any) -> Any:
    """``value`` typed like the value it replaces.

    Snakemake reads a ``--config`` mapping with YAML's base loader, which keeps every scalar a
    string (``'{C: 0.5}'`` gives ``{"C": "0.5"}``), so strings are read as YAML scalars unless
    they replace a string. Values from a ``--configfile`` are already typed and stay as they are.
    """
    if isinstance(value, str) and not isinstance(original, str):
        import yaml

        try:
            return yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            return value
    if isinstance(value, Mapping):
        inner = original if isinstance(original, Mapping) else {}
        return {key: _typed(item, inner.get(key, _MISSING)) for key, item in value.items()}
    if isinstance(value, list):
        guide = list(original) if isinstance(original, (list, tuple)) else []
        return [_typed(item, guide[i] if i < len(guide) else _MISSING) for i, item in enumerate(value)]
    return value
