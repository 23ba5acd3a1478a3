"""The node runtime without Snakemake: seeds, splits, kwargs building, errors, restore.

Jobs are run in-process through ``runtime.main`` on generated projects, in pipeline order, as
Snakemake would run them; that keeps these tests fast while using the real plan, store and
manifests.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from e2e import REPO
from projects import write_project

from expops_smk.runtime import node_job, seeding, user_api
from expops_smk.runtime.splitting import SplitError, partition_bounds, split_rows
from expops_smk.store.artifact_store import Store
from expops_smk.store.artifacts import Artifact
from expops_smk.codegen.prepare import generate_project, outer


# -- seeds ---------------------------------------------------------------------------------------

@given(st.integers(min_value=-(2 ** 40), max_value=2 ** 40), st.text(min_size=1, max_size=30))
def test_task_seed_is_expops_derivation(base: int, process: str) -> None:
    digest = hashlib.sha256(f"{base}|{process}|0".encode()).digest()
    expected = int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
    assume(expected != 0)  # probability 2**-31; the runtime then avoids seeding with 0
    assert seeding.derive_task_seed(base, process) == expected


def test_seed_rngs_seeds_random_and_numpy() -> None:
    assert seeding.seed_rngs(1234)[:2] == ["random", "numpy"]
    first = (random.random(), np.random.rand())
    seeding.seed_rngs(1234)
    assert (random.random(), np.random.rand()) == first


# -- splitting -----------------------------------------------------------------------------------

@given(st.integers(0, 300), st.integers(1, 40))
def test_size_n_gives_contiguous_near_equal_slices(total: int, count: int) -> None:
    bounds = partition_bounds(total, count, None)
    lengths = [stop - start for start, stop in bounds]
    assert len(bounds) == count and bounds[0][0] == 0 and bounds[-1][1] == total
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    base, extra = divmod(total, count)
    assert lengths == [base + 1] * extra + [base] * (count - extra)


@given(st.lists(st.integers(0, 20), min_size=1, max_size=10))
def test_explicit_row_counts(counts: list[int]) -> None:
    items = list(range(sum(counts)))
    assert [len(part) for part in split_rows(items, len(counts), counts)] == counts
    message = f"size {counts} sums to {sum(counts)} rows but the data has {sum(counts) + 1}"
    with pytest.raises(SplitError, match=re.escape(message) + "$"):
        split_rows(items + [0], len(counts), counts)


@pytest.mark.parametrize("value, expected_type", [
    (pd.DataFrame({"a": range(7)}), pd.DataFrame),
    (np.arange(7), np.ndarray),
    (np.arange(14).reshape(7, 2), np.ndarray),
    (list(range(7)), list),
    (tuple(range(7)), tuple),
    ({"a": list(range(7)), "b": list("abcdefg")}, pd.DataFrame),
    (pa.table({"a": list(range(7))}), pa.Table),
])
def test_splittable_types(value: Any, expected_type: type) -> None:
    parts = split_rows(value, 3)
    assert all(isinstance(part, expected_type) for part in parts)
    assert [len(part) if not isinstance(part, pa.Table) else part.num_rows for part in parts] == [3, 2, 2]


@pytest.mark.parametrize("value, message", [
    (np.float64(1.0), "cannot split a 0-dimensional array"),
    ({"a": [1, 2], "b": [1]}, "a dict to split must map columns to equal-length lists"),
    (42, "cannot split a int"),
])
def test_unsplittable_values(value: Any, message: str) -> None:
    with pytest.raises(SplitError, match=message):
        split_rows(value, 2)


# -- outer() in generated input functions --------------------------------------------------------

def test_outer_keeps_the_first_components() -> None:
    assert outer("p1-p2", 1) == "p1"
    assert outer("p3-p1-p2", 2) == "p3-p1"
    assert outer("41-7", 1) == "41"
    assert outer("-2-7", 1) == "-2"
    assert outer("41--7", 1) == "41"


# -- running nodes in-process --------------------------------------------------------------------

CONFIG = """\
scripts: {main: src/main.py}
reproducibility: {random_seed: 5}
experiment:
  parameters: {scale: 3}
  pipeline:
    process_adjlist: |
      load picky kw ctx early own_seed seeds
      seeds seeded
    processes:
      - name: load
      - name: picky
      - {name: kw, parameters: {extra: 1}}
      - name: ctx
      - {name: early, hyperparameters: {alpha: 0.5}}
      - {name: own_seed, parameters: {random_seed: 99}}
      - {name: seeds, seed_parallelism: {seeds: [11, 12]}}
      - {name: seeded, parameters: {random_seed: 99}}
