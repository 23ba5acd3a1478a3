"""P5: how many nodes execute user code after each kind of change, next to the theoretical minimum.

The project fans out over 10 partitions x 3 seeds (2 x 1 with --quick): load_data -> partition ->
seeds -> prep -> train -> evaluate per branch -> aggregate over both layers. Every function's output
depends on its inputs, so the theoretical minimum of a change is exactly the nodes whose inputs,
code or parameters really change (issue 4's scenarios). Executions are counted from each node's
``_run.json`` (``"outcome": "executed"``) rewritten during the run; Snakemake may schedule more jobs
than that (it has no early cutoff within one invocation), and those extra jobs restore their
outputs from the run cache: the "scheduled" column shows them.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import yaml

from common import EXPOPS_SMK, SNAKEMAKE, Row, Section, Settings, format_seconds, fresh_dir, run_timed

PER_BRANCH = ("prep", "train", "evaluate")
ROWS_PER_PARTITION = 20

SCRIPT = '''
    """Cheap pure-Python processes: P5 counts executions, so jobs should start fast (no pandas)."""
    import csv


    def _read(path):
        with open(path, newline="") as handle:
            return [[int(value) for value in row] for row in csv.reader(handle)]


    def load_data(data_path):
        return {"rows": _read(data_path)}


    def prep(rows, random_seed):
        return {"features": [[value * 2 + random_seed for value in row] for row in rows]}


    def train(features, alpha, random_seed):
        return {"model": {"weight": alpha * sum(sum(row) for row in features), "seed": random_seed}}


    def _score(model, features):
        return model["weight"] / (1 + len(features))


    def evaluate(model, features):
        return {"score": _score(model, features)}


    def aggregate(score):
        return {"summary": {part: sorted(seeds.items()) for part, seeds in sorted(score.items())}}
'''


@dataclass(frozen=True)
class Shape:
    partitions: int
    seeds: tuple[int, ...]

    @property
    def branches(self) -> int:
        return self.partitions * len(self.seeds)

    @property
    def nodes(self) -> int:
        """load_data + partition + one seed split per partition + the branches + aggregate."""
        return 3 + self.partitions + self.branches * len(PER_BRANCH)


def write_project(root: Path, shape: Shape) -> Path:
    processes = [
        {"name": "load_data"},
        {"name": "partition", "data_parallelism": {"size": shape.partitions, "data_name": "rows"}},
        {"name": "seeds", "seed_parallelism": {"seeds": list(shape.seeds)}},
        {"name": "prep"},
        {"name": "train", "parameters": {"alpha": 1.0}},
        {"name": "evaluate"},
        {"name": "aggregate", "data_aggregation": True, "seed_aggregation": True},
    ]
    chain = ["load_data", "partition", "seeds", *PER_BRANCH, "aggregate"]
    adjlist = [f"{a} {b}" for a, b in zip(chain, chain[1:])] + ["prep evaluate"]
    config = {
        "scripts": {"model": "src/model.py"},
        "data": {"path": "data/rows.csv"},
        "experiment": {
            "parameters": {"data_path": "data/rows.csv"},
            "pipeline": {"process_adjlist": "\n".join(adjlist) + "\n", "processes": processes},
        },
    }
    for folder in ("configs", "src", "data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "configs" / "project_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "src" / "model.py").write_text(textwrap.dedent(SCRIPT))
    write_rows(root, [[i, i % 7, i % 5] for i in range(shape.partitions * ROWS_PER_PARTITION)])
    return root


def write_rows(root: Path, rows: list[list[int]]) -> None:
    with open(root / "data" / "rows.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def read_rows(root: Path) -> list[list[int]]:
    with open(root / "data" / "rows.csv", newline="") as handle:
        return [[int(v) for v in row] for row in csv.reader(handle)]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if text.count(old) != 1:
        raise RuntimeError(f"P5: {old!r} must occur once in {path}")
    path.write_text(text.replace(old, new))


def run_records(root: Path) -> dict[Path, tuple[int, int]]:
    return {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in (root / "results").rglob("_run.json")}


@dataclass
class Outcome:
    executed: int
    scheduled: int
    seconds: float


def snakemake(root: Path) -> Outcome:
    """Run snakemake; count nodes (labels) whose ``_run.json`` it rewrote, by outcome."""
    before = run_records(root) if (root / "results").is_dir() else {}
    result = run_timed([SNAKEMAKE, "--cores", "2"], root)
    outcomes: dict[str, str] = {}
    for path, stamp in run_records(root).items():
        if before.get(path) != stamp:
            record = json.loads(path.read_text())
            outcomes[record["label"]] = record["outcome"]
    executed = sum(1 for outcome in outcomes.values() if outcome == "executed")
    return Outcome(executed, len(outcomes), result.seconds)


def touch_all(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path)


def run(settings: Settings, selected: set[str]) -> Section:
    section = run_counts(settings) if "P5" in selected else Section()
    if "C1" in selected:
        cutoff = run_cutoff(settings)
        section.rows.extend(cutoff.rows)
        section.details.extend(cutoff.details)
    return section


def run_cutoff(settings: Settings) -> Section:
    """C1: wall time of a run after changing one row of 1 of 33 partitions, against the cold run.

    33 partitions x 10 seeds (1,026 nodes). Before data splits became checkpoints, Snakemake started
    every job below the changed data and most of them restored (0.93x the cold run, issue 18); now
    the jobs of unchanged partitions drop out once the split has run. One cold run per repetition
    (about 2.5 min each on 2 cores), so the default is a single repetition.
    """
    shape = Shape(3, (41, 42)) if settings.quick else Shape(33, tuple(range(41, 51)))
    minimum = 2 + 1 + len(shape.seeds) * len(PER_BRANCH) + 1
    root = write_project(fresh_dir(settings.workdir / "cutoff"), shape)
    run_timed([EXPOPS_SMK, "generate", "."], root)
    cold = snakemake(root)
    rows = read_rows(root)
    rows[5][1] += 100  # partition 1
    write_rows(root, rows)
    change = snakemake(root)
    if change.executed != minimum:
        raise RuntimeError(f"C1: the change executed {change.executed} nodes, expected {minimum}")
    noop = snakemake(root)
    section = Section()
    section.rows.append(Row(
        "C1", f"wall time after changing 1 of {shape.partitions} partitions vs the cold run "
              f"({shape.partitions}×{len(shape.seeds)}, {shape.nodes} nodes)",
        format_seconds(change.seconds), format_seconds(cold.seconds), change.seconds / cold.seconds, 0.15,
        note=f"jobs started {change.scheduled} of {shape.nodes}, executed {change.executed}",
    ))
    section.details.append(
        f"**C1** early cutoff inside one invocation (data splits are Snakemake checkpoints): "
        f"{shape.partitions} partitions × {len(shape.seeds)} seeds, {shape.nodes} nodes, `snakemake --cores 2`, "
        f"one run each. Cold {format_seconds(cold.seconds)}; one row of partition 1 changed: "
        f"{format_seconds(change.seconds)}, {change.scheduled} jobs started (load_data, the split, that "
        f"partition's seed split, its {len(shape.seeds) * len(PER_BRANCH)} branch nodes, the aggregate), "
        f"{change.scheduled - change.executed} restored; a no-op run afterwards {format_seconds(noop.seconds)}.")
    return section


def run_counts(settings: Settings) -> Section:
    shape = Shape(2, (41,)) if settings.quick else Shape(10, (41, 42, 43))
    root = write_project(fresh_dir(settings.workdir / "project"), shape)
    run_timed([EXPOPS_SMK, "generate", "."], root)
    cold = snakemake(root)
    if cold.executed != shape.nodes:
        raise RuntimeError(f"P5: the cold run executed {cold.executed} nodes, expected {shape.nodes}")
    seeds, branch = len(shape.seeds), len(PER_BRANCH)
    table: list[tuple[str, Outcome, int]] = [("cold run", cold, shape.nodes)]

    def scenario(name: str, minimum: int, change, where: Path = root) -> Outcome:
        change()
        outcome = snakemake(where)
        table.append((name, outcome, minimum))
        return outcome

    def change_partition() -> None:
        rows = read_rows(root)
        target = min(2, shape.partitions - 1)  # partition 3 (p3), or the last one when there are fewer
        rows[target * ROWS_PER_PARTITION + 5][1] += 100
        write_rows(root, rows)

    # load_data and the split read the data; then one partition's seed split, its branches, the aggregate.
    partition_minimum = 2 + 1 + seeds * branch + 1
    if not settings.quick:
        scenario("touch every file", 0, lambda: touch_all(root))
        copy = settings.workdir / "copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(root, copy, symlinks=True)  # new mtimes everywhere; hard links become copies
        scenario("copy the project (new mtimes), run the copy", 0, lambda: touch_all(copy), where=copy)
    headline = scenario(f"change rows of 1 of {shape.partitions} partitions", partition_minimum, change_partition)
    if not settings.quick:
        config = root / "configs" / "project_config.yaml"
        script = root / "src" / "model.py"
        # train in every branch, then evaluate (its model changed) and the aggregate.
        scenario("change one parameter (train's alpha)", 2 * shape.branches + 1,
                 lambda: edit(config, "alpha: 1.0", "alpha: 2.0"))
        scenario("revert that parameter", 0, lambda: edit(config, "alpha: 2.0", "alpha: 1.0"))
        scenario("edit a helper used by one process (evaluate's _score)", shape.branches + 1,
                 lambda: edit(script, "(1 + len(features))", "(2 + len(features))"))
        # prep's code hash changes, its output does not: downstream is restored (early cutoff).
        scenario("re-run upstream with identical output (refactor prep)", shape.branches,
                 lambda: edit(script, 'return {"features": [[value * 2 + random_seed for value in row] for row in rows]}',
                              'features = [[value * 2 + random_seed for value in row] for row in rows]\n'
                              '    return {"features": features}'))
    section = Section()
    section.rows.append(Row(
        "P5", f"nodes executed after changing 1 of {shape.partitions} partitions "
              f"({shape.partitions}×{len(shape.seeds)} fan-out, {shape.nodes} nodes)",
        str(headline.executed), f"minimum {partition_minimum}",
        headline.executed / partition_minimum, 1.0, exact=True,
    ))
    lines = ["| scenario | executed | theoretical minimum | jobs Snakemake scheduled (rest restored) | wall |",
             "|---|---|---|---|---|"]
    for name, outcome, minimum in table:
        flag = "" if outcome.executed == minimum else " **≠**"
        lines.append(f"| {name} | {outcome.executed}{flag} | {minimum} | {outcome.scheduled} | "
                     f"{format_seconds(outcome.seconds)} |")
    section.details.append(
        f"**P5** issue 4's scenarios, one after another on one project ({shape.partitions} partitions × "
        f"{len(shape.seeds)} seeds, {shape.nodes} nodes: load_data → partition → seeds → "
        f"{' → '.join(PER_BRANCH)} → aggregate), `snakemake --cores 2` after each change:\n\n" + "\n".join(lines))
    return section
