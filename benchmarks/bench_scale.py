"""P9 a restored node vs an executed one, P10 a wide full run vs a `touch` twin, P11 no-op after a real run.

Issue 18's rows. Each expops-smk project has a hand-written twin with the same rules, wildcards,
files and DAG whose every job is ``touch {output} {log}``: the least a job can cost under Snakemake,
so the ratios say what expops-smk adds on top of Snakemake's own per-job work. Both sides run with
the same scheduler settings (expops-smk's generated profile picks ``greedy`` and
``scheduler-subsample: 100`` from 1,000 nodes; the twin gets the same flags at those sizes).

P9 times job commands directly, with the project's warm server up, as Snakemake starts them:
the launcher for every ``work`` node of bench_jobs' P1 project, one after another, once with the
run cache emptied (every node executes its trivial function) and once with it full (every node
restores). P11 runs the workflow for real, then measures ``snakemake`` with nothing to do, because
only a real run leaves Snakemake's metadata (recorded commands, inputs, checksums) to compare against.
"""

from __future__ import annotations

import re
import shutil
import sys
import textwrap
from pathlib import Path

import yaml

from bench_jobs import fanout_nodes, fanout_projects, generate, p1_projects, write_expops_project
from common import (
    PYTHON,
    SNAKEMAKE,
    Row,
    Section,
    Settings,
    child_env,
    copy_tree,
    format_bytes,
    format_seconds,
    fresh_dir,
    interleave,
    median,
    run_timed,
    spread,
)

P9_TARGET = 0.5
P10_TARGET = 1.2
P11_TARGET = 1.1


def touch_twin(snakefile: str) -> str:
    """The twin's Snakefile with every job reduced to creating its output and log."""
    text = re.sub(r"shell:\n(\s*)'.*'", r"shell:\n\1'touch {output} {log}'", snakefile)
    return text.replace('script:\n        "scripts/aggregate.py"', "shell:\n        'touch {output} {log}'")


# -- P9 -------------------------------------------------------------------------------------------

def job_commands(project: Path, rule: str) -> list[str]:
    """The shell commands of every ``rule`` job, exactly as Snakemake would run them (``-n -p``)."""
    printed = run_timed([SNAKEMAKE, "-n", "-p", "--forcerun", rule, "--cores", "1"], project).output
    commands = [line.split("Shell command:", 1)[-1].strip() for line in printed.splitlines()
                if f" runtime {rule} " in line]
    if not commands:
        raise RuntimeError(f"P9: no {rule} command in snakemake -n -p:\n{printed[-2000:]}")
    return commands


def p9(settings: Settings) -> Section:
    nodes = 4 if settings.quick else 20
    ours, _ = p1_projects(settings.workdir / "p9", nodes)
    run_timed([SNAKEMAKE, "--cores", "1"], ours)  # inputs in place, the warm server started
    env = child_env({"PYTHONHASHSEED": "0"})
    # Through bash, as Snakemake's shell: directive runs them (its own prefix, then the rule's command).
    commands = [["bash", "-c", f"set -euo pipefail; {command}"] for command in job_commands(ours, "work")]
    first_log = ours / "logs" / "work" / "p1.log"

    def jobs(empty_cache: bool, check: bool = True) -> float:
        if empty_cache:
            shutil.rmtree(ours / ".expops" / "runs", ignore_errors=True)
        seconds = sum(run_timed(command, ours, env=env).seconds for command in commands) / nodes
        expected, served = (("executed in", "forked from the warm interpreter") if empty_cache
                            else ("restored in", "restored by the warm interpreter"))
        if check and (expected not in first_log.read_text() or served not in first_log.read_text()):
            raise RuntimeError(f"P9: the node did not say '{expected}', '{served}':\n{first_log.read_text()}")
        return seconds

    # These commands' environment is not Snakemake's, so the first ones start their own server: measure a steady one.
    for _ in range(30):
        jobs(False, check=False)
        if "by the warm interpreter" in first_log.read_text():
            break
    samples = interleave({"executed": lambda: jobs(True), "restored": lambda: jobs(False)},
                         settings.runs(3 if not settings.quick else 1))
    restored, executed = median(samples["restored"]), median(samples["executed"])
    section = Section()
    section.rows.append(Row("P9", f"job wall time, restored node vs executed trivial node (warm server, {nodes} jobs)",
                            format_seconds(restored), format_seconds(executed), restored / executed, P9_TARGET))
    section.details.append(
        f"**P9** the shell command of each of the {nodes} `work` nodes of P1's project (from `snakemake -n -p`, "
        "run by `bash -c` as Snakemake does), one after another, with the project's warm server up; per job, "
        "medians over runs:\n\n"
        f"- executed (run cache emptied first) {spread(samples['executed'])}\n"
        f"- restored (hard links from the run cache) {spread(samples['restored'])}")
    return section


