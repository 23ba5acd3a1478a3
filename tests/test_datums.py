"""Growing-data splits without Snakemake: cutting, numbering, config errors, generated rules."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expops_smk.codegen.prepare import generate_project
from expops_smk.config.project import load_project
from expops_smk.errors import ConfigError
from expops_smk.graph.expansion import Graph, build_graph
from expops_smk.graph.nodes import Node
from expops_smk.graph.partitions import Partition, partitions_file, partitions_json
from expops_smk.runtime.datums import KEY_NUMBERS, GrowingSplit, key_number
from expops_smk.runtime.splitting import (SplitError, chunk_bounds, empty_partitions, row_count, split_buckets, split_by,
                                          split_chunks, stable_bucket)
from projects import functions, pipeline, write_project


# -- cutting -------------------------------------------------------------------------------------
@given(st.integers(0, 500), st.integers(1, 60))
def test_chunks_cover_every_row_once_in_order(total: int, per: int) -> None:
    bounds = chunk_bounds(total, per)
    assert [row for a, b in bounds for row in range(a, b)] == list(range(total))
    assert all(b - a == per for a, b in bounds[:-1]) and all(0 < b - a <= per for a, b in bounds)


@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 40))
def test_appending_rows_changes_only_the_last_chunk_and_adds_new_ones(total: int, added: int, per: int) -> None:
    rows = list(range(total + added))
    before, after = split_chunks(rows[:total], per), split_chunks(rows, per)
    unchanged = total // per  # full chunks before the append
    assert after[:unchanged] == before[:unchanged]
    assert len(after) >= len(before)


@given(st.lists(st.sampled_from(["a", "b", "c", "d/e", "ü", ""]), max_size=60), st.integers(1, 7))
def test_by_puts_each_row_in_exactly_one_partition_and_growth_never_moves_a_row(keys: list[str], buckets: int) -> None:
    rows = [{"k": key, "i": index} for index, key in enumerate(keys)]
    for mode in (None, buckets):
        groups = split_by(rows, "k", mode)
        assert sorted(row["i"] for part in groups.values() for row in part) == list(range(len(rows)))
        for name, part in groups.items():  # row order kept, and one key (bucket) per group
            assert [row["i"] for row in part] == sorted(row["i"] for row in part)
            assert {row["k"] if mode is None else str(stable_bucket(row["k"], mode)) for row in part} == {name}
        grown = split_by(rows + [{"k": "a", "i": len(rows)}], "k", mode)
        assert all(grown[name][: len(part)] == part for name, part in groups.items())


def test_buckets_are_stable_and_typed() -> None:
    # Fixed values: a change of hash would move every row of every project to another bucket.
    assert [stable_bucket(key, 10) for key in ("a", "b", 3)] == [stable_bucket(k, 10) for k in ("a", "b", 3)]
    assert stable_bucket(3, 7) == stable_bucket(pd.Series([3]).iloc[0], 7)
    frame = pd.DataFrame({"k": ["x", "y", "x", "z"], "v": [1, 2, 3, 4]})
    parts = split_buckets(frame, "k", 3)
    assert len(parts) == 3 and sorted(v for part in parts for v in part["v"]) == [1, 2, 3, 4]


def test_missing_by_column_is_one_line() -> None:
    with pytest.raises(SplitError, match="column 'key' is not in the data \\(columns: k, v\\)"):
        split_by(pd.DataFrame({"k": [1], "v": [2]}), "key")
    with pytest.raises(SplitError, match="row 1 has no column 'k'"):
        split_by([{"k": 1}, {"j": 2}], "k")


@given(st.lists(st.text(min_size=1, max_size=20), unique=True, max_size=30))
@settings(max_examples=60)
def test_a_key_number_depends_on_the_key_alone(keys: list[str]) -> None:
    """A key's partition id is the same whatever other keys exist and in whatever order they came:
    a fresh run and a grown one give every node the same id (and so the same seeds)."""
    numbers = [key_number(key) for key in keys]
    assert numbers == [key_number(key) for key in keys] and all(1 <= n <= KEY_NUMBERS for n in numbers)
    assert len(set(numbers)) == len(numbers)  # one in 10^12 per pair: never seen here
    assert key_number("east") == key_number("east") != key_number("East")


# -- config ----------------------------------------------------------------------------------------
def growing(split: dict[str, Any], root: Path, **files: str) -> Path:
    config = pipeline([{"name": "split", "data_parallelism": split},
                       {"name": "train", "depends_on": ["split"]},
                       {"name": "agg", "depends_on": ["train"], "data_aggregation": True}])
    return write_project(root, config, functions(["split", "train", "agg"]), files=files)


@pytest.mark.parametrize("split, field, message", [
    ({"size": 3, "rows_per_partition": 2}, "data_parallelism.rows_per_partition", "cannot be combined with 'size'"),
    ({"rows_per_partition": 0}, "data_parallelism.rows_per_partition", "positive integer"),
    ({"by": ""}, "data_parallelism.by", "must be a column name"),
    ({"buckets": 3}, "data_parallelism.buckets", "needs 'by'"),
    ({"by": "k", "buckets": 0}, "data_parallelism.buckets", "positive integer"),
    ({"files": "data/*.png"}, "data_parallelism.files", "'data/*.png' matches no file"),
    ({"files": "../elsewhere"}, "data_parallelism.files", "inside the project"),
])
def test_bad_growing_split_is_one_error(tmp_path: Path, split: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_project(growing(split, tmp_path / "p"))
    assert caught.value.process == "split" and caught.value.field == field and message in str(caught.value)


@pytest.mark.parametrize("table", [
    pd.DataFrame({"x": range(5)}), pa.table({"x": list(range(5))}), np.arange(10).reshape(5, 2), list(range(5)),
], ids=["pandas", "pyarrow", "numpy", "list"])
def test_chunk_labels_and_empty_partitions_count_rows_of_every_table_kind(tmp_path: Path, table: Any) -> None:
    """One ``row_count`` serves the chunk labels (rows a-b) and the empty-partition check: a table
    kind counted wrongly (columns for rows) would mislabel chunks or miss an empty one."""
    root = growing({"rows_per_partition": 2, "data_name": "data"}, tmp_path / "p")
    cuts = GrowingSplit(root, load_project(root), Node("split"))
    assert [len(part["data"]) for part in cuts.cut({"data": table})] == [2, 2, 1]
    assert [cut.label for cut in cuts.cuts] == ["rows 0-1", "rows 2-3", "rows 4-4"]
    assert row_count(table) == 5
    assert empty_partitions([table[:0], table, table[:0]]) == [1, 3]


# -- the layer, from _partitions.json --------------------------------------------------------------
def test_graph_fills_the_layer_from_the_recorded_partitions(tmp_path: Path) -> None:
    root = growing({"by": "k"}, tmp_path / "p")
    project = load_project(root)
    assert [n.label for n in build_graph(project).nodes()] == ["split", "agg"]  # before the split ran
    listing = root / partitions_file(Node("split"))
    listing.parent.mkdir(parents=True)
    listing.write_text(json.dumps(partitions_json("split", "by", [Partition(2, "k=a", "a", "d"),
                                                                  Partition(5, "k=b", "b", "e")])))
    assert [n.label for n in build_graph(project).nodes()] == ["split", "train P2", "train P5", "agg"]
    bounded = replace(project, execution=replace(project.execution, max_nodes=3))
    with pytest.raises(ConfigError, match="expand the project to 4 nodes"):  # what the split job checks
        Graph(bounded, {"split": (1, 2)})


def test_generated_rules_enumerate_the_partitions_after_the_checkpoint(tmp_path: Path) -> None:
    root = growing({"files": "data/img", "data_name": "path"}, tmp_path / "p", **{"data/img/a.txt": "a"})
    generate_project(root)
    rules = (root / "workflow/rules/processes.smk").read_text()
    assert 'output:\n        "results/split/_partitions.json",' in rules
    assert "files=datum_files('data/img', 'split')," in rules
    assert ('train=lambda wildcards: expand("results/train/p{d1}/_outputs.json", '
            "d1=partition_numbers(checkpoints.split.get().output[0]))") in rules
    assert "'# fanout: data_name=path files=data/img\\n'" in rules


def test_buckets_are_a_fixed_layer(tmp_path: Path) -> None:
    root = growing({"by": "shop", "buckets": 4}, tmp_path / "p")
    assert [n.label for n in build_graph(load_project(root)).nodes()][1:5] == [f"train P{k}" for k in range(1, 5)]
    generate_project(root)
    rules = (root / "workflow/rules/processes.smk").read_text()
    assert 'expand("results/split/p{d1}/_outputs.json", d1=range(1, 5))' in rules
    assert "'# fanout: data_name=data by=shop buckets=4\\n'" in rules
