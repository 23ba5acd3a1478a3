"""Read a node's results from Python: ``expops_smk.load(project, "train", partition=1, seed=41)``.

Values are read through the store, so an artifact edited by hand raises instead of being served.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Sequence

from expops_smk.config.project import load_project
from expops_smk.errors import ExpopsError
from expops_smk.graph.expansion import build_graph
from expops_smk.graph.nodes import Node, parse_seed
from expops_smk.runtime.user_scripts import install_user_scripts
from expops_smk.store.artifact_store import Store


Location = int | Sequence[int] | str | None


def load(project: str | Path, process: str, partition: Location = None, seed: Location = None) -> dict[str, Any]:
    """All outputs of one node, by key.

    ``partition`` is a partition number (1-based), a tuple for nested data fan-outs, or text in
    any of the forms ``"3"``, ``"p3"``, ``"3-2"``, ``"p3-p2"``; ``seed`` a seed, a tuple of nested
    seeds, or text such as ``"41-7"``. For a data split, ``partition`` picks which partition to read.
    """
    root = Path(project).resolve()
    valid = _locations(root, process)
    location = Node(process, partition_tuple(partition), seed_tuple(seed))
    if location not in valid:
        choices = ", ".join(loc.label for loc in valid[:12]) + (" ..." if len(valid) > 12 else "")
        raise ExpopsError(f"{root}: '{location.label}' is not a node of this project (try: {choices})")
    return _read_node(root, location)


def load_all(project: str | Path, process: str) -> dict[tuple[tuple[int, ...], tuple[int, ...]], dict[str, Any]]:
    """The outputs of every node of one process, keyed by ``(partition, seed)`` tuples.

    E.g. ``{((1,), (41,)): {"model": ...}, ((1,), (42,)): {...}}``; a process without fan-outs
    has the single key ``((), ())``. Nodes without results yet raise, as ``load`` does.
    """
    root = Path(project).resolve()
    valid = _locations(root, process)
    return {(location.partition, location.seed): _read_node(root, location) for location in valid}


def metrics(project: str | Path) -> Any:
    """The metrics table (one row per logged value) of the project's current nodes, as a DataFrame."""
    from expops_smk.results.metrics import collect, current_node_ids

    root = Path(project).resolve()
    return collect(root, current_node_ids(root))


def _locations(root: Path, process: str) -> list[Node]:
    """Every output location of ``process``, in graph order."""
    config = load_project(root)
    graph = build_graph(config)
    # A pickled instance of a class defined in a user script unpickles only under the module name
    # the runtime imported that script as.
    install_user_scripts(root, config.all_scripts())
    if process not in graph.layouts:
        hint = difflib.get_close_matches(process, list(graph.layouts), n=1)
        did_you_mean = f"did you mean '{hint[0]}'? " if hint else ""
        raise ExpopsError(f"{root}: no process '{process}' ({did_you_mean}processes: {', '.join(graph.layouts)})")
    layout = graph.layouts[process]
    return [loc for node in layout.nodes() for loc in layout.output_locations(node)]


def _read_node(root: Path, location: Node) -> dict[str, Any]:
    folder = root / location.results_dir
    store = Store(root)
    try:
        manifest = store.read_manifest(folder)
    except FileNotFoundError:
        raise ExpopsError(f"{location.label} has no results yet ({location.results_dir}); run snakemake first") from None
    return {key: store.read_value(folder, artifact) for key, artifact in manifest.items()}


def partition_tuple(value: Location) -> tuple[int, ...]:
    """A partition as given by a user: 3, (3, 2), "3", "p3", "3-2" or "p3-p2"."""
    if isinstance(value, str):
        parts = value.split("-") if value else []
        numbers = [part[1:] if part.startswith("p") else part for part in parts]
        if not all(number.isdigit() for number in numbers):
            raise ExpopsError(f"partition '{value}' is not a partition (forms: 3, p3, 3-2, p3-p2)")
        return tuple(int(number) for number in numbers)
    return _number_tuple(value)


def seed_tuple(value: Location) -> tuple[int, ...]:
    """A seed as given by a user: 41, (41, 7), "41" or "41-7" (nested seeds; "41--7" is (41, -7))."""
    if isinstance(value, str):
        try:
            return parse_seed(value)
        except ValueError:
            raise ExpopsError(f"seed '{value}' is not a seed (forms: 41, 41-7)") from None
    return _number_tuple(value)


def _number_tuple(value: int | Sequence[int] | None) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)
