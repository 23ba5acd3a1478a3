"""The example project's process functions, called by hand in pipeline order on the real CSV.

This checks the example itself (its config wiring, its data, its numbers), independently of
the expops-smk runtime that will execute it: inputs are passed by name as the runtime does
(upstream outputs + global parameters overridden by the process's own + ``random_seed``),
the partition split follows numpy.array_split (the first ``total % size`` slices get one
extra row), and the aggregation receives ``{"data1": {"seed41": ...}, ...}``.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import math
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[1] / "example_project"
CONFIG = yaml.safe_load((PROJECT / "configs" / "project_config.yaml").read_text())
PIPELINE = CONFIG["experiment"]["pipeline"]
PROCESSES = {spec["name"]: spec for spec in PIPELINE["processes"]}
SEEDS = PROCESSES["seeds"]["seed_parallelism"]["seeds"]
N_PARTITIONS = PROCESSES["partition"]["data_parallelism"]["size"]
MODELS = ["logreg", "forest"]
METRIC_NAMES = ["accuracy", "f1", "roc_auc"]

Branch = tuple[str, ...]  # () outside the fan-out, ("data1", "seed41") inside it

# log_metric calls of the function currently being run; a unit test has no runtime node
# to record into, so every call goes here whichever log_metric the module imported.
LOGGED: list[tuple[str, Any, int | None]] = []


def _record_metric(key: str, value: Any, step: int | None = None) -> None:
    LOGGED.append((key, value, step))


def _runtime_api_available() -> bool:
    # A missing name and a lazily imported module that does not exist yet both surface
    # here as ImportError.
    try:
        from expops_smk import log_metric, process  # noqa: F401
    except ImportError:
        return False
    return True


def _load_model_module() -> types.ModuleType:
    """Import src/model.py by path; stand in for ``expops_smk`` only while it lacks the API.

    The stand-in is removed again right after the import, so other tests in the same
    session still import the real package.
    """
    spec = importlib.util.spec_from_file_location(
        "example_project_model", PROJECT / "src" / "model.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    if _runtime_api_available():
        spec.loader.exec_module(module)
    else:
        stand_in = types.ModuleType("expops_smk")
        stand_in.process = lambda: (lambda fn: fn)  # type: ignore[attr-defined]
        stand_in.log_metric = _record_metric  # type: ignore[attr-defined]
        saved = sys.modules.get("expops_smk")
        sys.modules["expops_smk"] = stand_in
        try:
            spec.loader.exec_module(module)
        finally:
            if saved is None:
                del sys.modules["expops_smk"]
            else:
                sys.modules["expops_smk"] = saved
    module.log_metric = _record_metric  # type: ignore[attr-defined]
    return module


model = _load_model_module()


def _parameters(process: str) -> dict[str, Any]:
    return {
        **CONFIG["experiment"]["parameters"],
        **(PROCESSES.get(process, {}).get("parameters") or {}),
    }


def _call(process: str, inputs: dict[str, Any], seed: int | None = None) -> tuple[dict, list]:
    """Call a process's function the way the runtime does: arguments chosen by name."""
    fn = getattr(model, PROCESSES[process]["code"])
    candidates = {
        **inputs,
        **_parameters(process),
        "random_seed": CONFIG["reproducibility"]["random_seed"] if seed is None else seed,
    }
    signature = inspect.signature(fn)
    missing = [
        name
        for name, p in signature.parameters.items()
        if p.default is inspect.Parameter.empty and name not in candidates
    ]
    assert not missing, f"{process}: no input for {missing}; available {sorted(candidates)}"
    LOGGED.clear()
    outputs = fn(**{name: candidates[name] for name in signature.parameters})
    assert isinstance(outputs, dict), f"{process} must return a dict"
    return outputs, list(LOGGED)


