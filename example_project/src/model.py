"""Process functions of the breast-cancer diagnosis experiment.

The runtime calls each ``@process()`` function with keyword arguments picked by name from
its upstream processes' outputs, the experiment parameters and ``random_seed``; every key
of the returned dict becomes an artifact (DataFrames as Parquet, anything else pickled).
The functions therefore take plain values and return plain dicts, which is also what makes
them testable without the runtime.

Label convention of the data set (as shipped by scikit-learn): 0 = malignant, 1 = benign.
Malignant is the class a screening model must find, so F1 and ROC AUC score it as positive.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from expops_smk import log_metric, process

MALIGNANT = 0

# Keys the runtime uses to wrap fanned-out values at an aggregation: data1.., seed41..
_BRANCH_KEY = re.compile(r"(data|seed)(\d+)")


@process()
def load_data(data_path: str, target_column: str) -> dict[str, Any]:
    """Read the raw CSV; fail early on a file that the later steps would misread."""
    df = pd.read_csv(data_path)
    if target_column not in df.columns:
        raise ValueError(f"{data_path}: no target column {target_column!r}")
    if df.isna().to_numpy().any():
        raise ValueError(f"{data_path}: missing values are not expected in this data set")
    labels = set(df[target_column].unique().tolist())
    if not labels <= {0, 1}:
        raise ValueError(f"{data_path}: target must be 0/1, found {sorted(labels)}")
    log_metric("rows", len(df))
    log_metric("malignant_fraction", float((df[target_column] == MALIGNANT).mean()))
    return {"df": df}


def _snake_case(column: str) -> str:
    return re.sub(r"\W+", "_", column.strip().lower())


@process()
def feature_engineering(
    df: pd.DataFrame, target_column: str, max_feature_correlation: float
) -> dict[str, Any]:
    """Add shape features and drop near-duplicate columns.

    The raw columns are ten nucleus measurements, each as mean, standard error and
    "worst"; radius, perimeter and area are almost the same quantity. Derived features are
    row-wise (no information crosses rows, so nothing leaks between train and test), and
    the redundancy filter looks only at feature-feature correlation, never at the target.
    Scaling is left to ``preprocess`` so it is fitted on training rows only.
    """
    features = df.drop(columns=[target_column]).rename(columns=_snake_case)
    # How much larger the worst nuclei are than the average one (pleomorphism).
    features["radius_growth"] = features["worst_radius"] / features["mean_radius"]
    # Texture heterogeneity: how much rougher the worst nuclei are than the average one.
    features["texture_growth"] = features["worst_texture"] / features["mean_texture"]
    features["concave_points_spread"] = (
        features["worst_concave_points"] - features["mean_concave_points"]
    )

    # Greedy in column order: keep a column unless it is too correlated with a kept one.
    corr = features.corr().abs()
    kept: list[str] = []
    for column in features.columns:
        if all(corr.at[column, other] <= max_feature_correlation for other in kept):
            kept.append(column)
    log_metric("features_kept", len(kept))
    log_metric("features_dropped", features.shape[1] - len(kept))

    out = features[kept].copy()
    out[target_column] = df[target_column].astype(np.int64).to_numpy()
    return {"df": out}


@process()
def preprocess(
    df: pd.DataFrame, target_column: str, test_size: float, random_seed: int
) -> dict[str, Any]:
    """Stratified train/test split of one partition, then standardise on the train rows."""
    X = df.drop(columns=[target_column])
    y = df[target_column].to_numpy(dtype=np.int64)
    X_tr, X_te, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=random_seed, stratify=y
    )
    scaler = StandardScaler().fit(X_tr)
    # Fresh RangeIndex frames: the partition's row labels mean nothing downstream.
    X_train = pd.DataFrame(scaler.transform(X_tr), columns=X.columns)
    X_test = pd.DataFrame(scaler.transform(X_te), columns=X.columns)
    log_metric("train_rows", len(X_train))
    log_metric("test_rows", len(X_test))
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test}


@process()
def train_logreg(
    X_train: pd.DataFrame, y_train: np.ndarray, C: float, max_iter: int, random_seed: int
) -> dict[str, Any]:
    """L2-regularised logistic regression, the interpretable baseline."""
    model = LogisticRegression(C=C, max_iter=max_iter, random_state=random_seed)
    model.fit(X_train, y_train)
    log_metric("train_accuracy", float(model.score(X_train, y_train)))
    return {"logreg_model": model}


@process()
def train_forest(
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    n_estimators: int,
    max_depth: int | None,
    random_seed: int,
) -> dict[str, Any]:
    """Random forest; single-threaded so that each job uses one core and is reproducible."""
    model = RandomForestClassifier(
        n_estimators=n_estimators, max_depth=max_depth, random_state=random_seed, n_jobs=1
    )
    model.fit(X_train, y_train)
    log_metric("train_accuracy", float(model.score(X_train, y_train)))
    return {"forest_model": model}


def _score(model: ClassifierMixin, X: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    malignant_proba = model.predict_proba(X)[:, list(model.classes_).index(MALIGNANT)]
    predicted = model.predict(X)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted, pos_label=MALIGNANT)),
        "roc_auc": float(roc_auc_score(y == MALIGNANT, malignant_proba)),
    }


@process()
def evaluate(
    logreg_model: LogisticRegression,
    forest_model: RandomForestClassifier,
    X_test: pd.DataFrame,
    y_test: np.ndarray,
) -> dict[str, Any]:
    """Score both models on the same held-out rows: ``{model: {metric: value}}``."""
    scores = {
        "logreg": _score(logreg_model, X_test, y_test),
        "forest": _score(forest_model, X_test, y_test),
    }
    for model_name, metrics in scores.items():
        for metric, value in metrics.items():
            log_metric(f"{model_name}_{metric}", value)
    return {"scores": scores}


def _branch_order(key: str) -> tuple[str, int]:
    match = _BRANCH_KEY.fullmatch(key)
    assert match is not None
    return match.group(1), int(match.group(2))


def _flatten_branches(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Unwrap ``{"data1": {"seed41": v}}`` into ``[(("data1", "seed41"), v), ...]``.

    Descends while every key is a branch key, so the function also works if the config
    drops the seed or the data fan-out (one level of wrapping instead of two). Branches
    come out in natural order (data2 before data10).
    """
    if isinstance(value, dict) and value and all(
        isinstance(key, str) and _BRANCH_KEY.fullmatch(key) for key in value
    ):
        flat: list[tuple[tuple[str, ...], Any]] = []
        for key in sorted(value, key=_branch_order):
            flat.extend(_flatten_branches(value[key], path + (key,)))
        return flat
    return [(path, value)]


