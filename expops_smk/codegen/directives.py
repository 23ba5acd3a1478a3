"""Rule directives for where and how a node runs: threads, resources, retries, groups, benchmarks.

Everything a process needs is written into its rule, where every executor sees it: ``threads:``
(Slurm's ``--cpus-per-task``), ``resources:`` (``mem_mb`` -> ``--mem``, ``runtime`` minutes ->
``-t``, ``gpu``, ``slurm_partition``, ``slurm_extra``, ...), ``retries:`` with memory that grows
with each attempt, ``group:`` to bundle a partition x seed chain into one cluster submission,
``localrule:`` for cheap nodes, and ``benchmark:``. A local run ignores what it has no use for
(groups, partitions, run times) and caps threads at ``--cores``. The project-wide defaults go to
the cluster profile's ``default-resources``, with two exceptions rendered into the rules: the
default thread count (Snakemake has no default for threads) and the memory of a process with
``retries`` (it scales with the attempt).
"""

from __future__ import annotations

from typing import Any

from expops_smk.codegen.groups import STRING_RESOURCES, chain_groups
from expops_smk.config.execution import normalized
from expops_smk.config.model import ExecutionSettings, ProcessSpec, ProjectConfig
from expops_smk.graph.expansion import Graph, ProcessLayout
from expops_smk.layout import BENCHMARK_DIR, JOB_CLIENT, WARM_VARIABLE, job_file_pattern

# Config spelling (after `normalized`) -> Snakemake resource name. cpus become the rule's `threads:`.
_SNAKEMAKE_NAMES = {
    "mem_mb": "mem_mb", "runtime": "runtime", "disk_mb": "disk_mb", "gpus": "gpu",
    "tmpdir": "tmpdir", "slurm_partition": "slurm_partition", "slurm_account": "slurm_account",
    "slurm_extra": "slurm_extra", "constraint": "constraint", "qos": "qos",
}
_INDENT = " " * 8


def job_command(entry: str) -> str:
    """What a rule's command runs with its interpreter: the node or the chart job, through the
    warm-start client (``python -S .expops/bin/job.py``: no ``site``, no expops-smk import before
    the job reaches the warm server). The same whatever the execution settings: Snakemake re-runs
    every job whose command text changed ("Code has changed"), and how a job is started is bookkeeping."""
    return f"-S {JOB_CLIENT} {entry}"


def cold_jobs(execution: ExecutionSettings) -> str:
    """The Snakefile's lines that make every job start cold, when the project asks for it.

    With ``benchmark: true`` Snakemake measures the job's own process tree, which a job forked from
    the warm server is not part of. Said in the environment, not in the rules' commands (see
    ``job_command``), so switching benchmarks or warm start on or off re-runs nothing.
    """
    if execution.warm_start and not execution.benchmark:
        return ""
    why = "benchmark: true" if execution.benchmark else "warm_start: false"
    return (f"# execution: {{{why}}}: every job starts cold, in its own process (not forked from a warm server).\n"
            f'os.environ.update({WARM_VARIABLE}="0")\n')


def rule_directives(project: ProjectConfig, graph: Graph, layout: ProcessLayout, wildcards: list[str]) -> str:
    """The rule's ``threads:``, ``resources:``, ``retries:``, ``group:``, ``localrule:`` and
    ``benchmark:`` lines (each ends with a newline; empty when the project sets none of them)."""
    spec = layout.spec
    execution = project.execution
    lines: list[str] = []
    threads = thread_count(spec, execution)
    if threads is not None:
        lines.append(f"    threads: {threads}")
    resources = rule_resources(spec, execution)
    if resources:
        lines.append("    resources:")
        lines.extend(f"{_INDENT}{name}={value}," for name, value in resources.items())
    if spec.retries:
        lines.append(f"    retries: {spec.retries}")
    group = chain_groups(project, graph).get(spec.name)
    if group is not None:
        lines.append(f'    group: "{group}"')
    if spec.name in execution.local_processes:
        lines.append("    localrule: True")
    if execution.benchmark:
        lines.append("    benchmark:")
        lines.append(f'{_INDENT}"{job_file_pattern(BENCHMARK_DIR, spec.name, wildcards, ".tsv")}",')
    return "".join(line + "\n" for line in lines)


def thread_count(spec: ProcessSpec, execution: ExecutionSettings) -> int | None:
    own = normalized(spec.resources, None, "resources", spec.name)
    return own.get("cpus", execution.resources.get("cpus"))


def rule_resources(spec: ProcessSpec, execution: ExecutionSettings) -> dict[str, str]:
    """Snakemake resource name -> Python expression, for the rule's ``resources:`` block.

    With retries, memory is a function of the attempt (the default memory too, so that it scales):
    a job killed for exceeding its memory comes back with twice, then three times as much.
    """
    own = normalized(spec.resources, None, "resources", spec.name)
    result: dict[str, str] = {}
    for key, value in own.items():
        name = _SNAKEMAKE_NAMES.get(key)
        if name is not None:
            result[name] = repr(str(value)) if key in STRING_RESOURCES else str(int(value))
    memory = own.get("mem_mb", execution.resources.get("mem_mb"))
    if spec.retries and memory:
        result["mem_mb"] = f"lambda wildcards, attempt: {int(memory)} * attempt"
    return result


def default_resources(execution: ExecutionSettings) -> dict[str, Any]:
    """The project's defaults as Snakemake resources (for a profile's ``default-resources``).

    Threads are not a resource there; they are rendered into each rule (``thread_count``).
    """
    result: dict[str, Any] = {}
    for key, value in execution.resources.items():
        name = _SNAKEMAKE_NAMES.get(key)
        if name is not None:
            result[name] = str(value) if key in STRING_RESOURCES else int(value)
    return result
