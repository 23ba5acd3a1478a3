"""`expops-smk validate` / `graph` and the graph renderings (tree, json, dot, mermaid)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from expops_smk.cli import main
from projects import functions, pipeline

MakeProject = Callable[..., Path]
REPO = Path(__file__).resolve().parents[1]


def three_by_two() -> dict:
    """load -> 3 partitions -> seeds 41, 42 -> train -> summary (aggregates both)."""
    return pipeline([
        {"name": "load"},
        {"name": "split", "data_parallelism": {"size": 3}},
        {"name": "seeds", "seed_parallelism": {"seeds": [41, 42]}},
        {"name": "train"},
        {"name": "summary", "data_aggregation": True, "seed_aggregation": True},
    ], "load split\nsplit seeds\nseeds train\ntrain summary")


@pytest.fixture
def project(make_project: MakeProject) -> Path:
    return make_project(three_by_two(), functions(["load", "train", "summary"]))


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A real process: exit status, stderr and the absence of a traceback are what users see."""
    return subprocess.run([sys.executable, "-m", "expops_smk.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


# -- graph -----------------------------------------------------------------------------------------

def test_tree_prints_the_six_labelled_branches(project: Path) -> None:
    code, out, _ = invoke("graph", str(project))
    assert code == 0
    lines = out.splitlines()
    assert lines[:3] == ["load", "split  [splits into 3 partitions]", "summary  [aggregates data of 'split' and seed of 'seeds']"]
    branches = [line for line in lines if re.fullmatch(r"\s*train P\d S\d+", line)]
    assert [line.strip() for line in branches] == [f"train P{p} S{s}" for p in (1, 2, 3) for s in (41, 42)]
    # Each branch sits under its partition and seed headers.
    for p in (1, 2, 3):
        block = lines[lines.index(f"P{p}"):]
        assert block[1:6] == [f"  seeds P{p}  [splits into 2 seeds]", "  S41", f"    train P{p} S41", "  S42",
                              f"    train P{p} S42"]


def test_json_lists_every_node_with_inputs(project: Path) -> None:
    code, out, _ = invoke("graph", str(project), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["node_count"] == len(data["nodes"]) == 1 + 1 + 3 + 6 + 1
    by_label = {node["label"]: node for node in data["nodes"]}
    train = by_label["train P2 S42"]
    assert train["id"] == "//*[@partition='p2']/*[@seed='42']/process[@name='train']"
    assert (train["legacy_name"], train["partition"], train["seed"], train["results_dir"]) == \
        ("train_2_seed42", "p2", "42", "results/train/p2/s42")
    assert train["inputs"] == [{"process": "seeds", "from": by_label["seeds P2"]["id"],
                                "results_dir": "results/seeds/p2", "keys": []}]
    summary = by_label["summary"]["inputs"]
    assert [item["keys"] for item in summary] == [[f"data{p}", f"seed{s}"] for p in (1, 2, 3) for s in (41, 42)]
    # A data split's partition folders are drawn as coming from the split node itself.
    assert by_label["seeds P3"]["inputs"][0]["from"] == by_label["split"]["id"]
    assert by_label["seeds P3"]["inputs"][0]["results_dir"] == "results/split/p3"


def diagram_edges(text: str, node_pattern: str, edge_pattern: str) -> set[tuple[str, str]]:
    label = dict(re.findall(node_pattern, text, re.MULTILINE))
    return {(label[a], label[b]) for a, b in re.findall(edge_pattern, text, re.MULTILINE)}


DOT_NODE = r'^  (\w+) \[label="([^"]+)"\];$'
MERMAID_NODE = r'^  (\w+)\["([^"]+)"\]$'
EXPECTED_EDGES = {("load", "split")} | {("split", f"seeds P{p}") for p in (1, 2, 3)} | {
    (f"seeds P{p}", f"train P{p} S{s}") for p in (1, 2, 3) for s in (41, 42)} | {
    (f"train P{p} S{s}", "summary") for p in (1, 2, 3) for s in (41, 42)}


def test_dot_contains_the_edges(project: Path) -> None:
    code, out, _ = invoke("graph", str(project), "--format", "dot")
    assert code == 0 and out.startswith("digraph expops {") and out.rstrip().endswith("}")
    assert diagram_edges(out, DOT_NODE, r"(\w+) -> (\w+)") == EXPECTED_EDGES
    assert re.search(r'-> \w+ \[label="data3/seed42"\];', out)


def test_mermaid_contains_the_edges(project: Path) -> None:
    code, out, _ = invoke("graph", str(project), "--format", "mermaid")
    assert code == 0 and out.startswith("flowchart TD")
    assert diagram_edges(out, MERMAID_NODE, r"(\w+) --> (\w+)") == EXPECTED_EDGES


def test_diagrams_keep_nodes_whose_legacy_names_collide(make_project: MakeProject) -> None:
    """Process 'a' at partition 1 and a process named 'a_1' share the legacy name 'a_1'."""
    root = make_project(pipeline([{"name": "split", "data_parallelism": {"size": 1}}, {"name": "a"}, {"name": "a_1"}],
                                 "split a\na a_1"), functions(["a", "a_1"]))
    for fmt, node_pattern, edge_pattern in (("dot", DOT_NODE, r"(\w+) -> (\w+)"),
                                            ("mermaid", MERMAID_NODE, r"(\w+) --> (\w+)")):
        out = invoke("graph", str(root), "--format", fmt)[1]
        assert diagram_edges(out, node_pattern, edge_pattern) == {("split", "a P1"), ("a P1", "a_1 P1")}


def test_split_straight_into_aggregation_is_one_labelled_edge(make_project: MakeProject) -> None:
    root = make_project(pipeline([{"name": "split", "data_parallelism": {"size": 4}},
                                  {"name": "agg", "data_aggregation": True}], "split agg"), functions(["agg"]))
    out = invoke("graph", str(root), "--format", "dot")[1]
    assert len(re.findall(r"->", out)) == 1 and '[label="4 branches"]' in out


# -- validate, defaults, help, errors ----------------------------------------------------------------

def test_validate_reports_counts(project: Path) -> None:
    code, out, err = invoke("validate", str(project))
    assert code == 0 and err == ""
    assert out.strip().endswith("ok: 5 processes, 12 nodes")


@pytest.mark.parametrize("command", ["validate", "graph"])
def test_project_defaults_to_the_current_folder(project: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    monkeypatch.chdir(project)
    code, out, _ = invoke(command)
    assert code == 0
    assert ("train P3 S42" in out) if command == "graph" else ("12 nodes" in out)


def test_help_on_every_command() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    commands = sorted(main.commands)
    assert {"validate", "graph"} <= set(commands)
    for name in commands:
        assert name in out
        code, text, _ = invoke(name, "--help")
        assert code == 0 and text.startswith(f"Usage: main {name}"), name
    graph_help = invoke("graph", "--help")[1]
    assert "--format [tree|json|dot|mermaid]" in graph_help and "[PROJECT]" in graph_help


def test_warnings_go_to_stderr_without_failing(make_project: MakeProject) -> None:
    root = make_project(pipeline([{"name": "a", "colour": "red"}]), functions(["a"]))
    code, out, err = invoke("validate", str(root))
    assert code == 0 and "ok: 1 processes" in out
    assert err.startswith("warning: ") and "unknown key 'colour'" in err


@pytest.mark.parametrize(("config", "expected"), [
    (pipeline([{"name": "a"}, {"name": "b", "depends_on": ["ghost"]}]), "field 'depends_on': unknown process 'ghost'"),
    ("experiment: !!python/object/apply:os.system ['echo pwned']\n", "invalid YAML at line 1"),
    (b"metadata: \xff\n", "not valid UTF-8"),
    (pipeline([{"name": "a", "data_aggregation": True}]), "process 'a': field 'data_aggregation'"),
])
@pytest.mark.parametrize("command", ["validate", "graph"])
def test_errors_exit_2_with_one_line(make_project: MakeProject, config, expected: str, command: str) -> None:
    root = make_project(config, functions(["a", "b"]))
    result = run_cli(command, str(root))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "pwned" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert "project_config.yaml" in lines[0]


def test_missing_project_folder(tmp_path: Path) -> None:
    result = run_cli("validate", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "project config not found" in result.stderr and "Traceback" not in result.stderr


# -- benchmark smoke test -------------------------------------------------------------------------

def test_expansion_benchmark_runs_at_tiny_size() -> None:
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_expand.py"),
                             "--partitions", "3", "--seeds", "2", "--repeat", "1"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    # load, split, 3 seed splits, 3 processes x 6 branches, aggregate
    assert "3 partitions x 2 seeds: 24 nodes" in result.stdout
    assert re.search(r"^expand\s+\d+\.\d{3}\s+1\.0", result.stdout, re.MULTILINE)
