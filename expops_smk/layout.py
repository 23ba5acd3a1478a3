"""Names on disk that every layer shares: where a project's config, workflow, results and store live.

The generator writes these paths, the jobs read and write them, and the result readers find a
finished run through them; keeping them in one module is what lets each layer agree on them
without importing another layer. Every path is relative to the project folder (the working
directory of every Snakemake job).
"""

from __future__ import annotations

from pathlib import Path

CONFIG_FILE = Path("configs") / "project_config.yaml"
COMPUTE_CONFIG_FILE = Path("configs") / "compute_config.yaml"

WORKFLOW_DIR = "workflow"
SNAKEFILE = f"{WORKFLOW_DIR}/Snakefile"
RULES_FILE = f"{WORKFLOW_DIR}/rules/processes.smk"
CHARTS_RULES_FILE = f"{WORKFLOW_DIR}/rules/charts.smk"
PLAN_FILE = f"{WORKFLOW_DIR}/expops_plan.json"
DEFAULT_PROFILE = f"{WORKFLOW_DIR}/profiles/default/config.yaml"
SLURM_PROFILE = "profiles/slurm/config.yaml"

RESULTS_DIR = "results"
CHARTS_DIR = f"{RESULTS_DIR}/charts"
MANIFEST = "_outputs.json"
"""A node's manifest: the only file Snakemake declares, written last so its presence means done."""
METRICS_FILE = "_metrics.json"
RUN_FILE = "_run.json"
PARTITIONS_FILE = "_partitions.json"
"""Written by a growing-data split (results/<split>/_partitions.json): the partitions it produced."""
CHART_RECORD = "_chart.json"

LOGS_DIR = "logs"
BENCHMARK_DIR = "benchmarks"

JOB_MODULES = {"runtime": "expops_smk.runtime", "charts": "expops_smk.runtime.chart_job"}
"""What a rule's job runs with ``python -m``, per entry point: the node runtime and the chart job."""
LAUNCHER_MODULE = "expops_smk.runtime.launch"
"""Runs an entry point forked from a warm interpreter when it can (``python -m`` LAUNCHER ENTRY ARGS)."""

STORE_DIR = ".expops"
DATA_DIGEST = f"{STORE_DIR}/inputs/data.xxh3"
STAMP_FILE = f"{STORE_DIR}/stamp.json"
SERVER_LOG = f"{STORE_DIR}/warm_server.log"


def results_dir(process: str, partition_value: str, seed_value: str) -> str:
    """``results/<process>/[<partition>/][s<seed>]``: the folder of one node's artifacts."""
    parts = [RESULTS_DIR, process]
    if partition_value:
        parts.append(partition_value)
    if seed_value:
        parts.append(f"s{seed_value}")
    return "/".join(parts)


def chart_dir(name: str) -> str:
    return f"{CHARTS_DIR}/{name}"


def job_file_pattern(folder: str, process: str, wildcards: list[str], suffix: str) -> str:
    """``<folder>/<process>/{partition}/s{seed}<suffix>`` for a rule's log or benchmark file.

    One file per job, laid out like the results: nodes outside any fan-out get
    ``<folder>/<process><suffix>``.
    """
    parts = ["{partition}" if wildcard == "partition" else "s{seed}" for wildcard in wildcards]
    if not parts:
        return f"{folder}/{process}{suffix}"
    return f"{folder}/{process}/" + "/".join(parts) + suffix

FORCED_VARIABLE = "EXPOPS_SMK_FORCED"
"""JSON of what this Snakemake invocation forces (``{"all": bool, "rules": [...], "files": [...]}``).
The Snakefile's ``onstart`` sets it in the main Snakemake process; local jobs inherit it, and the
Slurm executor submits with ``--export=ALL``, so cluster jobs see it too."""
NO_CACHE_VARIABLE = "EXPOPS_SMK_NO_CACHE"
"""``1``: every job that runs executes user code instead of restoring from the run cache."""
