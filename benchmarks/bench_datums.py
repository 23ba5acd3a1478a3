"""D1–D4: growing data (issue #19): new data costs only its own work.

D1 appends 1% rows to a 1M-row table cut into 100 chunks (``rows_per_partition: 10000``) and counts
the user functions that execute (``calls.log``), against the cold run and against the same project
with ``size: 100``, where every slice shifts. D2 adds one file to 1,000 (``files:``), against the
cold run. D3 times what ``expops-smk status`` spends predicting that split's next run (reading
its input, cutting it and digesting every chunk, nothing written) against the split job's own
run (read, cut, write 100 partitions), interleaved. D4 times a no-op ``snakemake`` of a project
with 200 chunks and a chart probing every ``train`` node, against the same project with
``size: 200`` (interleaved, medians): what listing the nodes below a growing split once it ran
(``checkpoints.get()``, the chart's input function) costs. ``--quick`` uses 20,000 rows / 20
chunks, 20 files and 20 chunks.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import yaml

from common import (EXPOPS_SMK, PYTHON, SNAKEMAKE, Row, Section, Settings, format_seconds, fresh_dir, interleave,
                    median, run_timed, spread)

PREDICT = """
import json, time
import pandas, pyarrow.parquet  # imported before timing, as in the split job (forked from a warm interpreter)
from expops_smk.config.project import load_project
from expops_smk.results.partition_status import growing_split_lines
from expops_smk.results.status import project_status

