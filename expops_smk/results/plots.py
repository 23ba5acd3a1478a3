"""Built-in pictures of a run: seed spread, learning curves and the expanded DAG.

matplotlib is an optional extra (``pip install 'expops-smk[plots]'``): it is imported only when a
plot is drawn, and its absence is one clear line (``PlotsUnavailable``), not a traceback. Figures
are built with ``matplotlib.figure.Figure`` rather than pyplot, so no GUI backend or global figure
state is involved (safe in a headless job and in a notebook that has its own pyplot session).
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from expops_smk.errors import ExpopsError
from expops_smk.graph.expansion import Graph
from expops_smk.graph.render import as_dot, as_mermaid
from expops_smk.results.metrics import describe, final_values

PANEL_INCHES = (3.4, 2.8)
LEGEND_INCHES = 1.0
MIN_FIGURE_INCHES = 6.0
MAX_COLUMNS = 3
DPI = 100
DOT_TIMEOUT_SECONDS = 120
ALL = "all"


class PlotsUnavailable(ExpopsError):
    """matplotlib is not installed."""


def _new_figure(panels: int) -> tuple[Any, list[Any]]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotsUnavailable("plots need matplotlib: pip install 'expops-smk[plots]'") from None
    columns = min(panels, MAX_COLUMNS)
    rows = -(-panels // columns)
    # Room for the legend beside the panels and for the title above a single panel.
    width = max(PANEL_INCHES[0] * columns + LEGEND_INCHES, MIN_FIGURE_INCHES)
    figure = Figure(figsize=(width, PANEL_INCHES[1] * rows), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, axes[:panels]


def _seed_colors(seeds: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {seed: palette(index % 10) for index, seed in enumerate(seeds)}


def _ordered(values: pd.Series) -> list[str]:
    """Partition or seed values in natural order (p2 before p10, 7 before 41)."""
    def key(value: str) -> list[Any]:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", value)]
    return sorted(values.unique().tolist(), key=key)


def file_stem(*parts: str) -> str:
    """A safe, bounded file name for a process/metric; a hash keeps distinct names distinct."""
    raw = "__".join(parts)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("._")[:80]
    if slug != raw:
        slug += "-" + hashlib.sha256(raw.encode()).hexdigest()[:8]
    return slug


def seed_spread(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One PNG per process: a panel per metric with the final value of every node as a point
    (coloured by seed, grouped by partition) and the mean ± 95% CI per partition and over all.

    Metrics recorded by a single node have no spread and are left out.
    """
    finals = final_values(table)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for process, rows in finals.groupby("process", sort=False):
        metrics = [metric for metric, group in rows.groupby("metric", sort=False) if len(group) > 1]
        if not metrics:
            continue
        figure, axes = _new_figure(len(metrics))
        seeds = _ordered(rows["seed"])
        colors = _seed_colors(seeds)
        for ax, metric in zip(axes, metrics):
            _spread_panel(ax, rows[rows["metric"] == metric], colors)
            ax.set_title(metric, fontsize=10)
        if seeds != [""]:
            from matplotlib.lines import Line2D

            handles = [Line2D([], [], marker="o", linestyle="", color=colors[seed]) for seed in seeds]
            figure.legend(handles, [f"seed {seed}" for seed in seeds], loc="outside right upper", fontsize=8)
        figure.suptitle(f"{process}: final value per node, mean ± 95% CI", fontsize=11)
        path = out_dir / f"spread_{file_stem(process)}.png"
        figure.savefig(path)
        written.append(path)
    return written


def _spread_panel(ax: Any, rows: pd.DataFrame, colors: dict[str, Any]) -> None:
    partitions = _ordered(rows["partition"])
    groups: list[tuple[str, pd.DataFrame]] = [(p or ALL, rows[rows["partition"] == p]) for p in partitions]
    if len(partitions) > 1:
        groups.append((ALL, rows))
    seeds = list(colors)
    width = 0.5
    for position, (name, group) in enumerate(groups):
        for seed in seeds:
            values = group.loc[group["seed"] == seed, "value"]
            offset = (seeds.index(seed) + 0.5) / len(seeds) * width - width / 2 - 0.1
            ax.scatter([position + offset] * len(values), values, s=18, color=colors[seed],
                       alpha=0.45 if name == ALL and len(groups) > 1 else 0.9, zorder=2)
        stats = describe(group["value"])
        half = (stats["ci95_high"] - stats["ci95_low"]) / 2
        ax.errorbar([position + width / 2], [stats["mean"]], yerr=None if math.isnan(half) else [[half], [half]],
                    fmt="D", color="black", markersize=5, capsize=4, zorder=3)
    ax.set_xticks(range(len(groups)), [name for name, _ in groups])
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(labelsize=8)


def learning_curves(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One PNG per process × stepped metric (some node logged it at two or more steps): a panel
    per partition with one line per seed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (process, metric), rows in table.groupby(["process", "metric"], sort=False):
        if rows.groupby("node")["step"].nunique().max() < 2:
            continue
        partitions = _ordered(rows["partition"])
        seeds = _ordered(rows["seed"])
        colors = _seed_colors(seeds)
        figure, axes = _new_figure(len(partitions))
        for ax, partition in zip(axes, partitions):
            for seed in seeds:
                curve = rows[(rows["partition"] == partition) & (rows["seed"] == seed)].sort_values("step", kind="stable")
                if not curve.empty:
                    ax.plot(curve["step"], curve["value"], marker=".", color=colors[seed],
                            label=f"seed {seed}" if seed else process)
            ax.set_title(partition or ALL, fontsize=10)
            ax.set_xlabel("step", fontsize=8)
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
        axes[0].legend(fontsize=8)
        figure.suptitle(f"{process}: {metric}", fontsize=11)
        path = out_dir / f"curve_{file_stem(process, metric)}.png"
        figure.savefig(path)
        written.append(path)
    return written


def dag_picture(graph: Graph, out_dir: Path) -> Path:
    """The expanded DAG as ``dag.png`` drawn by Graphviz ``dot`` when it is installed, else as
    ``dag.mmd`` (mermaid source, rendered by GitHub, GitLab and mermaid.live)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dot = shutil.which("dot")
    if dot is not None:
        path = out_dir / "dag.png"
        # Fan-outs make the graph wide: drawn left to right it grows in height instead, which a
        # page scrolls and a report column keeps legible. A later graph attribute overrides
        # the earlier ``rankdir`` of as_dot.
        source = as_dot(graph).rstrip().removesuffix("}") + "  rankdir=LR;\n}\n"
        result = subprocess.run([dot, "-Tpng", "-o", str(path)], input=source, text=True,
                                capture_output=True, timeout=DOT_TIMEOUT_SECONDS)
        if result.returncode == 0:
            return path
        raise ExpopsError(f"dot failed drawing the graph: {' '.join(result.stderr.split())}")
    path = out_dir / "dag.mmd"
    path.write_text(as_mermaid(graph) + "\n", encoding="utf-8")
    return path
