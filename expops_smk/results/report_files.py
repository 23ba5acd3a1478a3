"""The files ``snakemake --report`` shows: ``python -m expops_smk.results.report_files OUT_DIR``.

Node artifacts are Parquet/pickle files nobody reads in a browser, and they are not declared
outputs (the manifest is: see README "What re-runs"), so Snakemake cannot flag them for its report.
The generated rule ``report_files`` runs this module after every node and writes human-readable
copies under ``results/report/``: one HTML table per returned table, named
``<process>/<where>/<key>.html`` (``where`` is the partition and seed, ``all`` for a node without
fan-out), the metrics summary over seeds and partitions, and the seed-spread and learning-curve
plots when matplotlib is installed. The rule declares the folder with ``report(...)`` patterns whose
wildcards become the report's category (process) and subcategory (partition/seed). It is not part
of ``rule all``, so ordinary runs do not pay for it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd

from expops_smk.graph.expansion import Graph, build_graph
from expops_smk.graph.nodes import Node
from expops_smk.graph.plan import read_plan
from expops_smk.layout import PLAN_FILE
from expops_smk.results import metrics, plots
from expops_smk.store.artifact_store import Store

# Category of the summary and plots (processes are the other categories).
SUMMARY_CATEGORY = "Summary"
# Rows of a table copied into the report: the report embeds every file, so huge tables are cut.
MAX_ROWS = 1000


def where(partition_value: str, seed_value: str) -> str:
    """One path segment naming a node's partition and seed: ``p1-s41``, ``s41``, ``p1``, ``all``."""
    return "-".join(part for part in (partition_value, f"s{seed_value}" if seed_value else "") if part) or "all"


def node_tables(root: Path, graph: Graph, nodes: Iterable[Node]) -> Iterator[tuple[Node, str, pd.DataFrame]]:
    """(output folder, key, table as a DataFrame) of every table the nodes returned, read through the
    store (an artifact edited by hand is refused, not shown); folders without results are skipped."""
    store = Store(root)
    for node in nodes:
        for location in graph.output_locations(node):
            folder = root / location.results_dir
            try:
                manifest = store.read_manifest(folder)
            except (OSError, ValueError):
                continue
            for key, artifact in manifest.items():
                if artifact.format != "pickle":
                    frame = store.read_value(folder, artifact)
                    yield location, key, frame if isinstance(frame, pd.DataFrame) else frame.to_pandas()


def write_report_files(root: Path, out_dir: Path) -> list[Path]:
    """Write every table of every node with results, the summary and the plots; returns the files."""
    project = read_plan(root / PLAN_FILE, root).project
    graph = build_graph(project)
    if out_dir.exists():
        shutil.rmtree(out_dir)  # the rule's own output directory: no stale tables from older runs
    written: list[Path] = []
    for location, key, frame in node_tables(root, graph, graph.nodes()):
        target = out_dir / location.process / where(location.partition_value, location.seed_value)
        written.append(_write_table(frame, target / f"{key}.html"))
    table = metrics.collect(root, {node.id for node in graph.nodes()})
    summary_dir = out_dir / SUMMARY_CATEGORY / "metrics"
    written.append(_write_table(metrics.summary(table), summary_dir / "summary.html"))
    written.append(_write_table(metrics.summary(table, by_partition=True), summary_dir / "summary_per_partition.html"))
    try:
        plot_dir = out_dir / SUMMARY_CATEGORY / "plots"
        plot_dir.mkdir(parents=True, exist_ok=True)
        written += plots.seed_spread(table, plot_dir) + plots.learning_curves(table, plot_dir)
    except plots.PlotsUnavailable:
        pass  # the report still has the tables; `expops-smk report` says why plots are missing
    return written


def _write_table(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    note = f"<p>First {MAX_ROWS} of {len(frame)} rows.</p>" if len(frame) > MAX_ROWS else ""
    path.write_text(f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{path.stem}</title></head><body>'
                    f"{note}{frame.head(MAX_ROWS).to_html(border=1, na_rep='–')}</body></html>\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0])
    write_report_files(Path.cwd().resolve(), out_dir.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
