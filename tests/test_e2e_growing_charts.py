"""End to end: charts whose ``probe_paths`` select nodes inside growing-data splits (issue #19).

A chart's nodes there exist only once the split ran. Each chart function appends one line to
``calls.log`` (chart name and the ``metrics`` it got), so the tests see exactly when a chart was
drawn and over which nodes: once when a probed node's outputs changed or a probed partition
appeared or went, never when nothing it draws changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e import CALLS_HELPER, Project
from expops_smk.runtime.datums import key_number
from projects import (BUCKET_ONE, BUCKET_TWO, BUCKETS_CONFIG, ROWS_CONFIG, bucket_rows, csv_rows, with_charts,
                      write_project)

pytestmark = pytest.mark.e2e

CHARTED_ROWS_CONFIG = with_charts(ROWS_CONFIG, """\
      - name: trains
        code: reporting.trains
        probe_paths: {all: "//*[@name='train']"}
      - name: third
        code: reporting.third
        probe_paths: {chunk: "//*[@partition='p3']/*[@name='train']"}
      - name: total
        code: reporting.total
        probe_paths: {agg: "//*[@name='agg']"}
""")

ROWS_MAIN = CALLS_HELPER + '''
import csv

from expops.core import log_metric


def load():
    called("load")
    with open("data/raw.csv", newline="") as handle:
        return {"data": [(int(row["id"]), float(row["x"])) for row in csv.DictReader(handle)]}


def train(data):
    called(f"train {data[0][0]}")
    log_metric("score", sum(x for _, x in data))
    return {"score": sum(x for _, x in data)}


def agg(score):
    called("agg")
    log_metric("total", sum(score.values()))
    return {"total": sum(score.values())}
'''

CHART_HOOK = '''
import json


def _drawn(ctx, metrics, probes):
    """Test hook: one line per chart drawn, with what it drew (calls.log in the project folder):
    the metrics of the probed nodes (keys //...) and of the probes named in ``probes``."""
    numbers = {key: values[metric]["1"] for key, values in metrics.items() if key.startswith("//")
               or key in probes for metric in values}
    with open(ctx.project_dir / "calls.log", "a", encoding="utf-8") as handle:
        handle.write(f"chart {ctx.chart_name} {json.dumps(numbers, sort_keys=True)}\\n")
'''


def drawing(*charts: str, probes: tuple[str, ...] = ()) -> str:
    """A chart script whose chart functions ``charts`` each record what they drew (``charts_drawn``)."""
    return CHART_HOOK + "".join(f"\n\ndef {name}(metrics, ctx):\n    _drawn(ctx, metrics, {probes!r})\n"
                                for name in charts)


CHARTS = drawing("trains", "third", "total", probes=("chunk", "agg"))


def train_id(partition: int) -> str:
    return f"//*[@partition='p{partition}']/process[@name='train']"


def chunk_sum(first: int, last: int) -> float:
    return float(sum(range(first, last + 1)))


def charts_drawn(calls: list[str]) -> dict[str, list[dict[str, float]]]:
    drawn: dict[str, list[dict[str, float]]] = {}
    for line in calls:
        if line.startswith("chart "):
            _, name, numbers = line.split(" ", 2)
            drawn.setdefault(name, []).append(json.loads(numbers))
    return drawn


def test_charts_inside_a_growing_split_draw_the_partitions_that_exist(tmp_path: Path) -> None:
    project = Project(write_project(tmp_path / "rows", CHARTED_ROWS_CONFIG, ROWS_MAIN, script_path="src/main.py",
                                    files={"src/charts.py": CHARTS, "data/raw.csv": "id,x\n" + csv_rows(1, 29)}))
    cold = project.run()
    chunks = {1: chunk_sum(1, 10), 2: chunk_sum(11, 20), 3: chunk_sum(21, 29)}
    assert charts_drawn(cold.calls) == {
        "trains": [{train_id(k): total for k, total in chunks.items()}],
        "third": [{"chunk": chunks[3]}],
        "total": [{"agg": chunk_sum(1, 29)}],
    }
    assert project.snakemake().nothing_to_do

    project.append("data/raw.csv", csv_rows(30, 30))  # completes chunk 3: every chart draws it again, once
    grown = project.snakemake()
    chunks[3] = chunk_sum(21, 30)
    assert sorted(c for c in grown.calls if not c.startswith("chart")) == ["agg", "load", "train 21"]
    assert charts_drawn(grown.calls) == {
        "trains": [{train_id(k): total for k, total in chunks.items()}],
        "third": [{"chunk": chunks[3]}],
        "total": [{"agg": chunk_sum(1, 30)}],
    }

    project.append("data/raw.csv", csv_rows(31, 32))  # opens chunk 4: it appears in 'trains'; chunk 3 is unchanged
    added = project.snakemake()
    chunks[4] = chunk_sum(31, 32)
    assert sorted(c for c in added.calls if not c.startswith("chart")) == ["agg", "load", "train 31"]
    assert charts_drawn(added.calls) == {
        "trains": [{train_id(k): total for k, total in chunks.items()}],
        "total": [{"agg": chunk_sum(1, 32)}],
    }
    assert project.snakemake().nothing_to_do

    # load's code changes, its output does not: the split runs again, no partition changed, no chart is drawn.
    project.edit("src/main.py", 'called("load")', 'called("lo" + "ad")')
    same = project.snakemake()
    assert same.calls == ["load"]
    assert project.snakemake().nothing_to_do

    # train's code changes, the split does not run: the train nodes execute (agg restores: their
    # outputs are the same), and each chart draws once, 'trains' and 'third' with the new metrics.
    project.edit("src/main.py", 'log_metric("score", sum(x for _, x in data))',
                 'log_metric("score", 2 * sum(x for _, x in data))')
    recoded = project.snakemake()
    assert sorted(c for c in recoded.calls if not c.startswith("chart")) == ["train 1", "train 11", "train 21", "train 31"]
    assert recoded.outcomes["agg"] == "restored"
    assert charts_drawn(recoded.calls) == {
        "trains": [{train_id(k): 2 * total for k, total in chunks.items()}],
        "third": [{"chunk": 2 * chunks[3]}],
        "total": [{"agg": chunk_sum(1, 32)}],
    }


def test_a_code_change_below_a_growing_split_reruns_its_chain_without_the_split(tmp_path: Path) -> None:
    """The jobs below a growing split are listed through ``checkpoints.<split>.get()``: it must
    work when the split does not run, or nothing below it would ever re-run."""
    config = with_charts(ROWS_CONFIG, "")  # the charted project's config, its charts left out
    project = Project(write_project(tmp_path / "rows", config, ROWS_MAIN, script_path="src/main.py",
                                    files={"data/raw.csv": "id,x\n" + csv_rows(1, 25)}))
    project.run()
    project.edit("src/main.py", 'called(f"train {data[0][0]}")', 'called(f"train {data[0][0]} again")')
    recoded = project.snakemake()
    assert sorted(recoded.calls) == ["train 1 again", "train 11 again", "train 21 again"]
    assert recoded.outcomes["agg"] == "restored"  # scheduled below them; their outputs are the same
    assert project.snakemake().nothing_to_do


TWO_SPLITS_CONFIG = """\
scripts: {main: src/main.py, reporting: src/charts.py}
data: {path: data/sales.csv}
experiment:
  pipeline:
    process_adjlist: |
      images embed
      embed gallery
      load shops
      shops fit
      fit report
    processes:
      - {name: images, data_parallelism: {files: "data/images/*.txt", data_name: path}}
      - name: embed
      - {name: gallery, data_aggregation: true}
      - name: load
      - {name: shops, data_parallelism: {by: shop}}
      - name: fit
      - {name: report, data_aggregation: true}
      - name: both
        code: reporting.both
        probe_paths:
          embeds: "//*[@name='embed']"
          fits: "//*[@name='fit']"
"""

TWO_SPLITS_MAIN = CALLS_HELPER + '''
import pandas as pd

from expops.core import log_metric


def embed(path):
    called(f"embed {path}")
    with open(path, encoding="utf-8") as handle:
        log_metric("length", len(handle.read()))
    return {"path": path}


def gallery(path):
    called("gallery")
    return {"count": len(path)}


def load():
    called("load")
    return {"data": pd.read_csv("data/sales.csv")}


def fit(data):
    called(f"fit {data['shop'].iloc[0]}")
    log_metric("sold", int(data["sold"].sum()))
    return {"sold": int(data["sold"].sum())}


def report(sold):
    called("report")
    return {"total": sum(sold.values())}
'''

TWO_SPLITS_CHARTS = drawing("both")


def test_a_chart_probing_two_growing_splits_follows_both(tmp_path: Path) -> None:
    files = {f"data/images/img{index}.txt": "x" * index for index in range(1, 4)}
    project = Project(write_project(tmp_path / "two", TWO_SPLITS_CONFIG, TWO_SPLITS_MAIN, script_path="src/main.py",
                                    files={**files, "src/charts.py": TWO_SPLITS_CHARTS,
                                           "data/sales.csv": "shop,sold\nnorth,1\nsouth,2\n"}))

    def embed_id(index: int) -> str:
        return f"//*[@partition='p{key_number(f'data/images/img{index}.txt')}']/process[@name='embed']"

    def fit_id(shop: str) -> str:
        return f"//*[@partition='p{key_number(shop)}']/process[@name='fit']"

    lengths = {embed_id(index): float(index) for index in range(1, 4)}
    sold = {fit_id("north"): 1.0, fit_id("south"): 2.0}
    cold = project.run()
    assert charts_drawn(cold.calls) == {"both": [{**lengths, **sold}]}
    rules = (project.root / "workflow/rules/charts.smk").read_text()
    assert ('ancient("results/images/_partitions.json"),\n        ancient("results/shops/_partitions.json"),\n'
            '        lambda wildcards: probed_manifests("both", checkpoints),') in rules
    assert project.snakemake().nothing_to_do

    (project.root / "data/images/img4.txt").write_text("y" * 4, encoding="utf-8")  # a new file: a new node
    added = project.snakemake()
    lengths[embed_id(4)] = 4.0
    assert sorted(c for c in added.calls if not c.startswith("chart")) == ["embed data/images/img4.txt", "gallery"]
    assert charts_drawn(added.calls) == {"both": [{**lengths, **sold}]}

    (project.root / "data/images/img2.txt").unlink()  # a removed file: its node leaves the chart
    removed = project.snakemake()
    del lengths[embed_id(2)]
    assert sorted(c for c in removed.calls if not c.startswith("chart")) == ["gallery"]
    assert charts_drawn(removed.calls) == {"both": [{**lengths, **sold}]}

    project.append("data/sales.csv", "south,5\n")  # the other split: one key's node changes
    grown = project.snakemake()
    sold[fit_id("south")] = 7.0
    assert sorted(c for c in grown.calls if not c.startswith("chart")) == ["fit south", "load", "report"]
    assert charts_drawn(grown.calls) == {"both": [{**lengths, **sold}]}

    project.append("data/sales.csv", "west,0\n")  # a new key
    keyed = project.snakemake()
    sold[fit_id("west")] = 0.0
    assert charts_drawn(keyed.calls) == {"both": [{**lengths, **sold}]}
    assert project.snakemake().nothing_to_do


NESTED_CONFIG = with_charts(BUCKETS_CONFIG, """\
      - name: works
        code: reporting.works
        probe_paths: {all: "//*[@name='work']"}
      - name: first_bucket
        code: reporting.first_bucket
        probe_paths: {ones: "//*[@name='part'][@partition='p1']//*[@name='work']"}
""")

NESTED_MAIN = CALLS_HELPER + '''
import pandas as pd

from expops.core import log_metric


def load():
    called("load")
    return {"data": pd.read_csv("data/raw.csv")}


def work(data):
    called(f"work {data['id'].iloc[0]}")
    log_metric("first", int(data["id"].iloc[0]))
    return {"s": int(data["x"].sum())}


def agg(s):
    called("agg")
    return {"t": sum(s.values())}


def total(t):
    called("total")
    return {"all": sum(t.values())}
'''

NESTED_CHARTS = drawing("works", "first_bucket")


def test_a_chart_probes_inside_a_growing_split_nested_in_another_fan_out(tmp_path: Path) -> None:
    """One checkpoint job (and partition list) per bucket: a chart follows each branch's list."""
    from expops_smk.runtime.splitting import stable_bucket

    assert (stable_bucket(BUCKET_ONE, 2), stable_bucket(BUCKET_TWO, 2)) == (1, 2)
    project = Project(write_project(tmp_path / "nested", NESTED_CONFIG, NESTED_MAIN, script_path="src/main.py",
                                    files={"src/charts.py": NESTED_CHARTS, "data/raw.csv": "id,g,x\n" + bucket_rows(1, 20)}))

    def work_id(bucket: int, chunk: int) -> str:
        return f"//*[@partition='p{bucket}']/*[@partition='p{chunk}']/process[@name='work']"

    # Chunks of 3: bucket 1 has ids 1 3 4 | 6 8 9 | 11 13 14 | 16 18 19, bucket 2 2 5 7 | 10 12 15 | 17 20.
    ones = {work_id(1, k): float(first) for k, first in enumerate((1, 6, 11, 16), start=1)}
    twos = {work_id(2, k): float(first) for k, first in enumerate((2, 10, 17), start=1)}
    cold = project.run()
    assert charts_drawn(cold.calls) == {"works": [{**ones, **twos}], "first_bucket": [ones]}
    rules = (project.root / "workflow/rules/charts.smk").read_text()
    assert ('ancient("results/split/p1/_partitions.json"),\n        ancient("results/split/p2/_partitions.json"),\n'
            '        lambda wildcards: probed_manifests("works", checkpoints),') in rules
    assert project.snakemake().nothing_to_do

    project.append("data/raw.csv", bucket_rows(22, 22))  # bucket 2 only: completes its chunk 3
    second = project.snakemake()
    assert sorted(c for c in second.calls if not c.startswith("chart")) == ["agg", "load", "total", "work 17"]
    assert charts_drawn(second.calls) == {"works": [{**ones, **twos}]}  # first_bucket draws nothing that changed

    project.append("data/raw.csv", bucket_rows(23, 23))  # bucket 1 only: opens its chunk 5
    first = project.snakemake()
    ones[work_id(1, 5)] = 23.0
    assert sorted(c for c in first.calls if not c.startswith("chart")) == ["agg", "load", "total", "work 23"]
    assert charts_drawn(first.calls) == {"works": [{**ones, **twos}], "first_bucket": [ones]}
    assert project.snakemake().nothing_to_do
