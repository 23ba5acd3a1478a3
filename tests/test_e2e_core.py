"""End to end: generate the workflow of small projects, run real Snakemake, check the files produced.

Each project is run once per module (fixtures) and inspected by several tests; user functions
append to ``calls.log`` so tests know exactly which user code ran.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from e2e import CALLS_HELPER, SNAKEMAKE, Project, Run
from projects import write_project

from expops_smk.runtime.seeding import derive_task_seed

pytestmark = pytest.mark.e2e

RAW_CSV = "id,x\n" + "".join(f"{i},{i * 1.5}\n" for i in range(1, 11))

CORE_CONFIG = """\
metadata: {name: core}
scripts:
  main: src/main.py
  legacy: src/legacy.py
reproducibility: {random_seed: 7}
data: {path: data/raw.csv}
experiment:
  parameters:
    scale: 2
  pipeline:
    process_adjlist: |
      load split summary
      split seeds legacy
      seeds train
      train per_partition agg_all
      summary agg_all kw
      legacy legacy_agg
    processes:
      - name: load
      - name: split
        data_parallelism: {size: 3}
      - name: seeds
        seed_parallelism: {seeds: [41, 42]}
      - name: train
        parameters: {lr: 0.5}
      - name: per_partition
        seed_aggregation: true
      - name: summary
      - name: agg_all
        data_aggregation: true
        seed_aggregation: true
      - name: kw
        parameters: {extra: x}
      # early ExpOps spelling: code_function, hyperparameters, (data, hyperparameters) signature
      - name: legacy
        code_function: legacy.fit
        hyperparameters: {alpha: 3}
      - name: legacy_agg
        code: legacy.collect
        data_parallelism: {aggregation: true}