def _partition_slices(df: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    return [df.iloc[positions] for positions in np.array_split(np.arange(len(df)), size)]


def _branch_scores(df: pd.DataFrame, seed: int) -> dict[str, dict[str, float]]:
    prep, _ = _call("preprocess", {"df": df}, seed)
    logreg, _ = _call("train_logreg", prep, seed)
    forest, _ = _call("train_forest", prep, seed)
    evaluated, _ = _call("evaluate", {**prep, **logreg, **forest}, seed)
    return evaluated["scores"]


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    """The whole pipeline, from the project folder (the runtime's working directory)."""
    outputs: dict[tuple[str, Branch], dict[str, Any]] = {}
    logged: dict[tuple[str, Branch], list] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(PROJECT)
        outputs["load_data", ()], logged["load_data", ()] = _call("load_data", {})
        outputs["feature_engineering", ()], logged["feature_engineering", ()] = _call(
            "feature_engineering", outputs["load_data", ()]
        )
    partitions = _partition_slices(outputs["feature_engineering", ()]["df"], N_PARTITIONS)
    nested_scores: dict[str, dict[str, Any]] = {}
    for p, partition in enumerate(partitions, start=1):
        for seed in SEEDS:
            branch = (f"data{p}", f"seed{seed}")
            for process, inputs in [
                ("preprocess", {"df": partition}),
                ("train_logreg", None),
                ("train_forest", None),
                ("evaluate", None),
            ]:
                if inputs is None:
                    upstreams = _upstreams()[process]
                    inputs = {k: v for u in upstreams for k, v in outputs[u, branch].items()}
                outputs[process, branch], logged[process, branch] = _call(process, inputs, seed)
            nested_scores.setdefault(f"data{p}", {})[f"seed{seed}"] = outputs[
                "evaluate", branch
            ]["scores"]
    outputs["aggregate_results", ()], logged["aggregate_results", ()] = _call(
        "aggregate_results", {"scores": nested_scores}
    )
    return {
        "outputs": outputs,
        "logged": logged,
        "partitions": partitions,
        "nested_scores": nested_scores,
    }


def _upstreams() -> dict[str, list[str]]:
    adjlist = PIPELINE["process_adjlist"]
    lines = adjlist.splitlines() if isinstance(adjlist, str) else adjlist
    upstreams: dict[str, list[str]] = {}
    for line in lines:
        tokens = line.split("#", 1)[0].split()
        for target in tokens[1:]:
            upstreams.setdefault(target, []).append(tokens[0])
    return upstreams


BRANCHES: list[Branch] = [
    (f"data{p}", f"seed{s}") for p in range(1, N_PARTITIONS + 1) for s in SEEDS
]


def test_config_declares_the_intended_fan_out() -> None:
    assert N_PARTITIONS == 3
    assert PROCESSES["partition"]["data_parallelism"]["data_name"] == "df"
    assert SEEDS == [41, 42, 43]
    for split in ("partition", "seeds"):
        assert "code" not in PROCESSES[split]
    aggregation = PROCESSES["aggregate_results"]
    assert aggregation["data_aggregation"] is True and aggregation["seed_aggregation"] is True
    assert set(_upstreams()) | {"load_data"} == set(PROCESSES)
    assert CONFIG["data"]["path"] == CONFIG["experiment"]["parameters"]["data_path"]
    assert (PROJECT / CONFIG["data"]["path"]).is_file()
    assert list(CONFIG["scripts"]) == ["model"]
    assert (PROJECT / CONFIG["scripts"]["model"]).is_file()


def test_every_input_is_supplied_once_and_never_clashes_with_a_parameter(run) -> None:
    """The runtime rejects a key arriving from two upstreams or shadowing a parameter."""
    outputs = run["outputs"]

    def output_keys(process: str) -> set[str]:
        if "code" not in PROCESSES[process]:  # a split node passes its inputs on
            return set().union(*(output_keys(u) for u in _upstreams()[process]))
        branch = BRANCHES[0] if (process, BRANCHES[0]) in outputs else ()
        return set(outputs[process, branch])

    for process, upstreams in _upstreams().items():
        if "code" not in PROCESSES[process]:
            continue
        per_upstream = [output_keys(u) for u in upstreams]
        arriving = list(itertools.chain.from_iterable(per_upstream))
        assert len(arriving) == len(set(arriving)), f"{process}: duplicate input keys"
        assert not set(arriving) & set(_parameters(process)), f"{process}: key = parameter"


def test_load_data_reads_the_shipped_csv(run) -> None:
    df = run["outputs"]["load_data", ()]["df"]
    assert df.shape == (569, 31)
    assert df["target"].value_counts().to_dict() == {1: 357, 0: 212}
    logged = dict((k, v) for k, v, _ in run["logged"]["load_data", ()])
    assert logged["rows"] == 569
    assert logged["malignant_fraction"] == pytest.approx(212 / 569)


def test_load_data_rejects_a_file_without_the_target(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"a": [1.0], "b": [2.0]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="no target column"):
        model.load_data(data_path=str(bad), target_column="target")


def test_feature_engineering_derives_and_prunes_features(run) -> None:
    raw = run["outputs"]["load_data", ()]["df"]
    df = run["outputs"]["feature_engineering", ()]["df"]
    threshold = _parameters("feature_engineering")["max_feature_correlation"]
    features = df.drop(columns=["target"])

    assert len(df) == len(raw)
    assert (df["target"].to_numpy() == raw["target"].to_numpy()).all()
    assert {"radius_growth", "texture_growth", "concave_points_spread"} <= set(features)
    assert all(c == c.lower() and " " not in c for c in features.columns)
    assert not df.isna().to_numpy().any()
    corr = features.corr().abs().to_numpy()
    assert (corr[~np.eye(len(corr), dtype=bool)] <= threshold).all()
    # radius, perimeter and area are near-duplicates: only one of each triple survives.
    assert "mean_radius" in features and "mean_perimeter" not in features
    logged = dict((k, v) for k, v, _ in run["logged"]["feature_engineering", ()])
    assert logged["features_kept"] == features.shape[1]
    assert logged["features_kept"] + logged["features_dropped"] == 30 + 3


def test_partitions_follow_array_split_and_hold_both_classes(run) -> None:
    partitions = run["partitions"]
    assert [len(p) for p in partitions] == [190, 190, 189]
    assert all(set(p["target"]) == {0, 1} for p in partitions)


@pytest.mark.parametrize("branch", BRANCHES, ids="-".join)
def test_preprocess_splits_and_scales_each_branch(run, branch: Branch) -> None:
    prep = run["outputs"]["preprocess", branch]
    partition = run["partitions"][int(branch[0].removeprefix("data")) - 1]
    n_test = math.ceil(_parameters("preprocess")["test_size"] * len(partition))
    n_features = partition.shape[1] - 1

    assert prep["X_test"].shape == (n_test, n_features)
    assert prep["X_train"].shape == (len(partition) - n_test, n_features)
    assert prep["y_train"].shape == (len(partition) - n_test,)
    assert prep["y_test"].shape == (n_test,)
    assert list(prep["X_train"].columns) == list(partition.columns.drop("target"))
    assert np.allclose(prep["X_train"].mean(), 0, atol=1e-9)
    assert np.allclose(prep["X_train"].std(ddof=0), 1)
    counts = np.bincount(np.concatenate([prep["y_train"], prep["y_test"]]), minlength=2)
    assert counts.tolist() == np.bincount(partition["target"], minlength=2).tolist()


def test_seeds_draw_different_test_sets(run) -> None:
    tests = [run["outputs"]["preprocess", ("data1", f"seed{s}")]["X_test"] for s in SEEDS]
    for a, b in itertools.combinations(tests, 2):
        assert not a.equals(b)


@pytest.mark.parametrize("branch", BRANCHES, ids="-".join)
def test_models_score_well_on_every_branch(run, branch: Branch) -> None:
    scores = run["outputs"]["evaluate", branch]["scores"]
    assert list(scores) == MODELS
    for name in MODELS:
        assert list(scores[name]) == METRIC_NAMES
        assert all(0.0 <= v <= 1.0 for v in scores[name].values())
        assert scores[name]["accuracy"] > 0.85
    logged = {k: v for k, v, _ in run["logged"]["evaluate", branch]}
    assert logged == {f"{m}_{k}": v for m in MODELS for k, v in scores[m].items()}
    for trainer in ("train_logreg", "train_forest"):
        [(key, value, _)] = run["logged"][trainer, branch]
        assert key == "train_accuracy" and value > 0.9


def test_same_seed_gives_identical_scores(run) -> None:
    partition = run["partitions"][1]
    first = _branch_scores(partition, 42)
    second = _branch_scores(partition, 42)
    assert first == second
    assert first == run["outputs"]["evaluate", ("data2", "seed42")]["scores"]
    assert _branch_scores(partition, 43) != first


def test_aggregate_table_matches_an_independent_computation(run) -> None:
    table = run["outputs"]["aggregate_results", ()]["metrics_table"]
    nested = run["nested_scores"]
    partitions = [f"data{p}" for p in range(1, N_PARTITIONS + 1)]

    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["model", "metric", "mean", "std", "n"] + [
        f"mean_{p}" for p in partitions
    ]
    assert list(zip(table["model"], table["metric"])) == list(
        itertools.product(MODELS, METRIC_NAMES)
    )
    for row in table.itertuples(index=False):
        grid = np.array(
            [[nested[p][f"seed{s}"][row.model][row.metric] for s in SEEDS] for p in partitions]
        )
        assert row.n == grid.size == N_PARTITIONS * len(SEEDS)
        assert row.mean == pytest.approx(np.mean(grid), rel=1e-12)
        assert row.std == pytest.approx(np.std(grid, ddof=1), rel=1e-12)
        for p, partition_values in zip(partitions, grid):
            assert getattr(row, f"mean_{p}") == pytest.approx(np.mean(partition_values))
        assert row.mean > (0.9 if row.metric == "f1" else 0.93)
    logged = {k: v for k, v, _ in run["logged"]["aggregate_results", ()]}
    assert logged == {f"{m}_{k}_mean": v for m, k, v in table[["model", "metric", "mean"]].values}


def test_aggregate_accepts_a_single_fan_out_and_orders_branches_naturally() -> None:
    def leaf(x: float) -> dict[str, dict[str, float]]:
        return {"logreg": {"accuracy": x}}

    seeds_only = model.aggregate_results(scores={"seed1": leaf(0.9), "seed2": leaf(1.0)})
    table = seeds_only["metrics_table"]
    assert list(table.columns) == ["model", "metric", "mean", "std", "n"]
    assert table.loc[0, "n"] == 2 and table.loc[0, "mean"] == pytest.approx(0.95)

    many = {f"data{p}": {"seed7": leaf(p / 100)} for p in (10, 2, 1)}
    table = model.aggregate_results(scores=many)["metrics_table"]
    assert [c for c in table.columns if c.startswith("mean_")] == [
        "mean_data1",
        "mean_data2",
        "mean_data10",
    ]


def test_aggregate_rejects_runs_that_scored_different_metrics() -> None:
    scores = {
        "data1": {"seed41": {"logreg": {"accuracy": 0.9}}},
        "data2": {"seed41": {"logreg": {"f1": 0.9}}},
    }
    with pytest.raises(ValueError, match="data2/seed41"):
        model.aggregate_results(scores=scores)
