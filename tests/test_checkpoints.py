"""Data splits as checkpoints (codegen/checkpoints.py), their markers, and how tables are read back."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expops_smk.codegen.checkpoint_markers import forget_markers
from expops_smk.codegen.checkpoints import ancient, fanout_ancestors, is_checkpoint
from expops_smk.codegen.prepare import generate_project
from expops_smk.config.project import load_project
from expops_smk.graph.expansion import build_graph
from expops_smk.layout import CHECKPOINT_MARKERS_DIR
from expops_smk.store.table_reading import read_table
from test_codegen import make, rules_of


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = make(tmp_path / "project")
    generate_project(root)
    return root


def test_only_data_splits_are_checkpoints(project: Path) -> None:
    graph = build_graph(load_project(project))
    assert [name for name, layout in graph.layouts.items() if is_checkpoint(layout)] == ["split"]
    text = (project / "workflow/rules/processes.smk").read_text()
    assert "\ncheckpoint split:" in text and "\nrule seeds:" in text and "checkpoint seeds" not in text
    rules = rules_of(project)
    assert 'ran=".expops/checkpoints/split.ran"' in rules["split"]
    assert "&& touch {output.ran:q}'" in rules["split"]
    assert "touch" not in rules["seeds"] and "ran=" not in rules["train_model"]


def test_every_rule_below_a_split_reads_one_of_its_manifests_as_an_ancient_input(project: Path) -> None:
    graph = build_graph(load_project(project))
    assert fanout_ancestors(graph.project, graph, "seeds") == []  # a direct parent already
    assert fanout_ancestors(graph.project, graph, "train-model") == ["split"]
    assert fanout_ancestors(graph.project, graph, "agg") == ["split"]
    rules = rules_of(project)
    assert 'ancient("results/split/p1/_outputs.json"),' in rules["train_model"]
    assert 'ancient("results/split/p1/_outputs.json"),' in rules["agg"]  # one manifest: the edge is what counts
    assert "ancient" not in rules["seeds"] and "ancient" not in rules["load"]


def test_ancient_goes_inside_an_input_function() -> None:
    assert ancient('"a"') == 'ancient("a")'
    assert ancient('lambda wildcards: expand("x/{p}", p=1)') == 'lambda wildcards: ancient(expand("x/{p}", p=1))'


def write_markers(root: Path) -> Path:
    folder = root / CHECKPOINT_MARKERS_DIR
    (folder / "inner").mkdir(parents=True)
    (folder / "outer.ran").touch()
    (folder / "inner" / "p1.ran").touch()
    return folder


def test_forget_markers_deletes_them_and_their_folders(tmp_path: Path) -> None:
    folder = write_markers(tmp_path)
    forget_markers(tmp_path)
    assert not folder.exists()
    forget_markers(tmp_path)  # nothing there: nothing to do


def test_forget_markers_keeps_other_files_and_never_follows_a_symlink(tmp_path: Path) -> None:
    folder = write_markers(tmp_path)
    (folder / "notes.txt").write_text("mine")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.ran").touch()
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    (folder / "link.ran").symlink_to(outside / "x.ran")
    forget_markers(tmp_path)
    assert (folder / "notes.txt").read_text() == "mine" and (outside / "x.ran").exists()
    assert not (folder / "outer.ran").exists() and not (folder / "inner").exists()


def test_forget_markers_leaves_a_running_invocations_markers(tmp_path: Path) -> None:
    folder = write_markers(tmp_path)
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").touch()
    forget_markers(tmp_path)
    assert (folder / "outer.ran").exists()
    os.remove(locks / "0.output.lock")
    forget_markers(tmp_path)
    assert not folder.exists()


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(0, 300), groups=st.integers(1, 4), with_nan=st.booleans())
def test_read_table_gives_back_the_written_frame_and_table(tmp_path_factory: pytest.TempPathFactory,
                                                           rows: int, groups: int, with_nan: bool) -> None:
    rng = np.random.default_rng(rows)
    frame = pd.DataFrame({"a": rng.standard_normal(rows), "b": np.arange(rows, dtype=np.int64),
                          "c": rng.integers(0, 9, rows).astype("int32")})
    if with_nan and rows:
        frame.loc[0, "a"] = np.nan
    path = tmp_path_factory.mktemp("tables") / "t.parquet"
    table = pa.Table.from_pandas(frame, preserve_index=None)
    pq.write_table(table, path, row_group_size=max(1, rows // groups))
    with open(path, "rb") as handle:
        pd.testing.assert_frame_equal(read_table(handle, as_frame=True), frame)
    with open(path, "rb") as handle:
        assert read_table(handle, as_frame=False).equals(table)
