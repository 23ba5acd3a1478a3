"""Chart processes: XPath probes over the node tree, ExpOps' ``metrics`` shape, and real chart jobs.

The project has 2 partitions (x = 1..5 and 6..10) × 2 seeds (41, 42). ``train`` logs ``score`` and a
``note`` outside any step, ``loss`` inside the ``fit`` step and ``accuracy`` inside a step named
``evaluate`` (``@step(name=...)``, reached through a helper). Unit tests resolve selectors on the
config alone; one module fixture runs ``expops-smk generate`` and real Snakemake once, with three
charts written for ExpOps (one per accepted signature) and one dynamic chart that must be skipped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from expops_smk import layout
from expops_smk.graph.probes import Probe, ProbeTree, process_steps, resolve_charts, resolve_probes, with_process_aliases
from expops_smk.runtime.chart_job import node_metrics
from expops_smk.cli import main as cli
from expops_smk.config.project import load_project
from expops_smk.errors import ConfigError
from expops_smk.graph.expansion import build_graph
from expops_smk.graph.nodes import Node
from expops_smk.graph.plan import plan_from_json, plan_to_json
from projects import write_project

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TIMEOUT = 240
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOTALS = {1: 15.0, 2: 40.0}  # sum of x per partition
SEEDS = (41, 42)


def train_id(partition: int, seed: int) -> str:
    return f"//*[@partition='p{partition}']/*[@seed='{seed}']/process[@name='train']"


def step_id(partition: int, seed: int, step: str) -> str:
    return f"{train_id(partition, seed)}/step[@name='{step}']"


TRAIN_IDS = [train_id(p, s) for p in TOTALS for s in SEEDS]
FIT_IDS = [step_id(p, s, "fit") for p in TOTALS for s in SEEDS]

CONFIG = """\
metadata: {name: chart-demo}
scripts:
  main: src/model.py
  reporting: src/charts.py
  reporting_js: src/charts.js
data: {path: data/points.csv}
# conda environments are deployed only under --software-deployment-method conda: jobs run as before.
environment:
  main-env: {conda: [envs/main.yml]}
  charts-env: {conda: [envs/charts.yml]}
experiment:
  parameters: {data_path: data/points.csv}
  pipeline:
    process_adjlist: |
      load split
      split seeds
      seeds train
      train by_metrics        # ExpOps' templates list charts here too: accepted, the probes decide
    processes:
      - name: load
      - name: split
        data_parallelism: {size: 2, data_name: df}
      - name: seeds
        seed_parallelism: {seeds: [41, 42]}
      - name: train
      - name: by_metrics
        code: reporting.by_metrics
        probe_paths:
          first: "//*[@partition='p1']/*[@seed='41']/*[@name='train']"
          fits: "//*[@name='train']/*[@name='fit']"
          loaded: "//*[@name='load']"
      - name: by_both
        code: reporting.by_both
        description: Every training run
        environment: charts-env
        probe_paths:
          trains: "//*[@name='train']"
      - name: by_ctx
        code: reporting.by_ctx
        probe_paths:
          - evaluations: {path: "//*[@partition='p2']//*[@name='train']/*[@name='evaluate']", metric: accuracy}
      - name: live_losses
        code: reporting_js.live_losses
        chart_type: dynamic
        probe_paths:
          nn: "//*[@name='train']"
