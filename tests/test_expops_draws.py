"""End to end: every node's unseeded ``random`` and numpy draws equal those recorded from ExpOps.

``tests/expops_reference/`` holds three projects written against ``expops.core`` and the draws
ExpOps 0.1.27 produced for each of their 47 nodes (``expops run --local``). Their functions draw
``random.random()`` and ``numpy.random.rand()`` without seeding and return both. Together they
cover nodes outside fan-outs, data partitions, seeds, partitions x seeds (data split first and
seed split first), nested seeds, custom split functions inside a fan-out, and aggregations.

ExpOps' Python ``random`` is only reproducible with ``DASK_DISTRIBUTED__COMM__OFFLOAD=False``:
otherwise Dask's worker thread draws from the same global generator while a task runs (see the
README's compatibility section); the recorded values come from such runs, and matched numpy and
the seeding formula on every node.

Two fan-out processes of the reference (``inner_seeds``, ``data_split``) have no ``code:`` but a
function named like them, which ExpOps 0.1.27 calls as a custom splitter. ExpOps' documentation
(and expops-smk) make a fan-out process without ``code:`` a built-in split, so the copies run here
name the function with ``code:``, the documented spelling of the same project.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from e2e import Project

from expops_smk.config.project import load_project
from expops_smk.graph.expansion import build_graph
from expops_smk.graph.nodes import Node

pytestmark = pytest.mark.e2e

REFERENCE = Path(__file__).with_name("expops_reference")
CUSTOM_SPLITTERS = {"seednest": "inner_seeds", "seedthendata": "data_split"}
RECORDED = json.loads((REFERENCE / "draws.json").read_text(encoding="utf-8"))["draws"]
PROJECTS = sorted({record["project"] for record in RECORDED})


@pytest.mark.parametrize("name", PROJECTS)
def test_unseeded_draws_equal_expops_node_by_node(tmp_path: Path, name: str) -> None:
    root = tmp_path / name
    shutil.copytree(REFERENCE / name, root)
    if name in CUSTOM_SPLITTERS:
        config = root / "configs" / "project_config.yaml"
        process = CUSTOM_SPLITTERS[name]
        text = config.read_text(encoding="utf-8")
        assert text.count(f'- name: "{process}"\n') == 1
        config.write_text(text.replace(f'- name: "{process}"\n', f'- name: "{process}"\n        code: {process}\n'),
                          encoding="utf-8")
    project = Project(root)
    first = project.run()
    graph = build_graph(load_project(root))
    recorded = [record for record in RECORDED if record["project"] == name]
    assert {node.id for node in graph.nodes() if f"{node.process}_random" in project.manifest(
        *_location(graph, node))} == {record["node_id"] for record in recorded}
    for record in recorded:
        node = Node(record["process"], tuple(record["partition"]), tuple(record["seed"]))
        assert node.id == record["node_id"]
        location = _location(graph, node)
        drawn = (project.value(node.process, f"{node.process}_random", *location[1:]),
                 project.value(node.process, f"{node.process}_numpy", *location[1:]))
        assert drawn == (record["random"], record["numpy"]), node.label
    assert len(first.executed) == graph.node_count()


def _location(graph, node: Node) -> tuple[str, str, str]:
    """(process, partition, seed) of the folder holding the node's outputs (a data split: its first)."""
    folder = graph.output_locations(node)[0]
    return folder.process, folder.partition_value, folder.seed_value
