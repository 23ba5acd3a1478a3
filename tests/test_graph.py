"""expops_smk.graph: fan-out expansion, node naming and explicit node inputs, on small fixed projects."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from expops_smk.config.project import load_project
from expops_smk.graph.expansion import Graph, build_graph
from expops_smk.graph.nodes import Node, NodeInput, parse_partition, parse_seed
from projects import functions, pipeline

MakeProject = Callable[..., Path]


def expand(make_project: MakeProject, processes: list[dict[str, Any]], adjlist: str) -> Graph:
    """Every process that is not a split gets a trivial function named like it."""
    def is_split(process: dict[str, Any]) -> bool:
        return "size" in process.get("data_parallelism", {}) or "seeds" in process.get("seed_parallelism", {})
    plain = [p["name"] for p in processes if not is_split(p)]
    return build_graph(load_project(make_project(pipeline(processes, adjlist), functions(plain))))


def labels(graph: Graph, process: str) -> list[str]:
    return [node.label for node in graph.nodes() if node.process == process]


def inputs(graph: Graph, node: Node) -> list[tuple[str, str, tuple[str, ...]]]:
    """(upstream, folder, keys) for each input of ``node``."""
    return [(item.upstream, item.location.results_dir, item.keys) for item in graph.inputs(node)]


def data_split(size: int | list[int], name: str = "split") -> dict[str, Any]:
    return {"name": name, "data_parallelism": {"size": size}}


def seed_split(seeds: list[int], name: str = "seeds") -> dict[str, Any]:
    return {"name": name, "seed_parallelism": {"seeds": seeds}}


# -- naming --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("node", "node_id", "label", "legacy", "folder"), [
    (Node("train"), "//process[@name='train']", "train", "train", "results/train"),
    (Node("train", (1,)), "//*[@partition='p1']/process[@name='train']", "train P1", "train_1", "results/train/p1"),
    (Node("train", (), (41,)), "//*[@seed='41']/process[@name='train']", "train S41", "train_seed41",
     "results/train/s41"),
    (Node("train", (1,), (41,)), "//*[@partition='p1']/*[@seed='41']/process[@name='train']", "train P1 S41",
     "train_1_seed41", "results/train/p1/s41"),
    (Node("train", (1, 2), (41, -7)),
     "//*[@partition='p1']/*[@partition='p2']/*[@seed='41']/*[@seed='-7']/process[@name='train']",
     "train P1-P2 S41-S-7", "train_1_2_seed41_seed-7", "results/train/p1-p2/s41--7"),
])
def test_node_names(node: Node, node_id: str, label: str, legacy: str, folder: str) -> None:
    assert (node.id, node.label, node.legacy_name, node.results_dir) == (node_id, label, legacy, folder)


@pytest.mark.parametrize(("text", "values"), [("", ()), ("p1", (1,)), ("p1-p2", (1, 2)), ("p10-p3-p7", (10, 3, 7))])
def test_parse_partition_round_trips(text: str, values: tuple[int, ...]) -> None:
    assert parse_partition(text) == values
    assert Node("x", values).partition_value == text


@pytest.mark.parametrize(("text", "values"), [("", ()), ("41", (41,)), ("41-7", (41, 7)), ("41--7", (41, -7)),
                                              ("-3--4", (-3, -4)), ("-3-4", (-3, 4))])
def test_parse_seed_round_trips(text: str, values: tuple[int, ...]) -> None:
    assert parse_seed(text) == values
    assert Node("x", (), values).seed_value == text


@pytest.mark.parametrize("bad", ["1", "p", "px", "p1-", "p1-2"])
def test_parse_partition_rejects_malformed(bad: str) -> None:
    with pytest.raises(KeyError):
        parse_partition(bad)


# -- expansions ----------------------------------------------------------------------------------

def test_no_fan_out(make_project: MakeProject) -> None:
    graph = expand(make_project, [{"name": "a"}, {"name": "b"}], "a b")
    assert list(graph.nodes()) == [Node("a"), Node("b")]
    assert graph.inputs(Node("b")) == [NodeInput("a", Node("a"), ())]
    assert graph.inputs(Node("a")) == []


def test_single_data_layer(make_project: MakeProject) -> None:
    graph = expand(make_project, [{"name": "load"}, data_split(3), {"name": "train"}], "load split\nsplit train")
    assert graph.node_count() == 5 == len(list(graph.nodes()))
    assert labels(graph, "split") == ["split"]
    assert labels(graph, "train") == ["train P1", "train P2", "train P3"]
    # A data split writes one folder per partition; each branch reads its own.
    assert [n.results_dir for n in graph.output_locations(Node("split"))] == \
        ["results/split/p1", "results/split/p2", "results/split/p3"]
    assert inputs(graph, Node("train", (2,))) == [("split", "results/split/p2", ())]
    assert inputs(graph, Node("split")) == [("load", "results/load", ())]
    layer = graph.layouts["train"].stack[0]
    assert (layer.kind, layer.owner, layer.values, layer.row_counts) == ("data", "split", (1, 2, 3), None)


def test_single_seed_layer(make_project: MakeProject) -> None:
    graph = expand(make_project, [{"name": "load"}, seed_split([41, 42, 7]), {"name": "train"}],
                   "load seeds\nseeds train")
    assert labels(graph, "seeds") == ["seeds"]
    assert labels(graph, "train") == ["train S41", "train S42", "train S7"]
    # A seed split passes its inputs through: every branch reads the split's own folder.
    assert graph.output_locations(Node("seeds")) == [Node("seeds")]
    assert inputs(graph, Node("train", (), (7,))) == [("seeds", "results/seeds", ())]


def test_data_times_seed(make_project: MakeProject) -> None:
    graph = expand(make_project, [data_split(3), seed_split([41, 42]), {"name": "train"}],
                   "split seeds\nseeds train")
    assert graph.node_count() == 1 + 3 + 6
    assert labels(graph, "seeds") == ["seeds P1", "seeds P2", "seeds P3"]
    assert labels(graph, "train") == [f"train P{p} S{s}" for p in (1, 2, 3) for s in (41, 42)]
    node = Node("train", (1,), (41,))
    assert node in set(graph.nodes())
    assert node.id == "//*[@partition='p1']/*[@seed='41']/process[@name='train']"
    assert node.label == "train P1 S41" and node.legacy_name == "train_1_seed41"
    assert inputs(graph, Node("train", (3,), (42,))) == [("seeds", "results/seeds/p3", ())]
    assert inputs(graph, Node("seeds", (3,))) == [("split", "results/split/p3", ())]


def test_seed_outside_data_still_names_data_first(make_project: MakeProject) -> None:
    graph = expand(make_project, [seed_split([5, 6]), data_split(2), {"name": "train"}], "seeds split\nsplit train")
    assert labels(graph, "train") == ["train P1 S5", "train P2 S5", "train P1 S6", "train P2 S6"]
    assert Node("train", (2,), (5,)).id == "//*[@partition='p2']/*[@seed='5']/process[@name='train']"
    assert inputs(graph, Node("train", (2,), (6,))) == [("split", "results/split/p2/s6", ())]


def test_two_nested_data_layers(make_project: MakeProject) -> None:
    graph = expand(make_project, [
        data_split(2, "outer"), data_split(3, "inner"), {"name": "train"},
        {"name": "inner_agg", "data_aggregation": True}, {"name": "outer_agg", "data_aggregation": True},
    ], "outer inner\ninner train\ntrain inner_agg\ninner_agg outer_agg")
    train = [n for n in graph.nodes() if n.process == "train"]
    assert [n.partition_value for n in train] == ["p1-p1", "p1-p2", "p1-p3", "p2-p1", "p2-p2", "p2-p3"]
    assert train[1].results_dir == "results/train/p1-p2"
    assert train[1].id == "//*[@partition='p1']/*[@partition='p2']/process[@name='train']"
    assert train[1].label == "train P1-P2" and train[1].legacy_name == "train_1_2"
    assert inputs(graph, Node("inner", (2,))) == [("outer", "results/outer/p2", ())]
    assert inputs(graph, Node("train", (2, 3))) == [("inner", "results/inner/p2-p3", ())]
    # The inner aggregation collapses the innermost data layer only: one node per outer partition.
    assert labels(graph, "inner_agg") == ["inner_agg P1", "inner_agg P2"]
    assert inputs(graph, Node("inner_agg", (2,))) == [
        ("train", f"results/train/p2-p{i}", (f"data{i}",)) for i in (1, 2, 3)]
    assert inputs(graph, Node("outer_agg")) == [
        ("inner_agg", f"results/inner_agg/p{i}", (f"data{i}",)) for i in (1, 2)]
    assert graph.node_count() == 1 + 2 + 6 + 2 + 1


def test_seed_inside_data_aggregated_at_one_node(make_project: MakeProject) -> None:
    graph = expand(make_project, [
        data_split(2), seed_split([41, 42]), {"name": "train"},
        {"name": "summary", "data_aggregation": True, "seed_aggregation": True},
    ], "split seeds\nseeds train\ntrain summary")
    assert labels(graph, "summary") == ["summary"]
    assert graph.layouts["summary"].stack == ()
    assert [layer.kind for layer in graph.layouts["summary"].popped] == ["data", "seed"]
    assert inputs(graph, Node("summary")) == [
        ("train", "results/train/p1/s41", ("data1", "seed41")),
        ("train", "results/train/p1/s42", ("data1", "seed42")),
        ("train", "results/train/p2/s41", ("data2", "seed41")),
        ("train", "results/train/p2/s42", ("data2", "seed42")),
    ]


def test_aggregating_only_the_seed_layer_keeps_partitions(make_project: MakeProject) -> None:
    graph = expand(make_project, [
        data_split(3), seed_split([41, 42]), {"name": "train"},
        {"name": "per_partition", "seed_parallelism": {"aggregation": True}},
        {"name": "overall", "data_aggregation": True},
    ], "split seeds\nseeds train\ntrain per_partition\nper_partition overall")
    assert labels(graph, "per_partition") == ["per_partition P1", "per_partition P2", "per_partition P3"]
    assert inputs(graph, Node("per_partition", (2,))) == [
        ("train", "results/train/p2/s41", ("seed41",)), ("train", "results/train/p2/s42", ("seed42",))]
    assert inputs(graph, Node("overall")) == [
        ("per_partition", f"results/per_partition/p{i}", (f"data{i}",)) for i in (1, 2, 3)]


def test_explicit_size_list(make_project: MakeProject) -> None:
    graph = expand(make_project, [data_split([50, 20, 20]), {"name": "train"}, {"name": "agg", "data_aggregation": True}],
                   "split train\ntrain agg")
    layer = graph.layouts["train"].stack[0]
    assert layer.values == (1, 2, 3) and layer.row_counts == (50, 20, 20)
    assert graph.layouts["split"].child_layer == layer
    assert labels(graph, "train") == ["train P1", "train P2", "train P3"]
    assert [keys for _, _, keys in inputs(graph, Node("agg"))] == [("data1",), ("data2",), ("data3",)]


def test_data_split_straight_into_aggregation(make_project: MakeProject) -> None:
    graph = expand(make_project, [data_split(2), {"name": "agg", "data_aggregation": True}], "split agg")
    assert inputs(graph, Node("agg")) == [("split", "results/split/p1", ("data1",)),
                                          ("split", "results/split/p2", ("data2",))]


def test_seed_split_straight_into_aggregation(make_project: MakeProject) -> None:
    """The seed split's outputs are the same for every seed: they arrive once, unwrapped."""
    graph = expand(make_project, [seed_split([1, 2]), {"name": "agg", "seed_aggregation": True}], "seeds agg")
    assert inputs(graph, Node("agg")) == [("seeds", "results/seeds", ())]


