"""End to end: content hashes, not modification times, decide which user code runs again.

One baseline project (3 partitions x 2 seeds) is run once; every scenario starts from a ``cp -a``
copy of it, changes one thing and counts executions: ``calls.log`` lines (user code) and the
``_run.json`` outcomes of the nodes Snakemake scheduled ("executed" or "restored").
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from e2e import CALLS_HELPER, Project, Run, assert_nothing_ran
from expops_smk import __version__
from projects import write_project

pytestmark = pytest.mark.e2e

RAW_CSV = "id,x\n" + "".join(f"{i},{i}.5\n" for i in range(1, 10))  # partitions: ids 1-3, 4-6, 7-9

CONFIG = """\
scripts: {main: src/main.py}
data: {path: data/raw.csv}
experiment:
  parameters:
    offset: 0
    unused: 1
  pipeline:
    process_adjlist: |
      load split
      split seeds
      seeds prep
      prep train
      train agg
    processes:
      - name: load
      - {name: split, data_parallelism: {size: 3}}
      - {name: seeds, seed_parallelism: {seeds: [1, 2]}}
      - name: prep
      - {name: train, parameters: {lr: 0.5}}
      - {name: agg, data_aggregation: true, seed_aggregation: true}
"""

MAIN = CALLS_HELPER + '''
import csv


def load():
    called("load")
    with open("data/raw.csv", newline="") as handle:
        return {"data": [(int(row["id"]), float(row["x"])) for row in csv.DictReader(handle)]}


def _clean(x):
    return round(x, 6)


def prep(data, offset, random_seed):
    called(f"prep {data[0][0]} {random_seed}")
    return {"data": [(i, _clean(x) + offset) for i, x in data]}


def _score(data, lr):
    return sum(x for _, x in data) * lr


def train(data, lr, random_seed):
    called(f"train {data[0][0]} {random_seed}")
    return {"score": _score(data, lr) + random_seed}


def agg(score):
    called("agg")
    return {"total": sum(value for branch in score.values() for value in branch.values())}
'''

ALL = {"load", "split", "agg", *(f"seeds P{p}" for p in (1, 2, 3)),
       *(f"{process} P{p} S{s}" for process in ("prep", "train") for p in (1, 2, 3) for s in (1, 2))}


def branch(process: str, partition: int) -> set[str]:
    return {f"{process} P{partition} S{s}" for s in (1, 2)}


def train_calls(first_ids: tuple[int, ...] = (1, 4, 7)) -> list[str]:
    return [f"train {i} {s}" for i in first_ids for s in (1, 2)]


def job_total(run: Run) -> int:
    match = re.search(r"^total\s+(\d+)$", run.output, flags=re.MULTILINE)
    assert match, run.output
    return int(match.group(1))


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Project:
    # A space in the path: every command the workflow runs must quote or avoid absolute paths.
    project = Project(write_project(tmp_path_factory.mktemp("baseline") / "my project", CONFIG, MAIN,
                                    script_path="src/main.py", files={"data/raw.csv": RAW_CSV}))
    first = project.run()
    assert first.executed == ALL and len(first.calls) == 1 + 6 + 6 + 1
    return project


@pytest.fixture
def project(baseline: Project, tmp_path: Path) -> Project:
    """A ``cp -a`` copy of the baseline (``test_copied_project_runs_nothing``: nothing to do there)."""
    return baseline.copy(tmp_path / "project")


def total(project: Project) -> float:
    return project.value("agg", "total")


def test_copied_project_runs_nothing(project: Project) -> None:
    assert_nothing_ran(project.snakemake())


def test_touching_every_file_runs_nothing(project: Project) -> None:
    assert project.touch_all() > 60  # Snakefile, rules, scripts, config, data, results, store
    assert_nothing_ran(project.dry_run())
    assert_nothing_ran(project.snakemake())


def test_copy_with_new_mtimes_runs_nothing(baseline: Project, tmp_path: Path) -> None:
    copy = baseline.copy(tmp_path / "fresh", keep_times=False)
    assert_nothing_ran(copy.snakemake())
    assert total(copy) == total(baseline)


def test_changing_rows_of_one_partition_runs_only_that_partition(project: Project) -> None:
    before = total(project)
    project.edit("data/raw.csv", "5,5.5\n", "5,50.5\n")  # partition 2 (ids 4-6)
    dry = project.dry_run()
    # Snakemake cannot know before running that partitions 1 and 3 come out identical: the dry run
    # lists every job below the data (each says why), an upper bound of what runs.
    assert job_total(dry) == len(ALL) + 1 and "data.xxh3" in dry.output
    run = project.snakemake()
    # The split is a checkpoint: once it ran, Snakemake re-checks the jobs below it, and those of
    # partitions 1 and 3 (same manifests) are not even started: no job restores anything.
    assert run.executed == {"load", "split", "seeds P2", "agg", *branch("prep", 2), *branch("train", 2)}
    assert run.restored == set()
    assert sorted(run.calls) == sorted(["load", "prep 4 1", "prep 4 2", "train 4 1", "train 4 2", "agg"])
    assert total(project) == before + 2 * 45 * 0.5


def test_changing_one_parameter_runs_only_that_process(project: Project) -> None:
    project.edit("configs/project_config.yaml", "parameters: {lr: 0.5}", "parameters: {lr: 0.25}")
    dry = project.dry_run()
    assert job_total(dry) == 6 + 1 + 1 and "Code has changed" in dry.output
    run = project.snakemake()
    assert run.executed == {"agg", *(f"train P{p} S{s}" for p in (1, 2, 3) for s in (1, 2))}
    assert sorted(run.calls) == sorted(train_calls() + ["agg"])


def test_parameter_no_function_takes_runs_nothing(project: Project) -> None:
    project.edit("configs/project_config.yaml", "unused: 1", "unused: 2")
    assert_nothing_ran(project.snakemake())


def test_global_parameter_reruns_only_processes_that_take_it(project: Project) -> None:
    project.edit("configs/project_config.yaml", "offset: 0", "offset: 1")
    run = project.snakemake()
    assert run.executed == ALL - {"load", "split", "seeds P1", "seeds P2", "seeds P3"}
    assert len([call for call in run.calls if call.startswith("prep")]) == 6


def test_editing_a_helper_runs_only_its_process(project: Project) -> None:
    project.edit("src/main.py", "return sum(x for _, x in data) * lr", "return sum(x for _, x in data) * lr * 2")
    run = project.snakemake()
    assert run.executed == {"agg", *(f"train P{p} S{s}" for p in (1, 2, 3) for s in (1, 2))}
    assert sorted(run.calls) == sorted(train_calls() + ["agg"])


def test_upstream_rerun_with_identical_output_stops_there(project: Project) -> None:
    before = total(project)
    project.edit("src/main.py", "return round(x, 6)", "return round(x * 1.0, 6)")  # new code, same values
    run = project.snakemake()
    assert run.executed == {f"prep P{p} S{s}" for p in (1, 2, 3) for s in (1, 2)}
    assert run.restored == {"agg", *(f"train P{p} S{s}" for p in (1, 2, 3) for s in (1, 2))}
    assert all(call.startswith("prep") for call in run.calls) and len(run.calls) == 6
    assert total(project) == before


def test_reverting_a_change_restores_earlier_results(project: Project) -> None:
    before = total(project)
    config = "configs/project_config.yaml"
    project.edit(config, "parameters: {lr: 0.5}", "parameters: {lr: 0.25}")
    project.edit("data/raw.csv", "8,8.5\n", "8,80.5\n")
    changed = project.snakemake()
    assert len(changed.calls) == 1 + 2 + 6 + 1  # load, prep P3 x2, train x6, agg
    project.edit(config, "parameters: {lr: 0.25}", "parameters: {lr: 0.5}")
    project.edit("data/raw.csv", "8,80.5\n", "8,8.5\n")
    reverted = project.snakemake()
    assert reverted.calls == []
    # The data change schedules the chain of partition 3 (the split checkpoint drops the others'
    # seeds and prep), the parameter change every train: each of them restores, none executes.
    assert reverted.restored == {"load", "split", "seeds P3", *branch("prep", 3), "agg",
                                 *(f"train P{p} S{s}" for p in (1, 2, 3) for s in (1, 2))}
    assert reverted.executed == set()
    assert total(project) == before


# -- a 20 MB artifact --------------------------------------------------------------------------

BIG_CONFIG = """\
scripts: {main: src/main.py}
data: {path: data/big.bin}
experiment:
  pipeline:
    process_adjlist: |
      load total
    processes:
      - name: load
      - name: total