"""

CORE_MAIN = CALLS_HELPER + '''
import random

import numpy as np
import pandas as pd

from expops_smk import log_metric, process


@process()
def load():
    called("load")
    frame = pd.read_csv("data/raw.csv")
    return {"data": frame, "meta": {"rows": len(frame)}, "tags": {"beta", "alpha", "gamma", "delta"}}


@process()
def summary(meta, random_seed):
    called("summary")
    return {"total_rows": meta["rows"], "summary_seed": random_seed, "np_rand0": float(np.random.rand())}


def kw(**kwargs):
    called("kw")
    return {"kw_keys": sorted(kwargs), "kw_seed": kwargs["random_seed"]}


def train(data, lr, scale, random_seed):
    called(f"train {int(data['id'].iloc[0])} {random_seed}")
    log_metric("loss", 1.0)
    log_metric("loss", 0.5)
    log_metric("note", "ok")
    return {"scaled": data.assign(x=data["x"] * scale * lr), "rows": len(data), "seed": random_seed,
            "np_rand": float(np.random.rand()), "py_rand": random.random()}


def per_partition(rows, seed):
    called("per_partition")
    return {"rows_by_seed": rows, "seeds": seed}


def agg_all(rows, total_rows, seed):
    called("agg_all")
    return {"rows": rows, "total": total_rows, "seeds": seed}
'''

CORE_LEGACY = CALLS_HELPER + '''
from expops.core import log_metric, process, step


@step()
def count(frame):
    log_metric("rows", len(frame))
    return len(frame)


@process()
def fit(data, hyperparameters):
    called("legacy")
    log_metric("alpha", hyperparameters["alpha"], step=3)
    return {"n": count(data), "hp": dict(hyperparameters)}


def collect(n, hp):
    called("legacy_agg")
    return {"ns": n, "hps": hp}
'''


def write_core(root: Path) -> Project:
    write_project(root, CORE_CONFIG, CORE_MAIN, script_path="src/main.py",
                  files={"src/legacy.py": CORE_LEGACY, "data/raw.csv": RAW_CSV})
    return Project(root)


def job_counts(run: Run) -> dict[str, int]:
    """The "Job stats" table Snakemake prints before running (or for -n)."""
    text = run.output
    table = text[text.index("Job stats:"):]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def task_seed(base: int, node_id: str) -> int:
    """ExpOps' derivation, written out independently of the runtime: base seed and canonical node id."""
    digest = hashlib.sha256(f"{base}|{node_id}|0".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = write_core(tmp_path_factory.mktemp("core"))
    project.generate()
    dry = project.dry_run()
    assert not (project.root / "results").exists(), "a dry run must not run anything"
    first = project.snakemake()
    second = project.snakemake()
    return {"project": project, "dry": dry, "first": first, "second": second}


CORE_LABELS = {
    "load", "split", "summary", "kw", "agg_all", "legacy_agg",
    *(f"seeds P{p}" for p in (1, 2, 3)),
    *(f"train P{p} S{s}" for p in (1, 2, 3) for s in (41, 42)),
    *(f"per_partition P{p}" for p in (1, 2, 3)),
    *(f"legacy P{p}" for p in (1, 2, 3)),
}


def test_dry_run_lists_every_expanded_job(core: dict[str, Any]) -> None:
    counts = job_counts(core["dry"])
    assert counts == {"agg_all": 1, "all": 1, "kw": 1, "legacy": 3, "legacy_agg": 1, "load": 1,
                      "per_partition": 3, "seeds": 3, "split": 1, "summary": 1, "train": 6, "total": 22}


def test_every_node_executes_once(core: dict[str, Any]) -> None:
    first: Run = core["first"]
    assert first.executed == CORE_LABELS
    assert first.restored == set()
    assert sorted(first.calls) == sorted(
        ["load", "summary", "kw", "agg_all", "legacy_agg"] + ["per_partition"] * 3 + ["legacy"] * 3
        + [f"train {first_id} {seed}" for first_id in (1, 5, 8) for seed in (41, 42)])


def test_second_run_has_nothing_to_do(core: dict[str, Any]) -> None:
    second: Run = core["second"]
    assert second.nothing_to_do, second.describe()
    assert second.calls == [] and second.outcomes == {}


def test_tables_are_parquet_and_other_values_pickles(core: dict[str, Any]) -> None:
    project: Project = core["project"]
    load = project.manifest("load")
    assert {key: (a["file"], a["format"]) for key, a in load.items()} == {
        "data": ("data.parquet", "parquet"), "meta": ("meta.pkl", "pickle"), "tags": ("tags.pkl", "pickle")}
    folder = project.node_dir("load")
    assert pd.read_parquet(folder / "data.parquet").equals(pd.read_csv(project.root / "data/raw.csv"))
    assert (folder / "meta.pkl").read_bytes().startswith(b"\x80\x05")  # pickle protocol 5
    assert project.manifest("train", "p2", "42")["scaled"]["format"] == "parquet"
    assert project.manifest("train", "p2", "42")["rows"]["format"] == "pickle"
    for name in ("_outputs.json", "_metrics.json", "_run.json"):
        assert (project.node_dir("train", "p2", "42") / name).is_file()


def test_data_split_sizes_and_contiguity(core: dict[str, Any]) -> None:
    project: Project = core["project"]
    ids = [list(project.value("split", "data", f"p{p}")["id"]) for p in (1, 2, 3)]
    assert ids == [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10]]  # 10 rows / 3: the first 10 % 3 get one more
    # values other than the split one pass through to every partition
    assert project.value("split", "meta", "p3") == {"rows": 10}
    assert project.value("seeds", "data", "p2").equals(project.value("split", "data", "p2"))


def test_aggregation_input_shapes(core: dict[str, Any]) -> None:
    project: Project = core["project"]
    assert project.value("per_partition", "rows_by_seed", "p2") == {"seed41": 3, "seed42": 3}
    assert project.value("per_partition", "seeds", "p1") == {"seed41": 41, "seed42": 42}
    rows = {"data1": {"seed41": 4, "seed42": 4}, "data2": {"seed41": 3, "seed42": 3},
            "data3": {"seed41": 3, "seed42": 3}}
    assert project.value("agg_all", "rows") == rows
    assert project.value("agg_all", "total") == 10  # arrives once (from summary): not wrapped
    assert project.value("legacy_agg", "ns") == {"data1": 4, "data2": 3, "data3": 3}