def test_broadcast_of_an_unfanned_node(make_project: MakeProject) -> None:
    """A node outside the fan-out feeds every branch; at an aggregation it arrives once, unwrapped."""
    graph = expand(make_project, [
        {"name": "config"}, {"name": "load"}, data_split(2), seed_split([41, 42]), {"name": "train"},
        {"name": "agg", "data_aggregation": True, "seed_aggregation": True},
    ], "load split\nsplit seeds\nseeds train\nconfig train agg\ntrain agg")
    assert inputs(graph, Node("train", (2,), (41,))) == [
        ("seeds", "results/seeds/p2", ()), ("config", "results/config", ())]
    # Parents in the order the adjacency list names them: 'config agg' comes before 'train agg'.
    assert inputs(graph, Node("agg")) == [("config", "results/config", ())] + [
        ("train", f"results/train/p{p}/s{s}", (f"data{p}", f"seed{s}")) for p in (1, 2) for s in (41, 42)]


def test_broadcast_of_an_outer_layer_into_a_nested_one(make_project: MakeProject) -> None:
    graph = expand(make_project, [data_split(2, "outer"), {"name": "prep"}, data_split(2, "inner"), {"name": "train"}],
                   "outer prep inner\ninner train\nprep train")
    assert inputs(graph, Node("train", (2, 1))) == [
        ("inner", "results/inner/p2-p1", ()), ("prep", "results/prep/p2", ())]


def test_layouts_count_nodes_without_enumerating(make_project: MakeProject) -> None:
    graph = expand(make_project, [data_split(1000), seed_split(list(range(100))), {"name": "train"}],
                   "split seeds\nseeds train")
    assert graph.layouts["train"].node_count() == 100_000
    assert graph.node_count() == 1 + 1000 + 100_000
    assert graph.inputs(Node("train", (999,), (99,))) == [NodeInput("seeds", Node("seeds", (999,)), ())]


# -- looking nodes up ------------------------------------------------------------------------------

def test_node_lookup_from_wildcards(make_project: MakeProject) -> None:
    graph = expand(make_project, [data_split(2), seed_split([41, -7]), {"name": "train"}], "split seeds\nseeds train")
    assert graph.node("train", "p2", "-7") == Node("train", (2,), (-7,))
    assert graph.node("split") == Node("split")
    for process, partition, seed in [("train", "p3", "41"), ("train", "p1", "43"), ("train", "p1", ""),
                                     ("train", "p1-p1", "41"), ("split", "p1", ""), ("seeds", "p0", "")]:
        with pytest.raises(KeyError):
            graph.node(process, partition, seed)
    with pytest.raises(KeyError):
        graph.inputs(Node("train", (5,), (41,)))
