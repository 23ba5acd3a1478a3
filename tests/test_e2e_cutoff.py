"""End to end: early cutoff inside one invocation, counted in jobs Snakemake started.

Data splits are checkpoints (codegen/checkpoints.py): after a split runs, Snakemake re-checks the
jobs below it and never starts those of partitions whose manifests came back unchanged. So after
one partition's data changes, ``Run.outcomes`` (every node whose ``_run.json`` was rewritten, i.e.
every job started) holds the changed chain and the aggregations, and nothing is "restored".

The project nests two data fan-outs (2 outer x 2 inner partitions of 8 rows), aggregates the inner
one, works on each outer partition, aggregates those and ends in one node after the aggregation;
a chart draws the outer partition 2 only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from e2e import CALLS_HELPER, Project
from projects import write_project

pytestmark = pytest.mark.e2e

RAW_CSV = "id,x\n" + "".join(f"{i},{i}.5\n" for i in range(1, 9))  # outer p1: ids 1-4 (inner 1-2, 3-4)

CONFIG = """\
scripts: {main: src/main.py, charts: src/charts.py}
data: {path: data/raw.csv}
experiment:
  pipeline:
    process_adjlist: |
      load outer
      outer inner
      inner work
      work inner_agg
      inner_agg outer_work
      outer_work outer_agg
      outer_agg final
    processes:
      - name: load
      - {name: outer, data_parallelism: {size: 2}}
      - {name: inner, data_parallelism: {size: 2}}
      - name: work
      - {name: inner_agg, data_aggregation: true}
      - name: outer_work
      - {name: outer_agg, data_aggregation: true}
      - name: final
      - name: draw
        code: charts.draw
        probe_paths:
          second: "//*[@partition='p2']/*[@name='outer_work']"
"""

MAIN = CALLS_HELPER + '''
import csv


def load():
    called("load")
    with open("data/raw.csv", newline="") as handle:
        return {"data": [(int(row["id"]), float(row["x"])) for row in csv.DictReader(handle)]}


def work(data):
    called(f"work {data[0][0]}")
    return {"value": sum(x for _, x in data)}


def inner_agg(value):
    called("inner_agg")
    return {"value": sum(value.values())}


def outer_work(value):
    called("outer_work")
    return {"doubled": 2 * value}


def outer_agg(doubled):
    called("outer_agg")
    return {"total": sum(doubled.values())}


def final(total):
    called("final")
    return {"report": f"total {total}"}
'''

CHARTS = '''
from expops.reporting import chart


@chart()
def draw(metrics):
    with open("drawn.txt", "w", encoding="utf-8") as handle:
        handle.write(" ".join(sorted(metrics)))
'''

NODES = {"load", "outer", "outer_agg", "final",
         *(f"{process} P{p}" for process in ("inner", "inner_agg", "outer_work") for p in (1, 2)),
         *(f"work P{p}-P{q}" for p in (1, 2) for q in (1, 2))}
CHART_RECORD = Path("results/charts/draw/_chart.json")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(write_project(tmp_path / "project", CONFIG, MAIN, script_path="src/main.py",
                                    files={"data/raw.csv": RAW_CSV, "src/charts.py": CHARTS}))
    first = project.run()
    assert first.executed == NODES and len(first.calls) == len(NODES) - 3  # the 3 splits call nothing
    return project


def chart_stamp(project: Project) -> tuple[int, int]:
    stat = os.stat(project.root / CHART_RECORD)
    return stat.st_ino, stat.st_mtime_ns


def test_changing_one_inner_partition_starts_only_its_chain_and_the_aggregations(project: Project) -> None:
    chart = chart_stamp(project)
    project.edit("data/raw.csv", "3,3.5\n", "3,30.5\n")  # outer p1, inner p2
    run = project.snakemake()
    assert run.outcomes == dict.fromkeys(
        {"load", "outer", "inner P1", "work P1-P2", "inner_agg P1", "outer_work P1", "outer_agg", "final"},
        "executed")
    assert sorted(run.calls) == sorted(["load", "work 3", "inner_agg", "outer_work", "outer_agg", "final"])
    assert chart_stamp(project) == chart  # the chart draws outer partition 2: not started
    assert project.value("final", "report") == f"total {2 * (sum(i + 0.5 for i in range(1, 9)) + 27)}"
    markers = project.root / ".expops" / "checkpoints"
    assert (markers / "outer.ran").is_file() and (markers / "inner" / "p1.ran").is_file()  # this run's
    assert project.snakemake().nothing_to_do
    assert not markers.exists()


def test_a_split_marker_left_by_an_interrupted_run_changes_nothing(project: Project) -> None:
    marker = project.root / ".expops" / "checkpoints" / "outer.ran"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    run = project.snakemake()
    assert run.nothing_to_do and run.outcomes == {}
    assert not marker.exists()  # deleted when the Snakefile was parsed, before the DAG was built