def test_kwargs_and_random_seed(core: dict[str, Any]) -> None:
    project: Project = core["project"]
    assert project.value("train", "seed", "p3", "42") == 42  # the branch seed inside a seed fan-out
    assert project.value("summary", "summary_seed") == 7  # reproducibility.random_seed elsewhere
    # **kwargs receives every candidate: global and own parameters, upstream keys, random_seed
    assert project.value("kw", "kw_keys") == sorted(
        ["scale", "extra", "random_seed", "total_rows", "summary_seed", "np_rand0"])
    assert project.value("kw", "kw_seed") == 7
    # early style: hyperparameters = global + own parameters + random_seed; data = the upstream's data
    assert project.value("legacy_agg", "hps")["data2"] == {"scale": 2, "alpha": 3, "random_seed": 7}
    assert project.value("train", "scaled", "p1", "41")["x"].tolist() == [1.5, 3.0, 4.5, 6.0]


def test_rngs_are_seeded_like_expops(core: dict[str, Any]) -> None:
    project: Project = core["project"]
    train_p1_s41 = "//*[@partition='p1']/*[@seed='41']/process[@name='train']"
    assert derive_task_seed(41, train_p1_s41) == task_seed(41, train_p1_s41)
    draws = set()
    for partition, seed in (("p1", 41), ("p2", 41), ("p3", 42)):
        node_id = f"//*[@partition='{partition}']/*[@seed='{seed}']/process[@name='train']"
        np.random.seed(task_seed(seed, node_id))
        assert project.value("train", "np_rand", partition, str(seed)) == float(np.random.rand())
        random.seed(task_seed(seed, node_id))
        assert project.value("train", "py_rand", partition, str(seed)) == random.random()
        draws.add(project.value("train", "np_rand", partition, str(seed)))
    assert len(draws) == 3  # every partition of a seed has a stream of its own
    np.random.seed(task_seed(7, "//process[@name='summary']"))
    assert project.value("summary", "np_rand0") == float(np.random.rand())


def test_metrics_are_stored_per_node(core: dict[str, Any]) -> None:
    project: Project = core["project"]
    metrics = json.loads((project.node_dir("train", "p1", "41") / "_metrics.json").read_text())
    assert metrics["label"] == "train P1 S41"
    assert [(m["metric"], m["step"], m["value"]) for m in metrics["series"]] == [("loss", 1, 1.0), ("loss", 2, 0.5)]
    assert metrics["snapshots"] == {"note": "ok"}
    legacy = json.loads((project.node_dir("legacy", "p2") / "_metrics.json").read_text())
    assert {(m["metric"], m["step"], m["value"], m["step_name"]) for m in legacy["series"]} == {
        ("alpha", 3, 3, None), ("rows", 1, 3, "count")}


def test_node_outputs_found_by_label(core: dict[str, Any]) -> None:
    project: Project = core["project"]
    record = project.run_record("train", "p2", "41")
    assert record["label"] == "train P2 S41" and record["outcome"] == "executed"
    assert record["node"] == "//*[@partition='p2']/*[@seed='41']/process[@name='train']"
    assert (project.root / "logs/train/p2/s41.log").is_file()


def test_lint_is_clean(core: dict[str, Any]) -> None:
    lint = core["project"].command([SNAKEMAKE, "--lint"], check=False)
    # Every rule names a conda file (workflow/envs/expops-smk-runtime.yaml: the running environment).
    assert lint.returncode == 0 and "Lints for rule" not in lint.output, lint.output


def test_expops_core_imports_run_without_expops_installed(core: dict[str, Any]) -> None:
    import importlib.machinery

    # Looked up on sys.path, not in sys.modules: in-process tests may have installed the alias.
    assert importlib.machinery.PathFinder.find_spec("expops") is None
    assert core["first"].outcomes["legacy P1"] == "executed"  # src/legacy.py imports expops.core


# -- determinism ---------------------------------------------------------------------------------

DETERMINISM_CONFIG = """\
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      load split
      split train
      train agg
    processes:
      - name: load
      - name: split
        data_parallelism: {size: 2, data_name: frame}
      - name: train
      - name: agg
        data_aggregation: true
"""

