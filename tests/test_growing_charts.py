"""Charts probing inside growing-data splits, without Snakemake: validation, generated rules, and the
chart job's resolution over the partitions on disk (end to end: tests/test_e2e_growing_charts.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from expops_smk.codegen.prepare import generate_project
from expops_smk.config.project import load_project
from expops_smk.errors import ConfigError
from expops_smk.graph.expansion import Graph
from expops_smk.graph.partitions import Partition, partitions_file, partitions_json
from expops_smk.graph.probes import current_locations, current_probes, resolve_charts
from expops_smk.graph.nodes import Node
from projects import functions, write_project

REPO = Path(__file__).resolve().parents[1]

CHART_CONFIG = """\
scripts: {main: src/model.py, reporting: src/charts.py}
experiment:
  pipeline:
    process_adjlist: |
      split train
      train agg
    processes:
      - {name: split, data_parallelism: {rows_per_partition: 2}}
      - name: train
      - {name: agg, data_aggregation: true}
      - name: plot
        code: reporting.plot
        probe_paths: {probed: "%s"}
"""


def project_with(tmp_path: Path, selector: str) -> Path:
    return write_project(tmp_path / "p", CHART_CONFIG % selector, functions(["split", "train", "agg"]),
                         script_path="src/model.py", files={"src/charts.py": "def plot(metrics):\n    return None\n"})


def split_ran(root: Path, numbers: list[int]) -> None:
    """Write the partition list a run of the split would leave."""
    listing = root / partitions_file(Node("split"))
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text(json.dumps(partitions_json("split", "rows_per_partition",
                                                  [Partition(n, f"rows {n}", str(n), "d") for n in numbers])))


@pytest.mark.parametrize("selector, growing", [
    ("//*[@name='train']", True),
    ("//*[@partition='p3']/*[@name='train']", True),  # no p3 in the stand-in: left to the run, not an error
    ("//*[@name='agg']", False),
])
def test_a_chart_inside_a_growing_split_lists_its_nodes_once_the_split_ran(
        tmp_path: Path, selector: str, growing: bool) -> None:
    root = project_with(tmp_path, selector)
    generate_project(root)
    rules = (root / "workflow/rules/charts.smk").read_text()
    plan = json.loads((root / "workflow/expops_plan.json").read_text())
    if growing:
        assert plan["charts"][0]["growing"] == ["split"]
        assert ('        ancient("results/split/_partitions.json"),\n'
                '        lambda wildcards: probed_manifests("plot", checkpoints),\n'
                "        reads=chart_reads_marker('plot'),\n    output:") in rules
        assert "from expops_smk.codegen.chart_inputs import probed_manifests" in rules
    else:
        assert plan["charts"][0]["growing"] == []
        assert 'input:\n        "results/agg/_outputs.json",\n        reads=chart_reads_marker(\'plot\'),\n    output:' in rules
        assert "probed_manifests" not in rules


def test_a_growing_split_keeps_its_outputs_for_checkpoint_get(tmp_path: Path) -> None:
    """No marker output (deleted before every run) on a growing split: ``get()`` needs all of them."""
    generate_project(project_with(tmp_path, "//*[@name='train']"))
    rules = (tmp_path / "p/workflow/rules/processes.smk").read_text()
    split_rule = rules[rules.index("checkpoint split:"):rules.index("rule train:")]
    assert 'output:\n        "results/split/_partitions.json",\n    log:' in split_rule
    assert "touch" not in split_rule


def test_a_chart_selector_matching_nothing_outside_growing_splits_is_still_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        generate_project(project_with(tmp_path, "//*[@name='tarin']"))
    assert caught.value.field == "probe_paths.probed" and "matches no node" in str(caught.value)


def test_probes_follow_the_partitions_on_disk(tmp_path: Path) -> None:
    root = project_with(tmp_path, "//*[@name='train']")
    project = load_project(root)
    chart = resolve_charts(Graph(project))["plot"]
    assert [probe.key for probe in chart.probes] == ["probed"]  # the stand-in partition, for validation only
    split_ran(root, [1, 2, 3])
    graph = Graph(project)
    assert [probe.key for probe in current_probes(graph, chart)] == [
        f"//*[@partition='p{n}']/process[@name='train']" for n in (1, 2, 3)]
    assert current_locations(graph, chart) == [Node("train", (n,)) for n in (1, 2, 3)]
    split_ran(root, [2])  # one partition left: a single match keeps the user's key
    assert [(probe.key, probe.partition) for probe in current_probes(Graph(project), chart)] == [("probed", (2,))]


def test_a_probe_matching_no_partition_fails_the_chart_in_one_line(tmp_path: Path) -> None:
    root = project_with(tmp_path, "//*[@partition='p3']/*[@name='train']")
    generate_project(root)
    split_ran(root, [1, 2])
    done = subprocess.run([sys.executable, "-m", "expops_smk.runtime.chart_job", "plot", "--log", "logs/charts/plot.log"],
                          cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "expops-smk: chart 'plot': probe 'probed': \"//*[@partition='p3']/*[@name='train']\" matches no node or step "
        "(nodes look like //*[@partition='p1']/*[@seed='41']/process[@name='train'], steps add /step[@name='fit']) "
        "in the partitions of 'split' (log: logs/charts/plot.log)"]


NESTED_FIXED_CONFIG = """\
scripts: {main: src/model.py, reporting: src/charts.py}
experiment:
  pipeline:
    process_adjlist: |
      split inner
      inner train
      train agg
    processes:
      - {name: split, data_parallelism: {rows_per_partition: 2}}
      - {name: inner, data_parallelism: {size: 2}}
      - name: train
      - {name: agg, data_aggregation: true}
      - name: plot
        code: reporting.plot
        probe_paths: {probed: "//*[@name='train']"}