# -- P10 ------------------------------------------------------------------------------------------

WIDE_SCRIPT = '''
    def load():
        return {"df": list(range(100))}


    def work(df):
        return {"total": sum(df)}


    def aggregate(total):
        return {"n": len(total)}
'''

WIDE_HANDWRITTEN = '''
    PARTITIONS = range(1, {partitions} + 1)

    wildcard_constraints:
        partition=r"p\\d+",

    rule all:
        input:
            "results/aggregate/out.json",

    rule load:
        output:
            "results/load/out.json",
        log:
            "logs/load.log",
        shell:
            'touch {{output}} {{log}}'

    rule partition:
        input:
            "results/load/out.json",
        output:
            expand("results/partition/p{{i}}/out.json", i=PARTITIONS),
        log:
            "logs/partition.log",
        shell:
            'touch {{output}} {{log}}'

    rule work:
        input:
            "results/partition/{{partition}}/out.json",
        output:
            "results/work/{{partition}}/out.json",
        log:
            "logs/work/{{partition}}.log",
        shell:
            'touch {{output}} {{log}}'

    rule aggregate:
        input:
            expand("results/work/p{{i}}/out.json", i=PARTITIONS),
        output:
            "results/aggregate/out.json",
        log:
            "logs/aggregate.log",
        shell:
            'touch {{output}} {{log}}'
'''


def wide_projects(base: Path, partitions: int) -> tuple[Path, Path]:
    """load -> partition (``partitions``) -> work per partition -> aggregate, and its touch twin."""
    ours = write_expops_project(
        fresh_dir(base / "p10-expops") / "project",
        [{"name": "load"}, {"name": "partition", "data_parallelism": {"size": partitions, "data_name": "df"}},
         {"name": "work"}, {"name": "aggregate", "data_aggregation": True}],
        [("load", "partition"), ("partition", "work"), ("work", "aggregate")],
        WIDE_SCRIPT,
    )
    generate(ours)
    twin = fresh_dir(base / "p10-handwritten") / "project"
    twin.mkdir(parents=True, exist_ok=True)
    (twin / "Snakefile").write_text(textwrap.dedent(WIDE_HANDWRITTEN.format(partitions=partitions)))
    return ours, twin


def scheduler_of(project: Path) -> str:
    profile = (project / "workflow" / "profiles" / "default" / "config.yaml").read_text()
    return "greedy" if "scheduler: greedy" in profile else "ilp (Snakemake's default)"


def twin_flags(project: Path) -> list[str]:
    """The scheduler settings of ``project``'s generated profile, as flags for its hand-written twin."""
    settings = yaml.safe_load((project / "workflow" / "profiles" / "default" / "config.yaml").read_text())
    return [flag for key in ("scheduler", "scheduler-subsample") if key in settings
            for flag in (f"--{key}", str(settings[key]))]