DETERMINISM_MAIN = '''
import numpy as np
import pandas as pd


def load():
    frame = pd.DataFrame({"id": range(6), "name": list("abcdef")})
    return {"frame": frame, "tags": {"beta", "alpha", "gamma", "delta", "eps"}, "arr": np.arange(5.0)}


def train(frame, tags, random_seed):
    words = {word: len(word) for word in tags}  # a dict built from a set's iteration order
    return {"model": {"w": np.random.rand(3), "words": words}, "tags": tags | {"x"},
            "scaled": frame.assign(id=frame["id"] * 2)}


def agg(model, scaled):
    return {"models": model, "frames": scaled}
'''


def test_two_clean_runs_give_identical_artifacts(tmp_path: Path) -> None:
    projects = [Project(write_project(tmp_path / name, DETERMINISM_CONFIG, DETERMINISM_MAIN, script_path="src/main.py"))
                for name in ("one", "two")]
    with ThreadPoolExecutor(2) as pool:  # two independent clean runs, concurrently to save time
        list(pool.map(Project.run, projects))
    digests = [project.digests() for project in projects]
    assert digests[0] == digests[1]
    assert len(digests[0]) == 3 + 2 * 3 + 2 * 3 + 2


# -- data splits -------------------------------------------------------------------------------

SPLITS_CONFIG = """\
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      load split_df split_np split_list split_cols rows_split seed_split
      split_df agg_df
      split_np agg_np
      split_list agg_list
      split_cols agg_cols
      rows_split agg_rows
      seed_split per_seed
      per_seed seed_agg
    processes:
      - name: load
      - {name: split_df, data_parallelism: {size: 3, data_name: frame}}
      - {name: split_np, data_parallelism: {size: [2, 0, 5, 3], data_name: arr}}
      - {name: split_list, data_parallelism: {size: 4, data_name: rows}}
      - {name: split_cols, data_parallelism: {size: 2, data_name: cols}}
      - {name: rows_split, code: make_rows, data_parallelism: {size: 2}}
      - {name: agg_df, code: shapes, parameters: {key: frame}, data_aggregation: true}
      - {name: agg_np, code: shapes, parameters: {key: arr}, data_aggregation: true}
      - {name: agg_list, code: shapes, parameters: {key: rows}, data_aggregation: true}
      - {name: agg_cols, code: shapes, parameters: {key: cols}, data_aggregation: true}
      - {name: agg_rows, code: shapes, parameters: {key: data}, data_aggregation: true}
      - {name: seed_split, code: pick_seeds, seed_parallelism: {seeds: [5, 6]}}
      - name: per_seed
      - {name: seed_agg, seed_aggregation: true}
"""

SPLITS_MAIN = CALLS_HELPER + '''
import numpy as np
import pandas as pd


def load():
    ids = list(range(1, 11))
    return {"frame": pd.DataFrame({"id": ids}), "arr": np.array(ids) * 10,
            "rows": [(i, i * i) for i in ids], "cols": {"id": ids, "sq": [i * i for i in ids]}}


def make_rows(frame):
    called("make_rows")
    return [{"id": int(i)} for i in frame["id"]]  # a list: stored under "data", then split


def _describe(value):
    if isinstance(value, pd.DataFrame):
        return ["DataFrame", value["id"].tolist()]
    if isinstance(value, np.ndarray):
        return ["ndarray", value.tolist()]
    return [type(value).__name__, list(value)]


def shapes(key, **kwargs):
    called(f"shapes {key}")
    return {"parts": {branch: _describe(value) for branch, value in kwargs[key].items()}}


def pick_seeds(seeds, frame):
    called("pick_seeds")
    return {"seen": list(seeds), "n": len(frame)}


def per_seed(seen, n, random_seed):
    called(f"per_seed {random_seed}")
    return {"seed": random_seed, "seen_here": seen, "n_here": n}


def seed_agg(seed, seen_here, n_here):
    return {"seeds": seed, "seen": seen_here, "n": n_here}
'''


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Run]:
    project = Project(write_project(tmp_path_factory.mktemp("splits"), SPLITS_CONFIG, SPLITS_MAIN,
                                    script_path="src/main.py"))
    return project, project.run()


