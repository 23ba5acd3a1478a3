"""Growing-data splits: cut the data into partitions whose ids stay put as the data grows.

``rows_per_partition: N`` cuts fixed-size chunks in row order: chunk k is ``p<k>``, so appended rows
change only the last chunk and add new ones. ``by: column`` gives one partition per distinct value
and ``files:`` one per file (the partition receives the file's project-relative path under
``data_name``, and the file's content digest as the private ``__file_digest`` artifact, which puts
it in the manifest, hence in the chain's run key and in what Snakemake compares after the
checkpoint). ``by`` with ``buckets: K`` has a fixed count and is cut in runtime/splitting.py.

Partition ids keep the ``p<number>`` syntax of every data layer, so the wildcard constraint, nested
ids (``p3-p1``), ExpOps' canonical XPath ids and every reader stay as they are; the key or file
shows in the partition's label. For ``by``/``files`` the number is derived from the key alone (a
stable hash, ``key_number``): a key has the same id whatever other keys exist and whatever ran
before, so a fresh run and one that grew step by step give every node the same id, hence the same
seeds (they derive from the id) and the same aggregation keys. Numbering keys in the order they
arrived would not: a key that sorts first would be ``p1`` in a fresh run and ``p5`` after growth.
Two keys with the same number (one chance in 10^12 per pair) are an error naming the keys. The
split job always executes when Snakemake schedules it: it is what looks at the new
data, and what it writes for unchanged partitions is byte-identical, so their chains drop out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expops_smk.config.model import DataSplit, ProjectConfig
from expops_smk.errors import ExpopsError
from expops_smk.graph.expansion import Graph
from expops_smk.graph.nodes import Node
from expops_smk.graph.partitions import Partition, numbering_file, partitions_file, partitions_json, read_partitions
from expops_smk.layout import MANIFEST, RUN_FILE
from expops_smk.runtime.run_key import recorded_folder_key
from expops_smk.runtime.splitting import SplitError, row_count, split_by, split_chunks
from expops_smk.store.artifact_store import Store
from expops_smk.store.hashing import hash_bytes, hash_file
from expops_smk.store.sources import source_files

FILE_DIGEST_KEY = "__file_digest"


@dataclass(frozen=True)
class _Cut:
    key: str
    label: str
    values: dict[str, Any]


class GrowingSplit:
    """The partitions one execution of a growing-data split produces, and their recorded list."""

    def __init__(self, root: Path, project: ProjectConfig, node: Node) -> None:
        """``node`` is the split node: nested in other fan-outs, each of their branches is one."""
        self.root = root
        self.project = project
        self.node = node
        split = project.processes[node.process].data_split
        assert split is not None and split.dynamic
        self.split: DataSplit = split
        self.previous = read_partitions(root, node, numbering_file(node)) or read_partitions(root, node)
        self.numbers: list[int] = []
        self.cuts: list[_Cut] = []

    def cut(self, result: dict[str, Any]) -> list[dict[str, Any]]:
        """The values of each partition, numbered (see module doc); raises SplitError or ConfigError."""
        self.cuts = self._cuts(result)
        if self.split.mode == "rows_per_partition":
            self.numbers = list(range(1, len(self.cuts) + 1))
        else:
            self.numbers = self._key_numbers()
        Graph(self.project, {self.node: tuple(self.numbers)})  # the node bound (execution.max_nodes)
        return [cut.values for cut in self.cuts]

    def _key_numbers(self) -> list[int]:
        numbers: dict[int, str] = {}
        for cut in self.cuts:
            other = numbers.setdefault(key_number(cut.key), cut.key)
            if other != cut.key:
                raise SplitError(f"keys {other!r} and {cut.key!r} get the same partition id "
                                 f"(p{key_number(cut.key)}); rename one, or use buckets: K")
        return list(numbers)

    def _cuts(self, result: dict[str, Any]) -> list[_Cut]:
        split, name = self.split, self.split.data_name
        if split.files is not None:
            try:
                paths = source_files(self.root, split.files)
            except ValueError as exc:
                raise SplitError(str(exc)) from None
            return [_Cut(path, path, {**result, name: path, FILE_DIGEST_KEY: hash_file(self.root / path)})
                    for path in paths]
        if name not in result:
            raise SplitError(f"data_name '{name}' is not among the values to split "
                             f"(available: {', '.join(sorted(result)) or 'none'})")
        if split.rows_per_partition is not None:
            per = split.rows_per_partition
            return [_Cut(str(k), f"rows {(k - 1) * per}-{(k - 1) * per + row_count(chunk) - 1}", {**result, name: chunk})
                    for k, chunk in enumerate(split_chunks(result[name], per), start=1)]
        assert split.by is not None
        groups = split_by(result[name], split.by)
        return [_Cut(key, f"{split.by}={key}", {**result, name: part}) for key, part in sorted(groups.items())]

    def locations(self) -> list[Node]:
        return [self.location(number) for number in self.numbers]

    def location(self, number: int) -> Node:
        """The folder of partition ``number`` of this split node."""
        return Node(self.node.process, self.node.partition + (number,), self.node.seed)

    def record(self, store: Store) -> None:
        """Write ``_partitions.json`` (after the partitions' manifests) and clear the folders of
        partitions that no longer exist, which this split wrote (the previous list records them)."""
        before = {old.number: old for old in self.previous}
        partitions = []
        for number, cut in zip(self.numbers, self.cuts):
            manifest = self.root / self.location(number).results_dir / MANIFEST
            digest = hash_bytes(manifest.read_bytes())
            change = "new" if number not in before else "unchanged" if before[number].digest == digest else "changed"
            partitions.append(Partition(number, cut.label, cut.key, digest,
                                        str(cut.values.get(FILE_DIGEST_KEY, "")), change))
        removed = [old for old in self.previous if old.number not in set(self.numbers)]
        for old in removed:
            self._clear(store, self.location(old.number))
        payload = partitions_json(self.node.process, self.split.mode, sorted(partitions, key=lambda p: p.number), removed)
        store.put_json(self.root / numbering_file(self.node), payload)
        store.put_json(self.root / partitions_file(self.node), payload)

    def _clear(self, store: Store, location: Node) -> None:
        folder = self.root / location.results_dir
        try:
            store.clear_node(folder, recorded_folder_key(self.root, location.results_dir))
            (folder / RUN_FILE).unlink(missing_ok=True)
        except (ExpopsError, OSError):
            pass  # a folder that is not ours to clear (a symlink, say) stays; no reader lists it


KEY_NUMBERS = 10 ** 12
"""How many numbers a ``by``/``files`` key may get: ids stay short (at most 12 digits) and two keys of
10,000 share one with a chance of 1 in 20,000."""


def key_number(key: str) -> int:
    """The partition number of a ``by`` value or a file, from the key alone (1 .. KEY_NUMBERS)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=b"expops-smk-key").digest()
    return 1 + int.from_bytes(digest, "big") % KEY_NUMBERS