@process()
def aggregate_results(scores: dict[str, Any]) -> dict[str, Any]:
    """One row per model x metric: mean, sample std (ddof=1) and n over every
    partition x seed run, plus the mean within each partition (``mean_data1`` ...),
    which shows whether the partitions, whose class balance differs, disagree."""
    runs = _flatten_branches(scores)
    reference = runs[0][1]
    for path, leaf in runs:
        if {m: set(v) for m, v in leaf.items()} != {m: set(v) for m, v in reference.items()}:
            raise ValueError(f"run {'/'.join(path)} scored different models or metrics")
    partitions = sorted(
        {key for path, _ in runs for key in path if key.startswith("data")}, key=_branch_order
    )

    rows = []
    for model_name, metrics in reference.items():
        for metric in metrics:
            values = np.array([leaf[model_name][metric] for _, leaf in runs], dtype=float)
            row: dict[str, Any] = {
                "model": model_name,
                "metric": metric,
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                "n": len(values),
            }
            for partition in partitions:
                in_partition = [leaf[model_name][metric] for path, leaf in runs if partition in path]
                row[f"mean_{partition}"] = float(np.mean(in_partition))
            rows.append(row)
            log_metric(f"{model_name}_{metric}_mean", row["mean"])
    return {"metrics_table": pd.DataFrame(rows)}
