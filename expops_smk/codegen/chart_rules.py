"""``workflow/rules/charts.smk``: one rule per chart, run after the nodes its probes picked.

A chart's XPath selectors were resolved when the project was validated, so each rule reads those
nodes' manifests (literal paths) and writes its PNGs into ``results/charts/<chart>/``, marked for
``snakemake --report``. Its params hash the chart function's code and the resolved probes: either
changing re-draws the chart.
"""

from __future__ import annotations

import json
from string import Template
from typing import Mapping

from expops_smk.codegen.directives import job_module
from expops_smk.codegen.files import template
from expops_smk.config.model import ProjectConfig
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
    module = job_module(project.execution, "charts")
    rules = [render_chart_rule(graph, chart, rule_template, module) for chart in charts.values()]
    targets = [f'    "{chart_dir(name)}",' for name in charts]
    return template("charts.smk.tmpl").substitute(
        header, targets="\n".join(targets), rules="\n\n".join(rules)).rstrip() + "\n"


def render_chart_rule(graph: Graph, chart: ResolvedChart, rule_template: Template, module: str) -> str:
    spec = chart.spec
    inputs = dict.fromkeys(f"{probe_location(graph, probe).results_dir}/{MANIFEST}" for probe in chart.probes)
    probes = hash_bytes(json.dumps([[probe.key, probe.id] for probe in chart.probes]).encode())
    doc = (spec.description.strip().rstrip(".") or f"Chart '{spec.name}'") + \
        f"; draws {len(chart.probes)} probe{'s' if len(chart.probes) != 1 else ''}."
    return rule_template.substitute(
        rule=rule_name(spec.name),
        chart=spec.name,
        doc=doc.replace("\\", "\\\\").replace('"""', "'''"),
        input="\n".join(f'        "{path}",' for path in inputs),
        output=chart_dir(spec.name),
        category=REPORT_CATEGORY,
        code=spec.function.code_hash,
        probes=probes,
        module=module,
    ).rstrip()
