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

WARM_VARIABLE = "EXPOPS_SMK_WARM"
"""Set to ``0`` to run every job cold (the rules stay as generated); the Snakefile sets it when the
project turns warm start off or benchmarks jobs."""
LAUNCHER_MODULE = "expops_smk.runtime.launch"
"""Runs an entry point forked from a warm interpreter when it can (``python -m`` LAUNCHER ENTRY ARGS)."""

STORE_DIR = ".expops"
DATA_DIGEST = f"{STORE_DIR}/inputs/data.xxh3"
STAMP_FILE = f"{STORE_DIR}/stamp.json"
GENERATED_RECORD = f"{STORE_DIR}/generated.json"
"""The digest of every generated file as written: one that differs now was edited by hand."""
OVERRIDES_FILE = f"{STORE_DIR}/overrides.json"
"""The parameter overrides of the last ``snakemake --config`` (absent without one), for ``status``."""
SERVER_LOG = f"{STORE_DIR}/warm_server.log"
CHECKPOINT_MARKERS_DIR = f"{STORE_DIR}/checkpoints"
"""Where a data split's job leaves ``<process>[/<partition>].ran`` for the rest of its invocation
(see codegen/checkpoints.py): Snakemake re-checks the jobs below a checkpoint whose outputs all
exist when it builds the DAG, which a run of expops-smk rules never needs."""
READS_DIR = f"{STORE_DIR}/reads"
"""Files user code read at run time: ``jobs/<process>/[<partition>/][s<seed>].json`` per job (what
``prepare`` checks at every parse) and ``runs/<record key>.json`` per run record (what a restore checks)."""
READS_MARKERS_DIR = f"{READS_DIR}/changed"
"""``<process>/[<partition>/][s<seed>].token`` per job whose files read have changed since its first
run: its reads token, an input of that job only (see ``store.read_markers``)."""
READS_INDEX = f"{STORE_DIR}/reads_index.json"
"""``prepare``'s stat cache of those files: (size, mtime_ns, digest) per path, so unchanged files are not re-hashed."""


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
OVERRIDES_VARIABLE = "EXPOPS_SMK_OVERRIDES"
"""JSON of this invocation's ``--config`` parameter overrides, set where the Snakefile is parsed:
local jobs inherit it from Snakemake, cluster jobs re-parse the Snakefile with the same --config."""

ENVS_DIR = f"{STORE_DIR}/envs"
"""One folder per created environment, named by its digest (``expops_smk.store.environments``)."""
PYTHON_LAUNCHER = f"{STORE_DIR}/bin/python"
"""The interpreter of jobs without an environment of their own, as the rules call it: a small shell
script that runs the Python that runs Snakemake, so `snakemake -p` prints commands that run as is."""


def environment_python(digest: str) -> str:
    """The interpreter of the environment ``digest``, relative to the project folder."""
    return f"{ENVS_DIR}/{digest}/bin/python"