"""

MODEL = '''\
import pandas as pd
from expops.core import log_metric, process, step


@process()
def load(data_path):
    df = pd.read_csv(data_path)
    log_metric("rows", len(df))
    return {"df": df}


@step()
def fit(total, random_seed):
    for k in range(1, 4):
        log_metric("loss", total / (k * random_seed))


@step(name="evaluate")
def score_step(total, random_seed):
    log_metric("accuracy", total / (total + random_seed))


def _train_all(total, random_seed):
    fit(total, random_seed)
    score_step(total, random_seed)


@process()
def train(df, random_seed):
    total = float(df["x"].sum())
    _train_all(total, random_seed)
    log_metric("score", total + random_seed)
    log_metric("note", f"seed {random_seed}")
    return {"score": total + random_seed}
'''

CHARTS = '''\
import json
import os

from expops.reporting import ChartContext, chart


@chart()
def by_metrics(metrics):
    import matplotlib.pyplot as plt

    with open("metrics.json", "w", encoding="utf-8") as handle:
        json.dump(metrics, handle, indent=1, sort_keys=True)
    fig, ax = plt.subplots(figsize=(3, 2))
    for key, values in metrics.items():
        if "loss" in values:
            ax.plot([int(step) for step in values["loss"]], list(values["loss"].values()), label=key)
    plt.savefig("by_metrics.png", dpi=50)
    plt.close(fig)


@chart
def by_both(metrics, ctx: ChartContext):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3, 2))
    figure.subplots().bar(range(len(metrics)), [values["score"]["1"] for values in metrics.values()])
    figure.savefig(ctx.output_dir / "both.png", dpi=50)
    with open("ctx.json", "w", encoding="utf-8") as handle:
        json.dump({"is_context": isinstance(ctx, ChartContext), "cwd": os.getcwd(),
                   "output_dir": str(ctx.output_dir), "chart_name": ctx.chart_name, "chart_type": ctx.chart_type,
                   "probe_paths": ctx.probe_paths, "project_dir": str(ctx.project_dir), "keys": sorted(metrics),
                   "same_metrics": ctx.metrics == metrics, "finished": ctx.is_run_finished()}, handle)


@chart("by_ctx")
def by_ctx(ctx):
    import matplotlib.pyplot as plt

    os.makedirs("sub", exist_ok=True)
    accuracies = [values["accuracy"]["1"] for key, values in ctx.metrics.items() if key.startswith("//")]
    plt.figure(figsize=(3, 2))
    plt.plot(accuracies)
    plt.savefig("sub/ctx.png", dpi=50)
    plt.close()
'''


LOAD_ONLY = """\
scripts: {main: src/model.py, reporting: src/charts.py}
data: {path: data/points.csv}
experiment:
  parameters: {data_path: data/points.csv}
  pipeline:
    processes:
      - name: load
      - name: broken
        code: reporting.broken
        probe_paths: {loaded: "//*[@name='load']"}
"""


def write(root: Path, config: str = CONFIG, charts_script: str = CHARTS) -> Path:
    return write_project(root, config, MODEL, files={
        "src/charts.py": charts_script, "src/charts.js": "export function live_losses() {}\n",
        "data/points.csv": "x\n" + "".join(f"{x}\n" for x in range(1, 11)),
        "envs/main.yml": "dependencies: [pandas]\n", "envs/charts.yml": "dependencies: [matplotlib]\n",
    })


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env(), capture_output=True, text=True, timeout=TIMEOUT)


# -- selectors on the node tree (no run) ------------------------------------------------------------

@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> ProbeTree:
    return ProbeTree(build_graph(load_project(write(tmp_path_factory.mktemp("tree") / "project"))))


def train_node(partition: int, seed: int) -> Node:
    return Node("train", (partition,), (seed,))


@pytest.mark.parametrize("selector, expected", [
    ("//*[@name='train']", [(train_node(p, s), None) for p in TOTALS for s in SEEDS]),
    ("//*[@partition='p1']/*[@seed='41']/*[@name='train']", [(train_node(1, 41), None)]),
    ("//*[@partition='p1']/*[@seed='41']/process[@name='train']", [(train_node(1, 41), None)]),
    ("//*[@seed='42']/*[@name='train']", [(train_node(1, 42), None), (train_node(2, 42), None)]),
    ("//*[@name='train']/*[@name='fit']", [(train_node(p, s), "fit") for p in TOTALS for s in SEEDS]),
    ("//*[@partition='p2']/*[@seed='42']/process[@name='train']/step[@name='evaluate']",
     [(train_node(2, 42), "evaluate")]),
    ("//*[@name='evaluate']", [(train_node(p, s), "evaluate") for p in TOTALS for s in SEEDS]),
    # Seed layer elements are named after 'seeds' and stand for its nodes, as in ExpOps: no duplicates.
    ("//*[@name='seeds']", [(Node("seeds", (1,)), None), (Node("seeds", (2,)), None)]),
    ("//*[@name='split']", [(Node("split"), None)]),
    # A layer element stands for the node of the process that opened it (ExpOps resolves it so too).
    ("//*[@partition='p1']", [(Node("split"), None)]),
    ("//*[@partition='p2']/*[@seed='41']", [(Node("seeds", (2,)), None)]),
    ("//process[@name='load'] | //*[@name='split']", [(Node("load"), None), (Node("split"), None)]),
])
def test_selector_picks_exactly_these_nodes(tree: ProbeTree, selector: str, expected: list) -> None:
    assert tree.select(selector) == expected


@pytest.mark.parametrize("selector, message", [
    ("//*[@partition='p1']//*[@name='load']", "matches no node or step"),
    ("//*[@name='train']/*[@name='no_such_step']", "matches no node or step"),
    ("//*[@name='train'", "not a valid XPath"),
    ("count(//*)", "evaluates to a float"),
    ("//*[unknown:f()]", "cannot be evaluated"),
])
def test_bad_selectors_say_why(tree: ProbeTree, selector: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tree.select(selector)


def test_steps_are_read_from_the_script(tree: ProbeTree, tmp_path: Path) -> None:
    project = load_project(write(tmp_path / "project"))
    # 'evaluate' is @step(name="evaluate") on score_step, reached only through a helper.
    assert process_steps(project.processes["train"]) == ("evaluate", "fit")
    assert process_steps(project.processes["load"]) == ()
    assert process_steps(project.processes["split"]) == ()  # a built-in split has no function


def test_probe_keys_follow_expops(tree: ProbeTree) -> None:
    """One match keeps the user's key; several become one entry per node keyed by its id, sorted."""
    probes = resolve_probes(tree, {
        "first": "//*[@partition='p1']/*[@seed='41']/*[@name='train']",
        "fits": "//*[@name='train']/*[@name='fit']",
        "again": "//*[@partition='p2']/*[@seed='42']/*[@name='train']/*[@name='fit']",
    })
    assert [(p.key, p.source, p.id) for p in probes] == [
        ("first", "first", TRAIN_IDS[0]),
        *[(fit, "fits", fit) for fit in sorted(FIT_IDS)],
        ("again", "again", FIT_IDS[3]),
    ]
    assert probes[1] == Probe(FIT_IDS[0], "fits", "train", (1,), (41,), "fit")