"""


class Checkpoints:
    """Stands for the Snakefile's ``checkpoints``: records which splits' ``get()`` was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __getattr__(self, rule: str) -> "Checkpoint":
        return Checkpoint(rule, self.asked)


class Checkpoint:
    """One split's checkpoint: ``get()`` succeeds (the split ran), ``rule.output`` is its list."""

    def __init__(self, rule: str, asked: list[str]) -> None:
        self.name, self.asked = rule, asked
        self.rule = SimpleNamespace(output=[SimpleNamespace(apply_wildcards=self.listed)])

    def listed(self, wildcards: dict[str, str]) -> str:
        return "/".join(["results", self.name, *wildcards.values(), "_partitions.json"])

    def get(self, **wildcards: str) -> SimpleNamespace:
        self.asked.append(self.name + "".join(f" {name}={value}" for name, value in sorted(wildcards.items())))
        return SimpleNamespace(output=[self.listed(wildcards)])


def test_the_input_function_lists_the_nodes_of_the_partitions_on_disk(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """After ``get()`` of every growing split it probes: the nodes, and (ancient) the manifests of
    the fixed splits inside, which a chart reads to stay out of runs that change other partitions."""
    from expops_smk.codegen.chart_inputs import probed_manifests

    root = write_project(tmp_path / "p", NESTED_FIXED_CONFIG, functions(["split", "inner", "train", "agg"]),
                         script_path="src/model.py", files={"src/charts.py": "def plot(metrics):\n    return None\n"})
    generate_project(root)
    split_ran(root, [1, 4])
    monkeypatch.chdir(root)
    checkpoints = Checkpoints()
    listed = probed_manifests("plot", checkpoints)
    assert checkpoints.asked == ["split"]
    branches = ("p1-p1", "p1-p2", "p4-p1", "p4-p2")
    assert listed == [f"results/train/{b}/_outputs.json" for b in branches] + \
        [f"results/inner/{b}/_outputs.json" for b in branches]
    assert [path.flags for path in listed[4:]] == [{"ancient": True}] * 4


GROWING_IN_GROWING_CONFIG = """\
scripts: {main: src/model.py, reporting: src/charts.py}
experiment:
  pipeline:
    process_adjlist: |
      outer inner
      inner work
      work agg
      agg total
    processes:
      - {name: outer, data_parallelism: {rows_per_partition: 4}}
      - {name: inner, data_parallelism: {rows_per_partition: 2}}
      - name: work
      - {name: agg, data_aggregation: true}
      - {name: total, data_aggregation: true}
      - name: plot
        code: reporting.plot
        probe_paths: {probed: "//*[@name='work']"}
"""


def test_a_growing_split_inside_another_has_its_lists_from_the_input_function(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner split's jobs are known once the outer one ran (get()); each has its list. Below a
    checkpoint a split job may drop out of the run, and then its get() would never succeed: the
    inner lists are read as they are (the chart waits for those that run, through their edges)."""
    from expops_smk.codegen.chart_inputs import probed_manifests

    root = write_project(tmp_path / "p", GROWING_IN_GROWING_CONFIG, functions(["outer", "inner", "work", "agg", "total"]),
                         script_path="src/model.py", files={"src/charts.py": "def plot(metrics):\n    return None\n"})
    generate_project(root)
    rules = (root / "workflow/rules/charts.smk").read_text()
    assert ('        ancient("results/outer/_partitions.json"),\n'
            '        lambda wildcards: probed_manifests("plot", checkpoints),\n'
            "        reads=chart_reads_marker('plot'),\n    output:") in rules
    for split, numbers in ((Node("outer"), [1, 2]), (Node("inner", (1,)), [1]), (Node("inner", (2,)), [1, 2])):
        listing = root / partitions_file(split)
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text(json.dumps(partitions_json(split.process, "rows_per_partition",
                                                      [Partition(n, f"rows {n}", str(n), "d") for n in numbers])))
    monkeypatch.chdir(root)
    checkpoints = Checkpoints()
    listed = probed_manifests("plot", checkpoints)
    assert checkpoints.asked == ["outer"]
    assert listed == [f"results/work/{b}/_outputs.json" for b in ("p1-p1", "p2-p1", "p2-p2")] + \
        ["results/inner/p1/_partitions.json", "results/inner/p2/_partitions.json"]
    assert [path.flags for path in listed[3:]] == [{"ancient": True}] * 2
