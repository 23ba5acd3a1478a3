"""Which DataFrames survive a Parquet round trip exactly, decided from their dtypes before writing.

A Parquet artifact must read back as the very frame the node returned: same dtypes, same Python
types in object columns, same values, same index and columns. Arrow's pandas mapping is lossy for
much of what pandas can hold (an object column of ints with ``None`` comes back float64, losing
``2**60 + 1``; lists come back as ndarrays; dicts gain the keys of every other row; ``[1, 2.5]``
becomes float64; non-string column names become strings), and reading back to compare would double
the cost of every write. So only the kinds whose round trip is known to be exact (tested by the
property test in tests/test_store_exactness.py) are allowed; anything else is pickled, which is
always exact. The checks are per column and vectorised (``infer_dtype`` is one C pass), so they
cost microseconds next to the write.
"""

from __future__ import annotations

from typing import Any, Callable

_EXACT_KINDS = frozenset("iufb")
"""numpy dtype kinds that map to one Arrow type and back: signed/unsigned ints, floats, bools."""


_NULLABLE = frozenset({"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64",
                       "boolean", "string"})
"""pandas' nullable (masked) dtypes and the ``pd.NA`` string dtype: Arrow keeps their nulls and restores them."""


def parquet_exact(frame: Any) -> bool:
    """Whether ``frame`` reads back from Parquet equal, with equal dtypes, index and columns."""
    import pandas as pd

    strings = pd.Index(["a"]).dtype  # what Arrow strings read back as: object (pandas 2) or str (3)
    columns = frame.columns
    if type(columns) is not pd.Index or columns.dtype != strings or not columns.is_unique:
        return False
    if strings == object and not _only_str(columns):
        return False
    if frame.attrs or not _exact_index(frame.index, pd, strings):
        return False
    # only an object column's values are looked at: dtypes decide the rest (1 ms -> 0.1 ms for 31 columns)
    return all(_exact_array(dtype, lambda at=position: frame.iloc[:, at], pd, strings)
               for position, dtype in enumerate(frame.dtypes.tolist()))


def _exact_index(index: Any, pd: Any, strings: Any) -> bool:
    """A RangeIndex is stored as metadata; a plain index as a column of an exact kind."""
    if not (index.name is None or type(index.name) is str):
        return False
    if type(index) is pd.RangeIndex:
        return True
    return type(index) is pd.Index and _exact_array(index.dtype, lambda: index, pd, strings)


def _exact_array(dtype: Any, values: Callable[[], Any], pd: Any, strings: Any) -> bool:
    """numpy ints/floats/bools, naive datetimes, and strings in the dtype pandas reads them back as.

    Also pandas' nullable dtypes, which Arrow restores from the pandas metadata. Object columns of
    anything but ``str`` (``None``, NaN, numbers, nested values), other extension dtypes
    (categoricals: an empty one loses its categories; tz-aware, Arrow-backed, intervals...) and
    timedeltas are pickled.
    """
    if dtype == strings:
        return strings != object or _only_str(values())
    if isinstance(dtype, pd.api.extensions.ExtensionDtype):
        return dtype.name in _NULLABLE
    if dtype.kind == "M":  # Parquet has no seconds unit: datetime64[s] would come back as [ms]
        import numpy as np

        return np.datetime_data(dtype)[0] in ("ms", "us", "ns")
    return dtype.kind in _EXACT_KINDS


def _only_str(values: Any) -> bool:
    """Every item is exactly a ``str`` (one C-level pass over the array; an empty column would come
    back as Arrow's null type)."""
    return {*map(type, values.to_numpy())} == {str}
