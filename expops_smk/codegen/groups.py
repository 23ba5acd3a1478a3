"""Chain groups: bundling each partition x seed chain of short nodes into one cluster submission.

With ``execution.group_chains``, processes repeated over the same fan-out layers and joined by
direct edges share a Snakemake ``group:``, so each partition x seed of them is one cluster job,
and ``--group-components NAME=N`` packs N such chains into one submission.
"""

from __future__ import annotations

from typing import Mapping

from expops_smk.config.execution import normalized
from expops_smk.config.model import ProcessSpec, ProjectConfig
from expops_smk.graph.expansion import Graph

STRING_RESOURCES = {"tmpdir", "slurm_partition", "slurm_account", "slurm_extra", "constraint", "qos"}
"""Resources given as strings; one group job is one submission, so its jobs must agree on them."""


def chain_groups(project: ProjectConfig, graph: Graph) -> dict[str, str]:
    """Process -> Snakemake group name, when ``execution.group_chains`` is on.

    Processes repeated over the same fan-out layers (the same partition x seed stack), asking for
    the same string resources (partition, account, sbatch options) and joined by direct edges form
    a segment; Snakemake turns each segment's jobs of one partition x seed into a
    connected component, i.e. one group job, and ``--group-components NAME=N`` bundles N of them into
    one submission. A segment is grouped only if no path leaves it and comes back (a node outside
    that depends on one member and feeds another): Snakemake rejects such a group, and bundling
    several chains could make one wait for another. Local processes and single-node processes (no
    fan-out above them) are never grouped.
    """
    execution = project.execution
    if not execution.group_chains:
        return {}
    kinds = {name: (layout.stack, _string_resources(layout.spec)) for name, layout in graph.layouts.items()
             if layout.stack and name not in execution.local_processes}
    children = project.children()
    segment_of: dict[str, int] = {}
    segments: list[list[str]] = []
    for name, kind in kinds.items():  # topological order: a segment's first member is its entry
        joined = {segment_of[parent] for parent in project.processes[name].parents
                  if parent in segment_of and kinds[parent] == kind}
        if not joined:
            segment_of[name] = len(segments)
            segments.append([name])
            continue
        target = min(joined)
        for other in sorted(joined - {target}):
            for member in segments[other]:
                segment_of[member] = target
            segments[target].extend(segments[other])
            segments[other] = []
        segment_of[name] = target
        segments[target].append(name)
    groups: dict[str, str] = {}
    for members in segments:
        if members and _is_convex(set(members), children):
            name = f"chain_{members[0].replace('-', '_')}"
            groups.update((member, name) for member in members)
    return groups


def _string_resources(spec: ProcessSpec) -> tuple[tuple[str, str], ...]:
    """A process's own string resources (partition, account, sbatch options...): one group job is one
    submission, so Snakemake requires all of its jobs to ask for the same ones. Own values only: the
    defaults come from the profile, so without it (a local run) the others have none at all."""
    own = normalized(spec.resources, None, "resources", spec.name)
    return tuple(sorted((key, str(value)) for key, value in own.items() if key in STRING_RESOURCES))


def _is_convex(members: set[str], children: Mapping[str, list[str]]) -> bool:
    """True when no path from a member through non-members reaches a member again."""
    seen: set[str] = set()
    stack = [child for member in members for child in children[member] if child not in members]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for child in children[name]:
            if child in members:
                return False
            stack.append(child)
    return True
