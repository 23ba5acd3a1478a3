"""Tests for the artifact store: serialisation, hashing, linking, run cache, verify and gc."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expops_smk.errors import ExpopsError
from expops_smk.layout import MANIFEST as MANIFEST_NAME
from expops_smk.store.artifact_store import Store
from expops_smk.store.artifacts import TamperedArtifactError
from expops_smk.store.artifacts import Artifact
from expops_smk.store.hashing import HASH_ALGORITHM, hash_bytes, hash_file
from expops_smk.store.maintenance import collect_store_garbage, verify_artifacts
from expops_smk.store.table_digest import table_digest


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path)


def _objects(store: Store) -> list[Path]:
    return sorted(p for p in store.objects_dir.rglob("*") if p.is_file())


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"x": [1.5, 2.5, 3.5], "n": [1, 2, 3], "s": ["a", "b", "c"]},
        index=pd.Index(["r1", "r2", "r3"], name="row"),
    )


def _frame_with_nulls() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "f": [1.0, np.nan, 3.0, np.nan],
            "i": pd.array([1, None, 3, 4], dtype="Int64"),
            "s": ["a", None, "c", "d"],
            "c": pd.Categorical(["u", None, "v", "u"]),
            "t": pd.to_datetime(["2020-01-01", None, "2021-06-01", "2022-01-01"]),
            "l": [[1, 2], None, [], [3]],
        },
        index=pd.RangeIndex(10, 14, name="k"),
    )


# -- hashing -----------------------------------------------------------------------------------


def test_hash_functions_agree_with_xxh3_128(tmp_path: Path) -> None:
    import xxhash

    data = os.urandom(9 * 1024 * 1024 + 17)  # spans several read chunks
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert HASH_ALGORITHM == "xxh3_128"
    assert hash_bytes(data) == xxhash.xxh3_128_hexdigest(data)
    assert hash_file(path) == hash_bytes(data)
    assert hash_bytes(memoryview(data)[:10]) == hash_bytes(data[:10])


def test_table_digest_stable_across_parquet_round_trip_with_nulls(tmp_path: Path) -> None:
    table = pa.Table.from_pandas(_frame_with_nulls(), preserve_index=None)
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=2)
    back = pq.read_table(path)
    assert back.column("f").num_chunks == 2  # really re-chunked by row groups
    assert table_digest(back) == table_digest(table)


def test_table_digest_ignores_writer_version_metadata() -> None:
    table = pa.Table.from_pandas(_frame(), preserve_index=None)
    meta = json.loads(table.schema.metadata[b"pandas"])
    meta["pandas_version"] = "0.0.1"
    meta["creator"] = {"library": "pyarrow", "version": "1.0.0"}
    relabelled = table.replace_schema_metadata({b"pandas": json.dumps(meta).encode()})
    assert table_digest(relabelled) == table_digest(table)

    meta["index_columns"] = []  # real content of the metadata still counts
    changed = table.replace_schema_metadata({b"pandas": json.dumps(meta).encode()})
    assert table_digest(changed) != table_digest(table)


def test_table_digest_sees_values_nulls_names_and_types() -> None:
    base = pa.table({"a": pa.array([1, 2, 3], pa.int64())})
    variants = [
        pa.table({"a": pa.array([1, 2, 4], pa.int64())}),
        pa.table({"a": pa.array([1, None, 3], pa.int64())}),
        pa.table({"a": pa.array([1, 0, 3], pa.int64())}),
        pa.table({"b": pa.array([1, 2, 3], pa.int64())}),
        pa.table({"a": pa.array([1, 2, 3], pa.int32())}),
        pa.table({"a": pa.array([1, 2], pa.int64())}),
    ]
    digests = {table_digest(t) for t in [base, *variants]}
    assert len(digests) == len(variants) + 1
    # a null and a zero at the same slot must differ even though nulls are zero-filled
    assert table_digest(variants[1]) != table_digest(variants[2])


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(-(2**40), 2**40)), min_size=0, max_size=300),
    cuts=st.lists(st.integers(0, 300), max_size=4),
)
def test_table_digest_independent_of_chunking_and_parquet(
    tmp_path_factory: pytest.TempPathFactory, values: list[int | None], cuts: list[int]
) -> None:
    floats = [None if v is None else v / 7 for v in values]
    table = pa.table({"i": pa.array(values, pa.int64()), "f": pa.array(floats, pa.float64())})
    bounds = sorted({0, len(values), *(c for c in cuts if c <= len(values))})
    chunked = pa.Table.from_batches(
        [b for lo, hi in zip(bounds, bounds[1:]) for b in table.slice(lo, hi - lo).to_batches()],
        schema=table.schema,
    )
    path = tmp_path_factory.mktemp("digest") / "t.parquet"
    pq.write_table(table, path, row_group_size=max(1, len(values) // 3))
    expected = table_digest(table)
    assert table_digest(chunked) == expected
    assert table_digest(pq.read_table(path)) == expected
    assert table_digest(table.slice(1)) == table_digest(pa.table(table.slice(1).to_pydict(), schema=table.schema))


def test_table_digest_spans_several_fixed_batches() -> None:
    rows = 200_000  # > 3 digest batches, with the last one partial
    values = np.arange(rows, dtype=np.float64)
    table = pa.table({"v": values})
    resliced = pa.Table.from_batches(table.to_batches(max_chunksize=70_001))
    assert table_digest(resliced) == table_digest(table)
    changed = values.copy()  # pa.table shares the numpy buffer
    changed[-1] = -1.0
    assert table_digest(pa.table({"v": changed})) != table_digest(table)


# -- serialisation -----------------------------------------------------------------------------


def test_dataframe_round_trip_keeps_index(store: Store, tmp_path: Path) -> None:
    node = tmp_path / "results" / "a"
    frame = _frame()
    artifact = store.write_value(node, "frame", frame)
    assert (artifact.format, artifact.file) == ("parquet", "frame.parquet")
    assert artifact.size == (node / "frame.parquet").stat().st_size
    assert artifact.object == hash_file(node / "frame.parquet")
    assert artifact.digest == table_digest(pq.read_table(node / "frame.parquet"))
    pd.testing.assert_frame_equal(store.read_value(node, artifact), frame)


def test_dataframe_with_nulls_round_trips_and_digest_matches_file(store: Store, tmp_path: Path) -> None:
    node = tmp_path / "n"
    frame = _frame_with_nulls().drop(columns=["l", "c"])
    artifact = store.write_value(node, "frame", frame)
    assert artifact.format == "parquet"
    assert table_digest(pq.read_table(node / artifact.file)) == artifact.digest
    pd.testing.assert_frame_equal(store.read_value(node, artifact), frame, check_exact=True)
    # lists would come back as ndarrays from Parquet (and an empty categorical without its
    # categories): pickled, they come back as they were
    listed = store.write_value(node, "listed", _frame_with_nulls())
    assert listed.format == "pickle"
    assert store.read_value(node, listed)["l"].tolist() == [[1, 2], None, [], [3]]


def test_arrow_table_round_trip(store: Store, tmp_path: Path) -> None:
    table = pa.table({"a": [1, 2, None], "b": ["x", "y", "z"]})
    artifact = store.write_value(tmp_path / "n", "tab", table)
    assert (artifact.format, artifact.file) == ("arrow", "tab.parquet")
    back = store.read_value(tmp_path / "n", artifact)
    assert isinstance(back, pa.Table)
    assert back.equals(table)
    assert artifact.digest == table_digest(table)


@pytest.mark.parametrize(
    "value",
    [
        np.arange(12, dtype=np.int32).reshape(3, 4),
        {"a": 1, "b": [1.5, "x"], "c": {"nested": None}},
        [1, "two", 3.0, (4, 5)],
    ],
    ids=["numpy", "dict", "list"],
)
def test_pickled_values_round_trip(store: Store, tmp_path: Path, value: object) -> None:
    artifact = store.write_value(tmp_path / "n", "v", value)
    assert (artifact.format, artifact.file) == ("pickle", "v.pkl")
    assert artifact.digest == artifact.object == hash_file(tmp_path / "n" / "v.pkl")
    back = store.read_value(tmp_path / "n", artifact)
    if isinstance(value, np.ndarray):
        np.testing.assert_array_equal(back, value)
        assert back.dtype == value.dtype
    else:
        assert back == value


def test_large_array_pickles_intact(store: Store, tmp_path: Path) -> None:
    value = np.random.default_rng(1).random(3_000_000)  # 24 MB: written out of pickle's frames
    artifact = store.write_value(tmp_path / "n", "big", value)
    np.testing.assert_array_equal(store.read_value(tmp_path / "n", artifact), value)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({1: [1.0, 2.0], 2: [3.0, 4.0]}),
        pd.DataFrame({"mixed": [1, "a"]}),
    ],
    ids=["int-column-names", "mixed-object-column"],
)
def test_dataframe_arrow_cannot_hold_falls_back_to_pickle(
    store: Store, tmp_path: Path, frame: pd.DataFrame
) -> None:
    artifact = store.write_value(tmp_path / "n", "df", frame)
    assert (artifact.format, artifact.file) == ("pickle", "df.pkl")
    pd.testing.assert_frame_equal(store.read_value(tmp_path / "n", artifact), frame)


def test_table_parquet_cannot_store_falls_back_to_pickle(store: Store, tmp_path: Path) -> None:
    union = pa.UnionArray.from_sparse(pa.array([0, 1], pa.int8()), [pa.array([1, 2]), pa.array(["a", "b"])])
    table = pa.table({"u": union})
    artifact = store.write_value(tmp_path / "n", "u", table)
    assert artifact.format == "pickle"
    assert store.read_value(tmp_path / "n", artifact).equals(table)
    assert list(store.tmp_dir.iterdir()) == []


def test_identical_values_share_digest_and_one_object(store: Store, tmp_path: Path) -> None:
    first = store.write_value(tmp_path / "a", "df", _frame())
    second = store.write_value(tmp_path / "b", "df", _frame())
    third = store.write_value(tmp_path / "c", "d", {"k": [1, 2]})
    fourth = store.write_value(tmp_path / "d", "d", {"k": [1, 2]})
    assert (first.digest, first.object) == (second.digest, second.object)
    assert (third.digest, third.object) == (fourth.digest, fourth.object)
    assert len(_objects(store)) == 2
    obj = store.objects_dir / first.object[:2] / f"{first.object}.parquet"
    assert os.stat(tmp_path / "a" / "df.parquet").st_ino == obj.stat().st_ino
    assert stat.S_IMODE(obj.stat().st_mode) == 0o444


def test_different_values_have_different_digests(store: Store, tmp_path: Path) -> None:
    changed = _frame()
    changed.loc["r2", "x"] = 99.0
    reindexed = _frame().rename(index={"r3": "r4"})
    digests = {
        store.write_value(tmp_path / str(i), "v", value).digest
        for i, value in enumerate([_frame(), changed, reindexed, {"a": 1}, {"a": 2}])
    }
    assert len(digests) == 5


def test_rewriting_same_value_in_place_leaves_no_temp_files(store: Store, tmp_path: Path) -> None:
    node = tmp_path / "n"
    store.write_value(node, "v", [1, 2, 3])
    store.write_value(node, "v", [1, 2, 3])  # node file already links to this very object
    assert sorted(p.name for p in node.iterdir()) == ["v.pkl"]
    assert list(store.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("key", ["", "a/b", "../x", ".hidden", "x" * 300, 5])
def test_unsafe_keys_are_rejected(store: Store, tmp_path: Path, key: object) -> None:
    with pytest.raises(ExpopsError, match="output key"):
        store.write_value(tmp_path / "n", key, 1)  # type: ignore[arg-type]


def test_unpicklable_value_is_a_one_line_error(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ExpopsError, match="output 'lock' cannot be saved"):
        store.write_value(tmp_path / "n", "lock", threading.Lock())
    assert list(store.tmp_dir.iterdir()) == []


def test_concurrent_identical_writes_produce_one_intact_object(store: Store, tmp_path: Path) -> None:
    value = np.random.default_rng(7).random(1_000_000)
    for attempt in range(3):
        barrier = threading.Barrier(2)
        results: dict[int, Artifact] = {}
        errors: list[BaseException] = []

        def write(i: int) -> None:
            try:
                barrier.wait()
                results[i] = store.write_value(tmp_path / f"r{attempt}" / str(i), "v", value)
            except BaseException as error:  # surfaced by the assertion below
                errors.append(error)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert results[0].object == results[1].object
        objects = _objects(store)
        assert len(objects) == 1
        assert hash_file(objects[0]) == objects[0].stem == results[0].object
        for i in range(2):
            np.testing.assert_array_equal(store.read_value(tmp_path / f"r{attempt}" / str(i), results[i]), value)
    assert list(store.tmp_dir.iterdir()) == []


def test_pandas_and_pyarrow_are_imported_lazily(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from expops_smk.store.artifact_store import Store;"
        "s = Store(Path(sys.argv[1])); a = s.write_value(Path(sys.argv[1]) / 'n', 'v', {'x': 1});"
        "assert s.read_value(Path(sys.argv[1]) / 'n', a) == {'x': 1};"
        "print(sorted(m for m in ('pandas', 'pyarrow', 'numpy') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- manifests ---------------------------------------------------------------------------------


def test_manifest_bytes_are_deterministic(store: Store, tmp_path: Path) -> None:
    artifacts = {
        "b": store.write_value(tmp_path / "n", "b", [1]),
        "a": store.write_value(tmp_path / "n", "a", _frame()),
    }
    store.write_manifest(tmp_path / "m1", artifacts)
    time.sleep(0.01)
    store.write_manifest(tmp_path / "m2", dict(reversed(list(artifacts.items()))))
    first = (tmp_path / "m1" / MANIFEST_NAME).read_bytes()
    assert first == (tmp_path / "m2" / MANIFEST_NAME).read_bytes()
    assert first.index(b'"a"') < first.index(b'"b"')
    assert store.read_manifest(tmp_path / "m1") == artifacts
    assert [p.name for p in (tmp_path / "m1").iterdir()] == [MANIFEST_NAME]  # no temp left


def test_put_json_is_sorted_indented_and_replaces(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "deep" / "_metrics.json"
    store.put_json(path, {"b": 1, "a": [1, 2]})
    assert path.read_text() == '{\n "a": [\n  1,\n  2\n ],\n "b": 1\n}\n'
    store.put_json(path, {"c": "é"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"c": "é"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["_metrics.json"]


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"artifacts": {}}',
        json.dumps(
            {
                "hash": HASH_ALGORITHM,
                "artifacts": {
                    "x": {"key": "x", "file": "../../etc/x.pkl", "format": "pickle", "digest": "d", "object": "o", "size": 1}
                },
            }
        ),
    ],
    ids=["garbage", "no-hash-algorithm", "path-escape"],
)
def test_bad_manifest_is_a_one_line_error(store: Store, tmp_path: Path, content: str) -> None:
    (tmp_path / MANIFEST_NAME).write_text(content)
    with pytest.raises(ExpopsError, match="not a valid manifest"):
        store.read_manifest(tmp_path)


# -- tampering and verify ------------------------------------------------------------------------


def _node_with_outputs(store: Store, node: Path) -> dict[str, Artifact]:
    artifacts = {
        "df": store.write_value(node, "df", _frame()),
        "meta": store.write_value(node, "meta", {"k": 1}),
    }
    store.write_manifest(node, artifacts)
    return artifacts


def test_replaced_results_file_is_detected(store: Store, tmp_path: Path) -> None:
    results = tmp_path / "results"
    node = results / "train" / "p1"
    artifacts = _node_with_outputs(store, node)
    assert verify_artifacts(store, results) == []

    other = tmp_path / "other.parquet"
    pq.write_table(pa.Table.from_pandas(_frame().assign(x=0.0)), other)
    os.replace(other, node / "df.parquet")  # a new inode: the store object is untouched

    with pytest.raises(TamperedArtifactError) as caught:
        store.read_value(node, artifacts["df"])
    assert str(node / "df.parquet") in str(caught.value)
    assert caught.value.path == node / "df.parquet"
    problems = verify_artifacts(store, results)
    assert len(problems) == 1
    assert str(node / "df.parquet") in problems[0] and "does not match" in problems[0]
    assert store.read_value(node, artifacts["meta"]) == {"k": 1}


def test_verify_reports_missing_file_and_bad_manifest(store: Store, tmp_path: Path) -> None:
    results = tmp_path / "results"
    artifacts = _node_with_outputs(store, results / "a")
    (results / "a" / "meta.pkl").unlink()
    (results / "b").mkdir()
    (results / "b" / MANIFEST_NAME).write_text("{")
    problems = verify_artifacts(store, results)
    assert len(problems) == 2
    assert str(results / "a" / "meta.pkl") in problems[0] and "missing" in problems[0]
    assert str(results / "b" / MANIFEST_NAME) in problems[1]
    with pytest.raises(TamperedArtifactError, match="missing"):
        store.read_value(results / "a", artifacts["meta"])


# -- run cache -----------------------------------------------------------------------------------


def _recorded_node(store: Store, node: Path, run_key: str) -> dict[str, Artifact]:
    artifacts = _node_with_outputs(store, node)
    store.put_json(node / "_metrics.json", {"loss": [0.5, 0.25]})
    store.record_run(run_key, node, extra_files=["_metrics.json", "_not_written.json"])
    return artifacts


def test_restore_run_hard_links_objects_and_drops_stale_files(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "results" / "a"
    artifacts = _recorded_node(store, source, "run1")
    target = tmp_path / "results" / "b"
    store.write_manifest(target, {"stale": store.write_value(target, "stale", "old key")})
    store.record_run("run0", target)
    (target / MANIFEST_NAME).unlink()  # as Snakemake does before a job: only the record knows stale.pkl
    (target / "_metrics.json").write_text("{}")
    (target / "job.log").write_text("log")
    (target / "user.pkl").write_bytes(b"looks generated, was not recorded")

    assert store.restore_run("run1", target, previous_key="run0") is True
    for artifact in artifacts.values():
        obj = store.objects_dir / artifact.object[:2] / (artifact.object + Path(artifact.file).suffix)
        assert os.stat(target / artifact.file).st_ino == os.stat(obj).st_ino
    assert (target / MANIFEST_NAME).read_bytes() == (source / MANIFEST_NAME).read_bytes()
    assert json.loads((target / "_metrics.json").read_text()) == {"loss": [0.5, 0.25]}
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [MANIFEST_NAME, "_metrics.json", "df.parquet", "meta.pkl", "job.log", "user.pkl"]
    )
    restored = store.read_manifest(target)
    pd.testing.assert_frame_equal(store.read_value(target, restored["df"]), _frame())

    assert store.restore_run("run1", target) is True  # over itself: idempotent, no temp files
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [MANIFEST_NAME, "_metrics.json", "df.parquet", "meta.pkl", "job.log", "user.pkl"]
    )


def test_restore_run_refuses_missing_or_damaged_objects(store: Store, tmp_path: Path) -> None:
    artifacts = _recorded_node(store, tmp_path / "a", "run1")
    assert store.restore_run("unknown", tmp_path / "x") is False
    assert not (tmp_path / "x").exists()

    obj = store.objects_dir / artifacts["meta"].object[:2] / f"{artifacts['meta'].object}.pkl"
    saved = obj.read_bytes()
    obj.unlink()
    assert store.restore_run("run1", tmp_path / "b") is False
    assert not (tmp_path / "b").exists()

    obj.write_bytes(saved[:-1] + b"X")  # present but not what its name says
    assert store.restore_run("run1", tmp_path / "c") is False

    store.runs_dir.joinpath("broken.json").write_text("{")
    assert store.restore_run("broken", tmp_path / "d") is False


def test_record_run_reingests_objects_removed_meanwhile(store: Store, tmp_path: Path) -> None:
    node = tmp_path / "a"
    artifacts = _node_with_outputs(store, node)
    for obj in _objects(store):
        obj.unlink()
    store.record_run("run1", node)
    assert len(_objects(store)) == len(artifacts)
    assert store.restore_run("run1", tmp_path / "b") is True


def test_record_run_refuses_a_changed_artifact(store: Store, tmp_path: Path) -> None:
    node = tmp_path / "a"
    _node_with_outputs(store, node)
    for obj in _objects(store):
        obj.unlink()
    (node / "meta.pkl").unlink()
    (node / "meta.pkl").write_bytes(b"not the recorded pickle")
    with pytest.raises(TamperedArtifactError):
        store.record_run("run1", node)


def test_clear_node_removes_recorded_files_only(store: Store, tmp_path: Path) -> None:
    node = tmp_path / "n"
    _recorded_node(store, node, "run1")
    (node / MANIFEST_NAME).unlink()  # Snakemake deletes the declared output first
    (node / "job.log").write_text("keep me")
    (node / "user.pkl").write_bytes(b"a user's file that merely looks generated")
    (node / "_notes.json").write_text("{}")
    (node / "sub").mkdir()
    store.clear_node(node, "run1")
    assert sorted(p.name for p in node.iterdir()) == ["_notes.json", "job.log", "sub", "user.pkl"]
    store.clear_node(tmp_path / "never-created")


def test_clear_node_without_a_record_removes_what_the_manifest_lists(store: Store, tmp_path: Path) -> None:
    node = tmp_path / "n"
    _node_with_outputs(store, node)
    (node / "user.parquet").write_bytes(b"not ours")
    store.clear_node(node)
    assert sorted(p.name for p in node.iterdir()) == ["user.parquet"]


# -- gc ------------------------------------------------------------------------------------------


def test_gc_removes_unreferenced_objects_and_dry_run_only_reports(store: Store, tmp_path: Path) -> None:
    results = tmp_path / "results"
    kept = _node_with_outputs(store, results / "kept")
    orphan = store.write_value(tmp_path / "scratch" / "o", "orphan", list(range(1000)))
    (tmp_path / "scratch" / "o" / "orphan.pkl").unlink()  # so removing the object frees its bytes
    _recorded_node(store, tmp_path / "scratch" / "r", "old-run")
    recorded_only = store.write_value(tmp_path / "scratch" / "r2", "only", {"x": "y"})
    store.write_manifest(tmp_path / "scratch" / "r2", {"only": recorded_only})
    store.record_run("kept-run", tmp_path / "scratch" / "r2")

    before = _objects(store)
    preview, preview_bytes = collect_store_garbage(store, {"kept-run"}, results, dry_run=True)
    assert _objects(store) == before
    removed, freed = collect_store_garbage(store, {"kept-run"}, results, dry_run=False)
    assert removed == preview and freed == preview_bytes

    orphan_obj = store.objects_dir / orphan.object[:2] / f"{orphan.object}.pkl"
    assert orphan_obj in removed and not orphan_obj.exists()
    assert store.runs_dir / "old-run.json" in removed
    assert (store.runs_dir / "kept-run.json").exists()
    assert freed >= orphan.size
    remaining = {p.stem for p in _objects(store)}
    assert {a.object for a in kept.values()} | {recorded_only.object} <= remaining
    assert orphan.object not in remaining
    assert verify_artifacts(store, results) == []
    assert collect_store_garbage(store, {"kept-run"}, results, dry_run=False) == ([], 0)


def test_gc_removes_the_read_records_of_the_run_records_it_removes(store: Store, tmp_path: Path) -> None:
    from expops_smk.store.read_records import run_record_path, write_run_reads

    _recorded_node(store, tmp_path / "scratch" / "r", "old-run")
    _recorded_node(store, tmp_path / "scratch" / "k", "kept-run")
    for key in ("old-run", "kept-run"):
        write_run_reads(store.project, key, {"data/a.csv": [1, 2, "digest"]})
    removed, _ = collect_store_garbage(store, {"kept-run"}, tmp_path / "results", dry_run=False)
    assert run_record_path(store.project, "old-run") in removed
    assert not run_record_path(store.project, "old-run").exists()
    assert run_record_path(store.project, "kept-run").is_file()


def test_gc_keeps_all_run_records_when_none_given(store: Store, tmp_path: Path) -> None:
    artifacts = _recorded_node(store, tmp_path / "scratch", "run1")
    removed, _ = collect_store_garbage(store, None, tmp_path / "results", dry_run=False)
    assert removed == []
    assert store.restore_run("run1", tmp_path / "back") is True
    assert set(store.read_manifest(tmp_path / "back")) == set(artifacts)


def test_gc_removes_only_stale_temp_files(store: Store, tmp_path: Path) -> None:
    store.tmp_dir.mkdir(parents=True)
    stale, fresh = store.tmp_dir / ".tmp-1-dead", store.tmp_dir / ".tmp-2-live"
    stale.write_bytes(b"x" * 10)
    fresh.write_bytes(b"y")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    assert collect_store_garbage(store, None, tmp_path / "results", dry_run=False) == ([stale], 10)
    assert fresh.exists()


def test_gc_refuses_to_guess_when_a_manifest_is_unreadable(store: Store, tmp_path: Path) -> None:
    results = tmp_path / "results"
    store.write_value(tmp_path / "scratch", "v", 1)
    (results / "bad").mkdir(parents=True)
    (results / "bad" / MANIFEST_NAME).write_text("[")
    with pytest.raises(ExpopsError, match="not a valid manifest"):
        collect_store_garbage(store, None, results, dry_run=False)
    assert len(_objects(store)) == 1
