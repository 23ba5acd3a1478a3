"""Reliability (issue 8): break things on purpose and check that finished work and results survive.

Scenarios: kill -9 of Snakemake or of single jobs at random moments; one failing partition; two
runs at once and concurrent writers of the store; bad data at run time; hand-edited artifacts,
escaping names, YAML tags and pickles; a full disk and unwritable result folders. Malformed configs
are fuzzed in ``test_fuzz_config.py``.

Every test runs real ``snakemake`` on real projects (``reliability_projects``). The crash loop runs
``EXPOPS_CRASH_COUNT`` kills (default 5; ``EXPOPS_CRASH_COUNT=20`` for the full loop) from the seed
``EXPOPS_CRASH_SEED`` (random by default, printed on failure so a failing sequence can be replayed).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from e2e import Project, Run, _env
from reliability_projects import (
    CRASH_NODE_COUNT,
    PARTITION_BUG,
    SEEDS,
    evil_pickle,
    file_states,
    finished_records,
    integrity_problems,
    leftover_temps,
    manifests,
    kill_run,
    mount,
    round_folder,
    round_values,
    runtime_jobs,
    stale_locks,
    start_snakemake,
    store_writer,
    unmount,
    used_kib,
    verify_cli,
    wait_for,
    write_bad_data_project,
    write_crash_project,
    write_partition_project,
)

import expops_smk
from expops_smk.store.artifact_store import Store
from expops_smk.store.artifacts import TamperedArtifactError
from expops_smk.store.hashing import hash_file
from expops_smk.store.maintenance import verify_artifacts

pytestmark = pytest.mark.e2e

CRASH_COUNT = int(os.environ.get("EXPOPS_CRASH_COUNT", "5"))
CRASH_SEED = int(os.environ.get("EXPOPS_CRASH_SEED", str(random.randrange(2**32))))
CHAIN_LENGTH = 3
"""Kills in a row before a recovery run is allowed to finish (the recovery itself gets killed too)."""
JOB_KILLS = int(os.environ.get("EXPOPS_JOB_KILLS", "3"))


@dataclass(frozen=True)
class Reference:
    """A clean, uninterrupted run of the crash project: what every recovered run must equal."""

    project: Project
    digests: dict[str, str]
    manifests: set[str]

    def copy(self, destination: Path) -> Project:
        """``cp -a`` of the finished project (hard links between results and store kept)."""
        return self.project.copy(destination)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    project = write_crash_project(tmp_path_factory.mktemp("reference") / "project")
    run = project.snakemake()
    assert len(run.executed) == CRASH_NODE_COUNT and run.restored == set()
    assert verify_cli(project.root).returncode == 0
    return Reference(project, project.digests(), manifests(project.root))


def assert_complete_and_equal(project: Project, reference: Reference, context: str = "") -> None:
    """Every node finished, nothing half-written or left over, and the results equal a clean run's."""
    verify = verify_cli(project.root)
    assert verify.returncode == 0, f"{context}\n{verify.stdout}{verify.stderr}"
    assert integrity_problems(project.root) == [], context
    assert leftover_temps(project.root) == [], context
    assert manifests(project.root) == reference.manifests, context
    assert project.digests() == reference.digests, context


def our_lines(run: Run, label: str) -> list[str]:
    """expops-smk's own error messages about one node (Snakemake's report around them is not ours).

    Found by pattern rather than by line: jobs that fail at the same instant share Snakemake's
    stderr, and the runtime currently writes a message and its newline separately, so two messages
    can end up on one line. ``test_runtime_error_message_is_a_single_write`` asserts that part.
    """
    pattern = re.escape(f"expops-smk: node '{label}': ") + r".*?\((?:log: |traceback in )[^)]*\)"
    return re.findall(pattern, run.stderr)


# -- 1. crash anywhere -------------------------------------------------------------------------------

