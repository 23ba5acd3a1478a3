"""A slice of a table hashes like the same rows read back from Parquet, and ``value_digest`` (what
``status`` predicts with) gives the digest writing records.

Partitions are slices (views) of the split's frame: pandas slices turned into Arrow, and Arrow
slices, keep their parent's whole buffers. The digest once hashed the variable-length buffers as
they were, so a partition of a string column got another digest than the same rows after a Parquet
round trip, and another one again when rows were appended after it (every chunk of a growing split
then "changed").
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from expops_smk.store.artifact_store import Store
from expops_smk.store.table_digest import table_digest
from expops_smk.store.value_digest import value_digest


def round_trip(table: pa.Table) -> pa.Table:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    buffer.seek(0)
    return pq.read_table(buffer)


def frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({
        "i": range(rows),
        "f": [k / 3 for k in range(rows)],
        "s": [f"row-{k}" * (1 + k % 4) for k in range(rows)],
        "n": pd.array([None if k % 3 == 0 else k for k in range(rows)], dtype="Int64"),
        "c": pd.Categorical(["abc"[k % 3] for k in range(rows)]),
        "o": [None if k % 5 == 0 else f"x{k}" for k in range(rows)],
    })


@given(st.integers(1, 60), st.data())
@settings(max_examples=80, deadline=None)
def test_a_slice_hashes_like_its_parquet_copy(rows: int, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, rows - 1))
    stop = data.draw(st.integers(start, rows))
    whole = frame(rows)
    pandas_slice = pa.Table.from_pandas(whole.iloc[start:stop], preserve_index=None, nthreads=1)
    assert table_digest(pandas_slice) == table_digest(round_trip(pandas_slice))
    arrow_slice = pa.Table.from_pandas(whole, preserve_index=False).slice(start, stop - start)
    assert table_digest(arrow_slice) == table_digest(round_trip(arrow_slice))


def test_rows_after_a_slice_do_not_change_its_digest() -> None:
    """What a growing split relies on: appending rows leaves the earlier chunks' digests alone."""
    def digests(rows: int) -> list[str]:
        whole = frame(rows)
        tables = [pa.Table.from_pandas(part.iloc[0:3], preserve_index=None)
                  for part in (whole, whole[["s"]].copy(), whole[["n"]].copy())]
        tables.append(pa.Table.from_pandas(whole, preserve_index=False).slice(0, 3))
        return [table_digest(table) for table in tables]

    assert digests(20) == digests(21)
    assert table_digest(pa.Table.from_pandas(frame(9).iloc[0:3])) != table_digest(pa.Table.from_pandas(frame(9).iloc[1:4]))


def test_the_predicted_digest_is_the_one_writing_records(tmp_path: Path) -> None:
    """``expops-smk status`` predicts partitions by ``value_digest``; it must match ``write_value``."""
    store = Store(tmp_path)
    whole = frame(30)
    values = [whole.iloc[3:9], whole.iloc[0:0], pa.Table.from_pandas(whole, preserve_index=False).slice(4, 7),
              [(1, "a"), (2, "b")], {"nested": [1.5, None]}, whole[["c"]].iloc[::2]]
    for index, value in enumerate(values):
        assert value_digest(value) == store.write_value(tmp_path / f"n{index}", "v", value).digest, index
