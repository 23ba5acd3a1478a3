"""Write the Snakemake workflow of a project from the templates in ``workflow_templates/``.

Layout written into the project (the standard Snakemake layout, found by ``snakemake`` run from the
project folder):

    workflow/Snakefile            static header: wildcard constraints, includes, ``rule all``
    workflow/rules/processes.smk  one rule per process (see ``rules``)
    workflow/rules/charts.smk     one rule per chart (see ``chart_rules``)
    workflow/expops_plan.json     the validated project, read by every job (see ``graph.plan``)
    workflow/profiles/default/, profiles/slurm/   how to run it (see ``profiles``)

Files are rewritten only when their content changes, as Snakemake compares their modification
times with those of results, and never once edited by hand (see ``user_files``: the user's own
rule files and profile keys live beside them).
"""

from __future__ import annotations

from typing import Mapping

from expops_smk import __version__
from expops_smk.codegen.chart_rules import render_chart_rules
from expops_smk.codegen.directives import cold_jobs
from expops_smk.codegen.environments import render_environment_files
from expops_smk.codegen.files import GeneratedFile, template, write_if_changed
from expops_smk.codegen.profiles import render_profiles
from expops_smk.codegen.rules import render_rules
from expops_smk.codegen.user_files import check_not_edited, record_generated, with_user_profile
from expops_smk.config.model import ProjectConfig
from expops_smk.graph.expansion import Graph
from expops_smk.graph.plan import plan_to_json
from expops_smk.graph.probes import ResolvedChart
from expops_smk.layout import CHARTS_RULES_FILE, PLAN_FILE, RULES_FILE, SNAKEFILE


def generate(project: ProjectConfig, graph: Graph, charts: Mapping[str, ResolvedChart]) -> list[GeneratedFile]:
    """Write the workflow files of ``project``; return each with whether it changed."""
    header = {
        "project_name": project.name,
        "version": __version__,
        "config_file": project.config_file.relative_to(project.root).as_posix(),
    }
    files = {
        SNAKEFILE: template("Snakefile.tmpl").substitute(header, cold_jobs=cold_jobs(project.execution)),
        RULES_FILE: render_rules(project, graph, header),
        PLAN_FILE: plan_to_json(project, charts),
        **{rel: with_user_profile(project.root, rel, text) for rel, text in render_profiles(project, graph).items()},
        CHARTS_RULES_FILE: render_chart_rules(project, graph, charts, header),
        **render_environment_files(project),
    }
    check_not_edited(project.root, files)
    written = [GeneratedFile(project.root / rel, write_if_changed(project.root / rel, text))
               for rel, text in files.items()]
    record_generated(project.root, files)
    return written
