"""End to end: growing-data splits (issue #19) make new data cost only its own work.

Each test runs a small project cold, then grows or edits its data and counts the user functions
that executed (``calls.log``): only the chains of new or changed partitions, plus the
aggregations above them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e import CALLS_HELPER, Project
from expops_smk import load_all
from expops_smk.runtime.datums import key_number
from projects import ROWS_CONFIG, csv_rows, write_project

pytestmark = pytest.mark.e2e

ROWS_MAIN = CALLS_HELPER + '''
import csv


def load():
    called("load")
    with open("data/raw.csv", newline="") as handle:
        return {"data": [(int(row["id"]), float(row["x"])) for row in csv.DictReader(handle)]}


def train(data):
    called(f"train {data[0][0]}")
    return {"score": sum(x for _, x in data)}


def agg(score):
    called("agg")
    return {"total": sum(score.values()), "branches": sorted(score)}
'''


@pytest.fixture
def rows_project(tmp_path: Path) -> Project:
    root = write_project(tmp_path / "rows", ROWS_CONFIG, ROWS_MAIN, script_path="src/main.py",
                         files={"data/raw.csv": "id,x\n" + csv_rows(1, 99, ".5")})
    project = Project(root)
    cold = project.run()
    assert sorted(cold.calls) == sorted(["load", "agg", *(f"train {10 * k + 1}" for k in range(10))])
    return project


def test_appending_rows_runs_only_the_last_and_new_chunks(rows_project: Project) -> None:
    project = rows_project
    project.append("data/raw.csv", csv_rows(100, 100, ".5"))  # ~1%: completes chunk 10
    dry = project.dry_run()  # previews the jobs up to the split; the rest is decided after it ran
    assert "checkpoint jobs" in dry.output and dry.calls == []
    grown = project.snakemake()
    assert sorted(grown.calls) == ["agg", "load", "train 91"]
    project.append("data/raw.csv", csv_rows(101, 102, ".5"))  # opens chunk 11
    added = project.snakemake()
    assert sorted(added.calls) == ["agg", "load", "train 101"]
    assert [p["label"] for p in project.partitions("split")][-2:] == ["rows 90-99", "rows 100-101"]
    assert project.value("agg", "total") == sum(i + 0.5 for i in range(1, 103))
    assert project.value("agg", "branches") == sorted(f"data{k}" for k in range(1, 12))
    assert len(load_all(project.root, "train")) == 11  # results/ readers see the partitions that exist
    assert project.snakemake().nothing_to_do


FILES_CONFIG = """\
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      images embed
      embed seeds
      seeds score
      score summary
    processes:
      - {name: images, data_parallelism: {files: "data/images/*.txt", data_name: path}}
      - name: embed
      - {name: seeds, seed_parallelism: {seeds: [1, 2]}}
      - name: score
      - {name: summary, data_aggregation: true, seed_aggregation: true}