states = {item.node: item.state for item in project_status(".")}
started = time.perf_counter()
lines = growing_split_lines(load_project("."), states)
print(json.dumps({"seconds": time.perf_counter() - started, "lines": lines}))
"""
"""Times the prediction alone (the status of the other nodes is what status costs without it)."""

SCRIPT = '''
    import pandas as pd


    def called(what):
        with open("calls.log", "a", encoding="utf-8") as handle:
            handle.write(what + "\\n")


    def load():
        called("load")
        return {"data": pd.read_csv("data/rows.csv")}


    def train(data):
        called("train")
        return {"score": float(data["x"].sum())}


    def embed(path):
        called("embed")
        with open(path, "rb") as handle:
            return {"score": float(len(handle.read()))}


    def summary(score):
        called("summary")
        return {"total": sum(score.values())}
'''


@dataclass(frozen=True)
class Outcome:
    calls: int
    seconds: float


CHART = '''
    def trains(metrics):
        with open("../../../calls.log", "a", encoding="utf-8") as handle:
            handle.write("chart\\n")
'''


def write_project(root: Path, split: dict[str, object], files: int = 0, chart: bool = False) -> Path:
    first = "images" if files else "load"
    processes: list[dict[str, object]] = [] if files else [{"name": "load"}]
    processes += [{"name": "split" if not files else "images", "data_parallelism": split},
                  {"name": "embed" if files else "train"},
                  {"name": "summary", "data_aggregation": True}]
    chain = [p["name"] for p in processes]
    config: dict[str, object] = {"scripts": {"model": "src/model.py"}, "experiment": {"pipeline": {
        "process_adjlist": "\n".join(f"{a} {b}" for a, b in zip(chain, chain[1:])) + "\n",
        "processes": processes}}}
    if first == "load":
        config["data"] = {"path": "data/rows.csv"}
    if chart:
        config["scripts"]["reporting"] = "src/charts.py"  # type: ignore[index]
        processes.append({"name": "trains", "code": "reporting.trains", "probe_paths": {"all": "//*[@name='train']"}})
        (root / "src").mkdir(parents=True, exist_ok=True)
        (root / "src" / "charts.py").write_text(textwrap.dedent(CHART))
    for folder in ("configs", "src", "data/images"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "configs" / "project_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "src" / "model.py").write_text(textwrap.dedent(SCRIPT))
    for index in range(files):
        (root / "data" / "images" / f"img{index:05d}.bin").write_bytes(bytes([index % 251]) * (100 + index))
    return root


def write_rows(root: Path, first: int, count: int, mode: str = "w") -> None:
    with open(root / "data" / "rows.csv", mode, encoding="utf-8") as handle:
        if mode == "w":
            handle.write("id,x\n")
        handle.writelines(f"{i},{i % 97}\n" for i in range(first, first + count))


def calls(root: Path) -> int:
    try:
        return len((root / "calls.log").read_text(encoding="utf-8").splitlines())
    except FileNotFoundError:
        return 0


def snakemake(root: Path) -> Outcome:
    before = calls(root)
    result = run_timed([SNAKEMAKE, "--cores", "2"], root)
    return Outcome(calls(root) - before, result.seconds)


def rows_scenario(root: Path, split: dict[str, object], total: int) -> tuple[Outcome, Outcome]:
    write_project(root, split)
    write_rows(root, 0, total)
    run_timed([EXPOPS_SMK, "generate", "."], root)
    cold = snakemake(root)
    write_rows(root, total, total // 100, "a")
    return cold, snakemake(root)


def prediction_seconds(root: Path) -> float:
    output = run_timed([PYTHON, "-c", PREDICT], root).stdout
    result = json.loads(output.splitlines()[-1])
    assert all("next run:" in line for line in result["lines"]), result["lines"]
    return float(result["seconds"])


def split_seconds(root: Path) -> float:
    """The split job's own time (the _run.json of its partitions), forced to execute: what the prediction
    stands in for."""
    run_timed([SNAKEMAKE, "--cores", "2", "--forcerun", "split"], root)
    return float(json.loads((root / "results" / "split" / "p1" / "_run.json").read_text())["seconds"])


def run(settings: Settings, selected: set[str]) -> Section:
    total, chunks, files = (20_000, 20, 20) if settings.quick else (1_000_000, 100, 1_000)
    section = Section()
    goal = None if settings.quick else 0.03  # the quick sizes are too small for work proportional to new data
    if "D1" in selected:
        growing_cold, growing = rows_scenario(fresh_dir(settings.workdir / "datums-rows"),
                                              {"rows_per_partition": total // chunks}, total)
        sized_cold, sized = rows_scenario(fresh_dir(settings.workdir / "datums-size"), {"size": chunks}, total)
        section.rows.append(Row("D1", f"user functions executed after appending 1% rows to {total:,} rows in "
                                f"{chunks} chunks (rows_per_partition), vs the cold run",
                                str(growing.calls), f"{growing_cold.calls} cold", growing.calls / growing_cold.calls, goal))
        section.rows.append(Row("D1", f"wall time of that run, vs size: {chunks} on the same data "
                                f"({sized.calls} of {sized_cold.calls} functions execute there)",
                                format_seconds(growing.seconds), format_seconds(sized.seconds),
                                growing.seconds / sized.seconds))
        section.details.append(
            f"**D1** load → split → train (per chunk) → summary; cold: {growing_cold.calls} functions in "
            f"{format_seconds(growing_cold.seconds)} (rows_per_partition) and {sized_cold.calls} in "
            f"{format_seconds(sized_cold.seconds)} (size: {chunks}); after appending {total // 100:,} rows: "
            f"{growing.calls} in {format_seconds(growing.seconds)} and {sized.calls} in {format_seconds(sized.seconds)}.")
    if "D3" in selected:
        root = write_project(fresh_dir(settings.workdir / "datums-status"), {"rows_per_partition": total // chunks})
        write_rows(root, 0, total)
        run_timed([EXPOPS_SMK, "generate", "."], root)
        snakemake(root)
        samples = interleave({"predict": lambda: prediction_seconds(root), "split": lambda: split_seconds(root)},
                             settings.runs(3))
        section.rows.append(Row("D3", f"status: predicting a rows_per_partition split's next run ({total:,} rows, "
                                f"{chunks} chunks), vs the split job's own run", format_seconds(median(samples["predict"])),
                                format_seconds(median(samples["split"])),
                                median(samples["predict"]) / median(samples["split"])))
        section.details.append(f"**D3** prediction {spread(samples['predict'])}; split job {spread(samples['split'])} "
                               "(its _run.json seconds, forced with --forcerun split).")
    if "D2" in selected:
        root = write_project(fresh_dir(settings.workdir / "datums-files"), {"files": "data/images", "data_name": "path"},
                             files)
        run_timed([EXPOPS_SMK, "generate", "."], root)
        cold = snakemake(root)
        (root / "data" / "images" / "new.bin").write_bytes(b"new" * 50)
        added = snakemake(root)
        section.rows.append(Row("D2", f"user functions executed after adding 1 file to {files:,} (files:), vs cold",
                                str(added.calls), f"{cold.calls} cold", added.calls / cold.calls, goal))
        section.rows.append(Row("D2", "wall time of that run, vs the cold run", format_seconds(added.seconds),
                                format_seconds(cold.seconds), added.seconds / cold.seconds))
        section.details.append(f"**D2** images (files:) → embed (per file) → summary; cold: {cold.calls} functions in "
                               f"{format_seconds(cold.seconds)}; one file added: {added.calls} in "
                               f"{format_seconds(added.seconds)}.")
    if "D4" in selected:
        section.rows.append(no_op_row(settings, 20 if settings.quick else 200))
    return section


def no_op_row(settings: Settings, chunks: int) -> Row:
    """D4: a no-op run with a chart over every chunk's node, growing split vs ``size:``."""
    roots = []
    for name, split in (("growing", {"rows_per_partition": 100}), ("size", {"size": chunks})):
        root = write_project(fresh_dir(settings.workdir / f"datums-noop-{name}"), split, chart=True)
        write_rows(root, 0, 100 * chunks)
        run_timed([EXPOPS_SMK, "generate", "."], root)
        snakemake(root)
        roots.append(root)
    times: dict[Path, list[float]] = {root: [] for root in roots}
    for _ in range(settings.runs(minimum=5)):
        for root in roots:  # interleaved: ours, baseline, ours, baseline, ...
            outcome = snakemake(root)
            assert outcome.calls == 0, f"{root.name}: a no-op run executed {outcome.calls} functions"
            times[root].append(outcome.seconds)
    growing, sized = (median(times[root]) for root in roots)
    return Row("D4", f"no-op snakemake, {chunks} chunks (rows_per_partition) and a chart over every chunk's node, "
               f"vs size: {chunks} (medians; growing {spread(times[roots[0]])}, size {spread(times[roots[1]])})",
               format_seconds(growing), format_seconds(sized), growing / sized)
