"""What the rule of a chart probing inside growing-data splits calls while Snakemake builds the DAG.

Such a chart's nodes exist only once the splits ran, so its rule cannot list them when it is
generated. It reads the partition list of every job of the splits
(``results/<split>/[<branch>/]_partitions.json``, ``ancient``: the edge makes the chart wait for a
split job that runs, and makes Snakemake call this function again once it ran) and asks
``probed_manifests`` for the manifests of the nodes its selectors match in the lists on disk.
New partitions then appear in the chart's inputs and removed ones leave them (a changed input list
re-draws the chart), and a run that changes none of its nodes leaves it alone.

Before reading the lists, each split job's list goes through ``datum_inputs.split_list``, as the
aggregations' do: for a split with no data split above it, ``checkpoints.<split>.get()`` raises
while the job has yet to run in this invocation, so the nodes are listed only from the list this
run uses (the growing splits keep all their outputs for that, see ``codegen/checkpoints.py``);
below another split the lists are read as they are (a job dropped from the run makes ``get()``
raise until the run ends), and each probed node waits for its own split job through its rule's
edge to its branch's list (``checkpoints.listed_splits``), so none runs on rows being re-cut.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from expops_smk.codegen.checkpoints import chart_checkpoint_inputs
from expops_smk.codegen.datum_inputs import branch_wildcards, split_list
from expops_smk.config.names import rule_name
from expops_smk.graph.expansion import Graph
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
        assert layout.child_layer is not None  # a growing split opens its layer
        for branch in layout.nodes():
            split_list(getattr(checkpoints, rule_name(split)), layout.child_layer.below_split,
                       **branch_wildcards(branch))
            if inside_growing:
                lists.append(partitions_file(branch))
    locations = current_locations(graph, resolved)
    manifests: list[Any] = [f"{location.results_dir}/{MANIFEST}" for location in locations]
    manifests += [ancient(path) for path in [*lists, *chart_checkpoint_inputs(plan.project, graph, locations)]]
    return manifests
