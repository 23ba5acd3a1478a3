"""``workflow/rules/processes.smk``: one Snakemake rule per process, plus the final targets.

A rule's wildcards are ``{partition}`` and ``{seed}`` for the fan-outs above its process; its only
declared output is each node's small ``_outputs.json`` manifest, and its ``shell:`` command starts
with comment lines naming what changes the result (code hash, parameters, fan-out, seed; see
``command_comments``), so Snakemake re-runs exactly the rules whose code or parameters changed. A
job whose function read files that changed since its last run gets one more input, its reads
marker (``read_tokens``). Rules have no ``params:``.
"""

from __future__ import annotations

import json
from string import Template

from expops_smk.codegen.checkpoints import checkpoint_inputs, is_checkpoint, is_growing, marker_pattern, target_lists
from expops_smk.codegen.command_comments import comment_literal, shell_block
from expops_smk.codegen.directives import job_command, rule_directives
from expops_smk.codegen.environments import rule_conda_file, rule_python
from expops_smk.codegen.files import template
from expops_smk.codegen.patterns import all_locations, input_pattern, output_pattern
from expops_smk.config.environments import environment_field
from expops_smk.config.model import ChartSpec, ProcessSpec, ProjectConfig, accepted_parameters
from expops_smk.config.names import rule_name
from expops_smk.graph.expansion import Graph, ProcessLayout
from expops_smk.graph.nodes import Stack
from expops_smk.layout import DATA_DIGEST, LOGS_DIR, job_file_pattern

INDENT = " " * 8


def render_rules(project: ProjectConfig, graph: Graph, header: dict[str, str]) -> str:
    rule_template = template("rule.smk.tmpl")
    rules = [render_rule(project, graph, layout, rule_template) for layout in graph.layouts.values()]
    children = project.children()
    finals = [graph.layouts[name] for name in project.processes if not children[name]]
    targets = [f"    {all_locations(layout)}," for layout in finals]
    lists = dict.fromkeys(f"    {expression}," for layout in finals for expression in target_lists(graph, layout))
    if lists:
        targets.append("    # Lists of growing splits read from disk: `rule all` waits for their jobs and looks again after.")
        targets += list(lists)
    return template("processes.smk.tmpl").substitute(
        header, targets="\n".join(targets), rules="\n\n".join(rules)).rstrip() + "\n"


def render_rule(project: ProjectConfig, graph: Graph, layout: ProcessLayout, rule_template: Template) -> str:
    spec = layout.spec
    node_stack = layout.stack
    inputs = _checkpoint_lines(project, graph, layout)
    for parent in spec.parents:
        parent_layout = graph.layouts[parent]
        inputs.append(f"{INDENT}{rule_name(parent)}={_parent_input(parent_layout, node_stack)},")
    if spec.data_split is not None and spec.data_split.files is not None:
        inputs.append(f"{INDENT}# One partition per file: a file added, removed or changed re-runs this split.")
        inputs.append(f"{INDENT}files=datum_files({_python_string(spec.data_split.files)}, {_python_string(spec.name)}),")
    if not spec.parents and project.data_path is not None:
        data = project.data_path.relative_to(project.root).as_posix()
        inputs.append(f'{INDENT}raw_data=ancient({_python_string(data)}),')
        inputs.append(f'{INDENT}raw_data_digest="{DATA_DIGEST}",')
    if spec.function is not None:
        inputs.append(f"{INDENT}# Empty until a file its function read changes; then its token, a file (see the Snakefile).")
        inputs.append(f"{INDENT}reads=reads_marker({_python_string(spec.name)}),")
    input_block = ("    input:\n" + "\n".join(inputs) + "\n") if inputs else ""
    wildcards = wildcards_of(node_stack)
    output = f"{INDENT}{output_pattern(layout)},"
    after = ""
    if is_checkpoint(layout) and not is_growing(layout):
        output += f'\n{INDENT}ran="{marker_pattern(spec.name, wildcards)}",  # see the Snakefile'
        after = " && touch {output.ran:q}"
    # "--seed=-2-7", not "--seed -2-7": argparse would take a value starting with '-' for an option.
    wildcard_args = "".join(f" --{w}={{wildcards.{w}}}" for w in wildcards)
    command = (f"PYTHONHASHSEED=0 {rule_python(project, spec)} {job_command('runtime')} "
               f"{spec.name}{wildcard_args} --log {{log}}{after}")
    return rule_template.substitute(
        kind="checkpoint" if is_checkpoint(layout) else "rule",
        rule=rule_name(spec.name),
        doc=_docstring(spec, layout),
        input=input_block,
        output=output,
        log=job_file_pattern(LOGS_DIR, spec.name, wildcards, ".log"),
        extra=rule_directives(project, graph, layout, wildcards),
        conda=rule_conda_file(project, spec),
        shell=shell_block(_result_comments(project, layout), _python_string(command)),
    ).rstrip()