def test_process_aliases_number_entries_and_never_replace_one() -> None:
    summary = Probe("train", "train", "summarize")  # a user key named like another process
    x, y = (Probe(train_id(1, seed), "trains", "train", (1,), (seed,)) for seed in SEEDS)
    again = Probe("again", "again", "train", (1,), (41,))  # the same node as x under another key
    loaded = Probe("loaded", "loaded", "load")
    aliases = with_process_aliases((summary, x, y, again, loaded))
    assert aliases == {
        "train": "//process[@name='summarize']", x.key: x.id, y.key: y.id, "again": x.id,
        "loaded": "//process[@name='load']", "summarize": "//process[@name='summarize']",
        # 'train' is taken by the summarize node: train's aliases move on to train__2, train__3, ...
        "train__2": x.id, "train__3": y.id, "train__4": x.id, "load": "//process[@name='load']",
    }


def test_node_metrics_have_expops_shape() -> None:
    record = {"series": [
        {"metric": "loss", "step": 1, "value": 3, "step_name": "fit"},
        {"metric": "loss", "step": 2, "value": 1.5, "step_name": "fit"},
        {"metric": "score", "step": 1, "value": 7, "step_name": None},
        {"metric": "score", "step": 1, "value": 8, "step_name": None},
    ], "snapshots": {"note": "text", "curve": [1, 2]}}
    assert node_metrics(record, None) == {"score": {"1": 8.0}, "note": "text", "curve": [1, 2]}
    assert node_metrics(record, "fit") == {"loss": {"1": 3.0, "2": 1.5}}
    assert node_metrics(record, "other") == {}


def test_config_keeps_charts_out_of_the_dag_and_in_the_plan(tmp_path: Path) -> None:
    project = load_project(write(tmp_path / "project"))
    assert list(project.processes) == ["load", "split", "seeds", "train"]
    assert list(project.charts) == ["by_metrics", "by_both", "by_ctx"]  # the dynamic chart is skipped
    assert any("chart 'live_losses': dynamic" in warning for warning in project.warnings)
    charts = resolve_charts(build_graph(project))
    assert [p.key for p in charts["by_ctx"].probes] == [step_id(2, 41, "evaluate"), step_id(2, 42, "evaluate")]
    restored = plan_from_json(plan_to_json(project, charts), project.root)
    assert restored.charts == charts
    assert restored.project.charts == project.charts


FITS = 'fits: "//*[@name=\'train\']/*[@name=\'fit\']"'