def crash_once(project: Project, rng: random.Random, output_path: Path) -> tuple[bool, str]:
    """Start ``snakemake --rerun-incomplete`` and kill -9 its whole tree at a random moment.

    A quarter of the kills land in Snakemake's start-up (parsing, DAG, locking), the rest while jobs
    run. Returns (killed, description); a run that finishes before its moment must have succeeded.
    """
    with open(output_path, "w", encoding="utf-8") as output:
        process = start_snakemake(project, "--rerun-incomplete", output=output)
        try:
            if rng.random() < 0.25:
                phase, moment = "start-up", rng.uniform(0.0, 3.0)
            else:
                wait_for(lambda: process.poll() is not None or bool(runtime_jobs(process.pid)), 60, poll=0.05)
                phase, moment = "jobs", rng.uniform(0.0, 6.0)
            wait_for(lambda: process.poll() is not None, moment, poll=0.05)
            if process.poll() is not None:
                assert process.returncode == 0, output_path.read_text(encoding="utf-8")[-4000:]
                return False, f"finished before the kill ({phase} +{moment:.2f}s)"
            running = [job.cmdline.split(" --log ")[-1].strip() for job in runtime_jobs(process.pid)]
            kill_run(process, project.root)
            return True, f"killed in {phase} +{moment:.2f}s while running {running}"
        finally:
            if process.poll() is None:
                kill_run(process, project.root)


def reset(project: Project, keep_store: bool) -> None:
    """Remove all results; with ``keep_store`` the next run restores every node from the run cache."""
    shutil.rmtree(project.root / "results")
    if not keep_store:
        for name in ("objects", "runs", "tmp"):
            shutil.rmtree(project.root / ".expops" / name, ignore_errors=True)


def test_kill_snakemake_at_random_moments_then_rerun_incomplete(reference: Reference, tmp_path: Path) -> None:
    """kill -9 of the whole run, CRASH_COUNT times; recovery is `snakemake --unlock` (the lock of a
    killed run stays behind) and then `snakemake --rerun-incomplete`, which must complete and give a
    clean run's results. Chains alternate between executing user code and restoring from the cache."""
    rng = random.Random(CRASH_SEED)
    project = write_crash_project(tmp_path / "project")
    history: list[str] = []
    kills = chains = 0
    lock_refusal_seen = False
    while kills < CRASH_COUNT:
        if chains:
            reset(project, keep_store=chains % 2 == 1)
        chains += 1
        for _ in range(min(CHAIN_LENGTH, CRASH_COUNT - kills)):
            killed, description = crash_once(project, rng, tmp_path / f"run{len(history)}.out")
            history.append(f"chain {chains}: {description}")
            context = f"EXPOPS_CRASH_SEED={CRASH_SEED}\n" + "\n".join(history)
            if not killed:
                break
            kills += 1
            assert integrity_problems(project.root) == [], context
            if stale_locks(project.root) and not lock_refusal_seen:
                refused = project.snakemake("--rerun-incomplete", check=False)
                assert refused.returncode != 0 and "LockException" in refused.output, context
                assert "--unlock" in refused.output and refused.calls == [] and refused.outcomes == {}, context
                lock_refusal_seen = True
            project.snakemake("--unlock")
        finished = finished_records(project.root)
        recovery = project.snakemake("--rerun-incomplete")
        context = f"EXPOPS_CRASH_SEED={CRASH_SEED}\n" + "\n".join(history)
        assert_complete_and_equal(project, reference, context)
        rerun = {path for path, stamp in finished.items() if not path.exists() or
                 (path.stat().st_ino, path.stat().st_mtime_ns) != stamp}
        assert rerun == set(), f"{context}\nfinished nodes ran again: {sorted(map(str, rerun))}\n{recovery.describe()}"
    assert kills == CRASH_COUNT
    print(f"EXPOPS_CRASH_SEED={CRASH_SEED}", *history, sep="\n")  # shown by pytest -rP