"""

FILES_MAIN = CALLS_HELPER + '''
def embed(path):
    called(f"embed {path}")
    with open(path, encoding="utf-8") as handle:
        return {"length": len(handle.read())}


def score(length, random_seed):
    called(f"score {length} {random_seed}")
    return {"score": length * random_seed}


def summary(score):
    called("summary")
    return {"total": sum(v for branch in score.values() for v in branch.values()), "count": len(score)}
'''


def test_files_mode_runs_one_chain_per_added_changed_or_removed_file(tmp_path: Path) -> None:
    files = {f"data/images/img{index:02d}.txt": "x" * index for index in range(1, 21)}
    project = Project(write_project(tmp_path / "files", FILES_CONFIG, FILES_MAIN, script_path="src/main.py",
                                    files=files))
    cold = project.run()
    assert len(cold.calls_to("embed")) == 20 and "summary" in cold.calls
    assert len(project.partitions("images")) == 20

    (project.root / "data/images/img21.txt").write_text("y" * 21, encoding="utf-8")
    (project.root / "data/images/img03.txt").write_text("w" * 3, encoding="utf-8")
    status = project.status()
    assert ("images (files=data/images/*.txt): next run: 1 new (data/images/img21.txt); "
            f"1 changed (p{key_number('data/images/img03.txt')} data/images/img03.txt); 19 unchanged") in status
    (project.root / "data/images/img03.txt").write_text("x" * 3, encoding="utf-8")  # back: unchanged
    added = project.snakemake()
    assert sorted(added.calls) == ["embed data/images/img21.txt", "score 21 1", "score 21 2", "summary"]

    (project.root / "data/images/img05.txt").write_text("z" * 50, encoding="utf-8")
    changed = project.snakemake()
    assert sorted(changed.calls) == ["embed data/images/img05.txt", "score 50 1", "score 50 2", "summary"]

    (project.root / "data/images/img07.txt").unlink()
    removed = project.snakemake()
    assert removed.calls == ["summary"]
    status = project.status()
    assert "next run: 20 unchanged" in status
    assert project.value("summary", "count") == 20
    labels = [p["label"] for p in project.partitions("images")]
    assert "data/images/img07.txt" not in labels and "data/images/img21.txt" in labels and len(labels) == 20
    assert project.snakemake().nothing_to_do


BY_CONFIG = """\
scripts: {main: src/main.py}
data: {path: data/sales.csv}
experiment:
  pipeline:
    process_adjlist: |
      load split
      split seeds
      seeds fit
      fit report
    processes:
      - name: load
      - {name: split, data_parallelism: {by: shop}}
      - {name: seeds, seed_parallelism: {seeds: [1, 2]}}
      - name: fit
      - {name: report, data_aggregation: true, seed_aggregation: true}
"""

BY_MAIN = CALLS_HELPER + '''
import pandas as pd


def load():
    called("load")
    return {"data": pd.read_csv("data/sales.csv")}


def fit(data, random_seed):
    called(f"fit {data['shop'].iloc[0]} {random_seed}")
    return {"sold": int(data["sold"].sum()) * random_seed}


def report(sold):
    called("report")
    return {"total": sum(v for branch in sold.values() for v in branch.values())}
'''

SALES = "shop,sold\nnorth,1\nsouth,2\neast,3\nnorth,4\nwest,5\n"


def test_by_mode_runs_only_the_chain_of_the_key_that_got_a_row(tmp_path: Path) -> None:
    project = Project(write_project(tmp_path / "by", BY_CONFIG, BY_MAIN, script_path="src/main.py",
                                    files={"data/sales.csv": SALES}))
    cold = project.run()
    assert len(cold.calls_to("fit")) == 8
    # A key's id derives from the key alone; the label shows the key.
    ids = {p["label"]: p["id"] for p in project.partitions("split")}
    assert ids == {f"shop={key}": f"p{key_number(key)}" for key in ("east", "north", "south", "west")}
    project.append("data/sales.csv", "south,10\n")
    grown = project.snakemake()
    assert sorted(grown.calls) == ["fit south 1", "fit south 2", "load", "report"]
    status = project.status()
    assert "split (by=shop): next run: 4 unchanged" in status  # its input, cut and digested, is what it recorded
    project.append("data/sales.csv", "central,7\n")  # sorts first: the existing keys keep their ids all the same
    status = project.status()
    assert (f"split (by=shop): last run: 1 changed (p{key_number('south')} shop=south); 3 unchanged; cannot predict "
            "the next run: upstream load will run first; its outputs decide the partitions") in status
    added = project.snakemake()
    assert sorted(added.calls) == ["fit central 1", "fit central 2", "load", "report"]
    assert {p["label"]: p["id"] for p in project.partitions("split")} == {**ids, "shop=central": f"p{key_number('central')}"}
    assert project.value("report", "total") == 3 * (1 + 2 + 3 + 4 + 5 + 10 + 7)

    project.edit("configs/project_config.yaml", "by: shop", "by: store")
    failed = project.snakemake(check=False)
    assert failed.returncode != 0
    assert "node 'split': data_parallelism.by: column 'store' is not in the data (columns: shop, sold)" in failed.output
