"""Metrics table, cross-seed summary, plots and the HTML report, on a real 2 partitions × 3 seeds run.

One module-scoped fixture writes a small project (10 rows split into 2 partitions, seeds 1, 2, 3,
a stepped ``loss`` and a single ``score`` per node), generates its workflow and runs real
Snakemake once. The expected numbers are recomputed here from the project's formulas with the
standard library, independently of expops_smk.metrics. A few unit tests use synthetic
``_metrics.json`` files for cases a run does not produce (stale copies, explicit steps).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from expops_smk.results import metrics
from expops_smk.cli import main as cli

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
CHROMIUM = Path("/usr/bin/chromium")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

PARTITION_ROWS = {"p1": [1, 2, 3, 4, 5], "p2": [6, 7, 8, 9, 10]}  # x = 1..10 split in two halves
SEEDS = [1, 2, 3]
LOSS_STEPS = 4
# Two-sided 95% Student-t quantiles t(0.975, df), from published tables (not computed by the code under test).
T975 = {1: 12.706204736174707, 2: 4.302652729749464, 5: 2.570581835636314}

CONFIG = """\
metadata:
  name: spread-demo
scripts:
  main: src/steps.py
reproducibility:
  random_seed: 42
data:
  path: data/points.csv
experiment:
  parameters:
    data_path: data/points.csv
  pipeline:
    process_adjlist: |
      load split
      split seeds
      seeds train
      train summarize
    processes:
      - name: load
        code: load
      - name: split
        code: split
        data_parallelism: {size: 2, data_name: df}
      - name: seeds
        seed_parallelism: {seeds: [1, 2, 3]}
      - name: train
        code: train
      - name: summarize
        code: summarize
        data_aggregation: true
        seed_aggregation: true
"""

SCRIPT = '''\
import pandas as pd
from expops.core import log_metric, process, step


@process()
def load(data_path):
    return {"df": pd.read_csv(data_path)}


@process()
def split(df):
    log_metric("rows_total", len(df))
    return {"df": df}


@step()
def fit(total, random_seed):
    for k in range(1, 5):
        log_metric("loss", total / (k * random_seed))


@process()
def train(df, random_seed):
    total = float(df["x"].sum())
    fit(total, random_seed)
    log_metric("score", total + random_seed)
    log_metric("note", "not a number")
    return {"score": total + random_seed}


@process()
def summarize(score):
    best = max(v for per_seed in score.values() for v in per_seed.values())
    log_metric("best", best)
    table = pd.DataFrame([{"partition": p, "seed": s, "score": v} for p, per_seed in sorted(score.items())
                          for s, v in sorted(per_seed.items())])
    return {"best": best, "scores": table}
'''


def write_spread_project(root: Path) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "data").mkdir()
    (root / "configs" / "project_config.yaml").write_text(CONFIG)
    (root / "src" / "steps.py").write_text(SCRIPT)
    (root / "data" / "points.csv").write_text("x\n" + "".join(f"{x}\n" for x in range(1, 11)))
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_spread_project(tmp_path_factory.mktemp("run") / "spread-demo")
    generate = CliRunner().invoke(cli, ["generate", str(root)])
    assert generate.exit_code == 0, generate.output
    result = subprocess.run([str(SNAKEMAKE), "--cores", "2", "--quiet", "all"], cwd=root,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return root


def partition_total(partition: str) -> float:
    return float(sum(PARTITION_ROWS[partition]))


def expected_final(metric: str, partition: str, seed: int) -> float:
    """The project's formulas: loss_k = total / (k * seed) (final k = 4), score = total + seed."""
    total = partition_total(partition)
    return total / (LOSS_STEPS * seed) if metric == "loss" else total + seed


def expected_stats(values: list[float], t975: float) -> dict[str, float]:
    mean = statistics.fmean(values)
    std = statistics.stdev(values)
    half = t975 * std / math.sqrt(len(values))
    return {"n": len(values), "mean": mean, "std": std, "min": min(values), "max": max(values),
            "ci95_low": mean - half, "ci95_high": mean + half}


def assert_row(row: pd.Series, expected: dict[str, float]) -> None:
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


