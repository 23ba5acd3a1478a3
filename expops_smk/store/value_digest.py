"""Which table a value is stored as, and the digest ``Store.write_value`` records for it.

``expops-smk status`` predicts what the next run of a growing split finds by cutting the split's
current input and comparing each partition's digests with the recorded ones. That prediction must
give the digest writing would give, so ``Store`` and the prediction both decide here whether a
value is a table (hashed by ``table_digest``) or a pickle (hashed over its pickle bytes).
"""

from __future__ import annotations

import pickle
import sys
from typing import TYPE_CHECKING, Any

from expops_smk.store.artifacts import FORMAT_ARROW, FORMAT_PARQUET
from expops_smk.store.exactness import parquet_exact
from expops_smk.store.hashing import HashingWriter
from expops_smk.store.table_digest import table_digest

if TYPE_CHECKING:
    import pyarrow


def stored_table(value: Any) -> tuple[pyarrow.Table, str] | None:
    """(Arrow table, format) of a DataFrame or Arrow table to store as Parquet; None for a value
    that is pickled. DataFrames keep their index and go to Parquet only when reading it back gives
    exactly the same frame (``parquet_exact``).

    pandas/pyarrow are looked up in ``sys.modules``: a value can only be a DataFrame if pandas is
    already imported, so pickle-only nodes never import them.
    """
    pandas = sys.modules.get("pandas")
    arrow = sys.modules.get("pyarrow")
    if pandas is not None and isinstance(value, pandas.DataFrame):
        if not parquet_exact(value):
            return None
        import pyarrow as pa

        try:
            # Serial: pyarrow would start a thread pool per call, which costs more than the
            # (mostly zero-copy) conversion of a partition, and a job gets one core by default.
            return pa.Table.from_pandas(value, preserve_index=None, nthreads=1), FORMAT_PARQUET
        except (pa.ArrowException, ValueError, TypeError):
            return None
    if arrow is not None and isinstance(value, arrow.Table):
        return (value, FORMAT_ARROW) if _parquet_keeps_schema(value) else None
    return None


def _parquet_keeps_schema(table: pyarrow.Table) -> bool:
    """Whether Parquet gives the table's schema back (it changes date64, ``large_string``
    dictionary values, ...): decided by the types alone, so an empty copy written in memory tells."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    try:
        pq.write_table(table.slice(0, 0), buffer)
    except (pa.ArrowException, ValueError, TypeError):
        return False
    buffer.seek(0)
    return pq.read_schema(buffer).equals(table.schema, check_metadata=True)


def value_digest(value: Any) -> str:
    """The ``digest`` writing ``value`` records, computed without writing it. (Should the store
    still fall back to a pickle after writing Parquet, the prediction differs, which reads as
    "changed", never as a wrong "unchanged".)"""
    table = stored_table(value)
    if table is not None:
        return table_digest(table[0])
    writer = HashingWriter(_Discard())
    pickle.dump(value, writer, protocol=5)
    return writer.hexdigest()


class _Discard:
    """A write-only file that keeps nothing: pickle's bytes only feed the hash."""

    def write(self, data: Any) -> int:
        return len(memoryview(data))