def test_kill_job_processes_mid_run(reference: Reference, tmp_path: Path) -> None:
    """kill -9 of single jobs (`python -m expops_smk.runtime`) at random points of their life: the
    run reports each failed job with its log, the other branches go on (--keep-going), and a plain
    `snakemake --rerun-incomplete` (no --unlock: Snakemake itself survived) completes the rest."""
    rng = random.Random(CRASH_SEED + 1)
    project = write_crash_project(tmp_path / "project")
    output_path = tmp_path / "run.out"
    killed: list[str] = []
    with open(output_path, "w", encoding="utf-8") as output:
        process = start_snakemake(project, "--keep-going", output=output)
        try:
            targeted: set[int] = set()
            while len(killed) < JOB_KILLS and process.poll() is None:
                fresh: list[Any] = []

                def new_job() -> bool:
                    fresh[:] = [job for job in runtime_jobs(process.pid) if job.pid not in targeted]
                    return bool(fresh) or process.poll() is not None

                wait_for(new_job, 60, poll=0.02)
                if not fresh:
                    break
                job = rng.choice(fresh)
                targeted.add(job.pid)
                time.sleep(rng.uniform(0.0, 0.6))
                if job.alive():
                    job.kill()
                    killed.append(job.cmdline.split(" --log ")[-1].strip())
            process.wait(timeout=300)
        finally:
            if process.poll() is None:
                kill_run(process, project.root)
    text = output_path.read_text(encoding="utf-8")
    context = f"EXPOPS_CRASH_SEED={CRASH_SEED}; killed {killed}\n{text[-3000:]}"
    assert killed, context
    assert process.returncode != 0, context
    # Snakemake's "Error in rule" block names the job's log. A job that the signal reached while it
    # was already exiting counts as finished instead: then its node has its manifest.
    reported = [log for log in killed if f"log: {log}" in text]
    assert reported, context
    for log in set(killed) - set(reported):
        folder = project.root / "results" / log.removeprefix("logs/").removesuffix(".log")
        assert any(folder.rglob("_outputs.json")), context
    assert integrity_problems(project.root) == [], context
    assert stale_locks(project.root) == [], context
    finished = finished_records(project.root)
    assert len(finished) < len(reference.manifests), context
    recovery = project.snakemake("--rerun-incomplete")
    assert_complete_and_equal(project, reference, context)
    rewritten = {path for path, stamp in finished.items() if (path.stat().st_ino, path.stat().st_mtime_ns) != stamp}
    assert rewritten == set(), f"{context}\n{recovery.describe()}"


# -- 2. one failing partition ----------------------------------------------------------------------

@dataclass
class FailingPartition:
    project: Project
    broken: Run  # snakemake --keep-going with the bug
    after_failure: set[str]  # result folders holding a manifest after that run
    problems_after_failure: list[str]
    logs: dict[str, str]  # the failed nodes' logs (the fixed run rewrites them)
    fixed: Run  # snakemake after deleting the bug


@pytest.fixture(scope="module")
def failing_partition(tmp_path_factory: pytest.TempPathFactory) -> FailingPartition:
    project = write_partition_project(tmp_path_factory.mktemp("partitions") / "project")
    broken = project.snakemake("--keep-going", check=False)
    after_failure = manifests(project.root)
    problems = integrity_problems(project.root)
    logs = {path.relative_to(project.root).as_posix(): path.read_text(encoding="utf-8")
            for path in (project.root / "logs" / "train" / "p2").glob("*.log")}
    project.edit("src/main.py", PARTITION_BUG, "")
    return FailingPartition(project, broken, after_failure, problems, logs, project.snakemake())


PARTITION_SEEDS = (41, 42)


def partition_labels(partition: int, processes: tuple[str, ...] = ("train", "evaluate")) -> set[str]:
    return {f"{process} P{partition} S{seed}" for process in processes for seed in PARTITION_SEEDS}


def test_failing_partition_lets_every_other_partition_finish(failing_partition: FailingPartition) -> None:
    broken = failing_partition.broken
    assert broken.returncode != 0
    assert broken.executed == ({"load", "seeds P1", "seeds P2", "seeds P3", "per_partition P1", "per_partition P3"}
                               | partition_labels(1) | partition_labels(3))
    finished = {f"results/{process}/p{p}/s{seed}" for process in ("train", "evaluate")
                for p in (1, 3) for seed in PARTITION_SEEDS}
    finished |= {f"results/{process}/p{p}" for process in ("load", "seeds") for p in (1, 2, 3)}
    finished |= {"results/per_partition/p1", "results/per_partition/p3"}
    assert failing_partition.after_failure == finished
    assert failing_partition.problems_after_failure == []


