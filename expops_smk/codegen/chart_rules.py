"""``workflow/rules/charts.smk``: one rule per chart, run after the nodes its probes picked.

A chart's XPath selectors were resolved when the project was validated, so each rule reads those
nodes' manifests (literal paths) and writes its PNGs into ``results/charts/<chart>/``, marked for
``snakemake --report``. Its command's comment lines hash the chart function's code and the resolved
probes (see ``command_comments``): either changing re-draws the chart, and so do edits of the
project modules its script imports and upgrades of the libraries it uses.
"""

from __future__ import annotations

import json
from string import Template
from typing import Mapping

from expops_smk.codegen.checkpoints import ancient, chart_checkpoint_inputs
from expops_smk.codegen.command_comments import comment_literal, shell_block
from expops_smk.codegen.directives import job_command
from expops_smk.codegen.environments import rule_conda_file, rule_python
from expops_smk.codegen.files import template
from expops_smk.codegen.rules import dependency_comments
from expops_smk.config.model import ChartSpec, ProjectConfig
from expops_smk.config.names import rule_name
from expops_smk.graph.expansion import Graph
from expops_smk.graph.probes import ResolvedChart, probe_location
from expops_smk.layout import MANIFEST, chart_dir
from expops_smk.store.hashing import hash_bytes

REPORT_CATEGORY = "Charts"


def render_chart_rules(project: ProjectConfig, graph: Graph, charts: Mapping[str, ResolvedChart],
                       header: Mapping[str, str]) -> str:
    """``rules/charts.smk``: one rule per chart and ``CHART_TARGETS`` for ``rule all``."""
    rule_template = template("chart_rule.smk.tmpl")
    command = job_command("charts")
    rules = [render_chart_rule(graph, chart, rule_template, command, _software(project, chart.spec))
             for chart in charts.values()]
    targets = [f'    "{chart_dir(name)}",' for name in charts]
    return template("charts.smk.tmpl").substitute(
        header, targets="\n".join(targets), rules="\n\n".join(rules), **_software(project, None)).rstrip() + "\n"


def render_chart_rule(graph: Graph, chart: ResolvedChart, rule_template: Template, command: str,
                      software: Mapping[str, str]) -> str:
    spec = chart.spec
    locations = [probe_location(graph, probe) for probe in chart.probes]
    inputs = dict.fromkeys(f'"{location.results_dir}/{MANIFEST}"' for location in locations)
    inputs.update(dict.fromkeys(ancient(f'"{path}"') for path in chart_checkpoint_inputs(graph.project, graph, locations)))
    inputs[f"reads=chart_reads_marker({spec.name!r})"] = None  # what the chart function read (read_tokens)
    probes = hash_bytes(json.dumps([[probe.key, probe.id] for probe in chart.probes]).encode())
    doc = (spec.description.strip().rstrip(".") or f"Chart '{spec.name}'") + \
        f"; draws {len(chart.probes)} probe{'s' if len(chart.probes) != 1 else ''}."
    return rule_template.substitute(
        rule=rule_name(spec.name),
        chart=spec.name,
        doc=doc.replace("\\", "\\\\").replace('"""', "'''"),
        input="\n".join(f"        {expression}," for expression in inputs),
        output=chart_dir(spec.name),
        category=REPORT_CATEGORY,
        conda=software["conda"],
        shell=shell_block([comment_literal("code", spec.function.code_hash), comment_literal("probes", probes),
                           *dependency_comments(spec)],
                          repr(f"PYTHONHASHSEED=0 {software['python']} {command} {spec.name} --log {{log}}")),
    ).rstrip()


def _software(project: ProjectConfig, chart: ChartSpec | None) -> dict[str, str]:
    """The interpreter and conda file of a chart's rule (its environment's; ``report_files``: where
    Snakemake runs); see ``expops_smk.codegen.environments``."""
    return {"python": rule_python(project, chart), "conda": rule_conda_file(project, chart)}
