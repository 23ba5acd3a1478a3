"""What the rule of a chart probing inside growing-data splits calls while Snakemake builds the DAG.

Such a chart's nodes exist only once the splits ran, so its rule cannot list them when it is
generated. It reads the partition list of every job of the splits
(``results/<split>/[<branch>/]_partitions.json``, ``ancient``: the edge makes the chart wait for a
split job that runs, and makes Snakemake call this function again once it ran) and asks
``probed_manifests`` for the manifests of the nodes its selectors match in the lists on disk.
New partitions then appear in the chart's inputs and removed ones leave them (a changed input list
re-draws the chart), and a run that changes none of its nodes leaves it alone.

Before reading the lists, ``checkpoints.<split>.get()`` for each job of a split with no
checkpoint above it: while that job has yet to run in this invocation it raises, so the nodes are
listed only from the list this run uses (a node listed from an older one could start before the
split rewrote its partition). The growing splits keep all their outputs for that (see
``codegen/checkpoints.py``). Not for a split below another checkpoint: Snakemake drops such a
split job once the checkpoint above came back unchanged, and ``get()`` of a job dropped that way
raises until the end of the invocation, which would leave the chart undrawn. There the lists are
read as they are; a probed node due to run for another reason (its code changed) in the same
invocation in which its split re-cuts its partition may then run before the split: it runs
again at the next invocation (its input changed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from expops_smk.codegen.checkpoints import chart_checkpoint_inputs, checkpoints_above
from expops_smk.config.names import rule_name
from expops_smk.graph.expansion import Graph
from expops_smk.graph.nodes import Node
from expops_smk.graph.partitions import partitions_file
from expops_smk.graph.plan import read_plan
from expops_smk.graph.probes import current_locations
from expops_smk.layout import MANIFEST, PLAN_FILE

__all__ = ["probed_manifests"]


def probed_manifests(chart: str, checkpoints: Any) -> list[Any]:
    """The manifests of the nodes ``chart`` probes in the partitions that exist, plus (``ancient``)
    the manifests of the fixed-size splits above them and the partition lists of growing splits
    whose jobs lie inside other growing splits (the rule lists the others); ``checkpoints`` is the
    Snakefile's."""
    from snakemake.io import ancient

    root = Path.cwd()  # Snakemake runs in the project folder
    plan = read_plan(root / PLAN_FILE, root)
    resolved = plan.charts[chart]
    graph = Graph(plan.project)
    lists: list[str] = []
    for split in resolved.growing:  # outer splits first: their partitions name the inner splits' jobs
        layout = graph.layouts[split]
        inside_growing = any(layer.dynamic for layer in layout.stack)
        may_drop = bool(checkpoints_above(plan.project, graph, split))
        for branch in layout.nodes():
            if not may_drop:
                getattr(checkpoints, rule_name(split)).get(**branch_wildcards(branch))
            if inside_growing:
                lists.append(partitions_file(branch))
    locations = current_locations(graph, resolved)
    manifests: list[Any] = [f"{location.results_dir}/{MANIFEST}" for location in locations]
    manifests += [ancient(path) for path in [*lists, *chart_checkpoint_inputs(plan.project, graph, locations)]]
    return manifests


def branch_wildcards(split: Node) -> dict[str, str]:
    """The wildcards naming one job of a growing split (none outside other fan-outs)."""
    return {name: value for name, value in (("partition", split.partition_value), ("seed", split.seed_value)) if value}