@pytest.mark.parametrize("seed", PARTITION_SEEDS)
def test_failing_partition_error_names_node_and_log_with_traceback(failing_partition: FailingPartition,
                                                                   seed: int) -> None:
    log = f"logs/train/p2/s{seed}.log"
    assert our_lines(failing_partition.broken, f"train P2 S{seed}") == [
        f"expops-smk: node 'train P2 S{seed}': the process function raised ValueError: rows 4..7 of p2 are corrupt "
        f"(traceback in {log})"]
    text = failing_partition.logs[log]
    assert "Traceback (most recent call last)" in text
    assert "in check_rows" in text and 'raise ValueError(f"rows' in text


def test_after_the_fix_only_the_failed_chain_and_the_changed_process_execute(
        failing_partition: FailingPartition) -> None:
    """The fix edits train's code, so train must execute again in every partition (its code hash
    changed); below the partitions that had succeeded, train's outputs come out identical, so their
    evaluate/per_partition nodes are restored, not executed. User code runs for the failed chain
    and for train, nothing else."""
    fixed = failing_partition.fixed
    failed_chain = partition_labels(2) | {"per_partition P2", "final"}
    changed_process = {f"train P{p} S{s}" for p in (1, 3) for s in PARTITION_SEEDS}
    assert sorted(fixed.calls) == sorted(failed_chain | changed_process)
    assert fixed.executed == failed_chain | changed_process
    assert fixed.restored == partition_labels(1, ("evaluate",)) | partition_labels(3, ("evaluate",)) | {
        "per_partition P1", "per_partition P3"}
    assert verify_cli(failing_partition.project.root).returncode == 0


# -- 3. concurrency ----------------------------------------------------------------------------------

def test_two_runs_at_once_one_refuses_and_nothing_is_corrupted(reference: Reference, tmp_path: Path) -> None:
    project = reference.copy(tmp_path / "project")
    for process in ("per_partition", "final"):
        shutil.rmtree(project.root / "results" / process)
    shutil.rmtree(project.root / ".expops" / "runs")  # the remaining nodes execute their user code
    calls_before = len(project.calls())
    outputs = [tmp_path / f"run{i}.out" for i in range(2)]
    handles = [open(path, "w", encoding="utf-8") for path in outputs]
    runs: list[subprocess.Popen[str]] = []
    try:
        # The first run's nodes nap long enough that it still holds the lock when the second asks
        # for it (with fast jobs the first could finish before the second builds its DAG).
        runs.append(start_snakemake(project, output=handles[0], env={"CRASH_NAP_SECONDS": "2"}))
        assert wait_for(lambda: any((project.root / ".snakemake/locks").glob("*.lock")) or runs[0].poll() is not None, 120)
        assert runs[0].poll() is None, outputs[0].read_text(encoding="utf-8")
        runs.append(start_snakemake(project, output=handles[1]))
        codes = [run.wait(timeout=300) for run in runs]
    finally:
        for handle in handles:
            handle.close()
        for run in runs:
            if run.poll() is None:
                kill_run(run, project.root)
    texts = [path.read_text(encoding="utf-8") for path in outputs]
    assert sorted(codes) == [0, 1], texts
    loser = texts[codes.index(1)]
    assert "LockException" in loser and "Directory cannot be locked" in loser
    calls = project.calls()[calls_before:]
    assert len(calls) == len(set(calls)) == 3 + 1, calls  # every remaining node ran once, by the winner
    assert_complete_and_equal(project, reference)