def _checkpoint_lines(project: ProjectConfig, graph: Graph, layout: ProcessLayout) -> list[str]:
    """Unnamed inputs (they come first): the manifests of the fan-out checkpoints further up."""
    patterns = checkpoint_inputs(project, graph, layout)
    if not patterns:
        return []
    return [f"{INDENT}# The data splits above (checkpoints): after one runs, Snakemake checks this job again",
            f"{INDENT}# and drops it if the inputs below came back unchanged.",
            *(f"{INDENT}{pattern}," for pattern in patterns)]


def _docstring(spec: ProcessSpec, layout: ProcessLayout) -> str:
    parts = [spec.description.strip().rstrip(".") or f"Process '{spec.name}'"]
    if layout.child_layer is not None:
        layer = layout.child_layer
        if layer.dynamic:
            assert spec.data_split is not None
            parts.append(f"splits into partitions by {spec.data_split.describe().replace('=', ' ')} "
                         "(their list: the declared output)")
        else:
            parts.append(f"splits into {len(layer.values)} "
                         + ("partitions" if layer.kind == "data" else f"seeds {list(layer.values)}"))
    if layout.popped:
        parts.append("aggregates over " + " and ".join(f"{layer.kind} fan-out of '{layer.owner}'" for layer in layout.popped))
    doc = "; ".join(parts) + "."
    return doc.replace("\\", "\\\\").replace('"""', "'''")


def wildcards_of(stack: Stack) -> list[str]:
    kinds = {layer.kind for layer in stack}
    return [w for w, kind in (("partition", "data"), ("seed", "seed")) if kind in kinds]


def _result_comments(project: ProjectConfig, layout: ProcessLayout) -> list[str]:
    """Everything that changes what the job computes, as comment lines of its command (Python
    expressions), so Snakemake re-runs it when one changes (see ``command_comments``).

    The project's ``random_seed`` only matters to nodes outside seed fan-outs (inside one, the
    branch seed replaces it), so only those carry it. ``dependency_comments`` adds the project
    modules and library versions the script reaches. The parameters go through
    ``parameters_comment`` (``codegen.overriding``) for ``snakemake --config``.
    """
    spec = layout.spec
    lines = []
    if spec.function is not None:
        lines.append(comment_literal("code", f"code of {spec.function.name}(): {spec.function.code_hash}"))
        lines.append(f"parameters_comment({_python_string(spec.name)}, {_python_string(parameters_text(project, spec))})")
    else:
        lines.append(comment_literal("code", "builtin-split-1"))
    lines.extend(dependency_comments(spec))
    if spec.data_split is not None:
        split = spec.data_split
        lines.append(comment_literal("fanout", f"data_name={split.data_name} {split.describe()}"))
    elif spec.seeds is not None:
        lines.append(comment_literal("fanout", f"seeds={list(spec.seeds)}"))
    if not any(layer.kind == "seed" for layer in layout.stack):
        lines.append(comment_literal("random_seed", f"reproducibility.random_seed={project.random_seed}"))
    environment = environment_field(project, spec)
    if environment is not None:
        lines.append(comment_literal("environment", environment))
    return lines


def dependency_comments(spec: ProcessSpec | ChartSpec) -> list[str]:
    """``# modules:`` and ``# libraries:`` lines: the project modules and installed distributions
    the script imports, so that an edited helper module or an upgraded library re-runs exactly the
    rules whose scripts reach them."""
    lines = []
    if spec.modules:
        lines.append(comment_literal("modules", " ".join(f"{p}={h}" for p, h in spec.modules.items())))
    if spec.libraries:
        lines.append(comment_literal("libraries", " ".join(f"{d}=={v}" for d, v in spec.libraries.items())))
    return lines


def parameters_text(project: ProjectConfig, spec: ProcessSpec) -> str:
    """The rule's ``# parameters:`` value: the JSON of what the function receives."""
    return json.dumps(accepted_parameters(project, spec), sort_keys=True, default=str)


def _parent_input(parent: ProcessLayout, node_stack: Stack) -> str:
    """The input expression of a parent's manifests; of its own partition of a growing split below
    another data split, only while the list on disk still has it (``datum_inputs.listed_manifest``)."""
    pattern = input_pattern(parent, node_stack)
    layer = parent.child_layer
    if layer is None or not layer.dynamic or not layer.below_split or not pattern.startswith('"'):
        return pattern
    data = sum(1 for outer in layer.outer if outer.kind == "data")
    return (f"lambda wildcards: listed_manifest(checkpoints.{rule_name(parent.name)}, {pattern}, wildcards, "
            f"data={data}, seeds={len(layer.outer) - data})")


def _python_string(text: str) -> str:
    """A Python literal for ``text`` (quotes, backslashes and control characters escaped)."""
    return repr(text)