@pytest.mark.parametrize("old, new, field, message", [
    (FITS, FITS.replace("fit'", "fti'"), "probe_paths.fits", "\"//*[@name='train']/*[@name='fti']\" matches no node"),
    (FITS, FITS.replace("train']", "train'"), "probe_paths.fits", "is not a valid XPath selector"),
    (FITS, "fits: 42", "probe_paths.fits", "must be an XPath selector string"),
    ("code: reporting.by_metrics", "code: reporting.nowhere", "code", "function 'nowhere' not found in project/src/charts.py"),
    ("code: reporting.by_metrics", "code: reporting.by_metrics\n        chart_type: live", "chart_type",
     "must be 'static' or 'dynamic', got 'live'"),
])
def test_chart_config_errors_are_one_line(tmp_path: Path, old: str, new: str, field: str, message: str) -> None:
    assert CONFIG.count(old) == 1
    root = write(tmp_path / "project", CONFIG.replace(old, new))
    result = CliRunner().invoke(cli, ["validate", str(root)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert errors[0].startswith(f"error: project/configs/project_config.yaml: process 'by_metrics': field '{field}': ")
    assert message in errors[0]


def test_a_chart_cannot_feed_a_process(tmp_path: Path) -> None:
    root = write(tmp_path / "project", CONFIG.replace("      train by_metrics ", "      by_metrics train "))
    with pytest.raises(ConfigError, match="process 'by_metrics': field 'process_adjlist line 4': 'by_metrics' "
                                          "is a chart: it returns nothing"):
        load_project(root)


@pytest.mark.parametrize("old, new, process, field, message", [
    ("probe_paths: {loaded: \"//*[@name='load']\"}", "type: chart", "broken", "probe_paths", "is missing"),
    ("probe_paths: {loaded: \"//*[@name='load']\"}", "probe_paths: []", "broken", "probe_paths", "is empty"),
    ("- name: load", "- name: charts\n        code: load", "charts", "name", "results/charts/ holds the charts' PNGs"),
])
def test_chart_declaration_errors(tmp_path: Path, old: str, new: str, process: str, field: str, message: str) -> None:
    assert LOAD_ONLY.count(old) == 1
    root = write(tmp_path / "project", LOAD_ONLY.replace(old, new))
    with pytest.raises(ConfigError, match=f"process '{process}': field '{field}': .*{re.escape(message)}"):
        load_project(root)


# -- real runs -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = write(tmp_path_factory.mktemp("run") / "project")
    generated = run([sys.executable, "-m", "expops_smk.cli", "generate", "."], root)
    assert generated.returncode == 0, generated.stderr
    result = run([SNAKEMAKE, "--cores", "2"], root)
    assert result.returncode == 0, result.stderr[-5000:]
    return root, generated


def assert_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 10 and pixels.shape[1] > 10


@pytest.mark.e2e
def test_dynamic_chart_is_a_warning_and_gets_no_rule(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, generated = ran
    assert "chart 'live_losses': dynamic (JavaScript) charts are not supported; the chart is skipped" in generated.stderr
    rules = (root / layout.CHARTS_RULES_FILE).read_text()
    assert "rule by_metrics:" in rules and "rule by_both:" in rules and "rule by_ctx:" in rules
    assert "live_losses" not in rules
    assert not (root / "results/charts/live_losses").exists()


@pytest.mark.e2e
def test_chart_with_metrics_only_gets_expops_metrics(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _ = ran
    folder = root / "results/charts/by_metrics"
    assert_png(folder / "by_metrics.png")
    fits = {step_id(p, s, "fit"): {"loss": {str(k): TOTALS[p] / (k * s) for k in (1, 2, 3)}}
            for p in TOTALS for s in SEEDS}
    first = {"score": {"1": TOTALS[1] + 41}, "note": "seed 41"}
    loaded = {"rows": {"1": 10.0}}
    expected = {"first": first, **fits, "loaded": loaded, "train": first, "load": loaded}
    expected.update({f"train__{i}": fits[fit] for i, fit in enumerate(sorted(FIT_IDS), start=2)})
    assert json.loads((folder / "metrics.json").read_text()) == expected
    record = json.loads((folder / layout.CHART_RECORD).read_text())
    assert record["pngs"] == ["by_metrics.png"]
    assert record["probes"] == {"first": TRAIN_IDS[0], **{fit: fit for fit in FIT_IDS}, "loaded": "//process[@name='load']"}


@pytest.mark.e2e
def test_chart_with_metrics_and_ctx(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _ = ran
    folder = root / "results/charts/by_both"
    assert_png(folder / "both.png")
    seen = json.loads((folder / "ctx.json").read_text())
    assert seen["is_context"] and seen["same_metrics"] and seen["finished"]
    assert Path(seen["cwd"]).resolve() == Path(seen["output_dir"]).resolve() == folder.resolve()
    assert Path(seen["project_dir"]).resolve() == root.resolve()
    assert (seen["chart_name"], seen["chart_type"]) == ("by_both", "static")
    assert seen["probe_paths"] == {node: node for node in TRAIN_IDS}
    assert seen["keys"] == sorted([*TRAIN_IDS, "train", "train__2", "train__3", "train__4"])


@pytest.mark.e2e
def test_chart_with_ctx_only_writes_into_subfolders(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _ = ran
    folder = root / "results/charts/by_ctx"
    assert_png(folder / "sub/ctx.png")
    assert json.loads((folder / layout.CHART_RECORD).read_text())["pngs"] == ["sub/ctx.png"]
    log = (root / "logs/charts/by_ctx.log").read_text()
    assert "wrote sub/ctx.png" in log and "train P2 S42 step evaluate (1 metrics)" in log


@pytest.mark.e2e
def test_charts_are_up_to_date_and_in_the_snakemake_report(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _ = ran
    dry = run([SNAKEMAKE, "-n"], root)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr
    report = run([SNAKEMAKE, "--report", "report.html"], root)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (root / "report.html").read_text(encoding="utf-8")
    for png in ("by_metrics.png", "both.png", "ctx.png"):
        assert png in html


# -- chart job failures ----------------------------------------------------------------------------



def test_chart_job_errors_are_one_line(tmp_path: Path) -> None:
    root = write(tmp_path / "project", LOAD_ONLY, "def broken(metrics):\n    return 1 / len(metrics['loaded'])\n")
    assert run([sys.executable, "-m", "expops_smk.cli", "generate", "."], root).returncode == 0
    command = [sys.executable, "-m", "expops_smk.runtime.chart_job", "broken", "--log", "logs/charts/broken.log"]
    missing = run(command, root)
    assert missing.returncode == 2
    assert missing.stderr.strip() == ("expops-smk: chart 'broken': probe 'loaded': 'load' has no "
                                      "results/load/_metrics.json; run its node first (log: logs/charts/broken.log)")
    (root / "results/load").mkdir(parents=True)
    (root / "results/load/_metrics.json").write_text(json.dumps({"series": [], "snapshots": {}}))
    raised = run(command, root)
    assert raised.returncode == 1
    assert raised.stderr.strip() == ("expops-smk: chart 'broken': the chart function raised ZeroDivisionError: "
                                     "division by zero (traceback in logs/charts/broken.log)")
    assert "Traceback" in (root / "logs/charts/broken.log").read_text()
    unknown = run([sys.executable, "-m", "expops_smk.runtime.chart_job", "nope", "--log", "x.log"], root)
    assert unknown.returncode == 2 and "chart 'nope': not a chart of the plan" in unknown.stderr


@pytest.mark.parametrize("script, line", [
    ("import sys\ndef broken(metrics):\n    sys.exit(0)\n", "the chart function called sys.exit(0)"),
    ("import sys\nsys.exit(3)\ndef broken(metrics):\n    pass\n", "importing charts.py called sys.exit(3)"),
])
def test_sys_exit_in_chart_code_fails_the_chart(tmp_path: Path, script: str, line: str) -> None:
    root = write(tmp_path / "project", LOAD_ONLY, script)
    assert run([sys.executable, "-m", "expops_smk.cli", "generate", "."], root).returncode == 0
    (root / "results/load").mkdir(parents=True)
    (root / "results/load/_metrics.json").write_text(json.dumps({"series": [], "snapshots": {}}))
    done = run([sys.executable, "-S", ".expops/bin/job.py", "charts", "broken", "--log", "logs/charts/broken.log"],
               root)  # the rule's command: the job client, which runs the chart cold through the launcher
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"expops-smk: chart 'broken': {line} (traceback in logs/charts/broken.log)"]
    assert "SystemExit" in (root / "logs/charts/broken.log").read_text()
    from expops_smk.layout import chart_dir

    assert not list((root / chart_dir("broken")).glob("*.png"))


@pytest.mark.e2e
def test_expops_report_embeds_every_chart_png(ran: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    root, _ = ran
    output = tmp_path / "report.html"
    made = run([sys.executable, "-m", "expops_smk.cli", "report", ".", "--output", str(output)], root)
    assert made.returncode == 0, made.stderr[-3000:]
    page = output.read_text(encoding="utf-8")
    charts = page[page.index("<h2>Charts</h2>"):page.index("<h2>Aggregated tables</h2>")]
    for alt in ("by_metrics: by_metrics", "by_both: both", "by_ctx: ctx"):
        assert f'<img alt="{alt}" src="data:image/png;base64,' in charts, alt
    assert "live_losses" not in charts  # dynamic charts are skipped, so not drawn
