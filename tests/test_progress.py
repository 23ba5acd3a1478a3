"""Unit tests of the ``expops-smk run`` view: Snakemake's console output read into events."""

from __future__ import annotations

import io

from expops_smk.progress import OutputReader, RunState, node_label, summary, wants_view

TRANSCRIPT = """\
Building DAG of jobs...
Job stats:
job      count
-----  -------
load         1
train        2
all          1
total        4

[Fri Dec  4 01:39:06 2026]
localrule load:
    output: results/load/_outputs.json
    jobid: 3
[Fri Dec  4 01:39:07 2026]
Finished jobid: 3 (Rule: load)
1 of 4 steps (25%) done

[Fri Dec  4 01:39:07 2026]
rule train:
    output: results/train/p1/s2/_outputs.json
    log: logs/train/p1/s2.log
    jobid: 4
    wildcards: partition=p1, seed=2
[Fri Dec  4 01:39:07 2026]
rule train:
    jobid: 1
    wildcards: partition=p1-p2, seed=1
[Fri Dec  4 01:39:07 2026]
Error in rule train:
    message: None
    jobid: 4
    log: logs/train/p1/s2.log (check log file(s) for error details)
    shell:
        PYTHONHASHSEED=0 ...
[Fri Dec  4 01:39:07 2026]
Finished jobid: 1 (Rule: train)
expops-smk: warning: --config x: not used by this workflow
Complete log(s): /p/.snakemake/log/x.snakemake.log
"""


def read(text: str) -> tuple[RunState, list[str]]:
    state, shown = RunState(), []
    reader = OutputReader(state, shown.append)
    for line in io.StringIO(text):
        reader.feed(line)
    reader.finish()
    return state, shown


def test_the_transcript_gives_totals_failures_and_the_log() -> None:
    state, shown = read(TRANSCRIPT)
    assert state.total == 3 and state.done == 2 and state.running == {}
    assert shown == ["FAILED train P1 S2 failed (log: logs/train/p1/s2.log)",
                     "expops-smk: warning: --config x: not used by this workflow"]
    assert summary(state, 1).startswith("done 2/3 jobs in 0:00, 1 failed · full log: ")


def test_checkpoint_jobs_count_and_the_total_follows_the_dag_updates() -> None:
    """Data splits are checkpoints ("localcheckpoint load:"); after a growing-data split ran,
    Snakemake knows of more jobs and says so in its "N of M steps" lines."""
    text = TRANSCRIPT.replace("localrule load:", "localcheckpoint load:").replace(
        "1 of 4 steps (25%) done", "1 of 6 steps (17%) done")
    state, _ = read(text)
    assert state.total == 5 and state.done == 2 and state.running == {}


def test_a_node_that_reported_its_own_error_is_named_once() -> None:
    own = "expops-smk: node 'train P1 S2': the process function raised ValueError: x (traceback in logs/a.log)\n"
    text = TRANSCRIPT.replace("Error in rule train:", own + "Error in rule train:")
    state, shown = read(text)
    assert [line for line in shown if line.startswith("FAILED")] == [
        "FAILED node 'train P1 S2': the process function raised ValueError: x (traceback in logs/a.log)"]


def test_a_nested_node_that_reported_its_own_error_is_named_once() -> None:
    text = """\
[Fri Dec  4 01:39:07 2026]
rule train:
    log: logs/train/p1-p2/s1.log
    jobid: 7
    wildcards: partition=p1-p2, seed=1
expops-smk: node 'train P1-P2 S1': the process function raised ValueError: x (traceback in logs/b.log)
[Fri Dec  4 01:39:08 2026]
Error in rule train:
    jobid: 7
    log: logs/train/p1-p2/s1.log (check log file(s) for error details)
"""
    state, shown = read(text)
    assert shown == ["FAILED node 'train P1-P2 S1': the process function raised ValueError: x (traceback in logs/b.log)"]
    assert state.failed == ["node 'train P1-P2 S1': the process function raised ValueError: x (traceback in logs/b.log)"]


def test_node_labels_and_which_commands_get_the_view() -> None:
    assert node_label("train", "partition=p1-p2, seed=41-7") == "train P1-P2 S41-S7"  # as the graph names it
    assert node_label("train", "partition=p1, seed=41--7") == "train P1 S41-S-7"
    assert node_label("mine", "sample=a") == "mine"
    assert node_label("load", "") == "load"
    assert wants_view(()) and wants_view(("--keep-going", "-j", "2"))
    assert not wants_view(("-n",)) and not wants_view(("--summary",)) and not wants_view(("--report=r.html",))


def test_nothing_to_do() -> None:
    state, _ = read("Building DAG of jobs...\nNothing to be done (all requested files are present and up to date).\n")
    assert summary(state, 0) == "Nothing to be done: every node is up to date."


def test_snakemake_stopping_before_any_job_says_so() -> None:
    state, _ = read("Building DAG of jobs...\nWorkflowError: something\n")
    assert summary(state, 1).startswith("snakemake stopped with exit status 1 before running any job")
