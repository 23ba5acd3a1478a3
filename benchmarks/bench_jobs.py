"""P1 per-job overhead, P2 `snakemake -n` on large fan-outs, P3 `expops-smk generate` at 10k nodes.

Each expops-smk project here has a hand-written twin: a Snakefile with the same rules, wildcards,
files and DAG that a user would write without expops-smk (shell rules starting Python, no content
hashes, no run cache, no parse-time ``prepare()``). The twin is the baseline.

P1 per job = (cold run - no-op run) / jobs, for each side: the no-op run of the same workflow is
Snakemake's fixed cost (start-up, parsing, DAG building), so what remains is what the jobs cost.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import yaml

from common import (
    EXPOPS_SMK,
    PYTHON,
    SNAKEMAKE,
    WARM_START_VARIABLE,
    Row,
    Section,
    Settings,
    child_env,
    copy_tree,
    format_seconds,
    fresh_dir,
    interleave,
    median,
    run_timed,
    spread,
    warm_start_off,
)

P1_TARGET = 0.25  # issue 18 (issue 7 asked for 1.3)
P2_TARGET = 1.1
P3_LIMIT_SECONDS = 0.5
P1_ROWS = 1000  # rows of the small table each trivial node reads and writes


# -- projects ---------------------------------------------------------------------------------------

def write_expops_project(root: Path, processes: list[dict], chain: list[tuple[str, str]], script: str) -> Path:
    config = {
        "scripts": {"model": "src/model.py"},
        "experiment": {"pipeline": {
            "process_adjlist": "\n".join(f"{a} {b}" for a, b in chain) + "\n",
            "processes": processes,
        }},
    }
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "project_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "src").mkdir()
    (root / "src" / "model.py").write_text(textwrap.dedent(script))
    return root


def generate(root: Path) -> None:
    run_timed([EXPOPS_SMK, "generate", "."], root)


P1_SCRIPT = f'''
    import pandas as pd


    def make():
        return {{"df": pd.DataFrame({{"x": range({P1_ROWS}), "y": [i / 7 for i in range({P1_ROWS})]}})}}


    def work(df):
        return {{"df": df.assign(z=df.x * 2)}}
'''

P1_HANDWRITTEN = '''
    import sys

    PY = sys.executable
    N = {nodes}

    rule all:
        input:
            expand("results/work/p{{i}}/df.parquet", i=range(1, N + 1)),

    rule make:
        output:
            "results/make/df.parquet",
        log:
            "logs/make.log",
        shell:
            '"{{PY}}" scripts/steps.py make {{output}} > {{log}} 2>&1'

    rule partition:
        input:
            "results/make/df.parquet",
        output:
            expand("results/partition/p{{i}}/df.parquet", i=range(1, N + 1)),
        log:
            "logs/partition.log",
        shell:
            '"{{PY}}" scripts/steps.py partition {{input}} {{output}} > {{log}} 2>&1'

    rule work:
        input:
            "results/partition/{{partition}}/df.parquet",
        output:
            "results/work/{{partition}}/df.parquet",
        log:
            "logs/work/{{partition}}.log",
        shell:
            '"{{PY}}" scripts/steps.py work {{input}} {{output}} > {{log}} 2>&1'
'''

P1_STEPS = f'''
    """The three steps of the hand-written baseline, as a user would write them with pandas."""
    import sys

    import numpy as np
    import pandas as pd

    step, paths = sys.argv[1], sys.argv[2:]
    if step == "make":
        pd.DataFrame({{"x": range({P1_ROWS}), "y": [i / 7 for i in range({P1_ROWS})]}}).to_parquet(paths[0])
    elif step == "partition":
        df = pd.read_parquet(paths[0])
        for part, out in zip(np.array_split(np.arange(len(df)), len(paths) - 1), paths[1:]):
            df.iloc[part[0]:part[-1] + 1].to_parquet(out)
    else:
        df = pd.read_parquet(paths[0])
        df.assign(z=df.x * 2).to_parquet(paths[1])
'''


def p1_projects(base: Path, nodes: int) -> tuple[Path, Path]:
    """(expops-smk project, hand-written twin) for make -> partition (nodes) -> work per partition."""
    ours = write_expops_project(
        fresh_dir(base / "p1-expops") / "project",
        [{"name": "make"}, {"name": "partition", "data_parallelism": {"size": nodes, "data_name": "df"}},
         {"name": "work"}],
        [("make", "partition"), ("partition", "work")],
        P1_SCRIPT,
    )
    generate(ours)
    twin = fresh_dir(base / "p1-handwritten") / "project"
    (twin / "scripts").mkdir(parents=True)
    (twin / "Snakefile").write_text(textwrap.dedent(P1_HANDWRITTEN.format(nodes=nodes)))
    (twin / "scripts" / "steps.py").write_text(textwrap.dedent(P1_STEPS))
    return ours, twin


def p1(settings: Settings) -> Section:
    nodes = 2 if settings.quick else 20
    jobs = nodes + 2
    ours_template, twin_template = p1_projects(settings.workdir, nodes)
    runs = settings.runs(3 if not settings.quick else 1)
    cold: dict[str, list[float]] = {"ours": [], "ours_cold": [], "baseline": []}
    noop: dict[str, list[float]] = {"ours": [], "ours_cold": [], "baseline": []}
    command = [SNAKEMAKE, "--cores", "1"]

    def side(name: str, template: Path, env: dict[str, str] | None = None) -> float:
        work = copy_tree(template, template.parent / "run")
        first = run_timed(command, work, env=env)
        second = run_timed(command, work, env=env)
        if "Nothing to be done" not in second.output:
            raise RuntimeError(f"P1 {name}: the second run was not a no-op:\n{second.output[-2000:]}")
        cold[name].append(first.seconds)
        noop[name].append(second.seconds)
        return first.seconds - second.seconds

    samples = interleave({"ours": lambda: side("ours", ours_template),
                          "ours_cold": lambda: side("ours_cold", ours_template, warm_start_off()),
                          "baseline": lambda: side("baseline", twin_template)}, runs)
    per_job = {name: median(values) / jobs for name, values in samples.items()}
    section = Section()
    section.rows.append(Row(
        "P1", f"per-job overhead, trivial node ({jobs} jobs, --cores 1)",
        format_seconds(per_job["ours"]), format_seconds(per_job["baseline"]),
        per_job["ours"] / per_job["baseline"], P1_TARGET,
    ))
    section.rows.append(Row(
        "P1", "same, warm start off (every job a fresh interpreter, as in the baseline)",
        format_seconds(per_job["ours_cold"]), format_seconds(per_job["baseline"]),
        per_job["ours_cold"] / per_job["baseline"], None,
    ))
    direct = None if settings.quick else p1_direct_job(ours_template, twin_template, max(runs, 3))
    section.details.append(
        f"**P1** make → partition ({nodes}) → work per partition: {jobs} jobs, each reading a "
        f"{P1_ROWS}-row table from Parquet and writing one. Per job = (cold − no-op) / {jobs}, "
        "medians over runs of (cold − no-op).\n\n"
        f"- expops-smk cold {spread(cold['ours'])}; no-op {spread(noop['ours'])}\n"
        f"- expops-smk with `{WARM_START_VARIABLE}=0` cold {spread(cold['ours_cold'])}; "
        f"no-op {spread(noop['ours_cold'])}\n"
        f"- hand-written cold {spread(cold['baseline'])}; no-op {spread(noop['baseline'])}"
        + ("" if direct is None else
           f"\n- one `work` job run directly, outside Snakemake: expops-smk runtime {direct['ours']} "
           f"(executing; {direct['ours_restored']} when restored from the run cache), hand-written "
           f"script {direct['baseline']}; bare `python -c pass` {direct['python']}, "
           f"`python -c 'import pandas, pyarrow.parquet'` {direct['imports']}")
    )
    return section


def p1_direct_job(ours_template: Path, twin_template: Path, runs: int) -> dict[str, str]:
    """Time one trivial job's command without Snakemake, to split P1's gap into job vs scheduler."""
    ours = copy_tree(ours_template, ours_template.parent / "direct")
    run_timed([SNAKEMAKE, "--cores", "1", "results/partition/p1/_outputs.json"], ours)
    twin = copy_tree(twin_template, twin_template.parent / "direct")
    run_timed([SNAKEMAKE, "--cores", "1", "results/partition/p1/df.parquet"], twin)
    ours_cmd = [PYTHON, "-m", "expops_smk.runtime", "work", "--partition=p1", "--log", "logs/direct.log"]
    twin_cmd = [PYTHON, "scripts/steps.py", "work", "results/partition/p1/df.parquet", "direct.parquet"]

    def executed() -> float:
        shutil.rmtree(ours / ".expops" / "runs", ignore_errors=True)
        return run_timed(ours_cmd, ours, env=child_env({"PYTHONHASHSEED": "0"})).seconds

    samples = interleave({
        "ours": executed,
        "ours_restored": lambda: run_timed(ours_cmd, ours, env=child_env({"PYTHONHASHSEED": "0"})).seconds,
        "baseline": lambda: run_timed(twin_cmd, twin).seconds,
        "python": lambda: run_timed([PYTHON, "-c", "pass"], twin).seconds,
        "imports": lambda: run_timed([PYTHON, "-c", "import pandas, pyarrow.parquet"], twin).seconds,
    }, runs)
    return {name: format_seconds(median(values)) for name, values in samples.items()}


# -- P2 / P3: large fan-outs ----------------------------------------------------------------------

FANOUT_SCRIPT = '''
    def load():
        return {"df": list(range(100))}


    def work(df, random_seed):
        return {"total": sum(df) + random_seed}


    def aggregate(total):
        return {"n": len(total)}
'''

FANOUT_HANDWRITTEN = '''
    import sys

    PY = sys.executable
    PARTITIONS = range(1, {partitions} + 1)
    SEEDS = {seeds}

    wildcard_constraints:
        partition=r"p\\d+",
        seed=r"\\d+",

    rule all:
        input:
            "results/aggregate/out.json",

    rule load:
        output:
            "results/load/out.json",
        log:
            "logs/load.log",
        shell:
            '"{{PY}}" scripts/steps.py load {{output}} > {{log}} 2>&1'

    rule partition:
        input:
            "results/load/out.json",
        output:
            expand("results/partition/p{{i}}/out.json", i=PARTITIONS),
        log:
            "logs/partition.log",
        shell:
            '"{{PY}}" scripts/steps.py partition {{input}} {{output}} > {{log}} 2>&1'

    rule seeds:
        input:
            "results/partition/{{partition}}/out.json",
        output:
            "results/seeds/{{partition}}/out.json",
        log:
            "logs/seeds/{{partition}}.log",
        shell:
            '"{{PY}}" scripts/steps.py seeds {{input}} {{output}} > {{log}} 2>&1'

    rule work:
        input:
            "results/seeds/{{partition}}/out.json",
        output:
            "results/work/{{partition}}/s{{seed}}/out.json",
        log:
            "logs/work/{{partition}}/s{{seed}}.log",
        shell:
            '"{{PY}}" scripts/steps.py work {{input}} {{output}} > {{log}} 2>&1'

    rule aggregate:
        input:
            expand("results/work/p{{i}}/s{{s}}/out.json", i=PARTITIONS, s=SEEDS),
        output:
            "results/aggregate/out.json",
        log:
            "logs/aggregate.log",
        script:
            "scripts/aggregate.py"
'''


def fanout_processes(partitions: int, seeds: list[int]) -> list[dict]:
    return [
        {"name": "load"},
        {"name": "partition", "data_parallelism": {"size": partitions, "data_name": "df"}},
        {"name": "seeds", "seed_parallelism": {"seeds": seeds}},
        {"name": "work"},
        {"name": "aggregate", "data_aggregation": True, "seed_aggregation": True},
    ]


FANOUT_CHAIN = [("load", "partition"), ("partition", "seeds"), ("seeds", "work"), ("work", "aggregate")]


def fanout_nodes(partitions: int, seeds: int) -> int:
    """load + partition + one seed split per partition + partitions x seeds work + aggregate."""
    return 3 + partitions + partitions * seeds


def fanout_projects(base: Path, name: str, partitions: int, seeds: list[int]) -> tuple[Path, Path]:
    ours = write_expops_project(fresh_dir(base / f"{name}-expops") / "project",
                                fanout_processes(partitions, seeds), FANOUT_CHAIN, FANOUT_SCRIPT)
    generate(ours)
    twin = fresh_dir(base / f"{name}-handwritten") / "project"
    (twin / "scripts").mkdir(parents=True)
    (twin / "Snakefile").write_text(textwrap.dedent(FANOUT_HANDWRITTEN.format(partitions=partitions, seeds=seeds)))
    (twin / "scripts" / "steps.py").write_text("import sys\n")
    (twin / "scripts" / "aggregate.py").write_text("")
    return ours, twin


def fanout_sizes(settings: Settings) -> list[tuple[str, int, int]]:
    """(label, partitions, seeds): about 1k and 10k nodes (tiny in --quick)."""
    if settings.quick:
        return [("~50", 10, 4)]
    return [("1k", 100, 10), ("10k", 1000, 10)]


def p2(settings: Settings) -> Section:
    section = Section()
    # A dry run is a few seconds of one core, and those vary by ±20% from run to run on a shared VM,
    # four times the 10% margin being checked: five runs per side steady the medians.
    runs = settings.runs(5 if not settings.quick else 1)
    details = []
    for label, partitions, seed_count in fanout_sizes(settings):
        seeds = list(range(41, 41 + seed_count))
        ours, twin = fanout_projects(settings.workdir, f"p2-{label}", partitions, seeds)
        jobs = {}

        def dry(project: Path, side: str) -> float:
            result = run_timed([SNAKEMAKE, "-n", "--cores", "2"], project)
            jobs[side] = _dry_run_jobs(result.output)
            return result.seconds

        samples = interleave({"ours": lambda: dry(ours, "ours"), "baseline": lambda: dry(twin, "baseline")}, runs)
        if jobs["ours"] != jobs["baseline"]:
            raise RuntimeError(f"P2 {label}: the twins plan different job counts: {jobs}")
        nodes = fanout_nodes(partitions, seed_count)
        section.rows.append(Row(
            "P2", f"`snakemake -n`, {label}-node fan-out ({nodes} nodes, {partitions}×{seed_count})",
            format_seconds(median(samples["ours"])), format_seconds(median(samples["baseline"])),
            median(samples["ours"]) / median(samples["baseline"]), P2_TARGET,
        ))
        details.append(f"- {nodes} nodes ({jobs['ours']} jobs incl. `all`): expops-smk {spread(samples['ours'])}; "
                       f"hand-written {spread(samples['baseline'])}")
        if label == fanout_sizes(settings)[-1][0]:
            section.details.append("**P2** `snakemake -n --cores 2` on load → partition → seeds → work → aggregate, "
                                   "nothing run yet (every job planned):\n\n" + "\n".join(details))
            section.rows.extend(p3(settings, ours, nodes, label))
    return section


def _dry_run_jobs(output: str) -> int:
    """The 'total' line of Snakemake's job-stats table."""
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "total" and parts[1].isdigit():
            return int(parts[1])
    raise RuntimeError("no job count in the dry run's output:\n" + output[-2000:])