def test_split_sizes_and_value_types(splits: tuple[Project, Run]) -> None:
    project, _ = splits
    assert project.value("agg_df", "parts") == {
        "data1": ["DataFrame", [1, 2, 3, 4]], "data2": ["DataFrame", [5, 6, 7]], "data3": ["DataFrame", [8, 9, 10]]}
    assert project.value("agg_np", "parts") == {  # explicit row counts, an empty partition included
        "data1": ["ndarray", [10, 20]], "data2": ["ndarray", []], "data3": ["ndarray", [30, 40, 50, 60, 70]],
        "data4": ["ndarray", [80, 90, 100]]}
    parts = project.value("agg_list", "parts")
    assert [len(parts[f"data{i}"][1]) for i in (1, 2, 3, 4)] == [3, 3, 2, 2]
    assert parts["data3"] == ["list", [(7, 49), (8, 64)]]
    # a dict of columns is split as the DataFrame it describes, and stored as Parquet
    assert project.value("agg_cols", "parts") == {"data1": ["DataFrame", [1, 2, 3, 4, 5]],
                                                  "data2": ["DataFrame", [6, 7, 8, 9, 10]]}
    assert project.manifest("split_cols", "p2")["cols"]["format"] == "parquet"
    # values other than data_name pass to every partition whole
    assert project.value("split_np", "rows", "p3") == [(i, i * i) for i in range(1, 11)]


def test_custom_splitters(splits: tuple[Project, Run]) -> None:
    project, run = splits
    assert project.value("agg_rows", "parts") == {
        "data1": ["list", [{"id": i} for i in range(1, 6)]], "data2": ["list", [{"id": i} for i in range(6, 11)]]}
    assert project.value("seed_agg", "seeds") == {"seed5": 5, "seed6": 6}
    assert project.value("seed_agg", "seen") == {"seed5": [5, 6], "seed6": [5, 6]}  # seeds=[...] keyword
    assert project.value("seed_agg", "n") == {"seed5": 10, "seed6": 10}
    assert sorted(run.calls) == sorted(["make_rows", "pick_seeds", "per_seed 5", "per_seed 6"]
                                       + [f"shapes {key}" for key in ("frame", "arr", "rows", "cols", "data")])
    assert len(run.executed) == 15


# -- nested fan-outs ---------------------------------------------------------------------------

NESTED_CONFIG = """\
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      load outer_split seeds_a
      outer_split prep inner_split
      inner_split train
      prep train
      train inner_agg
      inner_agg outer_agg
      seeds_a seeds_b
      seeds_b leaf
      leaf leaf_agg
    processes:
      - name: load
      - {name: outer_split, data_parallelism: {size: 2}}
      - {name: inner_split, data_parallelism: {size: 2}}
      - {name: inner_agg, data_aggregation: true}
      - {name: outer_agg, data_aggregation: true}
      - {name: seeds_a, seed_parallelism: {seeds: [1, -2]}}
      - {name: seeds_b, seed_parallelism: {seeds: [7]}}
      - {name: leaf_agg, seed_aggregation: true}
"""

NESTED_MAIN = '''
def load():
    return {"data": list(range(1, 9))}


def prep(data):
    return {"offset": sum(data)}  # one node per outer partition, broadcast to its inner ones


def train(data, offset):
    return {"value": [x + offset for x in data]}


def inner_agg(value):
    return {"merged": value}


def outer_agg(merged):
    return {"all": merged}


def leaf(data, random_seed):
    return {"seed": random_seed}


def leaf_agg(seed):
    return {"seeds": seed}
'''


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Run]:
    project = Project(write_project(tmp_path_factory.mktemp("nested"), NESTED_CONFIG, NESTED_MAIN,
                                    script_path="src/main.py"))
    return project, project.run()


