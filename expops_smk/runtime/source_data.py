"""The data a built-in split of a source process cuts: ``data.path`` read as a table.

A split without ``code`` splits what its upstream returned; a split with no upstream has only the
project's raw data file, so it reads that itself (and its run key holds the file's digest, as for
every source process). Only table formats pandas reads without options are known here; anything
else needs a ``code:`` function that loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from expops_smk.config.model import ProcessSpec

_READERS = {".csv": ("read_csv", {}), ".tsv": ("read_csv", {"sep": "\t"}), ".parquet": ("read_parquet", {}),
            ".pq": ("read_parquet", {}), ".json": ("read_json", {}), ".jsonl": ("read_json", {"lines": True})}


class SourceDataError(ValueError):
    """``data.path`` is not a table this module can read (the runtime names the node and field)."""


def read_source_table(path: Path) -> Any:
    """``path`` as a pandas DataFrame, by its suffix (opened in Python, so the read is seen like a
    function's own)."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise SourceDataError(f"cannot read '{path.name}' as a table to split (known: "
                              f"{', '.join(sorted(_READERS))}); give the process a code: function that loads it")
    import pandas as pd

    name, options = reader
    with open(path, "rb") as handle:
        return getattr(pd, name)(handle, **options)


def source_values(spec: ProcessSpec, data_path: Path | None) -> dict[str, Any]:
    """``{data_name: table}`` for a built-in split of a source process with a ``data.path``, else {}."""
    split = spec.data_split
    if spec.parents or split is None or split.files is not None or data_path is None:
        return {}
    try:
        return {split.data_name: read_source_table(data_path)}
    except SourceDataError:
        raise
    except (OSError, ValueError) as exc:
        raise SourceDataError(f"cannot read {data_path.name}: {exc}") from None
