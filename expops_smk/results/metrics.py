"""Metrics of a finished run as one tidy table, and their spread over seeds and partitions.

Seed fan-out exists so that a result can be reported as mean ± spread over seeds, and partition
fan-out so that one can see how it varies across data. The runtime leaves one ``_metrics.json``
per node folder; this module gathers them into a table with one row per logged number
(process, partition, seed, node, label, metric, step, value, step_name) and summarises the final
value of each curve per process × metric.

A data split writes its outputs, ``_metrics.json`` included, into one folder per partition, so
the same node's metrics appear once per partition: those copies are one node and are counted once.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Collection, Iterable

import pandas as pd

from expops_smk.errors import ExpopsError
from expops_smk.graph.expansion import build_graph
from expops_smk.graph.plan import read_plan
from expops_smk.layout import METRICS_FILE, PLAN_FILE, RESULTS_DIR

COLUMNS = ["process", "partition", "seed", "node", "label", "metric", "step", "value", "step_name"]
SUMMARY_STATS = ["n", "mean", "std", "min", "max", "ci95_low", "ci95_high"]
CONFIDENCE = 0.95

# Degrees of freedom above which the exact t quantile (O(df) per evaluation) is replaced by the
# Cornish-Fisher expansion, whose error there is far below float printing precision.
_EXACT_T_MAX_DF = 1000


def current_node_ids(project_dir: Path) -> set[str] | None:
    """Ids of the nodes in the project's generated plan; None when it was never generated."""
    root = Path(project_dir).resolve()
    plan_file = root / PLAN_FILE
    if not plan_file.is_file():
        return None
    return {node.id for node in build_graph(read_plan(plan_file, root).project).nodes()}


def collect(project_dir: Path, nodes: Collection[str] | None = None) -> pd.DataFrame:
    """Every numeric metric under ``project_dir/results`` as a tidy table (empty if none ran yet).

    With ``nodes``, folders of other nodes are skipped: results left by an earlier config (a
    removed seed, a smaller split) would otherwise skew the statistics of the current one.
    Rows keep the order in which each node logged them; nodes are ordered by folder path.
    """
    results = Path(project_dir) / RESULTS_DIR
    if not results.is_dir():
        raise ExpopsError(f"{results}: no results folder; run the workflow first (expops-smk run)")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for path in sorted(results.rglob(METRICS_FILE)):
        record = _read(path)
        node = record["node"]
        if node in seen or (nodes is not None and node not in nodes):  # seen: a data split's copy
            continue
        seen.add(node)
        for point in record.get("series", []):
            rows.append({
                "process": record["process"], "partition": record["partition"], "seed": record["seed"],
                "node": node, "label": record["label"], "metric": point["metric"],
                "step": int(point["step"]), "value": float(point["value"]), "step_name": point.get("step_name"),
            })
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.astype({"step": "int64", "value": "float64"})


def _read(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExpopsError(f"{path}: unreadable metrics file ({exc})") from None
    missing = [key for key in ("node", "label", "process", "partition", "seed") if key not in record]
    if missing:
        raise ExpopsError(f"{path}: metrics file lacks {', '.join(missing)}; re-run its node")
    return record


def final_values(table: pd.DataFrame) -> pd.DataFrame:
    """One row per node × metric: the value at the curve's last (highest) step, in table order."""
    rows = table.reset_index(drop=True)
    if rows.empty:
        return rows
    last = rows.sort_values("step", kind="stable").groupby(["node", "metric"], sort=False).tail(1)
    return last.sort_index()


def summary(table: pd.DataFrame, by_partition: bool = False) -> pd.DataFrame:
    """Per process × metric (× partition when ``by_partition``): statistics of the final values.

    Without ``by_partition`` the sample is every node of the process (all partitions × seeds);
    with it, the seeds within each partition. ``std`` uses ddof=1 and the interval is the
    two-sided 95% Student-t interval of the mean; both are NaN for a single node.
    """
    keys = ["process", "partition", "metric"] if by_partition else ["process", "metric"]
    finals = final_values(table)
    rows = []
    for group, values in finals.groupby(keys, sort=False)["value"]:
        rows.append({**dict(zip(keys, group)), **describe(values.tolist())})
    return pd.DataFrame(rows, columns=keys + SUMMARY_STATS)


def describe(values: Iterable[float], confidence: float = CONFIDENCE) -> dict[str, float | int]:
    """n, mean, sample std, min, max and the t confidence interval of the mean of ``values``."""
    data = [float(v) for v in values]
    n = len(data)
    mean = statistics.fmean(data)
    if n < 2:
        std = low = high = math.nan
    else:
        std = statistics.stdev(data)
        half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
        low, high = mean - half, mean + half
    return {"n": n, "mean": mean, "std": std, "min": min(data), "max": max(data),
            "ci95_low": low, "ci95_high": high}


def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t with integer ``df`` degrees of freedom (no scipy needed).

    Up to ``_EXACT_T_MAX_DF`` it inverts the exact closed-form CDF for integer df by bisection;
    beyond, the Cornish-Fisher expansion around the normal quantile is used.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    target = 2.0 * p - 1.0  # P(|T| < t)
    if df > _EXACT_T_MAX_DF:
        return _cornish_fisher(p, df)
    low, high = 0.0, 1.0
    while _central_probability(high, df) < target:
        low, high = high, high * 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if middle in (low, high):
            break
        if _central_probability(middle, df) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def _central_probability(t: float, df: int) -> float:
    """P(|T| < t) for integer df: the finite series of Abramowitz & Stegun 26.7.3 / 26.7.4."""
    theta = math.atan(t / math.sqrt(df))
    sin, cos = math.sin(theta), math.cos(theta)
    cos2 = cos * cos
    if df % 2 == 1:
        total, term = 0.0, cos
        for k in range(1, (df - 1) // 2 + 1):  # cos + 2/3 cos^3 + (2*4)/(3*5) cos^5 + ...
            total += term
            term *= cos2 * (2 * k) / (2 * k + 1)
        return 2.0 / math.pi * (theta + sin * total)
    total, term = 0.0, 1.0
    for k in range(1, df // 2 + 1):  # 1 + 1/2 cos^2 + (1*3)/(2*4) cos^4 + ...
        total += term
        term *= cos2 * (2 * k - 1) / (2 * k)
    return sin * total


def _cornish_fisher(p: float, df: int) -> float:
    """Abramowitz & Stegun 26.7.5: t quantile as a series in 1/df around the normal quantile."""
    z = statistics.NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def format_text(table: pd.DataFrame) -> str:
    """A fixed-width text rendering for terminals (floats to 6 significant digits)."""
    if table.empty:
        return "(no metrics)"
    return table.to_string(index=False, float_format=lambda value: f"{value:.6g}", na_rep="-")


def write(table: pd.DataFrame, output_format: str, output: Path | None) -> str | None:
    """Write ``table`` as text, CSV or Parquet to ``output``; return the text instead when no file."""
    if output_format == "parquet":
        if output is None:
            raise ExpopsError("--format parquet needs --output FILE (Parquet is binary)")
        table.to_parquet(output, index=False)
        return None
    text = format_text(table) + "\n" if output_format == "text" else table.to_csv(index=False)
    if output is None:
        return text
    Path(output).write_text(text, encoding="utf-8")
    return None