# -- t quantile ------------------------------------------------------------------------------------
@pytest.mark.parametrize("df", sorted(T975))
def test_t_quantile_matches_published_values(df: int) -> None:
    assert metrics.t_quantile(0.975, df) == pytest.approx(T975[df], rel=1e-12)
    assert metrics.t_quantile(0.025, df) == pytest.approx(-T975[df], rel=1e-12)
    assert metrics.t_quantile(0.5, df) == 0.0


def test_t_quantile_approaches_the_normal_quantile() -> None:
    z = statistics.NormalDist().inv_cdf(0.975)
    assert metrics.t_quantile(0.975, 10**7) == pytest.approx(z, rel=1e-6)
    # Both sides of the switch from the exact CDF to the expansion agree.
    assert metrics.t_quantile(0.975, 1000) == pytest.approx(metrics.t_quantile(0.975, 1001), rel=1e-4)
    with pytest.raises(ValueError):
        metrics.t_quantile(1.0, 3)
    with pytest.raises(ValueError):
        metrics.t_quantile(0.9, 0)


def test_t_quantile_agrees_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for df in [*range(1, 41), 60, 120, 999, 1000, 1001, 5000, 10**6]:
        for p in (0.6, 0.9, 0.975, 0.995, 0.9995, 0.01):
            assert metrics.t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-10), (p, df)


# -- the table and the summary of a real run --------------------------------------------------------
@pytest.mark.e2e
def test_table_has_every_logged_number_once(project: Path) -> None:
    table = metrics.collect(project)
    assert list(table.columns) == metrics.COLUMNS
    # The data split logged rows_total once; its metrics file sits in both partition folders.
    assert (project / "results/split/p1/_metrics.json").exists()
    assert (project / "results/split/p2/_metrics.json").exists()
    split = table[table["process"] == "split"]
    assert split[["node", "metric", "step", "value"]].values.tolist() == [
        ["//process[@name='split']", "rows_total", 1, 10.0]]
    train = table[table["process"] == "train"]
    assert len(train) == len(PARTITION_ROWS) * len(SEEDS) * (LOSS_STEPS + 1)
    for partition in PARTITION_ROWS:
        for seed in SEEDS:
            node = train[(train["partition"] == partition) & (train["seed"] == str(seed))]
            assert set(node["node"]) == {f"//*[@partition='{partition}']/*[@seed='{seed}']/process[@name='train']"}
            assert set(node["label"]) == {f"train {partition.upper()} S{seed}"}
            loss = node[node["metric"] == "loss"]
            assert loss["step"].tolist() == [1, 2, 3, 4]
            assert loss["value"].tolist() == pytest.approx(
                [partition_total(partition) / (k * seed) for k in range(1, 5)])
            assert set(loss["step_name"]) == {"fit"}  # logged inside the @step
            score = node[node["metric"] == "score"]
            assert score["value"].tolist() == [partition_total(partition) + seed]
            assert score["step_name"].isna().all()
    assert "note" not in set(table["metric"])  # non-numeric: a snapshot, not a series
    assert table[table["process"] == "summarize"]["value"].tolist() == [partition_total("p2") + max(SEEDS)]


@pytest.mark.e2e
def test_summary_over_seeds_and_partitions(project: Path) -> None:
    summary = metrics.summary(metrics.collect(project))
    assert list(summary.columns) == ["process", "metric", *metrics.SUMMARY_STATS]
    for metric in ("loss", "score"):
        finals = [expected_final(metric, p, s) for p in PARTITION_ROWS for s in SEEDS]
        row = summary[(summary["process"] == "train") & (summary["metric"] == metric)].iloc[0]
        assert_row(row, expected_stats(finals, T975[5]))
    single = summary[summary["process"] == "split"].iloc[0]
    assert (single["n"], single["mean"]) == (1, 10.0)
    assert math.isnan(single["std"]) and math.isnan(single["ci95_low"]) and math.isnan(single["ci95_high"])


@pytest.mark.e2e
def test_summary_per_partition(project: Path) -> None:
    summary = metrics.summary(metrics.collect(project), by_partition=True)
    train = summary[summary["process"] == "train"]
    assert len(train) == 4
    for partition in PARTITION_ROWS:
        for metric in ("loss", "score"):
            finals = [expected_final(metric, partition, s) for s in SEEDS]
            row = train[(train["partition"] == partition) & (train["metric"] == metric)].iloc[0]
            assert_row(row, expected_stats(finals, T975[2]))


