"""End to end: the cases ExpOps' documentation leaves open, decided as the README's "Compatibility
with ExpOps" section says.

* A key that only some branches return still arrives at an aggregation wrapped by branch key
  (ExpOps 0.1.27 passes a key that arrives from one branch unwrapped): the shape an aggregation
  receives must not depend on how many branches happened to return a key.
* Fan-outs of size 1 (``size: 1``, ``seeds: [41]``) are ordinary fan-outs: one branch, wrapped.
* A dict of columns split into partitions arrives downstream as a pandas DataFrame (the docs: "a
  dict of columns is converted").
"""

from __future__ import annotations

import pytest

from e2e import CALLS_HELPER, Project, Run
from projects import write_project

pytestmark = pytest.mark.e2e

CONFIG = """\
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      make split
      split seeds one_seed
      seeds fit
      fit per_seed_agg
      one_seed lone
      lone lone_agg
      make single
      single single_agg
      split frame_type
    processes:
      - name: make
      - {name: split, data_parallelism: {size: 3, data_name: cols}}
      - {name: seeds, seed_parallelism: {seeds: [41, 42]}}
      - name: fit
      - {name: per_seed_agg, data_aggregation: true, seed_aggregation: true}
      - {name: one_seed, seed_parallelism: {seeds: [41]}}
      - name: lone
      - {name: lone_agg, data_aggregation: true, seed_aggregation: true}
      - {name: single, data_parallelism: {size: 1, data_name: cols}}
      - {name: single_agg, data_aggregation: true}
      - name: frame_type
"""

MAIN = CALLS_HELPER + '''
def make():
    called("make")
    return {"cols": {"id": list(range(1, 10)), "x": [i * 0.5 for i in range(1, 10)]}}


def fit(cols, random_seed):
    first = int(cols["id"].iloc[0])
    called(f"fit {first} {random_seed}")
    result = {"n": len(cols)}
    if first == 1 and random_seed == 41:
        result["only_here"] = "p1 s41"   # returned by one branch of six
    return result


def per_seed_agg(n, only_here):
    called("per_seed_agg")
    return {"n": n, "only_here": only_here}


def lone(cols, random_seed):
    called(f"lone {int(cols['id'].iloc[0])}")
    return {"seed": random_seed}


def lone_agg(seed):
    called("lone_agg")
    return {"seed": seed}


def single_agg(cols):
    called("single_agg")
    return {"keys": sorted(cols), "rows": len(cols["data1"])}


def frame_type(cols):
    called("frame_type")
    return {"type": type(cols).__module__ + "." + type(cols).__name__, "columns": list(cols.columns)}
'''


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Run]:
    project = Project(write_project(tmp_path_factory.mktemp("open_cases"), CONFIG, MAIN, script_path="src/main.py"))
    return project, project.run()


def test_a_key_from_one_branch_arrives_wrapped_by_its_branch(run: tuple[Project, Run]) -> None:
    project, _ = run
    assert project.value("per_seed_agg", "only_here") == {"data1": {"seed41": "p1 s41"}}
    n = project.value("per_seed_agg", "n")
    assert n == {f"data{p}": {"seed41": 3, "seed42": 3} for p in (1, 2, 3)}


def test_size_one_fan_outs_are_fan_outs_of_one_branch(run: tuple[Project, Run]) -> None:
    project, first = run
    assert project.value("lone_agg", "seed") == {f"data{p}": {"seed41": 41} for p in (1, 2, 3)}
    assert project.value("single_agg", "keys") == ["data1"]
    assert project.value("single_agg", "rows") == 9
    assert {"lone P1 S41", "lone P2 S41", "lone P3 S41", "single", "single_agg"} <= first.executed
    assert project.node_dir("lone", "p2", "41").is_dir()


def test_a_dict_of_columns_partition_arrives_as_a_dataframe(run: tuple[Project, Run]) -> None:
    project, _ = run
    assert project.value("frame_type", "type", "p2") == "pandas.DataFrame"
    assert project.value("frame_type", "columns", "p2") == ["id", "x"]
    assert project.manifest("split", "p1")["cols"]["format"] == "parquet"