def test_concurrent_store_writers_of_identical_content(tmp_path: Path) -> None:
    """Worker processes write the same values at the same instant, round after round, into one node
    folder (even rounds) or one folder each (odd rounds): one intact object per content, readable
    artifacts everywhere, no temp file left."""
    rounds, workers = 8, 2
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    queue = context.Queue()
    processes = [context.Process(target=store_writer, args=(str(tmp_path), worker, rounds, barrier, queue))
                 for worker in range(workers)]
    for process in processes:
        process.start()
    reports = [queue.get(timeout=300) for _ in range(workers * rounds)]
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0] * workers
    store = Store(tmp_path)
    by_round: dict[int, list[dict[str, Any]]] = {}
    for _, round_number, artifacts in reports:
        by_round.setdefault(round_number, []).append(artifacts)
    for round_number, written in by_round.items():
        assert all(artifacts == written[0] for artifacts in written)
        expected = round_values(round_number)
        for worker in range(workers):
            folder = round_folder(tmp_path, round_number, worker)
            for key, entry in store.read_manifest(folder).items():
                value = store.read_value(folder, entry)
                if key == "table":
                    assert value.equals(expected["table"])
                else:
                    assert value == expected[key]
    objects = [p for p in store.objects_dir.rglob("*") if p.is_file()]
    assert all(hash_file(p) == p.stem for p in objects)
    assert len(objects) == len({a["object"] for written in by_round.values() for a in written[0].values()})
    assert verify_artifacts(store, tmp_path / "results") == []
    assert list(store.tmp_dir.iterdir()) == []
    assert not [p for p in (tmp_path / "results").rglob(".*") if p.is_file()]


# -- 4. bad data at run time -------------------------------------------------------------------------

@pytest.mark.parametrize("label, message", [
    ("bad_split", "data_parallelism: size [2, 2] sums to 4 rows but the data has 10"),
    ("no_name", "data_name 'rows' is not among the values to split (available: data)"),
    ("not_dict S41", "function 'not_dict' returned list; it must return a dict"),
    ("not_dict S42", "function 'not_dict' returned list; it must return a dict"),
])
def test_bad_data_at_run_time_is_one_line_naming_the_node(bad_data: tuple[Project, Run, Path], label: str,
                                                          message: str) -> None:
    project, run, _ = bad_data
    process, _, seed = label.partition(" S")
    log = f"logs/{process}/s{seed}.log" if seed else f"logs/{process}.log"
    lines = our_lines(run, label)
    assert len(lines) == 1, run.stderr
    assert message in lines[0] and lines[0].endswith(f"(log: {log})")
    assert message in (project.root / log).read_text(encoding="utf-8")
    assert "Traceback" not in run.stderr


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Run, Path]:
    root = tmp_path_factory.mktemp("bad-data")
    marker = root / "UNPICKLED"
    project = write_bad_data_project(root / "project", marker)
    return project, project.snakemake("--keep-going", check=False), marker


def test_the_raw_data_file_is_hashed_never_unpickled(bad_data: tuple[Project, Run, Path]) -> None:
    """data.path names a pickle that would create a file when loaded; the runtime only hashes it."""
    project, run, marker = bad_data
    assert run.returncode != 0 and "load" in run.executed
    assert not marker.exists()


