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
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from expops_smk.graph.nodes import Node
from expops_smk.graph.partitions import partition_numbers
from expops_smk.layout import CONFIG_FILE
from expops_smk.store.sources import source_files

__all__ = ["branch_expand", "branch_numbers", "datum_files", "partition_numbers"]


@dataclass(frozen=True)
class branch_numbers:  # noqa: N801 -- spelled like the other helpers the rules call
    """The partitions of a nested growing split in one branch: its checkpoint job is named by the
    first ``data`` partition values and the first ``seeds`` seed values of the path being expanded."""

    checkpoint: Any
    data: int
    seeds: int

    def values(self, partition: tuple[int, ...], seed: tuple[int, ...]) -> list[int]:
        branch = Node("", partition[:self.data], seed[:self.seeds])
        wildcards = {name: value for name, value in (("partition", branch.partition_value),
                                                     ("seed", branch.seed_value)) if value}
        return partition_numbers(self.checkpoint.get(**wildcards).output[0])


def branch_expand(pattern: str, **values: Iterable[int] | branch_numbers) -> list[str]:
    """``expand(pattern, ...)`` over ``d<depth>``/``s<depth>`` placeholders where a nested growing
    layer's values depend on the outer values chosen (each is taken after the layers before it)."""
    seeds = sorted((name for name in values if name.startswith("s")), key=lambda name: int(name[1:]))
    data = sorted((name for name in values if name.startswith("d")), key=lambda name: int(name[1:]))
    paths = []
    for seed in itertools.product(*(values[name] for name in seeds)):
        for partition in _partitions(data, values, (), tuple(int(value) for value in seed)):
            paths.append(pattern.format(**dict(zip(seeds, seed)), **dict(zip(data, partition))))
    return paths


def _partitions(names: list[str], values: dict[str, Any], partition: tuple[int, ...],
                seed: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    if len(partition) == len(names):
        yield partition
        return
    layer = values[names[len(partition)]]
    for value in (layer.values(partition, seed) if isinstance(layer, branch_numbers) else layer):
        yield from _partitions(names, values, partition + (int(value),), seed)


def datum_files(pattern: str, process: str) -> list[str]:
    """The files of ``process``'s ``files:`` split (Snakemake runs in the project folder); a glob
    that matches nothing is the one-line error of a bad config, not a traceback."""
    try:
        return source_files(Path.cwd(), pattern)
    except ValueError as exc:
        print(f"expops-smk: {CONFIG_FILE.as_posix()}: process '{process}': field 'data_parallelism.files': {exc}",
              file=sys.stderr)
        raise SystemExit(2) from None
