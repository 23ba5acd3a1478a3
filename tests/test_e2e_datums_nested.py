"""End to end: growing-data splits nested in other fan-outs (issue #19, "works with seeds, nesting").

Each branch of the fan-outs around a growing split is its own checkpoint job with its own
``_partitions.json``; the aggregation above the growing layer enumerates the partitions of its
branch. The tests grow the data of one branch and count the user functions that executed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from e2e import CALLS_HELPER, EXPOPS_SMK, Project
from expops_smk import load_all, metrics
from expops_smk.runtime.datums import key_number
from expops_smk.runtime.splitting import stable_bucket
from projects import BUCKET_ONE, BUCKET_TWO, BUCKETS_CONFIG, BUCKETS_MAIN, bucket_rows, write_project

pytestmark = pytest.mark.e2e

def test_growing_one_outer_branch_runs_only_its_new_chunks(tmp_path: Path) -> None:
    assert (stable_bucket(BUCKET_ONE, 2), stable_bucket(BUCKET_TWO, 2)) == (1, 2)
    root = write_project(tmp_path / "grown", BUCKETS_CONFIG, BUCKETS_MAIN, script_path="src/main.py",
                         files={"data/raw.csv": "id,g,x\n" + bucket_rows(1, 20)})
    project = Project(root)
    cold = project.run()
    # Chunks of 3: bucket 1 has ids 1 3 4 | 6 8 9 | 11 13 14 | 16 18 19, bucket 2 2 5 7 | 10 12 15 | 17 20.
    assert cold.calls_to("work") == sorted(f"work {i}" for i in (1, 6, 11, 16, 2, 10, 17))
    assert [p["id"] for p in project.partitions("split/p1")] == ["p1", "p2", "p3", "p4"]

    project.append("data/raw.csv", bucket_rows(21, 21))  # bucket 1 only: opens its chunk 5
    status = project.status()
    assert ("split P1 (rows_per_partition=3): last run: 4 new (p1 rows 0-2, p2 rows 3-5, p3 rows 6-8, p4 rows 9-11); "
            "cannot predict the next run: upstream part will run first") in status
    dry = project.dry_run()
    assert "checkpoint jobs" in dry.output and dry.calls == []
    grown = project.snakemake()
    assert sorted(grown.calls) == ["agg", "load", "total", "work 21"]
    # bucket 1: 23 24 join chunk 5; bucket 2: 22 completes chunk 3, 25 opens 4
    project.append("data/raw.csv", bucket_rows(22, 25))
    grown = project.snakemake()
    assert sorted(grown.calls) == ["agg", "agg", "load", "total", "work 17", "work 21", "work 25"]
    assert [p["label"] for p in project.partitions("split/p1")][-1] == "rows 12-14"
    assert len(project.partitions("split/p1")) == 5 and len(project.partitions("split/p2")) == 4
    assert project.value("agg", "branches", "p1") == [f"data{k}" for k in range(1, 6)]
    assert project.value("total", "all") == sum(range(1, 26))
    assert sorted(load_all(root, "work")) == sorted(
        [((1, k), ()) for k in range(1, 6)] + [((2, k), ()) for k in range(1, 5)])
    assert "work P1-P5" in set(metrics(root)["label"]) and "p1-p5" in project.command(
        [EXPOPS_SMK, "graph", ".", "--format", "json"]).stdout
    assert project.snakemake().nothing_to_do
    status = project.status()
    assert "split P1 (rows_per_partition=3): next run: 5 unchanged" in status
    assert "split P2 (rows_per_partition=3): next run: 4 unchanged" in status

    # The same data run fresh: the same ids, hence the same seeds and the same results.
    fresh_root = tmp_path / "fresh"
    shutil.copytree(root, fresh_root, ignore=shutil.ignore_patterns("results", ".expops", ".snakemake", "logs",
                                                                     "calls.log", "workflow"))
    fresh = Project(fresh_root)
    fresh.run()
    assert fresh.digests() == project.digests()

    cleaned = project.command([EXPOPS_SMK, "clean", "."])
    assert cleaned.returncode == 0 and not list((root / "results").rglob("_partitions.json"))


SEEDS_CONFIG = """\
scripts: {main: src/main.py}
data: {path: data/sales.csv}
experiment:
  pipeline:
    process_adjlist: |
      load seeds
      seeds pick
      pick fit
      fit note
      fit shops
      shops report
    processes:
      - name: load
      - {name: seeds, seed_parallelism: {seeds: [1, 2]}}
      - {name: pick, code: main.pick, data_parallelism: {by: shop}}
      - name: fit
      - name: note
      - {name: shops, data_aggregation: true}
      - {name: report, seed_aggregation: true}
