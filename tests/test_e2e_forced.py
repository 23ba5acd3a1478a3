"""End to end: forced jobs execute user code; unforced jobs keep early cutoff (issue 13, part B).

Snakemake's ``--forcerun``/``-R``, ``--forceall``/``-F`` and ``expops-smk run --no-cache`` must run
the user's functions of exactly the forced jobs, not restore them from the run cache; jobs that
Snakemake schedules only because they are downstream of a forced job still restore when their
inputs come back identical. Counts are ``calls.log`` lines (user code) and ``_run.json`` outcomes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e import EXPOPS_SMK, Project
from projects import write_project
from test_e2e_rerun import ALL, CONFIG, MAIN, RAW_CSV

pytestmark = pytest.mark.e2e

TRAIN = {f"train P{p} S{s}" for p in (1, 2, 3) for s in (1, 2)}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(write_project(tmp_path_factory.mktemp("forced") / "project", CONFIG, MAIN,
                                    script_path="src/main.py", files={"data/raw.csv": RAW_CSV}))
    first = project.run()
    assert first.executed == ALL and len(first.calls) == 14
    return project


@pytest.fixture
def project(baseline: Project, tmp_path: Path) -> Project:
    return baseline.copy(tmp_path / "project")


def test_forcerun_rule_executes_exactly_that_rule_and_downstream_restores(project: Project) -> None:
    before = project.digests()
    run = project.snakemake("--forcerun", "train")
    assert sorted(run.calls) == sorted(f"train {i} {s}" for i in (1, 4, 7) for s in (1, 2)), run.describe()
    assert run.executed == TRAIN
    assert run.restored == {"agg"}  # scheduled below the forced rule, identical inputs: restored
    assert project.digests() == before
    assert "run cache bypassed (snakemake forced rule train)" in (project.root / "logs/train/p1/s1.log").read_text()
    assert project.snakemake().nothing_to_do


def test_forcerun_one_file_executes_only_that_job(project: Project) -> None:
    run = project.snakemake("-R", "results/train/p2/s1/_outputs.json")
    assert run.calls == ["train 4 1"], run.describe()
    assert run.executed == {"train P2 S1"} and run.restored == {"agg"}


def test_forceall_executes_every_node(project: Project) -> None:
    run = project.snakemake("-F")
    assert run.executed == ALL and len(run.calls) == 14, run.describe()


def test_a_forced_run_still_records_its_run_for_later_restores(project: Project) -> None:
    project.snakemake("-R", "prep")
    # Not forced now: Snakemake re-runs load (touched through -R upstream) and the split, which
    # restores; its partitions come back unchanged, so the jobs below it are never started.
    run = project.snakemake("-R", "load", "--cores", "2")
    assert run.calls == ["load"], run.describe()
    assert run.restored == {"split"}


def test_no_cache_executes_every_scheduled_job(project: Project) -> None:
    cached = project.copy(project.root.parent / "cached")
    normal = cached.snakemake("-R", "load")
    assert normal.calls == ["load"] and normal.restored == {"split"}, normal.describe()
    run = project.command([EXPOPS_SMK, "run", ".", "--cores", "2", "--no-cache", "-R", "load"])
    # The split executes instead of restoring; its partitions come back unchanged, so nothing below starts.
    assert run.executed == {"load", "split"} and run.calls == ["load"], run.describe()
    assert project.digests() == cached.digests()


def test_no_cache_on_an_up_to_date_project_schedules_nothing(project: Project) -> None:
    run = project.command([EXPOPS_SMK, "run", ".", "--cores", "2", "--no-cache"])
    assert run.nothing_to_do and run.calls == [], run.describe()


def test_dry_run_with_forcerun_runs_nothing(project: Project) -> None:
    run = project.snakemake("-n", "--forcerun", "train")
    assert run.calls == [] and run.outcomes == {}
    assert "train" in run.output


def test_benchmark_runs_measure_executions_not_restores(tmp_path: Path) -> None:
    config = CONFIG.replace("data: {path: data/raw.csv}\n", "data: {path: data/raw.csv}\nexecution: {benchmark: true}\n")
    project = Project(write_project(tmp_path / "project", config, MAIN, script_path="src/main.py",
                                    files={"data/raw.csv": RAW_CSV}))
    assert project.run().executed == ALL
    run = project.snakemake("-R", "load")  # without benchmark: load executes, the split restores
    assert run.executed == {"load", "split"} and run.calls == ["load"], run.describe()
    assert (project.root / "benchmarks/load.tsv").is_file()