def p3(settings: Settings, project: Path, nodes: int, label: str) -> list[Row]:
    """`expops-smk generate` from scratch (no workflow/ and no .expops/), CLI wall time."""
    runs = settings.runs(3 if not settings.quick else 1)

    def clean() -> None:
        shutil.rmtree(project / "workflow", ignore_errors=True)
        shutil.rmtree(project / ".expops", ignore_errors=True)

    def cli() -> float:
        clean()
        return run_timed([EXPOPS_SMK, "generate", "."], project).seconds

    def in_process() -> float:
        clean()
        code = ("import sys, time; from pathlib import Path; t = time.perf_counter(); "
                "from expops_smk.codegen.prepare import generate_project; generate_project(Path('.').resolve()); "
                "print(time.perf_counter() - t)")
        return float(run_timed([PYTHON, "-c", code], project).stdout.strip())

    samples = interleave({"cli": cli, "in_process": in_process}, runs)
    seconds = median(samples["cli"])
    return [Row(
        "P3", f"`expops-smk generate`, {label}-node expansion ({nodes} nodes), absolute",
        format_seconds(seconds), f"limit {P3_LIMIT_SECONDS:g} s", seconds / P3_LIMIT_SECONDS, 1.0,
        note=f"ratio = time / {P3_LIMIT_SECONDS:g} s; imports + generate_project in-process "
             f"{format_seconds(median(samples['in_process']))}",
    )]


def run(settings: Settings, selected: set[str]) -> Section:
    section = p1(settings) if "P1" in selected else Section()
    if "P2" in selected:
        more = p2(settings)
        section.rows.extend(more.rows)
        section.details.extend(more.details)
    return section


if __name__ == "__main__":
    sys.exit("run benchmarks/run.py")
