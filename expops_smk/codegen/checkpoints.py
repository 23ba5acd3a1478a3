"""Data splits as Snakemake checkpoints: early cutoff inside one ``snakemake`` invocation.

Snakemake decides which jobs run before running any, so a changed source schedules every job
below it, and unchanged ones only restore their outputs. After a *checkpoint* job finishes,
Snakemake re-evaluates the jobs that read its outputs (``DAG.update_checkpoint_dependencies``):
a job whose input manifests came back with the same content (Snakemake compares files up to
``--max-checksum-file-size`` by the checksum it recorded when the job last ran) drops out of the
run. Only the checkpoint's *direct* readers get that fresh look: a job further down keeps the
reason it was given before the checkpoint ran (Snakemake never clears it), so it would still run.
Hence every process below a data split reads that split's manifests itself (its own partition,
or all of them below an aggregation), which costs nothing at run time because jobs resolve their
inputs from the plan.

Only data splits are checkpoints: that is where one changed row leaves the other partitions
unchanged, and where a later change can make the number of partitions depend on the data (input
functions then ask ``checkpoints.<rule>.get(...)`` for the partitions that exist). A seed split
passes its inputs through, so its branches change together; as a checkpoint it would only add a
DAG update per partition to every cold run.

Snakemake also re-checks, while it builds the DAG, the readers of every checkpoint whose outputs
all exist (a second pass over the whole DAG, +37% on a no-op run of 1,026 jobs). expops-smk rules
never need that, so each split also writes a marker output that nothing reads, and ``prepare``
deletes the markers before the next invocation builds its DAG: a missing output that no job
needs does not make the split run again, and a checkpoint with a missing output is not re-checked
(``checkpoint_markers.forget_markers``).

A growing-data split gets no marker: the jobs below it are listed through
``checkpoints.<split>.get()``, which succeeds only for a checkpoint whose outputs all exist. With
a marker deleted, a split that does not run in an invocation would leave every job below it out
of the DAG (a code change there would never re-run anything). Without one, Snakemake re-checks its
readers once while building the DAG: they are all it lists below the split before that, so the
part of the DAG below the split is still built once.
"""

from __future__ import annotations

from typing import Iterable

from expops_smk.codegen.patterns import first_partition_pattern
from expops_smk.config.model import ProjectConfig
from expops_smk.graph.expansion import Graph, ProcessLayout
from expops_smk.graph.nodes import Layer, Node, Stack
from expops_smk.codegen.checkpoint_markers import MARKER_SUFFIX
from expops_smk.layout import CHECKPOINT_MARKERS_DIR, MANIFEST, job_file_pattern


def is_checkpoint(layout: ProcessLayout) -> bool:
    """True for a data split (its rule is a Snakemake ``checkpoint``)."""
    return layout.child_layer is not None and layout.child_layer.kind == "data"


def marker_pattern(process: str, wildcards: list[str]) -> str:
    """The split job's marker output (``{partition}`` for a split nested in another)."""
    return job_file_pattern(CHECKPOINT_MARKERS_DIR, process, wildcards, MARKER_SUFFIX)


def fanout_ancestors(project: ProjectConfig, graph: Graph, name: str) -> list[str]:
    """The checkpoint processes above ``name`` that are not its direct parents, in config order."""
    parents = project.processes[name].parents
    return [other for other in checkpoints_above(project, graph, name) if other not in parents]


def is_growing(layout: ProcessLayout) -> bool:
    """True for a growing-data split: a checkpoint whose partitions are known once it ran."""
    return layout.child_layer is not None and layout.child_layer.dynamic


def checkpoints_above(project: ProjectConfig, graph: Graph, name: str) -> list[str]:
    """Every checkpoint process above ``name``, in config order."""
    seen: set[str] = set()
    stack = list(project.processes[name].parents)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(project.processes[current].parents)
    return [other for other in project.processes if other in seen and is_checkpoint(graph.layouts[other])]