"""

MAIN = '''
def _called(name):
    with open("calls.log", "a") as handle:
        handle.write(name + "\\n")


def load():
    _called("load")
    return {"data": [1, 2, 3], "__private": 1, "label": "x"}


def picky(data):
    return {"got": ["data"]}


def kw(data, **kwargs):
    return {"got": sorted(["data", *kwargs])}


def ctx(context, data):
    return {"got": [context.label, context.process, context.random_seed, context.partition, context.seed]}


def early(data, hyperparameters):
    return {"got": [data, hyperparameters]}


def own_seed(random_seed):
    return {"got": random_seed}


def seeded(random_seed):
    return {"got": random_seed}
'''


def run_node(root: Path, process: str, *args: str) -> int:
    return node_job.main([process, *args, "--log", f"logs/{process}.log"])


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = write_project(tmp_path / "project", CONFIG, MAIN, script_path="src/main.py")
    generate_project(root)
    monkeypatch.chdir(root)
    assert run_node(root, "load") == 0
    return root


def got(root: Path, process: str, partition: str = "", seed: str = "") -> Any:
    from expops_smk.layout import results_dir

    folder = root / results_dir(process, partition, seed)
    artifacts = json.loads((folder / "_outputs.json").read_text())["artifacts"]
    return Store(root).read_value(folder, Artifact.from_json(artifacts["got"]))


def test_kwargs_follow_the_signature(project: Path) -> None:
    for process in ("picky", "kw", "ctx", "early", "own_seed"):
        assert run_node(project, process) == 0, process
    assert got(project, "picky") == ["data"]
    # **kwargs: every upstream key (not "__" ones) and parameter, and random_seed
    assert got(project, "kw") == ["data", "extra", "label", "random_seed", "scale"]
    assert got(project, "ctx") == ["ctx", "ctx", 5, "", ""]
    assert got(project, "early") == [[1, 2, 3], {"scale": 3, "alpha": 0.5, "random_seed": 5}]
    assert got(project, "own_seed") == 99  # a random_seed parameter outside any seed fan-out


def test_branch_seed_overrides_a_random_seed_parameter(project: Path) -> None:
    assert run_node(project, "seeds") == 0
    assert run_node(project, "seeded", "--seed=12") == 0
    assert got(project, "seeded", seed="12") == 12


def test_second_run_restores_without_calling_user_code(project: Path) -> None:
    folder = project / "results/load"
    first = json.loads((folder / "_run.json").read_text())
    assert first["outcome"] == "executed"
    assert run_node(project, "load") == 0
    record = json.loads((folder / "_run.json").read_text())
    assert record["outcome"] == "restored" and record["run_key"] == first["run_key"]
    assert (project / "calls.log").read_text() == "load\n"
    assert (folder / "_metrics.json").is_file()


ERRORS = """\
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      load collide missing notdict badkey boom
      load split
    processes:
      - name: load
      - {name: collide, parameters: {threshold: 1}}
      - name: missing
      - name: notdict
      - name: badkey
      - name: boom
      - {name: split, data_parallelism: {size: 2, data_name: nothere}}
"""

ERRORS_MAIN = '''
def load():
    # Returned through a variable: validation cannot see the keys, so the run-time checks are tested.
    result = {"data": [1, 2], "threshold": 2}
    return result


def collide(data):
    return {}


def missing(data, absent, *, also_absent):
    return {}


def notdict(data):
    return None


def badkey(data):
    return {"../escape": 1}


def boom(data):
    print("some output")
    raise KeyError("kaboom")
'''


@pytest.mark.parametrize("process, message", [
    ("collide", "node 'collide': input 'threshold' from upstream collides with parameter 'threshold'; rename one"),
    ("missing", "node 'missing': function 'missing' needs 'absent', 'also_absent' but the available inputs are: "
                "data, random_seed, threshold"),
    ("notdict", "node 'notdict': function 'notdict' returned NoneType; it must return a dict"),
    ("badkey", "node 'badkey': returned key '../escape' cannot be a file name"),
    ("split", "node 'split': data_name 'nothere' is not among the values to split (available: data, threshold)"),
])
def test_project_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                        process: str, message: str) -> None:
    root = write_project(tmp_path / "project", ERRORS, ERRORS_MAIN, script_path="src/main.py")
    generate_project(root)
    monkeypatch.chdir(root)
    run_node(root, "load")
    capsys.readouterr()
    assert run_node(root, process) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"expops-smk: {message}"), err
    assert err[0].endswith(f"(log: logs/{process}.log)")
    assert not (root / "results" / process / "_outputs.json").exists()


def test_user_exception(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_project(tmp_path / "project", ERRORS, ERRORS_MAIN, script_path="src/main.py")
    generate_project(root)
    monkeypatch.chdir(root)
    run_node(root, "load")
    capsys.readouterr()
    assert run_node(root, "boom") == 1
    assert capsys.readouterr().err.splitlines() == [
        "expops-smk: node 'boom': the process function raised KeyError: 'kaboom' (traceback in logs/boom.log)"]
    log = (root / "logs/boom.log").read_text()
    assert "some output" in log and "Traceback" in log and 'raise KeyError("kaboom")' in log


def test_missing_upstream_and_missing_data_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = ERRORS.replace("experiment:", "data: {path: raw.csv}\nexperiment:")
    root = write_project(tmp_path / "project", config, ERRORS_MAIN, script_path="src/main.py", files={"raw.csv": "a\n1\n"})
    generate_project(root)
    monkeypatch.chdir(root)
    assert run_node(root, "collide") == 2
    assert "node 'collide': input from 'load' is missing (results/load)" in capsys.readouterr().err
    assert run_node(root, "load") == 2
    assert "node 'load': .expops/inputs/data.xxh3 is missing; run through snakemake" in capsys.readouterr().err


# -- the API user code imports -------------------------------------------------------------------

def test_log_metric_series_steps_and_snapshots() -> None:
    recorder = user_api.reset_recorder()

    @user_api.step()
    def fit() -> None:
        user_api.log_metric("loss", 0.5)

    user_api.log_metric("loss", 1)
    fit()
    user_api.log_metric("loss", 0.25, step=10)
    user_api.log_metric("loss", 0.125)
    user_api.log_metric("status", {"phase": "done", "ratio": float("nan")})
    assert [(m["step"], m["value"], m["step_name"]) for m in recorder.series] == [
        (1, 1, None), (2, 0.5, "fit"), (10, 0.25, None), (11, 0.125, None)]
    assert recorder.snapshots == {"status": {"phase": "done", "ratio": "nan"}}
    user_api.reset_recorder()


def test_expops_core_alias_when_expops_is_absent() -> None:
    code = ("from expops_smk.runtime.user_scripts import install_expops_alias; assert install_expops_alias(); "
            "from expops.core import process, step, log_metric, SerializableData, ModelData; "
            "import expops_smk.runtime.user_api as api; assert process is api.process and log_metric is api.log_metric")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


@settings(deadline=None, max_examples=25)
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=6, unique=True), st.integers(1, 3))
def test_outer_on_nested_seed_values(seeds: list[int], count: int) -> None:
    from expops_smk.graph.nodes import Node

    value = Node("x", (), tuple(seeds)).seed_value
    assert outer(value, count) == Node("x", (), tuple(seeds[:count])).seed_value


# -- reading inputs ------------------------------------------------------------------------------

CLASSES = """\
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      make use
    processes:
      - name: make
      - name: use
