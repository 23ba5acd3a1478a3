"""Write the Snakemake workflow of a project from the templates in ``workflow_templates/``.

Layout written into the project (the standard Snakemake layout, found by ``snakemake`` run from the
project folder):

    workflow/Snakefile            static header: wildcard constraints, include
    workflow/rules/processes.smk  one rule per process (plus ``rule all``)
    workflow/expops_plan.json     the validated project, read by every job (see ``plan``)

Generation is O(processes): fan-outs become wildcards and ``expand()`` calls whose ranges Snakemake
unrolls, never lists of expanded nodes. Files are rewritten only when their content changes, as
Snakemake compares their modification times with those of results.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from expops_smk import __version__
from expops_smk.config import ProcessSpec, ProjectConfig
from expops_smk.graph import Graph, Layer, ProcessLayout, Stack
from expops_smk.plan import accepted_parameters, plan_to_json
from expops_smk.profiles import render_profiles
from expops_smk.resources import rule_directives

WORKFLOW_DIR = "workflow"
SNAKEFILE = f"{WORKFLOW_DIR}/Snakefile"
RULES_FILE = f"{WORKFLOW_DIR}/rules/processes.smk"
PLAN_FILE = f"{WORKFLOW_DIR}/expops_plan.json"
MANIFEST = "_outputs.json"
DATA_DIGEST = ".expops/inputs/data.xxh3"

INDENT = " " * 8


@dataclass(frozen=True)
class GeneratedFile:
    path: Path
    changed: bool


def template(name: str) -> Template:
    """Templates ship inside the package as ``expops_smk.templates`` (the ``workflow_templates/`` folder)."""
    return Template(resources.files("expops_smk.templates").joinpath(name).read_text(encoding="utf-8"))


def write_if_changed(path: Path, content: str) -> bool:
    """Atomically replace ``path`` only when its content differs, keeping its mtime otherwise."""
    try:
        if path.read_text(encoding="utf-8") == content:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)
    return True


def generate(project: ProjectConfig, graph: Graph) -> list[GeneratedFile]:
    """Write the workflow files of ``project``; return each with whether it changed."""
    header = {
        "project_name": project.name,
        "version": __version__,
        "config_file": project.config_file.relative_to(project.root).as_posix(),
    }
    files = {
        SNAKEFILE: template("Snakefile.tmpl").substitute(header),
        RULES_FILE: render_rules(project, graph, header),
        PLAN_FILE: plan_to_json(project),
        **render_profiles(project, graph),
    }
    from expops_smk.charts import CHARTS_RULES_FILE, render_chart_rules  # charts imports this module

    files[CHARTS_RULES_FILE] = render_chart_rules(project, graph, header)
    return [GeneratedFile(project.root / rel, write_if_changed(project.root / rel, text))
            for rel, text in files.items()]


def render_rules(project: ProjectConfig, graph: Graph, header: dict[str, str]) -> str:
    rule_template = template("rule.smk.tmpl")
    rules = [render_rule(project, graph, layout, rule_template) for layout in graph.layouts.values()]
    children = project.children()
    targets = [
        f"    {_all_locations(graph.layouts[name])},"
        for name in project.processes if not children[name]
    ]
    return template("processes.smk.tmpl").substitute(
        header, targets="\n".join(targets), rules="\n\n".join(rules)).rstrip() + "\n"


def rule_name(process: str) -> str:
    return process.replace("-", "_")


def render_rule(project: ProjectConfig, graph: Graph, layout: ProcessLayout, rule_template: Template) -> str:
    spec = layout.spec
    node_stack = layout.stack
    inputs = []
    for parent in spec.parents:
        parent_layout = graph.layouts[parent]
        inputs.append(f"{INDENT}{rule_name(parent)}={_input_pattern(parent_layout, node_stack)},")
    if not spec.parents and project.data_path is not None:
        data = project.data_path.relative_to(project.root).as_posix()
        inputs.append(f'{INDENT}raw_data=ancient("{data}"),')
        inputs.append(f'{INDENT}raw_data_digest="{DATA_DIGEST}",')
    input_block = ("    input:\n" + "\n".join(inputs) + "\n") if inputs else ""
    wildcards = _wildcards(node_stack)
    return rule_template.substitute(
        rule=rule_name(spec.name),
        doc=_docstring(spec, layout),
        input=input_block,
        output=f"{INDENT}{_output_pattern(layout)},",
        log=_log_path(spec.name, wildcards),
        params=_params(project, layout),
        extra=rule_directives(project, graph, layout, wildcards),
        module=project.execution.job_module("runtime"),
        process=spec.name,
        # "--seed=-2-7", not "--seed -2-7": argparse would take a value starting with '-' for an option.
        wildcard_args="".join(f" --{w}={{wildcards.{w}}}" for w in wildcards),
    ).rstrip()


def _docstring(spec: ProcessSpec, layout: ProcessLayout) -> str:
    parts = [spec.description.strip().rstrip(".") or f"Process '{spec.name}'"]
    if layout.child_layer is not None:
        layer = layout.child_layer
        parts.append(f"splits into {len(layer.values)} "
                     + ("partitions" if layer.kind == "data" else f"seeds {list(layer.values)}"))
    if layout.popped:
        parts.append("aggregates over " + " and ".join(f"{layer.kind} fan-out of '{layer.owner}'" for layer in layout.popped))
    doc = "; ".join(parts) + "."
    return doc.replace("\\", "\\\\").replace('"""', "'''")