def test_runtime_error_message_is_a_single_write(bad_data: tuple[Project, Run, Path], tmp_path: Path) -> None:
    """Jobs share Snakemake's stderr; a message is one line only if it is written in one piece."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    project, _, _ = bad_data
    trace = tmp_path / "trace.txt"
    done = subprocess.run([strace, "-f", "-qq", "-e", "trace=write", "-e", "signal=none", "-s", "4096", "-o", str(trace),
                           sys.executable, "-m", "expops_smk.runtime", "not_dict", "--seed", "41",
                           "--log", str(tmp_path / "s41.log")],
                          cwd=project.root, env={**_env(), "PYTHONHASHSEED": "0"}, capture_output=True, text=True,
                          timeout=120)
    if not trace.exists() or "ptrace" in done.stderr.lower():
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()}")
    assert done.returncode == 2, done.stderr
    writes = [line for line in trace.read_text().splitlines() if re.search(r"\bwrite\(2, ", line)]
    assert len(writes) == 1 and "expops-smk: node 'not_dict S41'" in writes[0] and '\\n"' in writes[0], writes


# -- 5. tampering and trust --------------------------------------------------------------------------

def test_replaced_artifact_is_detected_and_never_served(reference: Reference, tmp_path: Path) -> None:
    project = reference.copy(tmp_path / "project")
    root = project.root
    marker = tmp_path / "UNPICKLED"
    target = project.node_dir("train", "p1", "41") / "model.pkl"
    shown = target.relative_to(root).as_posix()
    target.unlink()
    target.write_bytes(evil_pickle(marker))  # a different file, with content that acts when unpickled

    verify = verify_cli(root)
    assert verify.returncode == 1
    assert [line for line in verify.stdout.splitlines() if shown in line] == verify.stdout.splitlines()
    assert "1 problem(s) found" in verify.stderr
    with pytest.raises(TamperedArtifactError, match="model.pkl"):
        expops_smk.load(root, "train", partition=1, seed=41)
    show = subprocess.run([sys.executable, "-m", "expops_smk.cli", "show", "train", "--partition", "1", "--seed", "41"],
                          cwd=root, env=_env(), capture_output=True, text=True, timeout=60)
    assert show.returncode == 2 and len(show.stderr.splitlines()) == 1 and shown in show.stderr

    # Snakemake tracks manifests, not artifacts: it sees nothing to do; `expops-smk verify` is the check.
    assert project.snakemake().nothing_to_do
    # A downstream node that has to run again executes only when its inputs, code and parameters
    # have no recorded run (else it is restored, without reading any input): then it refuses the
    # replaced file before unpickling it.
    downstream = "results/evaluate/p1/s41/_outputs.json"
    shutil.rmtree(root / ".expops" / "runs")
    (root / downstream).unlink()
    refused = project.snakemake(downstream, check=False)
    assert refused.returncode != 0 and refused.calls == []
    lines = [line for line in refused.stderr.splitlines() if line.startswith("expops-smk:")]
    assert len(lines) == 1, refused.stderr
    assert shown in lines[0] and "does not match the manifest" in lines[0]
    assert lines[0].endswith("(log: logs/evaluate/p1/s41.log)")
    assert not (root / downstream).exists()
    assert not marker.exists()

    # Repair: run the producing node again.
    project.snakemake("--forcerun", "results/train/p1/s41/_outputs.json")
    assert_complete_and_equal(project, reference)
    assert not marker.exists()


def test_artifact_edited_in_place_is_detected_and_repaired(reference: Reference, tmp_path: Path) -> None:
    """Editing through the hard link also damages the store's object; the repair run must notice
    that the cached object is damaged and execute the node instead of restoring it."""
    project = reference.copy(tmp_path / "project")
    target = project.node_dir("prep", "p2", "42") / "blob.pkl"
    with open(target, "r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    verify = verify_cli(project.root)
    assert verify.returncode == 1 and "results/prep/p2/s42/blob.pkl" in verify.stdout
    with pytest.raises(TamperedArtifactError, match="blob.pkl"):
        expops_smk.load(project.root, "prep", partition=2, seed=42)
    repaired = project.snakemake("--forcerun", "results/prep/p2/s42/_outputs.json")
    assert repaired.calls == ["prep P2 S42"]
    assert_complete_and_equal(project, reference)


def test_hand_edited_manifest_cannot_point_outside_its_folder(reference: Reference, tmp_path: Path) -> None:
    """Only files inside a node's own folder are read, whatever a manifest says."""
    project = reference.copy(tmp_path / "project")
    marker = tmp_path / "UNPICKLED"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(evil_pickle(marker))
    manifest_path = project.node_dir("train", "p1", "41") / "_outputs.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["artifacts"]["model"].update(file="../../../../../evil.pkl", object=hash_file(evil),
                                          size=evil.stat().st_size)
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    run = project.snakemake("--keep-going", check=False)
    assert run.returncode != 0 and run.calls == []
    lines = [line for line in run.stderr.splitlines() if line.startswith("expops-smk:")]
    assert len(lines) == 1 and "results/train/p1/s41/_outputs.json: not a valid manifest" in lines[0], run.stderr
    assert not marker.exists()
    assert verify_cli(project.root).returncode == 1


