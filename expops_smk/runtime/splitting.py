"""Split a value into data partitions the way ExpOps does.

``size: N`` gives N contiguous slices of near-equal length, the first ``total % N`` one row longer;
``size: [a, b, c]`` gives slices of exactly those lengths, which must add up to the total. With
fewer rows than partitions, ``size: N`` leaves the last partitions empty (as ExpOps does); the
runtime warns about them (``empty_partitions``). Slices of
DataFrames, Arrow tables and numpy arrays are views, not copies: a split costs no extra memory
before its partitions are written.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence


class SplitError(ValueError):
    """The value cannot be split as configured (the runtime names the node)."""


def partition_bounds(total: int, count: int, row_counts: Sequence[int] | None) -> list[tuple[int, int]]:
    """(start, stop) of each partition."""
    if row_counts is not None:
        if sum(row_counts) != total:
            raise SplitError(f"size {list(row_counts)} sums to {sum(row_counts)} rows but the data has {total}")
        lengths = list(row_counts)
    else:
        base, extra = divmod(total, count)
        lengths = [base + (1 if index < extra else 0) for index in range(count)]
    bounds = []
    start = 0
    for length in lengths:
        bounds.append((start, start + length))
        start += length
    return bounds


def empty_partitions(parts: Sequence[Any]) -> list[int]:
    """Numbers (1-based, as in ``p1``) of the partitions that received no rows."""
    return [index for index, part in enumerate(parts, start=1) if row_count(part) == 0]


def row_count(part: Any) -> int:
    """Rows of a DataFrame, Arrow table, numpy array or sequence: what a split cuts and labels."""
    if hasattr(part, "num_rows"):
        return int(part.num_rows)
    if hasattr(part, "shape"):
        return int(part.shape[0])
    return len(part)


def split_rows(value: Any, count: int, row_counts: Sequence[int] | None = None) -> list[Any]:
    """Split ``value`` by rows: DataFrame, Arrow table, numpy array, list/tuple of rows, dict of columns."""
    kind = type(value).__module__.split(".")[0]
    if isinstance(value, dict):
        import pandas as pd

        try:
            value = pd.DataFrame(value)
        except ValueError as exc:
            raise SplitError(f"a dict to split must map columns to equal-length lists: {exc}") from None
        kind = "pandas"
    if kind == "pandas" and hasattr(value, "iloc"):
        return [value.iloc[a:b] for a, b in partition_bounds(len(value), count, row_counts)]
    if kind == "pyarrow" and hasattr(value, "slice"):
        return [value.slice(a, b - a) for a, b in partition_bounds(value.num_rows, count, row_counts)]
    if kind == "numpy" and hasattr(value, "shape"):
        if not value.shape:
            raise SplitError("cannot split a 0-dimensional array")
        return [value[a:b] for a, b in partition_bounds(value.shape[0], count, row_counts)]
    if isinstance(value, (list, tuple)):
        return [value[a:b] for a, b in partition_bounds(len(value), count, row_counts)]
    raise SplitError(f"cannot split a {type(value).__name__}; return a DataFrame, Arrow table, "
                     "numpy array, list of rows or dict of columns")


# -- growing-data modes (runtime/datums.py numbers the partitions) -----------------------------
def chunk_bounds(total: int, rows_per_partition: int) -> list[tuple[int, int]]:
    """(start, stop) of fixed-size chunks in row order: chunk k covers rows (k-1)*N .. k*N-1, so
    appending rows changes only the last chunk and adds new ones."""
    return [(start, min(start + rows_per_partition, total)) for start in range(0, total, rows_per_partition)]


def split_chunks(value: Any, rows_per_partition: int) -> list[Any]:
    """``rows_per_partition`` chunks of ``value`` (the types ``split_rows`` takes)."""
    total = row_count(_as_table(value))
    return split_rows(value, 1, [b - a for a, b in chunk_bounds(total, rows_per_partition)]) if total else []


def stable_bucket(key: Any, buckets: int) -> int:
    """Bucket (1-based) of a key: a hash of its text, the same in every process and Python version
    (Python's ``hash()`` of a str changes with PYTHONHASHSEED), so a row never changes bucket."""
    digest = hashlib.blake2b(key_text(key).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets + 1


def key_text(key: Any) -> str:
    """A key value as text (numpy scalars as their Python value, so 3 and np.int64(3) agree)."""
    if hasattr(key, "item") and not isinstance(key, (str, bytes)):
        key = key.item()
    return key if isinstance(key, str) else repr(key)


def split_by(value: Any, column: str, buckets: int | None = None) -> dict[str, Any]:
    """Rows grouped by ``column`` (or by its bucket when ``buckets``), in row order within each
    group; groups keyed by the value's text (or ``str(bucket)``), in order of first appearance."""
    table = _as_table(value)
    keys = _column(table, column)
    groups: dict[str, list[int]] = {}
    for row, key in enumerate(keys):
        name = str(stable_bucket(key, buckets)) if buckets is not None else key_text(key)
        groups.setdefault(name, []).append(row)
    return {name: _take(table, rows) for name, rows in groups.items()}


def _as_table(value: Any) -> Any:
    if isinstance(value, dict):
        import pandas as pd

        try:
            return pd.DataFrame(value)
        except ValueError as exc:
            raise SplitError(f"a dict to split must map columns to equal-length lists: {exc}") from None
    return value


def _column(table: Any, column: str) -> list[Any]:
    if hasattr(table, "columns") and hasattr(table, "iloc"):  # pandas
        if column not in table.columns:
            raise SplitError(f"column {column!r} is not in the data (columns: {', '.join(map(str, table.columns))})")
        return table[column].tolist()
    if hasattr(table, "column_names"):  # pyarrow
        if column not in table.column_names:
            raise SplitError(f"column {column!r} is not in the data (columns: {', '.join(table.column_names)})")
        return table.column(column).to_pylist()
    if isinstance(table, (list, tuple)) and all(isinstance(row, dict) for row in table):
        missing = next((index for index, row in enumerate(table) if column not in row), None)
        if missing is not None:
            raise SplitError(f"row {missing} has no column {column!r}")
        return [row[column] for row in table]
    raise SplitError(f"cannot group a {type(table).__name__} by a column; return a DataFrame, Arrow table, "
                     "dict of columns or list of dict rows")


def _take(table: Any, rows: list[int]) -> Any:
    if hasattr(table, "iloc"):
        return table.iloc[rows]
    if hasattr(table, "take") and hasattr(table, "column_names"):
        return table.take(rows)
    return [table[row] for row in rows]


def split_buckets(value: Any, column: str, buckets: int) -> list[Any]:
    """Exactly ``buckets`` parts (bucket 1 first); a bucket no row hashes to is an empty part."""
    table = _as_table(value)
    groups = split_by(table, column, buckets)
    return [groups.get(str(bucket), _take(table, [])) for bucket in range(1, buckets + 1)]