def _wildcards(stack: Stack) -> list[str]:
    kinds = {layer.kind for layer in stack}
    return [w for w, kind in (("partition", "data"), ("seed", "seed")) if kind in kinds]


def _log_path(process: str, wildcards: list[str]) -> str:
    if not wildcards:
        return f"logs/{process}.log"
    parts = ["{partition}" if w == "partition" else "s{seed}" for w in wildcards]
    return f"logs/{process}/" + "/".join(parts) + ".log"


def _params(project: ProjectConfig, layout: ProcessLayout) -> str:
    """Everything that changes what the job computes, so Snakemake re-runs it when one changes.

    The project's ``random_seed`` only matters to nodes outside seed fan-outs (inside one, the
    branch seed replaces it), so only those carry it. Snakemake prints changed params by value
    alone ("before: ... now: ..."), so each value says what it is.
    """
    spec = layout.spec
    lines = []
    if spec.function is not None:
        lines.append(f'code="code of {spec.function.name}(): {spec.function.code_hash}"')
        parameters = json.dumps(accepted_parameters(project, spec), sort_keys=True, default=str)
        lines.append(f"parameters={_python_string(parameters)}")
    else:
        lines.append('code="builtin-split-1"')
    if spec.data_split is not None:
        split = spec.data_split
        size = list(split.row_counts) if split.row_counts is not None else split.count
        lines.append(f'fanout="data_name={split.data_name} size={size}"')
    elif spec.seeds is not None:
        lines.append(f'fanout="seeds={list(spec.seeds)}"')
    if not any(layer.kind == "seed" for layer in layout.stack):
        lines.append(f'random_seed="reproducibility.random_seed={project.random_seed}"')
    return "\n".join(f"{INDENT}{line}," for line in lines)


def _python_string(text: str) -> str:
    """A Python literal for ``text`` that Snakemake will not try to format ({ } are safe in params)."""
    return repr(text)


# -- path patterns ------------------------------------------------------------------------------
#
# A folder is results/<process>/<partition path>/s<seed path>. Each data (seed) layer of the folder's
# stack contributes one component of the partition (seed) path. Relative to the rule that reads or
# writes it, a component is either *open* (it belongs to the rule's own {partition}/{seed} wildcard)
# or *enumerated* (an expand() placeholder: a collapsed layer at an aggregation, the new layer of a
# data split, or every layer in `rule all`).