@pytest.mark.parametrize("section, field", [
    ({"data": {"path": "{evil}"}}, "data.path"),
    ({"data": {"path": "../evil.pkl"}}, "data.path"),
    ({"scripts": {"main": "{evil}"}}, "scripts.main"),
])
def test_config_naming_an_outside_pickle_is_rejected(tmp_path: Path, section: dict, field: str) -> None:
    from click.testing import CliRunner

    from expops_smk.cli import main
    from projects import write_project
    from reliability_projects import BAD_DATA_MAIN

    marker = tmp_path / "UNPICKLED"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(evil_pickle(marker))
    config: dict[str, Any] = {"scripts": {"main": "src/main.py"},
                              "experiment": {"pipeline": {"processes": [{"name": "load"}]}}}
    config.update(json.loads(json.dumps(section).replace("{evil}", str(evil))))
    root = write_project(tmp_path / "project", config, BAD_DATA_MAIN, script_path="src/main.py")
    for command in ("validate", "generate"):
        result = CliRunner().invoke(main, [command, str(root)])
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
        assert f"field '{field}'" in result.stderr and "outside the project" in result.stderr
    assert not (root / "workflow").exists() and not marker.exists()


def test_python_tag_never_executes_through_snakemake(reference: Reference, tmp_path: Path) -> None:
    """The Snakefile re-reads an edited config before running anything: safe-loaded there too."""
    project = reference.copy(tmp_path / "project")
    marker = tmp_path / "PWNED"
    config = project.root / "configs" / "project_config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "metadata: {name: crash}", f"metadata: {{name: !!python/object/apply:os.system ['touch {marker}']}}"),
        encoding="utf-8")
    states = file_states(project.root)
    run = project.snakemake(check=False)
    assert run.returncode != 0 and not marker.exists() and run.outcomes == {}
    lines = [line for line in run.stderr.splitlines() if line.startswith("expops-smk:")]
    assert len(lines) == 1 and "configs/project_config.yaml" in lines[0] and "invalid YAML" in lines[0], run.stderr
    assert file_states(project.root) == states


