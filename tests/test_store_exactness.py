"""A table written by the store reads back exactly: same values, dtypes, Python types, index, columns.

Random frames mix what Arrow maps exactly (numbers, bools, strings) with what it does not (object
columns of mixed types, ``None``, nested values, nullable and categorical dtypes, tz-aware
datetimes, MultiIndex, non-string column names). Whatever the store chooses (Parquet or pickle),
the frame that comes back must be the one that went in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expops_smk.store.artifact_store import Store
from expops_smk.store.artifacts import FORMAT_ARROW, FORMAT_PARQUET, FORMAT_PICKLE
from expops_smk.store.exactness import parquet_exact

SCALARS = st.one_of(st.none(), st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1), st.floats(), st.text(max_size=4),
                    st.booleans())
NESTED = st.one_of(st.lists(st.integers(-5, 5), max_size=3), st.tuples(st.integers(-5, 5)),
                   st.dictionaries(st.sampled_from("ab"), st.integers(-5, 5), max_size=2))


def column(kind: str, n: int) -> st.SearchStrategy[Any]:
    """A column of ``n`` values of one kind (a pandas Series)."""
    if kind == "int":
        return st.lists(st.integers(-(2 ** 63), 2 ** 63 - 1), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype="int64"))
    if kind == "uint8":
        return st.lists(st.integers(0, 255), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype="uint8"))
    if kind == "float":
        return st.lists(st.floats(allow_nan=True), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype="float64"))
    if kind == "bool":
        return st.lists(st.booleans(), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=bool))
    if kind == "str":
        return st.lists(st.text(max_size=5), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=object))
    if kind == "datetime_s":
        return st.lists(st.integers(-2 ** 33, 2 ** 33), min_size=n, max_size=n).map(
            lambda v: pd.Series(np.array(v, dtype="datetime64[s]")))
    if kind in ("datetime", "datetime_tz"):
        tz = "Europe/Paris" if kind == "datetime_tz" else None
        return st.lists(st.integers(-2 ** 33, 2 ** 33), min_size=n, max_size=n).map(
            lambda v: pd.Series(pd.to_datetime(v, unit="s").tz_localize("UTC").tz_convert(tz)))
    if kind == "category":
        return st.lists(st.sampled_from(["x", "y", None]), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype="category"))
    if kind == "ordered_category":
        return st.lists(st.sampled_from(["x", "y"]), min_size=n, max_size=n).map(
            lambda v: pd.Series(pd.Categorical(v, categories=["y", "x", "z"], ordered=True)))
    if kind == "int_category":
        return st.lists(st.sampled_from([1, 2]), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype="category"))
    if kind in ("Int64", "UInt8", "Float64", "boolean", "string"):
        base = {"Int64": st.integers(-100, 100), "UInt8": st.integers(0, 255), "Float64": st.floats(allow_nan=False),
                "boolean": st.booleans(), "string": st.text(max_size=3)}[kind]
        return st.lists(st.one_of(st.none(), base), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=kind))
    if kind == "mixed":
        return st.lists(SCALARS, min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=object))
    if kind == "nested":
        return st.lists(st.one_of(st.none(), NESTED), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=object))
    raise AssertionError(kind)


KINDS = ["int", "uint8", "float", "bool", "str", "datetime", "datetime_s", "datetime_tz", "category", "ordered_category", "int_category",
         "Int64", "UInt8", "Float64", "boolean", "string", "mixed", "nested"]


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 6))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=0, max_size=4))
    names = draw(st.lists(st.one_of(st.text(min_size=1, max_size=3), st.integers(0, 3)), min_size=len(kinds),
                          max_size=len(kinds), unique_by=str))
    frame = pd.DataFrame({name: draw(column(kind, n)) for name, kind in zip(names, kinds)}, index=pd.RangeIndex(n))
    index_kind = draw(st.sampled_from(["range", "range_offset", "named", "int", "multi", "datetime"]))
    if index_kind == "range_offset":
        frame.index = pd.RangeIndex(3, 3 + 2 * n, 2, name=draw(st.sampled_from([None, "row"])))
    elif index_kind == "named":
        frame.index = pd.Index(draw(st.lists(st.text(max_size=3), min_size=n, max_size=n)), dtype=object, name="key")
    elif index_kind == "int":
        frame.index = pd.Index(draw(st.lists(st.integers(-9, 9), min_size=n, max_size=n)), dtype="int64")
    elif index_kind == "multi":
        frame.index = pd.MultiIndex.from_arrays([list(range(n)), [str(i) for i in range(n)]], names=["a", None])
    elif index_kind == "datetime":
        frame.index = pd.DatetimeIndex(pd.date_range("2020-01-01", periods=n, freq="D", tz=draw(st.sampled_from([None, "UTC"]))))
    return frame


def assert_same_frame(got: Any, expected: pd.DataFrame) -> None:
    """Equal values, dtypes, index (kind, dtype, names), columns, and Python types in object columns."""
    assert type(got) is pd.DataFrame
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_index_type=True, check_column_type=True,
                                  check_categorical=True, check_freq=False)
    assert type(got.index) is type(expected.index) and list(got.columns) == list(expected.columns)
    assert [type(name) for name in got.columns] == [type(name) for name in expected.columns]
    for position in range(expected.shape[1]):
        if expected.dtypes.iloc[position] == object:
            assert [type(v) for v in got.iloc[:, position]] == [type(v) for v in expected.iloc[:, position]]


def roundtrip(store: Store, tmp_path: Path, value: Any) -> tuple[Any, str]:
    artifact = store.write_value(tmp_path / "node", "value", value)
    return store.read_value(tmp_path / "node", artifact), artifact.format


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames())
def test_a_stored_frame_reads_back_exactly(tmp_path: Path, frame: pd.DataFrame) -> None:
    got, fmt = roundtrip(Store(tmp_path), tmp_path, frame)
    assert_same_frame(got, frame)
    assert fmt == (FORMAT_PARQUET if parquet_exact(frame) else FORMAT_PICKLE)


@pytest.mark.parametrize("values", [
    [1, None, 2 ** 60 + 1],             # ints with None: Arrow reads back float64, losing the last digit
    [[1, 2], [3]], [(1,), (2,)],        # lists and tuples: Arrow reads back ndarrays
    [{"a": 1}, {"b": 2}],               # dicts: Arrow adds the keys of every other row
    [1, 2.5], ["a", None], [b"x", b"y"],
])
def test_lossy_object_columns_are_pickled(tmp_path: Path, values: list[Any]) -> None:
    frame = pd.DataFrame({"v": pd.Series(values, dtype=object)})
    got, fmt = roundtrip(Store(tmp_path), tmp_path, frame)
    assert fmt == FORMAT_PICKLE
    assert_same_frame(got, frame)
    assert got["v"].tolist() == values


def test_plain_tables_stay_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(5, dtype=float), "n": np.arange(5), "s": list("abcde"), "b": [True] * 5,
                          "t": pd.date_range("2021-01-01", periods=5)}).iloc[1:4]
    got, fmt = roundtrip(Store(tmp_path), tmp_path, frame)
    assert fmt == FORMAT_PARQUET
    assert_same_frame(got, frame)


ARROW_TABLES = [
    pa.table({"a": pa.array([1, None], pa.int32()), "s": ["x", None], "l": [[1], []]}),
    pa.table({"d": pa.array([0, 86_400_000], pa.date64())}),                    # Parquet stores date32
    pa.table({"u": pa.array(["a", "b", "a"]).dictionary_encode()}),
    pa.table({"t": pa.array([1, 2], pa.timestamp("s", tz="UTC"))}).replace_schema_metadata({b"k": b"v"}),
    pa.table({"h": pa.array([1, 2], pa.uint64()), "f": pa.array([0.5, None], pa.float32())}),
]


@pytest.mark.parametrize("table", ARROW_TABLES)
def test_arrow_tables_read_back_with_the_same_schema(tmp_path: Path, table: pa.Table) -> None:
    got, fmt = roundtrip(Store(tmp_path), tmp_path, table)
    assert isinstance(got, pa.Table) and got.schema.equals(table.schema, check_metadata=True)
    assert got.equals(table)
    assert fmt in (FORMAT_ARROW, FORMAT_PICKLE)