def p10(settings: Settings) -> Section:
    partitions = 20 if settings.quick else 2000
    ours_template, twin_template = wide_projects(settings.workdir, partitions)
    scheduler = scheduler_of(ours_template)
    flags = twin_flags(ours_template)

    def full_run(template: Path, flags: list[str]) -> float:
        work = copy_tree(template, template.parent / "run")
        return run_timed([SNAKEMAKE, "--cores", "2", *flags], work).seconds

    samples = interleave({"ours": lambda: full_run(ours_template, []),
                          "twin": lambda: full_run(twin_template, flags)}, settings.runs(1))
    ours, twin = median(samples["ours"]), median(samples["twin"])
    nodes = partitions + 3
    section = Section()
    section.rows.append(Row("P10", f"full run, {partitions}-partition fan-out ({nodes} nodes), --cores 2, vs `touch` twin",
                            format_seconds(ours), format_seconds(twin), ours / twin, P10_TARGET,
                            note=f"{' '.join(flags) or 'scheduler ilp'} on both sides"))
    section.details.append(
        f"**P10** load → partition ({partitions}) → work → aggregate, cold, `snakemake --cores 2`; scheduler from "
        f"the generated profile: {scheduler} (the twin gets the same):\n\n"
        f"- expops-smk {spread(samples['ours'])} = {ours / nodes * 1000:.0f} ms per node\n"
        f"- `touch` twin {spread(samples['twin'])} = {twin / nodes * 1000:.0f} ms per node")
    return section


# -- P11 ------------------------------------------------------------------------------------------

def noop_sizes(settings: Settings) -> list[tuple[str, int, int]]:
    """(label, partitions, seeds) of the no-op rows (the fan-outs of P2)."""
    return [("~50", 10, 4)] if settings.quick else [("1k", 100, 10), ("10k", 1000, 10)]


def p11(settings: Settings) -> Section:
    section = Section()
    runs = settings.runs(5 if not settings.quick else 1)
    details = []
    for label, partitions, seed_count in noop_sizes(settings):
        ours, twin = fanout_projects(settings.workdir / "p11", label, partitions, list(range(41, 41 + seed_count)))
        (twin / "Snakefile").write_text(touch_twin((twin / "Snakefile").read_text()))
        nodes = fanout_nodes(partitions, seed_count)
        flags = twin_flags(ours)
        real = {"ours": run_timed([SNAKEMAKE, "--cores", "2"], ours).seconds,
                "twin": run_timed([SNAKEMAKE, "--cores", "2", *flags], twin).seconds}
        memory: dict[str, list[int]] = {"ours": [], "twin": []}

        def noop(project: Path, side: str, extra: list[str]) -> float:
            result = run_timed([SNAKEMAKE, "--cores", "2", *extra], project)
            if "Nothing to be done" not in result.output:
                raise RuntimeError(f"P11 {label} {side}: not a no-op:\n{result.output[-2000:]}")
            memory[side].append(result.max_rss_kb * 1024)
            return result.seconds

        samples = interleave({"ours": lambda: noop(ours, "ours", []), "twin": lambda: noop(twin, "twin", flags)}, runs)
        time_ratio = median(samples["ours"]) / median(samples["twin"])
        memory_ratio = median(memory["ours"]) / median(memory["twin"])
        section.rows.append(Row("P11", f"no-op after a real run, {label}-node fan-out ({nodes} nodes), vs `touch` twin",
                                format_seconds(median(samples["ours"])), format_seconds(median(samples["twin"])),
                                time_ratio, P11_TARGET,
                                note=f"peak RSS {format_bytes(median(memory['ours']))} vs "
                                     f"{format_bytes(median(memory['twin']))} = {memory_ratio:.2f}×"))
        details.append(f"- {nodes} nodes: real runs took {format_seconds(real['ours'])} (expops-smk) and "
                       f"{format_seconds(real['twin'])} (twin); no-op expops-smk {spread(samples['ours'])}, "
                       f"twin {spread(samples['twin'])}")
    section.details.append("**P11** `snakemake --cores 2` with nothing to do, after a real run of the same "
                           "project (P2's fan-outs; the twin's jobs `touch` their files):\n\n" + "\n".join(details))
    return section


def run(settings: Settings, selected: set[str]) -> Section:
    section = Section()
    for benchmark, measure in (("P9", p9), ("P10", p10), ("P11", p11)):
        if benchmark in selected:
            part = measure(settings)
            section.rows.extend(part.rows)
            section.details.extend(part.details)
    return section


if __name__ == "__main__":
    sys.exit("run benchmarks/run.py")
