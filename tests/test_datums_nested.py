"""Growing-data splits nested in other fan-outs, without Snakemake: each branch of the fan-outs
around the split has its own partitions (its own ``_partitions.json``), nodes and ids."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from expops_smk.codegen.datum_inputs import branch_expand, branch_numbers
from expops_smk.codegen.prepare import generate_project
from expops_smk.config.project import load_project
from expops_smk.errors import ConfigError
from expops_smk.graph.expansion import build_graph
from expops_smk.graph.nodes import Node
from expops_smk.graph.partitions import Partition, numbering_file, partitions_file, partitions_json
from projects import functions, pipeline, write_project


def nested(root: Path, outer: dict[str, Any], *below: dict[str, Any]) -> Path:
    """outer fan-out -> split (rows_per_partition: 2) -> work -> agg (data) -> the processes ``below``."""
    processes = [{"name": "outer", **outer},
                 {"name": "split", "depends_on": ["outer"], "data_parallelism": {"rows_per_partition": 2}},
                 {"name": "work", "depends_on": ["split"]},
                 {"name": "agg", "depends_on": ["work"], "data_aggregation": True}, *below]
    return write_project(root, pipeline(processes), functions(p["name"] for p in processes))


def record(root: Path, split: Node, numbers: list[int]) -> None:
    listing = root / partitions_file(split)
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text(json.dumps(partitions_json(split.process, "rows_per_partition",
                                                  [Partition(n, f"rows {n}", str(n), "d") for n in numbers])))


def test_each_outer_partition_has_its_own_partitions(tmp_path: Path) -> None:
    root = nested(tmp_path / "p", {"data_parallelism": {"size": 2}},
                  {"name": "total", "depends_on": ["agg"], "data_aggregation": True})
    project = load_project(root)
    assert [n.label for n in build_graph(project).nodes()] == ["outer", "split P1", "split P2", "agg P1", "agg P2",
                                                              "total"]  # before the splits ran
    record(root, Node("split", (1,)), [1, 2, 3])
    record(root, Node("split", (2,)), [1])
    graph = build_graph(project)
    assert [n.label for n in graph.nodes() if n.process == "work"] == ["work P1-P1", "work P1-P2", "work P1-P3",
                                                                       "work P2-P1"]
    assert graph.node("work", "p1-p3").id == "//*[@partition='p1']/*[@partition='p3']/process[@name='work']"
    with pytest.raises(KeyError):
        graph.node("work", "p2-p2")  # branch p2 has one partition
    assert [(i.location.results_dir, i.keys) for i in graph.inputs(graph.node("agg", "p1"))] == [
        (f"results/work/p1-p{k}", (f"data{k}",)) for k in (1, 2, 3)]
    assert [i.location.partition for i in graph.inputs(graph.node("agg", "p2"))] == [(2, 1)]
    assert [n.results_dir for n in graph.output_locations(graph.node("split", "p2"))] == ["results/split/p2-p1"]
    assert partitions_file(Node("split", (2,))) == "results/split/p2/_partitions.json"
    assert numbering_file(Node("split", (2,), (41,))) == ".expops/partitions/split/p2/s41.json"
    assert numbering_file(Node("split")) == ".expops/partitions/split.json"


def test_inside_a_seed_fan_out_the_ids_put_the_partition_first(tmp_path: Path) -> None:
    root = nested(tmp_path / "p", {"seed_parallelism": {"seeds": [41, 42]}},
                  {"name": "report", "depends_on": ["agg"], "seed_aggregation": True})
    record(root, Node("split", (), (41,)), [1, 2])
    record(root, Node("split", (), (42,)), [7])
    graph = build_graph(load_project(root))
    assert [n.label for n in graph.nodes() if n.process == "work"] == ["work P1 S41", "work P2 S41", "work P7 S42"]
    assert graph.node("work", "p7", "42").id == "//*[@partition='p7']/*[@seed='42']/process[@name='work']"
    assert [i.location.results_dir for i in graph.inputs(graph.node("report"))] == ["results/agg/s41",
                                                                                   "results/agg/s42"]


@pytest.mark.parametrize("flags", [{"seed_aggregation": True}, {"seed_aggregation": True, "data_aggregation": True}])
def test_aggregating_the_fan_out_around_a_growing_split_first_is_one_error(tmp_path: Path, flags: dict) -> None:
    config = pipeline([{"name": "seeds", "seed_parallelism": {"seeds": [1, 2]}},
                       {"name": "split", "depends_on": ["seeds"], "data_parallelism": {"rows_per_partition": 5}},
                       {"name": "work", "depends_on": ["split"]},
                       {"name": "both", "depends_on": ["work"], **flags}])
    root = write_project(tmp_path / "p", config, functions(["seeds", "split", "work", "both"]))
    with pytest.raises(ConfigError) as caught:
        build_graph(load_project(root))
    assert caught.value.process == "both" and caught.value.field == "seed_aggregation"
    assert "around the growing-data split 'split'" in str(caught.value)


def test_generated_rules_name_each_branch_of_the_checkpoint(tmp_path: Path) -> None:
    root = nested(tmp_path / "p", {"seed_parallelism": {"seeds": [41, 42]}},
                  {"name": "report", "depends_on": ["agg"], "seed_aggregation": True},
                  {"name": "note", "depends_on": ["work"]})
    generate_project(root)
    rules = (root / "workflow/rules/processes.smk").read_text()
    assert 'checkpoint split:' in rules and '"results/split/s{seed}/_partitions.json",' in rules
    assert ".expops/checkpoints/split" not in rules  # no marker: get() needs every output of the split
    assert ('work=lambda wildcards: expand("results/work/p{d1}/s{seed}/_outputs.json", seed=wildcards.seed, '
            "d1=partition_numbers(checkpoints.split.get(seed=wildcards.seed).output[0]))") in rules
    assert 'ancient("results/split/s{seed}/_partitions.json")' in rules  # the early-cutoff edge of its branch
    # `rule all` enumerates the seeds and, in each, the partitions its split found.
    assert ('lambda wildcards: branch_expand("results/note/p{d1}/s{s1}/_outputs.json", '
            "d1=branch_numbers(checkpoints.split, data=0, seeds=1), s1=[41, 42])") in rules


def test_branch_expand_takes_each_branch_partitions(tmp_path: Path) -> None:
    lists = {("p1", ""): [1, 2], ("p2", ""): [], ("p1", "5"): [3], ("p2", "5"): [4, 6]}
    for (partition, seed), numbers in lists.items():
        (tmp_path / f"{partition}{seed}.json").write_text(json.dumps({"partitions": [{"number": n} for n in numbers]}))

    class Checkpoint:
        def get(self, partition: str = "", seed: str = "") -> Any:
            return SimpleNamespace(output=[str(tmp_path / f"{partition}{seed}.json")])

    assert branch_expand("w/p{d1}-p{d2}", d1=range(1, 3), d2=branch_numbers(Checkpoint(), data=1, seeds=0)) == [
        "w/p1-p1", "w/p1-p2"]
    assert branch_expand("w/p{d1}-p{d2}/s{s1}", d1=[1, 2], d2=branch_numbers(Checkpoint(), data=1, seeds=1),
                         s1=[5]) == ["w/p1-p3/s5", "w/p2-p4/s5", "w/p2-p6/s5"]


def test_a_growing_split_inside_another_growing_split(tmp_path: Path) -> None:
    root = nested(tmp_path / "p", {"data_parallelism": {"by": "g"}},
                  {"name": "total", "depends_on": ["agg"], "data_aggregation": True})
    record(root, Node("outer"), [5, 9])
    record(root, Node("split", (5,)), [1, 2])
    record(root, Node("split", (9,)), [1])
    graph = build_graph(load_project(root))
    assert [n.label for n in graph.nodes() if n.process == "work"] == ["work P5-P1", "work P5-P2", "work P9-P1"]
    assert [i.location.partition for i in graph.inputs(graph.node("total"))] == [(5,), (9,)]
    generate_project(root)
    rules = (root / "workflow/rules/processes.smk").read_text()
    total = rules[rules.index("rule total:"):]
    # No early-cutoff edge to a branch of 'split' for 'total': which outer partitions exist is known
    # only after 'outer' ran (the edge would name a file no job makes).
    assert "results/split/" not in total[:total.index("output:")]
    assert "checkpoints.outer.get()" in total


def test_below_another_data_split_the_partitions_are_listed_from_disk(tmp_path: Path) -> None:
    """A split below a `size:` split may drop out of a run, and then its get() would raise until the
    run ends: its partitions are read from its list on disk, and its nodes read their own branch's
    list (ancient), so they wait for the split job when it runs."""
    root = nested(tmp_path / "p", {"data_parallelism": {"size": 2}},
                  {"name": "total", "depends_on": ["agg"], "data_aggregation": True},
                  {"name": "note", "depends_on": ["work"]})
    generate_project(root)
    rules = (root / "workflow/rules/processes.smk").read_text()
    work = rules[rules.index("rule work:"):rules.index("rule agg:")]
    assert ('lambda wildcards: ancient(expand("results/split/{partition}/_partitions.json", '
            "partition=outer(wildcards.partition, 1)))") in work
    assert ("d2=listed_numbers(checkpoints.split, partition=wildcards.partition))") in rules
    # Its own partition's manifest only while the list has it (a removed key's node then leaves the run).
    assert ('split=lambda wildcards: listed_manifest(checkpoints.split, "results/split/{partition}/_outputs.json", '
            "wildcards, data=1, seeds=0),") in work
    assert "checkpoints.split.get(" not in rules
    agg = rules[rules.index("rule agg:"):rules.index("output:", rules.index("rule agg:"))]
    assert '        "results/split/{partition}/_partitions.json",\n' in agg  # plain: see checkpoint_inputs
    assert ('branch_expand("results/note/p{d1}-p{d2}/_outputs.json", d1=range(1, 3), '
            "d2=branch_numbers(checkpoints.split, data=1, seeds=0, below_split=True))") in rules


def test_a_listed_split_is_read_from_disk_and_rule_all_reads_each_list(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from expops_smk.codegen.datum_inputs import listed_numbers, split_list

    monkeypatch.chdir(tmp_path)
    record(tmp_path, Node("split", (1,)), [1, 3])

    class Checkpoint:
        """get() of a job dropped from the run raises for the rest of it: it must not be asked."""

        rule = SimpleNamespace(output=[SimpleNamespace(
            apply_wildcards=lambda wildcards: f"results/split/{wildcards['partition']}/_partitions.json")])

        def get(self, **wildcards: str) -> Any:
            raise AssertionError("get() asked")

    assert listed_numbers(Checkpoint(), partition="p1") == [1, 3]
    assert listed_numbers(Checkpoint(), partition="p2") == []  # never ran: its job makes the list first
    assert split_list(Checkpoint(), True, partition="p2") is None
    paths = branch_expand("w/p{d1}-p{d2}", d1=range(1, 3), d2=branch_numbers(Checkpoint(), 1, 0, below_split=True))
    assert paths == ["w/p1-p1", "w/p1-p3", "results/split/p1/_partitions.json", "results/split/p2/_partitions.json"]
    assert [getattr(path, "flags", {}) for path in paths] == [{}, {}, {"ancient": True}, {"ancient": True}]