"""

BIG_MAIN = CALLS_HELPER + '''
import numpy as np


def load():
    called("load")
    return {"big": np.fromfile("data/big.bin", dtype=np.uint8)}


def total(big):
    called("total")
    return {"sum": int(big.sum(dtype=np.int64))}
'''

BIG_BYTES = 20_000_000


def test_large_artifact_touched_versus_changed(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 255, BIG_BYTES, dtype=np.uint8)
    root = write_project(tmp_path / "big", BIG_CONFIG, BIG_MAIN, script_path="src/main.py")
    (root / "data").mkdir()
    data.tofile(root / "data/big.bin")
    project = Project(root)
    first = project.run()
    assert sorted(first.calls) == ["load", "total"]
    artifact = project.node_dir("load") / "big.pkl"
    assert artifact.stat().st_size > BIG_BYTES

    project.touch_all()  # the 20 MB data file and the 20 MB artifact included
    assert_nothing_ran(project.snakemake())

    data[123] += 1
    data.tofile(root / "data/big.bin")
    changed = project.snakemake()
    assert sorted(changed.calls) == ["load", "total"]
    assert project.value("total", "sum") == int(data.sum(dtype=np.int64))


def test_a_workflow_generated_by_version_0_2_upgrades_itself_without_running_user_code(project: Project) -> None:
    """0.2 Snakefiles import ``expops_smk.workflow`` and its rules start ``-m expops_smk.launch``:
    after an upgrade, plain ``snakemake`` regenerates them and restores every node from the run cache."""
    snakefile = project.root / "workflow/Snakefile"
    rules = project.root / "workflow/rules/processes.smk"
    stamp = project.root / ".expops/stamp.json"
    snakefile.write_text(snakefile.read_text()  # the 0.2 import line, and no onstart handler yet
                         .replace("from expops_smk.codegen.prepare import create_environments, export_forced, outer, "
                                  "prepare, seal_reads", "from expops_smk.workflow import outer, prepare")
                         .replace("onstart:\n    export_forced(workflow)\n    create_environments(workflow.basedir)\n", "")
                         .replace("onsuccess:\n    seal_reads(workflow.basedir)\n", "")
                         .replace("onerror:\n    seal_reads(workflow.basedir)\n", ""))
    rules.write_text(rules.read_text().replace("-S .expops/bin/job.py runtime", "-m expops_smk.launch runtime"))
    stamp.write_text(stamp.read_text().replace(f'"version": "{__version__}"', '"version": "0.2.0"'))
    (project.root / ".expops/generated.json").unlink()  # 0.2 kept no digests of what it generated
    upgraded = project.snakemake()
    assert "from expops_smk.codegen.prepare import create_environments, export_forced, outer, prepare, seal_reads" in \
        snakefile.read_text()
    assert "-m expops_smk.launch runtime" not in rules.read_text()
    assert upgraded.calls == [] and upgraded.executed == set(), upgraded.describe()
    assert_nothing_ran(project.snakemake())