def test_nested_data_layers_and_outer_broadcast(nested: tuple[Project, Run]) -> None:
    project, run = nested
    assert project.value("train", "value", "p1-p2") == [3 + 10, 4 + 10]  # prep P1's offset: 1+2+3+4
    assert project.value("train", "value", "p2-p1") == [5 + 26, 6 + 26]
    assert project.value("inner_agg", "merged", "p2") == {"data1": [31, 32], "data2": [33, 34]}
    assert project.value("outer_agg", "all") == {"data1": {"data1": [11, 12], "data2": [13, 14]},
                                                 "data2": {"data1": [31, 32], "data2": [33, 34]}}
    assert "train P1-P2" in run.executed
    rules = (project.root / "workflow/rules/processes.smk").read_text()
    assert "lambda wildcards: expand(" in rules and "outer(wildcards.partition, 1)" in rules


def test_nested_seed_layers(nested: tuple[Project, Run]) -> None:
    project, run = nested
    assert project.value("leaf", "seed", seed="-2-7") == 7  # the innermost seed
    assert project.value("leaf_agg", "seeds", seed="1") == {"seed7": 7}
    assert {"leaf S1-S7", "leaf S-2-S7", "leaf_agg S-2"} <= run.executed
    assert len(run.executed) == 20


# -- errors ------------------------------------------------------------------------------------

ERRORS_CONFIG = """\
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      load bad_split collide missing boom notdict
      a dup
      b dup
    processes:
      - name: load
      - {name: bad_split, data_parallelism: {size: [2, 2]}}
      - {name: collide, parameters: {threshold: 2}}
      - name: missing
      - name: boom
      - name: notdict
      - name: a
      - name: b
      - name: dup
"""

ERRORS_MAIN = '''
def load():
    # Returned through a variable: validation cannot see the keys, so the run-time check is tested.
    result = {"data": list(range(10)), "threshold": 1}
    return result


def collide(data, threshold):
    return {}


def missing(data, nothere):
    return {}


def _check(value):
    raise ValueError(f"bad value {value}")


def boom(data):
    _check(42)


def notdict(data):
    return [1, 2]


def a():
    return {"x": 1}


def b():
    return {"x": 2}


def dup(x):
    return {}
'''


@pytest.fixture(scope="module")
def errors(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Run]:
    project = Project(write_project(tmp_path_factory.mktemp("errors"), ERRORS_CONFIG, ERRORS_MAIN,
                                    script_path="src/main.py"))
    project.generate()
    return project, project.snakemake("--keep-going", check=False)


def our_lines(run: Run, label: str) -> list[str]:
    """Our one-line errors for ``label``; Snakemake may print "Execute 1 jobs..." and a job's line
    without a newline between them, so a line is found where it starts, not only at a line start."""
    return re.findall(rf"expops-smk: node '{re.escape(label)}'[^\n]*", run.stderr)


@pytest.mark.parametrize("label, message", [
    ("bad_split", "data_parallelism: size [2, 2] sums to 4 rows but the data has 10"),
    ("collide", "input 'threshold' from upstream collides with parameter 'threshold'"),
    ("missing", "function 'missing' needs 'nothere' but the available inputs are: data, random_seed, threshold"),
    ("notdict", "function 'notdict' returned list; it must return a dict"),
    ("dup", "input 'x' arrives from both 'a' and 'b'"),
])
def test_project_errors_are_one_line_naming_the_node(errors: tuple[Project, Run], label: str, message: str) -> None:
    project, run = errors
    assert run.returncode != 0
    lines = our_lines(run, label)
    assert len(lines) == 1, run.stderr
    assert message in lines[0] and f"(log: logs/{label}.log)" in lines[0]
    assert message in (project.root / f"logs/{label}.log").read_text()
    assert not (project.node_dir(label) / "_outputs.json").exists()


def test_user_exception_names_node_and_log_and_keeps_traceback(errors: tuple[Project, Run]) -> None:
    project, run = errors
    assert our_lines(run, "boom") == [
        "expops-smk: node 'boom': the process function raised ValueError: bad value 42 (traceback in logs/boom.log)"]
    log = (project.root / "logs/boom.log").read_text()
    assert "Traceback (most recent call last)" in log
    assert 'raise ValueError(f"bad value {value}")' in log and "in _check" in log
    # the other branches still ran (--keep-going) and the failed ones left no manifest behind
    assert run.executed == {"load", "a", "b"}
