"""The partitions a growing-data split produced: ``results/<split>/[<partition>/][s<seed>/]_partitions.json``.

With ``rows_per_partition``, ``by`` (no buckets) and ``files`` the number of partitions depends on
the data, so it is not in the config: the split job (a Snakemake checkpoint) writes this list, and
everything that enumerates the layer reads it back: the aggregation and ``rule all`` input
functions after ``checkpoints.<rule>.get()``, the jobs below it (``Graph`` fills the layer from it),
``load()``, ``metrics``, the report and ``status``. Before the split first ran the layer is empty.

Each entry has the partition's ``number`` (its id is ``p<number>``, the id syntax of every other
data layer), a human ``label`` (row range, key or file) and the ``digest`` of the partition's
manifest, which is what ``status`` compares to say which partitions are new, changed or unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from expops_smk.graph.nodes import Node
from expops_smk.layout import PARTITIONS_FILE, STORE_DIR

PARTITIONS_FORMAT = 1


@dataclass(frozen=True)
class Partition:
    """One partition of a growing-data split."""

    number: int
    label: str
    key: str      # what identifies it across runs: chunk number, key value or file path
    digest: str   # content digest of its manifest
    source: str = ""  # files mode: the file's content digest
    change: str = ""  # against the split's previous run: new, changed or unchanged

    @property
    def id(self) -> str:
        return f"p{self.number}"


def partitions_file(split: Node) -> str:
    """Path (relative to the project) of the partition list of one split node: each branch of the
    fan-outs around a nested split has its own (``results/<split>/p1/s41/_partitions.json``)."""
    return f"{split.results_dir}/{PARTITIONS_FILE}"


def numbering_file(split: Node) -> str:
    """A copy of the partition list that Snakemake does not delete before the split runs again (it
    deletes declared outputs), from which ``by``/``files`` keys keep their numbers."""
    folder = "/".join(filter(None, [split.partition_value, f"s{split.seed_value}" if split.seed else ""]))
    return f"{STORE_DIR}/partitions/{split.process}{'/' + folder if folder else ''}.json"


def read_partitions(root: Path, split: Node, relative: str | None = None) -> list[Partition]:
    """The partitions the last run of ``split`` produced (from ``relative``, by default its
    ``_partitions.json``); [] before it ran, or if unreadable (the split then runs again, its
    declared output being missing or different)."""
    return _listed(root / (relative or partitions_file(split)), "partitions")


def partitions_json(process: str, mode: str, partitions: Sequence[Partition],
                    removed: Sequence[Partition] = ()) -> dict[str, object]:
    def entry(p: Partition) -> dict[str, object]:
        return {"id": p.id, "number": p.number, "label": p.label, "key": p.key, "digest": p.digest,
                "source": p.source, "change": p.change}

    return {"format": PARTITIONS_FORMAT, "process": process, "mode": mode,
            "partitions": [entry(p) for p in partitions], "removed": [entry(p) for p in removed]}


def read_removed(root: Path, split: Node) -> list[Partition]:
    """The partitions the split's last run dropped (a removed file, a key no row has any more)."""
    return _listed(root / partitions_file(split), "removed")


def _listed(path: Path, section: str) -> list[Partition]:
    """The partitions in one section of a partition list; [] when it is missing or unreadable."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        return [Partition(int(item["number"]), str(item["label"]), str(item["key"]), str(item["digest"]),
                          str(item.get("source", "")), str(item.get("change", "")))
                for item in payload.get(section, [])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def partition_numbers(path: str | Path) -> list[int]:
    """Partition numbers listed in a ``_partitions.json`` (the generated input functions call this)."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    return [int(item["number"]) for item in payload["partitions"]]

