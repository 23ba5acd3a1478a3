"""What the generated rules of growing-data splits call while Snakemake parses the Snakefile.

Kept apart from the generator (it imports only the partition list and file lister) because every parse,
including each cluster job's, evaluates these. ``files:`` splits list their files here, at parse
time (as ``glob_wildcards`` would): the files become the checkpoint's declared inputs, so Snakemake
itself notices a file added, removed (the input list changes) or edited (modification time, or
checksum for small files) and re-runs the split, which digests each file into its partition's
manifest. The split still goes through the checkpoint like every other mode, so the aggregations
and ``rule all`` enumerate every mode's partitions the same way (from ``_partitions.json``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from expops_smk.graph.partitions import partition_numbers
from expops_smk.layout import CONFIG_FILE
from expops_smk.store.sources import source_files

__all__ = ["datum_files", "partition_numbers"]


def datum_files(pattern: str, process: str) -> list[str]:
    """The files of ``process``'s ``files:`` split (Snakemake runs in the project folder); a glob
    that matches nothing is the one-line error of a bad config, not a traceback."""
    try:
        return source_files(Path.cwd(), pattern)
    except ValueError as exc:
        print(f"expops-smk: {CONFIG_FILE.as_posix()}: process '{process}': field 'data_parallelism.files': {exc}",
              file=sys.stderr)
        raise SystemExit(2) from None