"""

SEEDS_MAIN = CALLS_HELPER + '''
import pandas as pd


def load():
    called("load")
    return {"data": pd.read_csv("data/sales.csv")}


def pick(data, random_seed):
    """Seed 1 looks at the northern shops only: its branch has fewer partitions."""
    called(f"pick {random_seed}")
    return {"data": data[data["shop"].str.startswith("n")] if random_seed == 1 else data}


def fit(data, random_seed):
    called(f"fit {data['shop'].iloc[0]} {random_seed}")
    return {"sold": int(data["sold"].sum()) * random_seed}


def note(sold):
    called("note")
    return {"line": f"sold {sold}"}


def shops(sold):
    called("shops")
    return {"count": len(sold), "total": sum(sold.values())}


def report(count, total):
    called("report")
    return {"counts": dict(sorted(count.items())), "total": sum(total.values())}
'''

SALES = "shop,sold\nnorth,1\nsouth,2\nnortheast,3\neast,4\n"


def test_by_split_inside_a_seed_fan_out_has_partitions_per_seed(tmp_path: Path) -> None:
    project = Project(write_project(tmp_path / "seeds", SEEDS_CONFIG, SEEDS_MAIN, script_path="src/main.py",
                                    files={"data/sales.csv": SALES}))
    cold = project.run()
    assert cold.calls_to("fit") == sorted(
        ["fit north 1", "fit northeast 1", "fit north 2", "fit northeast 2", "fit south 2", "fit east 2"])
    assert cold.calls.count("note") == 6  # a final process inside the growing layer: `rule all` lists its nodes
    assert project.value("report", "counts") == {"seed1": 2, "seed2": 4}
    ids = {p["label"]: p["id"] for p in project.partitions("pick/s2")}
    assert ids == {f"shop={key}": f"p{key_number(key)}" for key in ("east", "north", "northeast", "south")}
    assert project.node_dir("fit", f"p{key_number('east')}", "2").is_dir()
    # People see the key: in the graph's partition headers and in the report's nodes table.
    east = key_number("east")
    assert f"\nP{east} shop=east\n  S2\n    fit P{east} S2\n" in project.command([EXPOPS_SMK, "graph", "."]).stdout
    from expops_smk.results.report import build_report
    assert f"<td>fit P{east} S2 shop=east</td>" in build_report(project.root).html

    project.append("data/sales.csv", "east,10\n")  # only seed 2's branch has the shop east
    grown = project.snakemake()
    assert sorted(grown.calls) == ["fit east 2", "load", "note", "pick 1", "pick 2", "report", "shops"]
    assert project.value("report", "total") == (1 + 3) + 2 * (1 + 2 + 3 + 4 + 10)
    status = project.status()
    assert (f"pick S2 (by=shop): last run: 1 changed (p{key_number('east')} shop=east); 3 unchanged; cannot predict "
            "the next run: its code: function pick() makes what it cuts, when the split runs") in status
    assert "pick S1 (by=shop): last run: 2 unchanged" in status
    assert project.snakemake().nothing_to_do


SOURCE_CONFIG = """\
scripts: {main: src/main.py}
data: {path: data/raw.csv}
experiment:
  pipeline:
    process_adjlist: |
      split work
      work agg
    processes:
      - {name: split, data_parallelism: %s}
      - name: work
      - {name: agg, data_aggregation: true}
"""

SOURCE_MAIN = CALLS_HELPER + '''
def work(data):
    called(f"work {data['id'].iloc[0]}")
    return {"n": int(data["id"].sum())}


def agg(n):
    called("agg")
    return {"total": sum(n.values())}
'''


@pytest.mark.parametrize("mode", ["rows", "by"])
def test_a_source_split_cuts_the_data_file_and_status_predicts_its_next_run(tmp_path: Path, mode: str) -> None:
    """Without code, a source split cuts data.path; status cuts the current file the same way."""
    split = "{rows_per_partition: 2}" if mode == "rows" else "{by: shop}"
    project = Project(write_project(tmp_path / "source", SOURCE_CONFIG % split, SOURCE_MAIN,
                                    script_path="src/main.py", files={"data/raw.csv": "id,shop\n1,a\n2,b\n3,a\n"}))
    assert sorted(project.run().calls) == (["agg", "work 1", "work 3"] if mode == "rows" else ["agg", "work 1", "work 2"])
    project.append("data/raw.csv", "4,b\n5,c\n")
    status = project.status()
    if mode == "rows":
        assert "split (rows_per_partition=2): next run: 1 new (p3 rows 4-4); 1 changed (p2 rows 2-3); 1 unchanged" in status
    else:
        assert (f"split (by=shop): next run: 1 new (p{key_number('c')} shop=c); "
                f"1 changed (p{key_number('b')} shop=b); 1 unchanged") in status
    assert sorted(project.snakemake().calls) == (["agg", "work 3", "work 5"] if mode == "rows"
                                                 else ["agg", "work 2", "work 5"])
    assert project.value("agg", "total") == 15
    assert "next run: 3 unchanged" in project.status()
