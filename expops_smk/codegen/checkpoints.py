"""Fan-out nodes as Snakemake checkpoints: early cutoff inside one ``snakemake`` invocation.

Snakemake decides which jobs run before running any, so a changed source schedules every job
below it, and unchanged ones only restore their outputs. After a *checkpoint* job finishes,
Snakemake re-evaluates the jobs that read its outputs (``DAG.update_checkpoint_dependencies``):
a job whose input manifests came back with the same content (Snakemake compares files up to
``--max-checksum-file-size`` by the checksum it recorded when the job last ran) drops out of the
run. Only the checkpoint's *direct* readers get that fresh look: a job further down keeps the
reason it was given before the checkpoint ran (Snakemake never clears it), so it would still run.
Hence every process below a fan-out node reads that node's manifests itself (the partition or
seed branch it belongs to, or all of them below an aggregation), which costs nothing at run time
because jobs resolve their inputs from the plan.

Every fan-out node is a checkpoint (a data split, a seed split, a custom splitter), which is
also where a later change can make the number of partitions depend on the data: downstream
input functions can then ask ``checkpoints.<rule>.get(...)`` for the partitions that exist.
"""

from __future__ import annotations

from expops_smk.codegen.patterns import input_pattern
from expops_smk.config.model import ProjectConfig
from expops_smk.graph.expansion import Graph, ProcessLayout


def is_checkpoint(layout: ProcessLayout) -> bool:
    """True for a process that opens a fan-out layer (its rule is a Snakemake ``checkpoint``)."""
    return layout.child_layer is not None


def fanout_ancestors(project: ProjectConfig, graph: Graph, name: str) -> list[str]:
    """The checkpoint processes above ``name`` that are not its direct parents, in config order."""
    parents = project.processes[name].parents
    seen: set[str] = set()
    stack = list(parents)
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(project.processes[current].parents)
    return [other for other in project.processes
            if other in seen and other not in parents and is_checkpoint(graph.layouts[other])]


def checkpoint_inputs(project: ProjectConfig, graph: Graph, layout: ProcessLayout) -> list[str]:
    """Input patterns of the manifests this rule reads from the checkpoints above it (see module doc)."""
    return [input_pattern(graph.layouts[ancestor], layout.stack)
            for ancestor in fanout_ancestors(project, graph, layout.name)]
