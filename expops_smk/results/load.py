"""Read a node's results from Python: ``expops_smk.load(project, "train", partition=1, seed=41)``.

Values are read through the store, so an artifact edited by hand raises instead of being served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from expops_smk.config.project import load_project
from expops_smk.errors import ExpopsError
from expops_smk.graph.expansion import build_graph
from expops_smk.graph.nodes import Node, parse_partition
from expops_smk.runtime.user_scripts import install_user_scripts
from expops_smk.store.artifact_store import Store


def load(project: str | Path, process: str, partition: int | Sequence[int] | str | None = None,
         seed: int | Sequence[int] | None = None) -> dict[str, Any]:
    """All outputs of one node, by key.

    ``partition`` is a partition number (1-based), a tuple for nested data fan-outs, or a
    ``{partition}`` wildcard value such as ``"p1-p2"``; ``seed`` a seed or a tuple of nested seeds.
    For a data split, ``partition`` picks which of its partitions to read.
    """
    root = Path(project).resolve()
    config = load_project(root)
    graph = build_graph(config)
    # A pickled instance of a class defined in a user script unpickles only under the module name
    # the runtime imported that script as.
    install_user_scripts(root, config.all_scripts())
    if process not in graph.layouts:
        raise ExpopsError(f"{root}: no process '{process}' (processes: {', '.join(graph.layouts)})")
    location = Node(process, _as_tuple(partition), _as_tuple(seed))
    layout = graph.layouts[process]
    valid = [loc for node in layout.nodes() for loc in layout.output_locations(node)]
    if location not in valid:
        choices = ", ".join(loc.label for loc in valid[:12]) + (" ..." if len(valid) > 12 else "")
        raise ExpopsError(f"{root}: '{location.label}' is not a node of this project (try: {choices})")
    folder = root / location.results_dir
    store = Store(root)
    try:
        manifest = store.read_manifest(folder)
    except FileNotFoundError:
        raise ExpopsError(f"{location.label} has no results yet ({location.results_dir}); run snakemake first") from None
    return {key: store.read_value(folder, artifact) for key, artifact in manifest.items()}


def _as_tuple(value: int | Sequence[int] | str | None) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return parse_partition(value) if value.startswith("p") else (int(value),)
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)
