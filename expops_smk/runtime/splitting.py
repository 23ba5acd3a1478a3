"""Split a value into data partitions the way ExpOps does.

``size: N`` gives N contiguous slices of near-equal length, the first ``total % N`` one row longer;
``size: [a, b, c]`` gives slices of exactly those lengths, which must add up to the total. With
fewer rows than partitions, ``size: N`` leaves the last partitions empty (as ExpOps does); the
runtime warns about them (``empty_partitions``). Slices of
DataFrames, Arrow tables and numpy arrays are views, not copies: a split costs no extra memory
before its partitions are written.
"""

from __future__ import annotations

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
    return [index for index, part in enumerate(parts, start=1) if _rows(part) == 0]


def _rows(part: Any) -> int:
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
