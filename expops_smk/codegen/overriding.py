"""``snakemake --config`` at parse time: the rules' commands, the jobs and ``status`` see one override.

The generated rules' commands name their parameters in a comment line spelled
``parameters_comment("train", '<json>')`` (see ``command_comments``): without an override that is
the JSON as written, so nothing changes for Snakemake; with one it is the JSON of the overridden
parameters, so the command text differs and Snakemake re-runs exactly the rules whose parameters
changed, and again (restoring from the run cache) when the override is removed. The jobs do not
see Snakemake's ``config``, so the override also goes into the environment (local jobs inherit it;
cluster jobs re-parse the Snakefile with the same ``--config``), and into
``.expops/overrides.json`` for ``expops-smk status``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping

from expops_smk.codegen.command_comments import comment
from expops_smk.layout import OVERRIDES_FILE, OVERRIDES_VARIABLE, PLAN_FILE

_ACTIVE: dict[str, str] = {}
"""Process name -> its rule's parameters under this invocation's override (only the changed ones)."""


def parameters_comment(process: str, parameters: str) -> str:
    """The ``# parameters: ...`` line of a rule's command: as generated, unless ``--config`` overrides them."""
    return comment("parameters", _ACTIVE.get(process, parameters))


def activate_overrides(root: Path, config: Mapping[str, Any]) -> None:
    """Read the overrides in Snakemake's ``config``, warn about unused keys, and hand them on."""
    from expops_smk.codegen.files import write_if_changed
    from expops_smk.codegen.rules import parameters_text
    from expops_smk.config.overrides import apply_overrides, read_overrides
    from expops_smk.graph.plan import read_plan
    from expops_smk.store.files import confined_in_project

    _ACTIVE.clear()
    record = root / OVERRIDES_FILE
    if not config:
        os.environ.pop(OVERRIDES_VARIABLE, None)
        if record.is_file() and not record.is_symlink():
            record.unlink()
        return
    project = read_plan(root / PLAN_FILE, root).project
    overrides, warnings = read_overrides(config, project)
    for warning in warnings:
        print(f"expops-smk: warning: {warning}", file=sys.stderr)
    applied = apply_overrides(project, overrides)
    for name, spec in project.processes.items():
        if spec.function is not None:
            text = parameters_text(applied, applied.processes[name])
            if text != parameters_text(project, spec):
                _ACTIVE[name] = text
    os.environ[OVERRIDES_VARIABLE] = overrides.to_json()
    write_if_changed(confined_in_project(record, root), overrides.to_json() + "\n")
