"""Time the fan-out expansion of a large project: target under 1 s for 1,000 partitions x 10 seeds.

Writes a throw-away project (data split -> seed split -> three per-branch processes -> one
aggregation over both layers), then times, median of ``--repeat`` runs:
  load     parse + validate configs/project_config.yaml (scripts parsed, never imported)
  expand   build_graph + enumerate every node + resolve every node's inputs
The target applies to ``expand``, the work that grows with the number of nodes; ``total`` adds
``load`` for reference. Usage: python benchmarks/bench_expand.py [--partitions N] [--seeds K]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from expops_smk.config.project import load_project
from expops_smk.graph.expansion import build_graph

TARGET_SECONDS = 1.0
PER_BRANCH = ("preprocess", "train", "evaluate")


def write_project(root: Path, partitions: int, seeds: int) -> None:
    processes = [
        {"name": "load_data"},
        {"name": "partition", "data_parallelism": {"size": partitions}},
        {"name": "seeds", "seed_parallelism": {"seeds": list(range(41, 41 + seeds))}},
        *({"name": name} for name in PER_BRANCH),
        {"name": "aggregate", "data_aggregation": True, "seed_aggregation": True},
    ]
    chain = ["load_data", "partition", "seeds", *PER_BRANCH, "aggregate"]
    config = {
        "scripts": {"model": "src/model.py"},
        "experiment": {"pipeline": {
            "process_adjlist": "\n".join(f"{a} {b}" for a, b in zip(chain, chain[1:])),
            "processes": processes,
        }},
    }
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "project_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "src").mkdir()
    functions = ["load_data", *PER_BRANCH, "aggregate"]
    (root / "src" / "model.py").write_text("".join(f"def {f}(**kwargs):\n    return {{}}\n\n" for f in functions))


def measure(root: Path) -> tuple[float, float, int, int]:
    """One run: (load seconds, expand seconds, nodes, input edges)."""
    start = time.perf_counter()
    project = load_project(root)
    loaded = time.perf_counter()
    graph = build_graph(project)
    nodes = edges = 0
    for node in graph.nodes():
        nodes += 1
        edges += len(graph.inputs(node))
    done = time.perf_counter()
    return loaded - start, done - loaded, nodes, edges


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_project(root, args.partitions, args.seeds)
        runs = [measure(root) for _ in range(args.repeat)]
    load = statistics.median(run[0] for run in runs)
    expand = statistics.median(run[1] for run in runs)
    nodes, edges = runs[0][2], runs[0][3]
    print(f"expansion of {args.partitions} partitions x {args.seeds} seeds: "
          f"{nodes} nodes, {edges} input edges (median of {args.repeat})")
    print(f"{'step':<8} {'seconds':>8} {'target':>8}")
    print(f"{'load':<8} {load:8.3f} {'':>8}")
    print(f"{'expand':<8} {expand:8.3f} {TARGET_SECONDS:8.1f}  {'ok' if expand < TARGET_SECONDS else 'SLOW'}")
    print(f"{'total':<8} {load + expand:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
