"""What the generated rules of growing-data splits call while Snakemake parses the Snakefile.

Kept apart from the generator (it imports only the partition list and file lister) because every parse,
including each cluster job's, evaluates these. ``files:`` splits list their files here, at parse
time (as ``glob_wildcards`` would): the files become the checkpoint's declared inputs, so Snakemake
itself notices a file added, removed (the input list changes) or edited (modification time, or
checksum for small files) and re-runs the split, which digests each file into its partition's
manifest. The split still goes through the checkpoint like every other mode, so the aggregations
and ``rule all`` enumerate every mode's partitions the same way (from ``_partitions.json``).
A split nested in other fan-outs has a list per branch; ``rule all`` enumerates those branches
with ``branch_expand``.

A growing split below another data split is listed from disk (``split_list``), never through
``checkpoints.<split>.get()``: Snakemake drops such a split job from the run once the checkpoint
above came back unchanged, and ``get()`` of a job dropped that way raises until the invocation
ends (``Checkpoint.get`` succeeds only for outputs in ``created_output``, which
``DAG.update_checkpoint_dependencies`` fills with finished jobs and with checkpoints complete
while the DAG was built, never with a job that stopped being needed). The chains below it that
are due for another reason (a code change) would then stay out of the run, with the
aggregations and ``rule all`` above them built from the rest. Every rule enumerating such a
split's partitions also reads the list (``ancient``), and so does every node inside them: while
the split job is in the run they wait for it, and Snakemake evaluates them again once it ran.
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from expops_smk.graph.nodes import Node, parse_partition, parse_seed
from expops_smk.graph.partitions import partition_numbers
from expops_smk.layout import CONFIG_FILE
from expops_smk.store.sources import source_files

__all__ = ["branch_expand", "branch_numbers", "datum_files", "listed_manifest", "listed_numbers", "partition_numbers",
           "split_list"]


def split_list(checkpoint: Any, below_split: bool, **wildcards: str) -> str | None:
    """The partition list of one job of a growing split that this invocation goes by (module doc).

    Not below another split: the list once the job ran or was found complete (``get()`` raises
    until then, and Snakemake evaluates the caller again after the job). Below one: the list on
    disk, whether the job is still to run (the caller reads it ``ancient`` and is evaluated again
    after the job) or dropped out; None before the job ever ran.
    """
    if not below_split:
        return str(checkpoint.get(**wildcards).output[0])
    path = list_file(checkpoint, **wildcards)
    return path if Path(path).exists() else None


def list_file(checkpoint: Any, **wildcards: str) -> str:
    """The path of one job's partition list: the split's declared output, for those wildcards
    (Snakemake has written the wildcard constraints into the pattern, hence its own substitution)."""
    return str(checkpoint.rule.output[0].apply_wildcards(wildcards))


def listed_numbers(checkpoint: Any, **wildcards: str) -> list[int]:
    """The partitions of one job of a growing split below another data split, from its list on disk."""
    path = split_list(checkpoint, True, **wildcards)
    return list(_numbers_on_disk(path)) if path is not None else []


def listed_manifest(checkpoint: Any, pattern: str, wildcards: Any, data: int, seeds: int) -> list[str]:
    """The manifest of a node's own partition of a growing split below another data split (``pattern``,
    a path of the node's wildcards); nothing once the split's list on disk no longer has it.

    Such a node is in the DAG before its split job ran (listed from the old list). When the job
    removes its partition (a ``by`` key no row has any more) and its manifest, Snakemake evaluates
    the node again as one of the job's dependents: a missing input would fail the whole run, where
    a node without it is dropped with the rest of what no target needs any more.
    """
    partition = parse_partition(wildcards.partition)
    seed = parse_seed(wildcards.seed) if seeds else ()
    if partition[data] not in branch_numbers(checkpoint, data, seeds, below_split=True).values(partition, seed):
        return []
    return [pattern.format(partition=wildcards.partition, seed=wildcards.seed if seeds else "")]


@functools.lru_cache(maxsize=4096)
def _cached_numbers(path: str, stamp: tuple[int, int]) -> tuple[int, ...]:
    return tuple(partition_numbers(path))


def _numbers_on_disk(path: str) -> tuple[int, ...]:
    """A list's numbers, parsed once per version of the file: every node of a partition asks."""
    info = os.stat(path)
    return _cached_numbers(path, (info.st_mtime_ns, info.st_size))


@dataclass(frozen=True)
class branch_numbers:  # noqa: N801 -- spelled like the other helpers the rules call
    """The partitions of a nested growing split in one branch: its checkpoint job is named by the
    first ``data`` partition values and the first ``seeds`` seed values of the path being expanded
    (``below_split``: read from disk, see ``split_list``)."""

    checkpoint: Any
    data: int
    seeds: int
    below_split: bool = False

    def values(self, partition: tuple[int, ...], seed: tuple[int, ...]) -> list[int]:
        if self.below_split:
            return listed_numbers(self.checkpoint, **self.wildcards(partition, seed))
        return partition_numbers(split_list(self.checkpoint, False, **self.wildcards(partition, seed)))

    def wildcards(self, partition: tuple[int, ...], seed: tuple[int, ...]) -> dict[str, str]:
        return branch_wildcards(Node("", partition[:self.data], seed[:self.seeds]))


def branch_wildcards(split: Node) -> dict[str, str]:
    """The wildcards naming one job of a growing split (none outside other fan-outs)."""
    return {name: value for name, value in (("partition", split.partition_value), ("seed", split.seed_value)) if value}


def branch_expand(pattern: str, **values: Iterable[int] | branch_numbers) -> list[Any]:
    """``expand(pattern, ...)`` over ``d<depth>``/``s<depth>`` placeholders where a nested growing
    layer's values depend on the outer values chosen (each is taken after the layers before it).

    Plus, ``ancient``, the list of each branch's job of a split read from disk (``split_list``):
    the edge that makes `rule all` wait for those of them that run and look again after."""
    from snakemake.io import ancient

    seeds = sorted((name for name in values if name.startswith("s")), key=lambda name: int(name[1:]))
    data = sorted((name for name in values if name.startswith("d")), key=lambda name: int(name[1:]))
    paths: list[Any] = []
    lists: dict[str, None] = {}
    for seed in itertools.product(*(values[name] for name in seeds)):
        for partition in _partitions(data, values, (), tuple(int(value) for value in seed), lists):
            paths.append(pattern.format(**dict(zip(seeds, seed)), **dict(zip(data, partition))))
    return paths + [ancient(path) for path in lists]


def _partitions(names: list[str], values: dict[str, Any], partition: tuple[int, ...],
                seed: tuple[int, ...], lists: dict[str, None]) -> Iterator[tuple[int, ...]]:
    if len(partition) == len(names):
        yield partition
        return
    layer = values[names[len(partition)]]
    if isinstance(layer, branch_numbers) and layer.below_split:
        lists[list_file(layer.checkpoint, **layer.wildcards(partition, seed))] = None
    for value in (layer.values(partition, seed) if isinstance(layer, branch_numbers) else layer):
        yield from _partitions(names, values, partition + (int(value),), seed, lists)


def datum_files(pattern: str, process: str) -> list[str]:
    """The files of ``process``'s ``files:`` split (Snakemake runs in the project folder); a glob
    that matches nothing is the one-line error of a bad config, not a traceback."""
    try:
        return source_files(Path.cwd(), pattern)
    except ValueError as exc:
        print(f"expops-smk: {CONFIG_FILE.as_posix()}: process '{process}': field 'data_parallelism.files': {exc}",
              file=sys.stderr)
        raise SystemExit(2) from None