def checkpoint_inputs(project: ProjectConfig, graph: Graph, layout: ProcessLayout) -> list[str]:
    """Input expressions of the manifests this rule reads from the checkpoints above it (module doc).

    Each is ``ancient()``: the edge is there for the re-check alone. Whether the job must run
    follows from its direct parents; a changed outer partition must not re-run a node below an
    inner split whose own partition came back unchanged. So any one output of the split job will
    do: its first partition (see ``first_partition_pattern``; an ``expand()`` over 1,000
    partitions per job made ``snakemake -n`` of 11k nodes 1.46x slower). A node outside the
    branches of a nested growing split gets no edge to it when its first branch is not known before
    the run (the edge only saves a restore). A node inside a growing split below another split
    also reads its own branch's list (``listed_splits``). An aggregation of such a split's
    partitions reads its list as a plain input: it lists them from disk, and Snakemake deletes the
    list when the split job starts; listed then, it would see none of them and, with an ancient
    edge, count as up to date, so the processes above it would not wait for it (Snakemake looks
    at it again once the split ran, and drops it then if the list came back the same).
    """
    splits = dict.fromkeys([*fanout_ancestors(project, graph, layout.name), *listed_splits(layout)])
    gathered = {layer.owner for layer in layout.popped if layer.dynamic and layer.below_split}
    patterns = ((split, first_partition_pattern(graph.layouts[split], layout.stack)) for split in splits)
    return [pattern if split in gathered else ancient(pattern) for split, pattern in patterns if pattern is not None]


def listed_splits(layout: ProcessLayout) -> list[str]:
    """The growing splits below other data splits whose partitions ``layout``'s nodes lie in.

    Their partitions are listed from disk (``datum_inputs.split_list``), so a node of them is in
    the DAG before its split job ran in this invocation: the edge to its own branch's list makes it
    wait for that job (a code change would otherwise run it on the rows the split is re-cutting),
    and makes Snakemake look at it again once the job ran.
    """
    return [layer.owner for layer in layout.stack if layer.dynamic and layer.below_split]


def target_lists(graph: Graph, layout: ProcessLayout) -> list[str]:
    """The lists `rule all` reads (``ancient``) for the final nodes of ``layout`` inside a listed split
    that no fan-out surrounds: it lists them from disk, and only the edge makes it wait for the split
    job and look again after (``branch_expand`` adds the lists of the splits nested in fan-outs)."""
    splits = [split for split in listed_splits(layout) if not graph.layouts[split].stack]
    patterns = (first_partition_pattern(graph.layouts[split], ()) for split in splits)
    return [ancient(pattern) for pattern in patterns if pattern is not None]


def ancient(expression: str) -> str:
    """``ancient(...)`` around an input expression (inside it, for an input function)."""
    function = "lambda wildcards: "
    if expression.startswith(function):
        return f"{function}ancient({expression[len(function):]})"
    return f"ancient({expression})"


def chart_checkpoint_inputs(project: ProjectConfig, graph: Graph, locations: Iterable[Node]) -> list[str]:
    """Manifests of the data splits above the nodes a chart draws, for the partitions they are in.

    A chart drawing partition 2 then stays out of a run that changed only partition 1. Nodes
    below an aggregation of a split's partitions change whenever one partition does, so the
    chart needs nothing more for them. A growing-data split has no manifest of its own per
    partition: the chart reads its partition list instead (``codegen.chart_rules``).
    """
    paths: dict[str, None] = {}
    for location in locations:
        for split in checkpoints_above(project, graph, location.process):
            if is_growing(graph.layouts[split]):
                continue
            folder = _branch_folder(graph.layouts[split], graph.layouts[location.process], location)
            if folder is not None:
                paths[f"{folder.results_dir}/{MANIFEST}"] = None
    return list(paths)


def _branch_folder(split: ProcessLayout, layout: ProcessLayout, location: Node) -> Node | None:
    """The split's output folder of the branch ``location`` (a folder of ``layout``) lies in."""
    split_data, split_seeds = _by_kind(split.output_stack)
    data, seeds = _by_kind(layout.output_stack)
    if data[:len(split_data)] != split_data or seeds[:len(split_seeds)] != split_seeds:
        return None  # the split's layer was aggregated on the way down
    return Node(split.name, location.partition[:len(split_data)], location.seed[:len(split_seeds)])


def _by_kind(stack: Stack) -> tuple[list[Layer], list[Layer]]:
    return [layer for layer in stack if layer.kind == "data"], [layer for layer in stack if layer.kind == "seed"]