@pytest.mark.parametrize("args", [
    ["train", "--partition", "p1/../../../../tmp", "--seed", "41"],
    ["train", "--partition", "p1", "--seed", "41/../../x"],
    ["../../evil", "--partition", "p1", "--seed", "41"],
    ["train", "--partition", "p9", "--seed", "41"],
])
def test_runtime_rejects_node_arguments_outside_the_graph(reference: Reference, tmp_path: Path, args: list[str]) -> None:
    project = reference.copy(tmp_path / "project")
    states = file_states(project.root)
    done = subprocess.run([sys.executable, "-m", "expops_smk.runtime", *args, "--log", "logs/hostile.log"],
                          cwd=project.root, env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("expops-smk: ") and "Traceback" not in done.stderr
    assert file_states(project.root) == states


# -- 6. disk full, unwritable result folders ------------------------------------------------------------

P3_CHAIN = {f"{process} P3 S{seed}" for process in ("prep", "train", "evaluate") for seed in SEEDS} | {
    "per_partition P3"}


@dataclass
class Phase:
    """One snakemake run of the storage scenario and the state around it."""

    run: Run
    before: dict[str, tuple[int, bytes]]  # inode and bytes of every file under results/, before the run
    after: dict[str, tuple[int, bytes]]  # the same, after it
    problems: list[str]  # integrity_problems right after the run

    def lost(self) -> set[str]:
        """Files that existed before the run and disappeared or changed (inode or bytes)."""
        return {path for path, state in self.before.items() if self.after.get(path) != state}


@dataclass
class Storage:
    project: Project
    phases: dict[str, Phase]


@pytest.fixture(scope="module")
def storage(reference: Reference, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    """The finished project on a small tmpfs, with partition 3's chain and `final` to run again
    (executing user code: the run cache is removed). Each run fixes the previous problem:

    disk-full  the disk has ~700 kB free; prep P3 writes a few MB per node
    grown      the disk is grown
    read-only  `final` must run again (its results and the run cache are removed), and
               results/final is a read-only folder (bind mount)
    file       results/final is a file
    fixed      results/final is gone
    """
    mount_point = tmp_path_factory.mktemp("tmpfs")
    if not mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        project = reference.copy(mount_point / "project")
        root = project.root
        for process in ("prep", "train", "evaluate", "per_partition"):
            shutil.rmtree(root / "results" / process / "p3")
        final = root / "results" / "final"
        shutil.rmtree(final)
        shutil.rmtree(root / ".expops" / "runs")
        phases: dict[str, Phase] = {}
        befores: dict[str, dict[str, tuple[int, bytes]]] = {}

        def run(name: str) -> None:
            befores[name] = file_states(root)
            done = project.snakemake("--keep-going", check=False)
            phases[name] = Phase(done, befores[name], file_states(root), integrity_problems(root))

        assert mount("-o", f"remount,size={used_kib(mount_point) + 700}k", str(mount_point))
        run("disk-full")
        assert mount("-o", "remount,size=64m", str(mount_point))
        run("grown")
        shutil.rmtree(final)
        shutil.rmtree(root / ".expops" / "runs")
        final.mkdir()
        assert mount("--bind", str(final), str(final))
        try:
            assert mount("-o", "remount,ro,bind", str(final))
            run("read-only")
        finally:
            unmount(final)
        final.rmdir()
        final.write_text("not a folder", encoding="utf-8")
        run("file")
        final.unlink()
        run("fixed")
        yield Storage(project, phases)
    finally:
        unmount(mount_point)


def test_disk_full_loses_nothing(storage: Storage) -> None:
    phase = storage.phases["disk-full"]
    assert phase.run.returncode != 0 and "No space left on device" in phase.run.stderr
    assert {f"prep P3 S{seed}" for seed in SEEDS} <= set(phase.run.calls)
    assert not [label for label in phase.run.outcomes if not label.startswith("prep P3")]
    assert phase.problems == [] and phase.lost() == set()


def test_after_the_disk_is_grown_only_the_failed_chain_executes(storage: Storage) -> None:
    phase = storage.phases["grown"]
    assert sorted(phase.run.calls) == sorted(P3_CHAIN | {"final"})
    assert phase.problems == [] and phase.lost() == set()


@pytest.mark.parametrize("variant", ["read-only", "file"])
def test_unwritable_results_folder_loses_nothing(storage: Storage, variant: str) -> None:
    phase = storage.phases[variant]
    assert phase.run.returncode != 0 and phase.run.calls == [] and phase.run.outcomes == {}
    assert "results/final" in phase.run.stderr
    assert phase.problems == [] and phase.lost() == set()


def test_after_the_folder_is_fixed_only_the_last_node_executes(storage: Storage, reference: Reference) -> None:
    phase = storage.phases["fixed"]
    assert phase.run.calls == ["final"] and phase.lost() == set()
    assert_complete_and_equal(storage.project, reference)


def test_disk_full_is_a_one_line_error_naming_the_node(storage: Storage) -> None:
    run = storage.phases["disk-full"].run
    assert "Traceback" not in run.stderr
    for seed in SEEDS:
        lines = our_lines(run, f"prep P3 S{seed}")
        assert len(lines) == 1, run.stderr
        assert "No space left on device" in lines[0] and lines[0].endswith(f"(log: logs/prep/p3/s{seed}.log)")


@pytest.mark.parametrize("variant", ["read-only", "file"])
def test_unwritable_results_folder_is_a_one_line_error(storage: Storage, variant: str) -> None:
    run = storage.phases[variant].run
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("expops-smk:")]
    assert len(lines) == 1 and "results/final" in lines[0]