def _component_pattern(kind: str, layers: list[Layer], open_count: int) -> tuple[str, dict[str, str]]:
    """Pattern for one path (partition or seed) whose first ``open_count`` layers are the rule's wildcard."""
    wildcard = "partition" if kind == "data" else "seed"
    prefix = "p" if kind == "data" else ""
    pieces: list[str] = ["{" + wildcard + "}"] if open_count else []
    values: dict[str, str] = {}
    for depth, layer in enumerate(layers[open_count:], start=open_count + 1):
        name = f"{'d' if kind == 'data' else 's'}{depth}"
        pieces.append(f"{prefix}{{{name}}}")
        values[name] = _layer_values(layer)
    return "-".join(pieces), values


def _layer_values(layer: Layer) -> str:
    if layer.kind == "data":
        return f"range(1, {len(layer.values) + 1})"
    return repr(list(layer.values))


def _folder_pattern(process: str, folder_stack: Stack, open_layers: Stack) -> tuple[str, dict[str, str], dict[str, int]]:
    """Pattern of a folder of ``process``; returns (pattern, expand values, wildcards to trim).

    ``open_layers`` are the rule's own layers. A folder layer that is open keeps the wildcard; one
    that is not is enumerated. When the folder has *fewer* layers of a kind than the rule (an outer
    node broadcast into a nested fan-out), the wildcard must be cut to its first components:
    returned as {wildcard: number of components to keep}.
    """
    parts = ["results", process]
    values: dict[str, str] = {}
    trims: dict[str, int] = {}
    for kind in ("data", "seed"):
        folder_layers = [layer for layer in folder_stack if layer.kind == kind]
        if not folder_layers:
            continue
        rule_layers = [layer for layer in open_layers if layer.kind == kind]
        open_count = 0
        while open_count < len(folder_layers) and folder_layers[open_count] in rule_layers:
            open_count += 1
        if open_count and open_count < len(rule_layers):
            trims["partition" if kind == "data" else "seed"] = open_count
        pattern, kind_values = _component_pattern(kind, folder_layers, open_count)
        values.update(kind_values)
        parts.append(pattern if kind == "data" else f"s{pattern}")
    parts.append(MANIFEST)
    return "/".join(parts), values, trims


def _render_pattern(pattern: str, values: dict[str, str], trims: dict[str, int]) -> str:
    """A plain string, an ``expand()`` keeping the rule's wildcards, or an input function.

    Inside ``expand()`` the rule's own wildcards are escaped (``{{partition}}``) so they stay open;
    an input function instead fills them from the job's wildcards, trimmed to the outer layers.
    """
    if trims:
        args = [f"{w}=outer(wildcards.{w}, {count})" for w, count in trims.items()]
        args += [f"{name}={value}" for name, value in values.items()]
        return f'lambda wildcards: expand("{pattern}", {", ".join(args)})'
    if values:
        escaped = pattern.replace("{partition}", "{{partition}}").replace("{seed}", "{{seed}}")
        args = ", ".join(f"{name}={value}" for name, value in values.items())
        return f'expand("{escaped}", {args})'
    return f'"{pattern}"'


def _input_pattern(parent: ProcessLayout, node_stack: Stack) -> str:
    return _render_pattern(*_folder_pattern(parent.name, parent.output_stack, node_stack))


def _output_pattern(layout: ProcessLayout) -> str:
    pattern, values, trims = _folder_pattern(layout.name, layout.output_stack, layout.stack)
    assert not trims, "a process's outputs always keep all of its own layers open"
    return _render_pattern(pattern, values, trims)


def _all_locations(layout: ProcessLayout) -> str:
    pattern, values, _ = _folder_pattern(layout.name, layout.output_stack, ())
    return _render_pattern(pattern, values, {})
