"""A self-contained HTML report of a finished run: ``expops-smk report [PROJECT]``.

One file that can be mailed or attached to a paper review: the summary over seeds and
partitions, the seed-spread and learning-curve plots and the DAG as base64-embedded PNGs, and
for every node its parameters, seed, code hash and how its last run ended. It reads only what a
run leaves behind (``workflow/expops_plan.json``, ``results/``), never the live config, so the
report describes the run that produced the numbers even if the config was edited since.
Without matplotlib the report is still written, with a note where the plots would be.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from expops_smk.config.model import ProjectConfig, accepted_parameters, effective_parameters
from expops_smk.config.overrides import apply_overrides, recorded_overrides
from expops_smk.errors import ExpopsError
from expops_smk.graph.expansion import Graph, build_graph
from expops_smk.graph.nodes import Node
from expops_smk.graph.plan import read_plan
from expops_smk.graph.render import partition_labels
from expops_smk.layout import CHARTS_DIR, METRICS_FILE, PLAN_FILE, RUN_FILE
from expops_smk.results import metrics, plots
from expops_smk.results.report_files import node_tables

# Rows of an aggregation's table shown in the report: enough to read it, bounded for huge tables.
TABLE_ROWS = 50

REPORT_FILE = "report.html"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f3f3f3; }
#summary td:nth-child(-n+2), #summary-partition td:nth-child(-n+3) { text-align: left; }
table.nodes td, table.nodes th { text-align: left; } .nowrap { white-space: nowrap; } code { font-size: 0.95em; word-break: break-all; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; display: block; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; } .note { color: #a05a00; }
"""


@dataclass
class Report:
    html: str
    warnings: list[str] = field(default_factory=list)


def write_report(project_dir: Path, output: Path) -> Report:
    report = build_report(project_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report.html, encoding="utf-8")
    return report


def build_report(project_dir: Path) -> Report:
    root = Path(project_dir).resolve()
    plan_file = root / PLAN_FILE
    if not plan_file.is_file():
        raise ExpopsError(f"{plan_file}: missing; generate and run the workflow first (expops-smk run)")
    project = apply_overrides(read_plan(plan_file, root).project, recorded_overrides(root))  # snakemake --config
    graph = build_graph(project)
    # Processes in workflow order (collect lists them by results folder name); summaries and
    # plots keep the table's order.
    order = {name: index for index, name in enumerate(graph.layouts)}
    nodes = list(graph.nodes())
    table = metrics.collect(root, {node.id for node in nodes})
    table = table.sort_values("process", key=lambda column: column.map(order), kind="stable")
    warnings: list[str] = []
    overall = metrics.summary(table)
    per_partition = metrics.summary(table, by_partition=True)
    per_partition = per_partition[per_partition["partition"] != ""]

    with tempfile.TemporaryDirectory(prefix="expops-report-") as tmp:
        figures = Path(tmp)
        try:
            spread = plots.seed_spread(table, figures)
            curves = plots.learning_curves(table, figures)
            plot_html = _images(spread, "Seed spread") + _images(curves, "Learning curves")
            if not spread and not curves:
                plot_html = "<p>No metric was recorded by more than one node.</p>"
        except plots.PlotsUnavailable as exc:
            warnings.append(str(exc))
            plot_html = f'<p class="note">{html.escape(str(exc))}</p>'
        dag = plots.dag_picture(graph, figures)
        dag_html = (_img(dag, "expanded workflow graph") if dag.suffix == ".png" else
                    '<p class="note">Graphviz <code>dot</code> is not installed; mermaid source:</p>'
                    f"<pre>{html.escape(dag.read_text(encoding='utf-8'))}</pre>")

    ran = sum(1 for node in nodes if _run_record(root, graph, node) is not None)
    title = f"{project.name}: expops-smk report"
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{len(project.processes)} processes, {len(nodes)} nodes ({ran} with results) '
        f"in <code>{html.escape(str(root))}</code>; generated {generated}</p>",
        "<h2>Summary over seeds and partitions</h2>",
        "<p>Final value (last step) of each metric per node; std with ddof=1; "
        "95% confidence interval of the mean from Student's t.</p>",
        _table(overall, "summary"),
    ]
    if not per_partition.empty:
        body += ["<h2>Summary per partition (over seeds)</h2>", _table(per_partition, "summary-partition")]
    body += ["<h2>Plots</h2>", plot_html, "<h2>Charts</h2>", _charts(root, project),
             "<h2>Aggregated tables</h2>", _aggregation_tables(root, graph),
             "<h2>Workflow graph</h2>", dag_html,
             "<h2>Nodes</h2>", _nodes_table(root, project, graph, nodes)]
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    return Report(page, warnings)