@pytest.mark.e2e
def test_cli_metrics_formats(project: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    table = metrics.collect(project)

    text = runner.invoke(cli, ["metrics", str(project)])
    assert text.exit_code == 0, text.output
    assert text.output.split("\n")[0].split() == metrics.COLUMNS
    assert len(text.output.strip().split("\n")) == len(table) + 1

    csv = runner.invoke(cli, ["metrics", str(project), "--format", "csv", "--summary"])
    assert csv.exit_code == 0, csv.output
    from io import StringIO
    parsed = pd.read_csv(StringIO(csv.output), keep_default_na=False, na_values=[""])
    row = parsed[(parsed["process"] == "train") & (parsed["metric"] == "score")].iloc[0]
    assert row["mean"] == pytest.approx(statistics.fmean(expected_final("score", p, s)
                                                         for p in PARTITION_ROWS for s in SEEDS))

    by_partition = runner.invoke(cli, ["metrics", str(project), "--summary", "--by-partition", "--format", "csv"])
    assert by_partition.exit_code == 0
    assert by_partition.output.split("\n")[0] == "process,partition,metric," + ",".join(metrics.SUMMARY_STATS)

    target = tmp_path / "metrics.parquet"
    parquet = runner.invoke(cli, ["metrics", str(project), "--format", "parquet", "--output", str(target)])
    assert parquet.exit_code == 0, parquet.output
    pd.testing.assert_frame_equal(pd.read_parquet(target), table, check_dtype=False)

    no_file = runner.invoke(cli, ["metrics", str(project), "--format", "parquet"])
    assert no_file.exit_code == 2 and "needs --output" in no_file.output
    misuse = runner.invoke(cli, ["metrics", str(project), "--by-partition"])
    assert misuse.exit_code == 2 and "--summary" in misuse.output


@pytest.mark.e2e
def test_results_of_nodes_no_longer_in_the_plan_are_left_out(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    stale = json.loads((copy / "results/train/p1/s1/_metrics.json").read_text())
    stale["node"], stale["seed"] = stale["node"].replace("'1'", "'9'"), "9"  # as if seed 9 was removed
    (copy / "results/train/p1/s9").mkdir()
    (copy / "results/train/p1/s9/_metrics.json").write_text(json.dumps(stale))

    assert len(metrics.collect(copy)) == len(metrics.collect(project)) + LOSS_STEPS + 1
    current = metrics.current_node_ids(copy)
    assert current is not None and len(current) == 11
    pd.testing.assert_frame_equal(metrics.collect(copy, current), metrics.collect(project))
    csv = CliRunner().invoke(cli, ["metrics", str(copy), "--format", "csv"])
    assert csv.exit_code == 0 and ",9," not in csv.output
    assert metrics.current_node_ids(tmp_path) is None  # never generated: nothing to compare with


# -- synthetic metrics files ---------------------------------------------------------------------------
def write_metrics(folder: Path, node: str, process: str, partition: str, seed: str,
                  series: list[tuple[str, int, float]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "_metrics.json").write_text(json.dumps({
        "node": node, "label": node, "process": process, "partition": partition, "seed": seed,
        "series": [{"metric": m, "step": s, "value": v, "step_name": None} for m, s, v in series],
        "snapshots": {},
    }))


def test_final_value_is_the_highest_step_and_copies_count_once(tmp_path: Path) -> None:
    results = tmp_path / "results"
    # Steps logged out of order (explicit step=): the curve ends at step 10, not at the last record.
    write_metrics(results / "fit/s1", "n1", "fit", "", "1", [("acc", 10, 0.9), ("acc", 2, 0.5)])
    write_metrics(results / "fit/s2", "n2", "fit", "", "2", [("acc", 1, 0.1), ("acc", 3, 0.7)])
    for partition in ("p1", "p2", "p3"):  # one node's copies in three partition folders
        write_metrics(results / "cut" / partition, "cut", "cut", "", "", [("rows", 1, 30.0)])
    table = metrics.collect(tmp_path)
    assert len(table) == 5
    finals = metrics.final_values(table)
    assert finals[finals["metric"] == "acc"]["value"].tolist() == [0.9, 0.7]
    row = metrics.summary(table).set_index(["process", "metric"]).loc[("fit", "acc")]
    assert_row(row, expected_stats([0.9, 0.7], T975[1]))
    assert metrics.summary(table).set_index(["process", "metric"]).loc[("cut", "rows"), "n"] == 1


def test_collect_errors_are_one_line(tmp_path: Path) -> None:
    from expops_smk.errors import ExpopsError

    with pytest.raises(ExpopsError, match="no results folder"):
        metrics.collect(tmp_path)
    (tmp_path / "results/x").mkdir(parents=True)
    (tmp_path / "results/x/_metrics.json").write_text("{not json")
    with pytest.raises(ExpopsError, match="unreadable metrics file"):
        metrics.collect(tmp_path)
    (tmp_path / "results/x/_metrics.json").write_text("{}")
    with pytest.raises(ExpopsError, match="lacks node"):
        metrics.collect(tmp_path)
    empty = tmp_path / "empty"
    (empty / "results").mkdir(parents=True)
    assert metrics.collect(empty).empty
    assert metrics.summary(metrics.collect(empty)).empty


# -- plots ---------------------------------------------------------------------------------------------
def assert_png(path: Path) -> tuple[int, ...]:
    """A readable PNG: magic bytes, Pillow's own verification when installed, decoded pixels."""
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    try:
        from PIL import Image
    except ImportError:
        pass
    else:
        with Image.open(path) as image:
            image.verify()
    from matplotlib.image import imread

    pixels = imread(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 0.01  # not a blank canvas
    return pixels.shape


@pytest.mark.e2e
def test_plots_are_valid_pngs(project: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from expops_smk.results import plots

    table = metrics.collect(project)
    spread = plots.seed_spread(table, tmp_path)
    curves = plots.learning_curves(table, tmp_path)
    # Only train has metrics from more than one node; only its loss has several steps.
    assert [p.name for p in spread] == ["spread_train.png"]
    assert [p.name for p in curves] == ["curve_train__loss.png"]
    for path in spread + curves:
        assert_png(path)


@pytest.mark.e2e
def test_dag_picture_uses_dot_else_mermaid(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from expops_smk.results import plots
    from expops_smk.graph.expansion import build_graph
    from expops_smk.graph.plan import read_plan

    graph = build_graph(read_plan(project / "workflow/expops_plan.json", project).project)
    if shutil.which("dot"):
        picture = plots.dag_picture(graph, tmp_path / "dot")
        assert picture.name == "dag.png"
        assert_png(picture)
    monkeypatch.setattr(plots.shutil, "which", lambda name: None)
    mermaid = plots.dag_picture(graph, tmp_path / "mermaid")
    assert mermaid.name == "dag.mmd"
    text = mermaid.read_text()
    assert text.startswith("flowchart TD") and text.count("-->") == 1 + 2 + 6 + 6  # load>split>2 seeds>6 train>summarize
    assert '["train P2 S3"]' in text


def test_file_stem_is_safe_and_distinct() -> None:
    from expops_smk.results import plots

    assert plots.file_stem("train", "loss") == "train__loss"
    odd = [plots.file_stem("train", "a/b"), plots.file_stem("train", "a b"), plots.file_stem("train", "x" * 300)]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", stem) for stem in odd)
    assert len(set(odd)) == 3


# -- report --------------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_report_without_matplotlib_or_graphviz_still_renders(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from expops_smk.results import plots, report

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    with pytest.raises(plots.PlotsUnavailable, match=r"pip install 'expops-smk\[plots\]'"):
        plots.seed_spread(metrics.collect(project), project / "unused")
    monkeypatch.setattr(plots.shutil, "which", lambda name: None)  # and no Graphviz either
    built = report.build_report(project)
    assert built.warnings == ["plots need matplotlib: pip install 'expops-smk[plots]'"]
    assert 'id="summary"' in built.html and "expops-smk[plots]" in built.html
    assert "<pre>flowchart TD" in built.html and "<img" not in built.html


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


# Appended to a copy of the report: after load, records in the DOM each image's decoded width,
# so --dump-dom shows that the browser really decoded the embedded PNGs.
PROBE = ("<script>addEventListener('load', () => { document.body.dataset.imageWidths = "
         "Array.from(document.images, image => image.naturalWidth).join(','); });</script>")


@pytest.mark.e2e
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(project: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    output = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", str(project), "--output", str(output)])
    assert result.exit_code == 0, result.output
    page = output.read_text()
    assert "http://" not in page and "https://" not in page  # self-contained: nothing to fetch

    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    dumped = chromium("--dump-dom", probed.as_uri(), profile=tmp_path / "profile")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    assert "<title>spread-demo: expops-smk report</title>" in dom
    summary_table = re.search(r'<table[^>]*id="summary".*?</table>', dom, re.S)
    assert summary_table is not None
    assert summary_table.group(0).count("<tr") == 1 + 4  # header + split, train loss, train score, summarize
    assert "29.5" in summary_table.group(0)  # mean score over the 6 nodes
    widths = re.search(r'data-image-widths="([0-9,]*)"', dom)
    assert widths is not None, "the load probe did not run"
    decoded = [int(width) for width in widths.group(1).split(",")]
    expected_images = 3 if shutil.which("dot") else 2  # spread, curve (+ the DAG when Graphviz is installed)
    assert len(decoded) == expected_images and all(width > 100 for width in decoded)
    plan = json.loads((project / "workflow/expops_plan.json").read_text())
    train_hash = next(p["function"]["code_hash"] for p in plan["processes"] if p["name"] == "train")
    nodes_table = re.search(r'<table[^>]*id="nodes".*?</table>', dom, re.S)
    assert nodes_table is not None
    assert nodes_table.group(0).count("<tr") == 1 + 11
    assert nodes_table.group(0).count(train_hash) == 6
    row = re.search(r"<tr><td>train P2 S3</td>(.*?)</tr>", nodes_table.group(0), re.S)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
    assert cells[1] == "3"  # the random_seed the function received: the branch's seed
    assert train_hash in cells[3] and "executed" in cells[4]

    screenshot = tmp_path / "report.png"
    shot = chromium("--hide-scrollbars", "--window-size=1280,2000", f"--screenshot={screenshot}",
                    output.as_uri(), profile=tmp_path / "profile")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert_png(screenshot)


# -- what the reports show beyond metrics ----------------------------------------------------------

def test_report_shows_aggregation_tables(project: Path) -> None:
    from expops_smk.results import report

    page = report.build_report(project).html
    section = page[page.index("<h2>Aggregated tables</h2>"):page.index("<h2>Workflow graph</h2>")]
    assert "summarize: scores</h3>" in section
    table = re.search(r"<table.*?</table>", section, re.S)
    assert table is not None and table.group(0).count("<tr") == 1 + 6  # header + 2 partitions x 3 seeds
    # score = sum of the partition's rows + seed: p1 = 1..5, p2 = 6..10
    for score in (16, 17, 18, 41, 42, 43):
        assert f"<td>{score}" in table.group(0)
    assert "The project defines no charts." in page


@pytest.mark.e2e
def test_restored_node_reports_its_original_compute_time(project: Path, tmp_path: Path) -> None:
    from expops_smk.graph.nodes import Node
    from expops_smk.results import report
    from expops_smk.runtime.run_key import location_key

    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True)
    folder = copy / "results/train/p1/s1"
    executed = json.loads((folder / "_run.json").read_text())
    assert executed["outcome"] == "executed" and executed["computed_seconds"] > 0
    key = location_key(executed["run_key"], Node("train", (1,), (1,)))
    record = json.loads((copy / ".expops/runs" / f"{key}.json").read_text())
    assert record["seconds"] == executed["computed_seconds"]
    (folder / "_outputs.json").unlink()
    # Asked for by name: Snakemake does not rebuild a missing intermediate file for `all`.
    result = subprocess.run([str(SNAKEMAKE), "--cores", "1", "results/train/p1/s1/_outputs.json"], cwd=copy,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    restored = json.loads((folder / "_run.json").read_text())
    assert restored["outcome"] == "restored"
    assert restored["computed_seconds"] == executed["computed_seconds"]
    page = report.build_report(copy).html
    row = re.search(r"<tr><td>train P1 S1</td>(.*?)</tr>", page, re.S)
    assert row is not None
    assert f"restored in {restored['seconds']} s (computed in {executed['computed_seconds']} s)" in row.group(1)


@pytest.mark.e2e
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
def test_snakemake_report_shows_tables_summary_and_plots_in_chromium(project: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True)
    files = subprocess.run([str(SNAKEMAKE), "--cores", "1", "report_files"], cwd=copy,
                           capture_output=True, text=True, timeout=300)
    assert files.returncode == 0, files.stderr[-4000:]
    summary = (copy / "results/report/Summary/metrics/summary.html").read_text()
    assert summary.count("<tr") == 1 + 4 and "29.5" in summary  # header + split, train loss, train score, summarize
    scores = (copy / "results/report/summarize/all/scores.html").read_text()
    assert scores.count("<tr") == 1 + 6 and "<td>43" in scores
    assert (copy / "results/report/split/p2/df.html").is_file()
    made = subprocess.run([str(SNAKEMAKE), "--report", "report.html", "report_files"], cwd=copy,
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-4000:]
    page = (copy / "report.html").read_text()
    # The report app's data: category (process or Summary) -> subcategory (partition/seed) -> files.
    categories = json.loads(re.search(r"var categories = (\{.*?\});", page).group(1))
    assert categories["summarize"] == {"all": ["results/report/summarize/all/scores.html"]}
    assert set(categories["split"]) == {"p1", "p2"} and set(categories["load"]) == {"all"}
    assert sorted(categories["Summary"]["metrics"]) == ["results/report/Summary/metrics/summary.html",
                                                       "results/report/Summary/metrics/summary_per_partition.html"]
    assert any(name.endswith(".png") for name in categories["Summary"]["plots"])
    dumped = chromium("--virtual-time-budget=10000", "--dump-dom", (copy / "report.html").as_uri(),
                      profile=tmp_path / "profile")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    app = dumped.stdout[dumped.stdout.index('<div id="app">'):]
    nav = re.sub(r"<[^>]+>", "|", app)
    for category in ("Results", "Summary", "load", "split", "summarize"):
        assert f"|{category}|" in nav, category


@pytest.mark.e2e
def test_clean_removes_what_delete_all_output_leaves_and_nothing_else(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.log").write_text("not ours")
    shutil.rmtree(copy / "logs/train")
    (copy / "logs/train").symlink_to(outside, target_is_directory=True)
    (copy / "results/load/notes.txt").write_text("the user's")
    artifacts = sorted(copy.glob("results/**/*.p*"))
    assert len(artifacts) == 1 + 2 + 2 + 6 + 2  # load, split x2, seeds x2, train x6, summarize best + scores

    dry = CliRunner().invoke(cli, ["clean", str(copy), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would remove" in dry.output and all(path.exists() for path in artifacts)

    deleted = subprocess.run([str(SNAKEMAKE), "--cores", "1", "--delete-all-output"], cwd=copy,
                             capture_output=True, text=True, timeout=300)
    assert deleted.returncode == 0, deleted.stderr[-3000:]
    assert not list(copy.glob("results/**/_outputs.json"))
    assert all(path.exists() for path in artifacts)  # undeclared: Snakemake leaves them

    cleaned = CliRunner().invoke(cli, ["clean", str(copy)])
    assert cleaned.exit_code == 0, cleaned.output
    assert "skipped" in cleaned.output and "logs/train" in cleaned.output
    assert not any(path.exists() for path in artifacts)
    assert not list(copy.glob("results/**/_*.json")) and not (copy / ".expops").exists()
    assert not [path for path in (copy / "logs").rglob("*.log") if "train" not in path.parts]  # every job log
    assert (outside / "keep.log").read_text() == "not ours"  # a symlink out of the project is not followed
    assert (copy / "results/load/notes.txt").read_text() == "the user's"
    assert (copy / "workflow/Snakefile").is_file() and (copy / "configs/project_config.yaml").is_file()