"""

CLASSES_MAIN = '''
import sys
from dataclasses import dataclass

import pandas as pd


@dataclass
class Model:
    w: float


def make():
    return {"model": Model(2.0), "table": pd.DataFrame({"a": [1, 2]})}


def use(model):
    return {"w": model.w, "pandas_imported_by_runtime": "pandas" in sys.modules}
'''


def test_instances_of_user_classes_reach_the_next_node_in_any_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    first = write_project(tmp_path / "first", CLASSES, CLASSES_MAIN, script_path="src/main.py")
    generate_project(first)
    monkeypatch.chdir(first)
    assert run_node(first, "make") == 0
    copy = tmp_path / "elsewhere/copy"
    shutil.copytree(first, copy)
    shutil.rmtree(copy / ".expops/runs")  # so that `use` executes, unpickling Model in the copy
    monkeypatch.chdir(copy)
    assert run_node(copy, "use") == 0
    assert got_key(copy, "use", "w") == 2.0
    assert json.loads((copy / "results/use/_run.json").read_text())["outcome"] == "executed"


def got_key(root: Path, process: str, key: str) -> Any:
    folder = root / "results" / process
    artifacts = json.loads((folder / "_outputs.json").read_text())["artifacts"]
    return Store(root).read_value(folder, Artifact.from_json(artifacts[key]))


def test_inputs_the_function_does_not_take_are_not_read(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", CLASSES, CLASSES_MAIN.replace("import pandas as pd\n", ""),
                         script_path="src/main.py")
    script = root / "src/main.py"
    # `make` builds its table with a local import, so the module `use` imports does not import pandas
    script.write_text(script.read_text().replace(
        'return {"model": Model(2.0), "table": pd.DataFrame({"a": [1, 2]})}',
        'import pandas as pd\n    return {"model": Model(2.0), "table": pd.DataFrame({"a": [1, 2]})}'))
    generate_project(root)
    for process in ("make", "use"):
        subprocess.run([sys.executable, "-m", "expops_smk.runtime", process, "--log", f"logs/{process}.log"],
                       cwd=root, check=True, timeout=120)
    assert json.loads((root / "results/make/_outputs.json").read_text())["artifacts"]["table"]["format"] == "parquet"
    assert got_key(root, "use", "pandas_imported_by_runtime") is False


def test_key_arriving_aggregated_and_plain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = """\
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      load split agg
      split agg
    processes:
      - name: load
      - {name: split, data_parallelism: {size: 2}}
      - {name: agg, data_aggregation: true}
"""
    script = "def load():\n    return {'data': [1, 2]}\n\n\ndef agg(data):\n    return {}\n"
    root = write_project(tmp_path / "project", config, script, script_path="src/main.py")
    generate_project(root)
    monkeypatch.chdir(root)
    assert run_node(root, "load") == 0 and run_node(root, "split") == 0
    capsys.readouterr()
    assert run_node(root, "agg") == 2
    assert "node 'agg': input 'data' arrives both aggregated from 'split' and from 'load'" in capsys.readouterr().err