def _table(frame: pd.DataFrame, css_id: str) -> str:
    if frame.empty:
        return "<p>No numeric metrics were recorded.</p>"
    return frame.to_html(index=False, border=0, table_id=css_id, na_rep="–",
                         float_format=lambda value: f"{value:.6g}")


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _images(paths: list[Path], heading: str) -> str:
    if not paths:
        return ""
    return f"<h3>{html.escape(heading)}</h3>" + "".join(_img(path, path.stem) for path in paths)


def _run_record(root: Path, graph: Graph, node: Node) -> dict[str, Any] | None:
    """``_run.json`` of the node's (first) output folder: a data split writes one per partition."""
    folder = root / graph.output_locations(node)[0].results_dir
    try:
        return json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _last_run(run: dict[str, Any]) -> str:
    """How the last run ended and what computing the results cost: a restore took a fraction of a
    second, but its results took ``computed_seconds`` to compute the first time."""
    outcome, computed = run.get("outcome"), run.get("computed_seconds")
    if outcome == "restored":
        took = f"computed in {computed} s" if computed is not None else "compute time not recorded"
        return f"restored in {run.get('seconds')} s ({took})"
    return f"{outcome} ({run.get('seconds')} s)"


def _charts(root: Path, project: ProjectConfig) -> str:
    """The PNGs each chart of the project drew into ``results/charts/<chart>/``."""
    parts = []
    for name in project.charts:
        pictures = sorted((root / CHARTS_DIR / name).rglob("*.png"))
        parts.append(f"<h3>{html.escape(name)}</h3>" + ("".join(_img(path, f"{name}: {path.stem}") for path in pictures)
                                                        or "<p>Not drawn yet.</p>"))
    return "".join(parts) or "<p>The project defines no charts.</p>"


def _aggregation_tables(root: Path, graph: Graph) -> str:
    """Tables returned by aggregation nodes (the results across seeds and partitions), read
    through the store so an artifact edited by hand is refused rather than shown."""
    aggregations = (node for layout in graph.layouts.values() if layout.spec.is_aggregation for node in layout.nodes())
    parts = []
    for location, key, frame in node_tables(root, graph, aggregations):
        shown = f" (first {TABLE_ROWS} of {len(frame)} rows)" if len(frame) > TABLE_ROWS else ""
        parts.append(f"<h3>{html.escape(location.label)}: {html.escape(key)}{shown}</h3>"
                     + frame.head(TABLE_ROWS).to_html(border=0, classes="aggregated", na_rep="–"))
    return "".join(parts) or "<p>No aggregation node has returned a table yet.</p>"


def _snapshots(root: Path, graph: Graph, node: Node) -> dict[str, Any]:
    folder = root / graph.output_locations(node)[0].results_dir
    try:
        return json.loads((folder / METRICS_FILE).read_text(encoding="utf-8")).get("snapshots") or {}
    except (OSError, ValueError):
        return {}


def _nodes_table(root: Path, project: ProjectConfig, graph: Graph, nodes: list[Node]) -> str:
    header = ["node", "id", "random_seed", "parameters", "code hash", "last run", "snapshots"]
    rows = ["<tr>" + "".join(f"<th>{name}</th>" for name in header) + "</tr>"]
    known: dict[Node, dict[int, str]] = {}
    for node in nodes:
        spec = graph.layouts[node.process].spec
        # The seed the function receives, as the runtime computes it: the innermost seed of the
        # node's branch, else the project's (or a parameter's) random_seed.
        seed = node.seed[-1] if node.seed else effective_parameters(project, spec).get("random_seed", project.random_seed)
        code = spec.function.code_hash if spec.function is not None else "built-in split"
        run = _run_record(root, graph, node)
        last = "not run" if run is None else _last_run(run)
        snapshots = _snapshots(root, graph, node)
        cells = [
            html.escape(node.label + "".join(partition_labels(graph, node, known))),
            f"<code>{html.escape(node.id)}</code>",
            html.escape(str(seed)),
            f"<code>{html.escape(json.dumps(accepted_parameters(project, spec), sort_keys=True, default=str))}</code>",
            f"<code>{html.escape(code)}</code>",
            f'<span class="nowrap">{html.escape(last)}</span>',
            f"<code>{html.escape(json.dumps(snapshots, sort_keys=True))}</code>" if snapshots else "",
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return '<table class="nodes" id="nodes">' + "\n".join(rows) + "</table>"
