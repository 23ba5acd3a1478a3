"""The logical digest of a table: what decides whether nodes below a table re-run.

Two copies of the same data must hash alike however they were produced (a pandas frame just
returned, a Parquet file read back, another pyarrow version), or identical content would re-run
everything downstream; any change of values, types, index or column names must change it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import xxhash

if TYPE_CHECKING:
    import pyarrow

_DIGEST_BATCH_ROWS = 64 * 1024
"""Rows per record batch hashed by ``table_digest``. Fixed, so the batch boundaries depend only on
the row count and never on how the table happens to be chunked in memory."""

_DIGEST_PREFIX = b"expops-table-digest/1\0"
"""Versions the digest scheme: changing the canonical form must change every digest."""


def table_digest(table: pyarrow.Table) -> str:
    """Hash of a table's logical content, independent of file layout and writer version.

    The table is canonicalised, then its Arrow IPC stream is hashed in batches of a fixed row
    count. Canonical form:

    * schema metadata without the entries that carry library versions (pandas metadata's
      ``pandas_version`` and ``creator``); index and column info still count;
    * the type spellings a Parquet round trip changes (list element and map entry field names,
      ``large_string`` dictionary values) are normalised;
    * batch boundaries are at multiples of a fixed row count whatever the in-memory chunking;
    * for fixed-width and dictionary columns the slots under nulls are zeroed and the null mask is
      hashed as its own column. This matters: ``Table.from_pandas`` leaves NaN bits (and -1
      category codes) under the null slots while a table read from Parquet has zeros there.

    * a slice's columns are copied compact first (``_compact``): a slice shares its parent's
      buffers, bytes outside it included.

    Caveat: slots under nulls inside nested values (struct children, list items) and
    variable-length columns are hashed as they are; pandas and Parquet both leave those empty, so
    tables from either source still agree, but a hand-built array with data under a null struct
    slot hashes differently from its Parquet copy. Dictionary columns are hashed with their
    dictionary as laid out per batch.
    """
    import pyarrow as pa
    import pyarrow.ipc

    plans = [_ColumnPlan.for_field(field) for field in table.schema]
    schema = pa.schema(
        [field for plan in plans for field in plan.stream_fields()],
        metadata=_strip_version_metadata(table.schema.metadata),
    )
    hasher = xxhash.xxh3_128()
    hasher.update(_DIGEST_PREFIX)
    hasher.update(table.num_rows.to_bytes(8, "little"))
    with pyarrow.ipc.new_stream(_HashSink(hasher), schema) as writer:
        if table.num_columns:
            for start in range(0, table.num_rows, _DIGEST_BATCH_ROWS):
                piece = table.slice(start, _DIGEST_BATCH_ROWS).combine_chunks()
                arrays = []
                for plan, column in zip(plans, piece.columns):
                    chunk = column.chunk(0) if column.num_chunks == 1 else pa.concat_arrays(column.chunks)
                    arrays.extend(plan.stream_arrays(chunk))
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return hasher.hexdigest()


class _HashSink:
    """Write-only file object that feeds an IPC stream into a hasher instead of memory.

    pyarrow passes its buffers here without copying, so hashing a table costs one pass over its
    memory and no extra allocation.
    """

    closed = False

    def __init__(self, hasher: Any) -> None:
        self._hasher = hasher

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._hasher.update(view)
        return view.nbytes

    def flush(self) -> None:
        """Nothing is buffered; present because pyarrow calls it."""


@dataclass(frozen=True)
class _ColumnPlan:
    """How one column enters the digest: its canonical field and whether nulls are normalised."""

    field: Any  # pyarrow.Field with the canonical type
    cast: bool  # the column must be cast to field.type first
    zero: Any  # pyarrow scalar written under null slots, or None when not normalised

    @classmethod
    def for_field(cls, field: pyarrow.Field) -> _ColumnPlan:
        """Decide per type (never per data) so every batch shares one stream schema."""
        import pyarrow as pa

        canonical = _canonical_type(field.type)
        cast = canonical != field.type
        if cast:
            try:
                pa.array([], type=field.type).cast(canonical)
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
                canonical, cast = field.type, False
        zero = _zero_scalar(canonical.index_type if pa.types.is_dictionary(canonical) else canonical)
        return cls(field.with_type(canonical), cast, zero)

    def stream_fields(self) -> list[Any]:
        """The column's field, plus a non-null boolean null-mask field when nulls are normalised."""
        import pyarrow as pa

        if self.zero is None:
            return [self.field]
        return [self.field, pa.field(self.field.name + "\0null", pa.bool_(), nullable=False)]

    def stream_arrays(self, array: pyarrow.Array) -> list[Any]:
        """The column's arrays matching ``stream_fields``: nulls zero-filled and mask split off."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.cast:
            array = array.cast(self.field.type)
        array = _compact(array, fixed_width=self.zero is not None and not pa.types.is_dictionary(array.type))
        if self.zero is None:
            return [array]
        mask = pc.is_null(array)
        if array.null_count == 0:  # nothing under a null to zero: skip copying the column
            return [array, mask]
        if pa.types.is_dictionary(array.type):
            filled = pa.DictionaryArray.from_arrays(
                pc.fill_null(array.indices, self.zero), array.dictionary, ordered=array.type.ordered
            )
        else:
            filled = pc.fill_null(array, self.zero)
        return [filled, mask]


def _compact(array: pyarrow.Array, fixed_width: bool) -> pyarrow.Array:
    """``array`` with buffers holding its own rows only, as a Parquet round trip gives it back.

    A slice (a partition of the split's table, a pandas slice turned into Arrow) keeps its
    parent's whole buffers. The IPC stream cuts a fixed-width slice that starts past row 0 to its
    rows, but writes one starting at row 0 with its buffers as they are, and variable-length and
    nested values (strings, lists) and a dictionary as they are wherever the slice starts: the
    bytes of rows outside the slice would be hashed too. Those arrays are copied (``concat_arrays`` of one
    array); an array whose buffers are exactly its size is used as it is.
    """
    import pyarrow as pa

    exact = array.get_total_buffer_size() <= array.nbytes
    if exact and array.offset == 0 or fixed_width and array.offset != 0:
        return array
    return pa.concat_arrays([array])


def _canonical_type(data_type: pyarrow.DataType) -> pyarrow.DataType:
    """The type a Parquet round trip would give back, so both sides hash alike.

    Parquet renames list element fields (``item`` -> ``element``) and map entry fields, and reads
    dictionary values as ``string``/``binary`` even when they were ``large_*``.
    """
    import pyarrow as pa

    types = pa.types
    if types.is_dictionary(data_type):
        values = _canonical_type(data_type.value_type)
        if types.is_large_string(values):
            values = pa.string()
        elif types.is_large_binary(values):
            values = pa.binary()
        return pa.dictionary(data_type.index_type, values, data_type.ordered)
    if types.is_map(data_type):
        return pa.map_(
            _canonical_field(data_type.key_field, "key"),
            _canonical_field(data_type.item_field, "value"),
            data_type.keys_sorted,
        )
    if types.is_large_list(data_type):
        return pa.large_list(_canonical_field(data_type.value_field, "item"))
    if types.is_fixed_size_list(data_type):
        return pa.list_(_canonical_field(data_type.value_field, "item"), data_type.list_size)
    if types.is_list(data_type):
        return pa.list_(_canonical_field(data_type.value_field, "item"))
    if types.is_struct(data_type):
        return pa.struct([_canonical_field(data_type.field(i)) for i in range(data_type.num_fields)])
    return data_type


def _canonical_field(field: pyarrow.Field, name: str | None = None) -> pyarrow.Field:
    """A child field with a canonical type (and, for list/map children, a canonical name)."""
    field = field.with_type(_canonical_type(field.type))
    return field if name is None else field.with_name(name)


def _zero_scalar(data_type: pyarrow.DataType) -> Any:
    """An all-zero-bytes scalar of a fixed-width type, or None for types not normalised.

    Built from a zeroed buffer so one code path covers ints, floats, bools, temporal types,
    decimals and fixed-size binary alike.
    """
    import pyarrow as pa

    types = pa.types
    fixed_width = (
        types.is_integer(data_type)
        or types.is_floating(data_type)
        or types.is_boolean(data_type)
        or types.is_temporal(data_type)
        or types.is_decimal(data_type)
        or types.is_fixed_size_binary(data_type)
    )
    if not fixed_width:
        return None
    width = max(1, data_type.bit_width // 8)
    return pa.Array.from_buffers(data_type, 1, [None, pa.py_buffer(bytes(width))])[0]


def _strip_version_metadata(metadata: Mapping[bytes, bytes] | None) -> dict[bytes, bytes] | None:
    """Schema metadata without the library version strings, re-encoded deterministically."""
    if not metadata:
        return None
    cleaned = dict(metadata)
    if b"pandas" in cleaned:
        pandas_meta = json.loads(cleaned[b"pandas"])
        pandas_meta.pop("pandas_version", None)
        pandas_meta.pop("creator", None)
        cleaned[b"pandas"] = json.dumps(pandas_meta, sort_keys=True, separators=(",", ":")).encode()
    return cleaned
