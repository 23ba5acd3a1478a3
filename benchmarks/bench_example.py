"""P4 the example project end to end vs ExpOps; P8 peak memory of the example's largest node.

P4 runs both tools on the same copy of ``example_project``: its scripts import
``from expops.core import log_metric, process`` (ExpOps' API, which expops-smk also accepts), so the
copy is the one project both tools can run unchanged. Each repetition starts from a fresh copy:

* expops-smk: ``expops-smk run --cores 2`` (generate + ``snakemake --cores 2``), then the same
  command again as the no-op re-run; then the same with ``EXPOPS_SMK_WARM=0`` (every job a fresh
  interpreter instead of a fork of the project's warm server), to show what warm start saves;
* ExpOps: ``expops run --local`` from the PyPI ``expops`` package, installed in a separate venv
  (``--expops-python``), with a fresh HOME (ExpOps keeps a per-project interpreter cache under
  ``~/.cache/expops-platform``), then the same command again. Each ExpOps run first prepares the
  project interpreter (``pip install --upgrade pip setuptools wheel``, an import check and a
  re-exec: the example declares no ``environment:``, so no per-project venv is created), starts a
  local Dask cluster (2 workers), runs the pipeline and shuts the cluster down. Its wall time
  includes all of that, as a user waits for it; the details split it into phases from ExpOps' log.

P8 re-executes the example's largest node (most input + output bytes) alone, with the run cache
emptied so its function really runs, and reads its peak RSS from ``wait4``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from common import (
    EXPOPS_SMK,
    PYTHON,
    REPO,
    WARM_START_VARIABLE,
    Row,
    Section,
    Settings,
    child_env,
    copy_tree,
    format_bytes,
    format_seconds,
    fresh_dir,
    median,
    run_timed,
    spread,
    warm_start_off,
)

EXAMPLE = REPO / "example_project"
PROJECT_ID = "breast-cancer"
COLD_TARGET = 0.8
NOOP_TARGET = 0.5
EXPOPS_IMPORT = "from expops.core import log_metric, process"


QUICK_CONFIG = """\
metadata: {name: quick, version: 0.1.0}
scripts: {model: src/model.py}
reproducibility: {random_seed: 42}
experiment:
  parameters: {n: 100}
  pipeline:
    process_adjlist: |
      make work
      work summarize
    processes:
      - {name: make, code: make}
      - {name: work, code: work}
      - {name: summarize, code: summarize}
"""

QUICK_SCRIPT = f"""\
{EXPOPS_IMPORT}


@process()
def make(n):
    return {{"values": list(range(n))}}


@process()
def work(values):
    log_metric("total", sum(values))
    return {{"doubled": [2 * v for v in values]}}


@process()
def summarize(doubled):
    return {{"total": sum(doubled)}}
"""


def make_shared_copy(destination: Path, quick: bool) -> Path:
    """The example with ExpOps' import line; with --quick, a 3-node project without scikit-learn."""
    fresh_dir(destination)
    if quick:
        (destination / "configs").mkdir()
        (destination / "configs" / "project_config.yaml").write_text(QUICK_CONFIG)
        (destination / "src").mkdir()
        (destination / "src" / "model.py").write_text(QUICK_SCRIPT)
        return destination
    for name in ("configs", "data", "src", "requirements.txt"):
        source = EXAMPLE / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, destination / name)
    for script in (destination / "src").glob("*.py"):
        text = script.read_text()
        script.write_text(re.sub(r"^from expops_smk import [\w, ]+$", EXPOPS_IMPORT, text, flags=re.M))
    if EXPOPS_IMPORT not in (destination / "src" / "model.py").read_text():
        raise RuntimeError("P4: the example's import line changed; update make_shared_copy")
    return destination


# -- expops-smk ---------------------------------------------------------------------------------

def outcomes(project: Path, since: float) -> dict[str, str]:
    """Node label -> outcome for every ``_run.json`` written after ``since``."""
    found: dict[str, str] = {}
    for path in (project / "results").rglob("_run.json"):
        if path.stat().st_mtime >= since:
            record = json.loads(path.read_text())
            found[record["label"]] = record["outcome"]
    return found


@dataclass
class Runs:
    cold: list[float] = field(default_factory=list)
    noop: list[float] = field(default_factory=list)
    cold_executed: list[int] = field(default_factory=list)
    noop_executed: list[int] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)
    noop_phases: list[dict[str, float]] = field(default_factory=list)


def run_ours(template: Path, workspace: Path, runs: Runs, env: dict[str, str] | None = None) -> Path:
    project = copy_tree(template, fresh_dir(workspace) / PROJECT_ID)
    command = [EXPOPS_SMK, "run", "--cores", "2"]
    start = time.time()
    cold = run_timed(command, project, env=env)
    executed = sum(1 for outcome in outcomes(project, start).values() if outcome == "executed")
    start = time.time()
    noop = run_timed(command, project, env=env)
    if "Nothing to be done" not in noop.output:
        raise RuntimeError(f"P4: expops-smk's second run was not a no-op:\n{noop.output[-2000:]}")
    runs.cold.append(cold.seconds)
    runs.noop.append(noop.seconds)
    runs.cold_executed.append(executed)
    runs.noop_executed.append(len(outcomes(project, start)))
    return project


# -- ExpOps -------------------------------------------------------------------------------------

_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - ")


def _log_times(log: Path, needle: str) -> list[float]:
    times = []
    for line in log.read_text(errors="replace").splitlines():
        match = _LOG_TIME.match(line)
        if match and needle in line:
            times.append(datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return times


def expops_env(home: Path, quick: bool) -> dict[str, str]:
    """ExpOps' environment: its own venv, a private HOME, nothing of this repository or of our venv.

    --quick sets ExpOps' own MLOPS_ENV_READY=1, which skips its interpreter preparation (a pip
    call over the network and a re-exec): a smoke run should not depend on the network.
    """
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV") and not key.startswith("MLOPS_")}
    env["HOME"] = str(home)
    if quick:
        env["MLOPS_ENV_READY"] = "1"
    return env


def run_expops_once(expops: Path, project: Path, home: Path, quick: bool) -> tuple[float, int, dict[str, float]]:
    """(wall seconds, processes executed, phase seconds) of one ``expops run --local``."""
    start = time.time()
    result = run_timed([str(expops), "run", "--local"], project, env=expops_env(home, quick))
    end = time.time()
    match = re.search(r"^Project log: (.+)$", result.stdout, flags=re.M)
    if result.returncode != 0 or match is None or "Pipeline completed successfully" not in result.output:
        raise RuntimeError(f"P4: expops run failed (exit {result.returncode}):\n{result.output[-3000:]}")
    log = Path(match.group(1).strip())
    text = log.read_text(errors="replace")
    executed = sum(1 for line in text.splitlines() if "[WorkerLogs]" in line and line.rstrip().endswith("] BEGIN"))
    started = _log_times(log, "Running project")[0]
    finished = _log_times(log, "Pipeline completed successfully")[-1]
    phases = {"environment": started - start, "pipeline": finished - started, "shutdown": end - finished}
    return result.seconds, executed, phases


def run_theirs(expops: Path, template: Path, workspace: Path, runs: Runs, quick: bool) -> None:
    fresh_dir(workspace)
    project = copy_tree(template, workspace / PROJECT_ID)
    home = fresh_dir(workspace / "home")
    seconds, executed, phases = run_expops_once(expops, project, home, quick)
    runs.cold.append(seconds)
    runs.cold_executed.append(executed)
    runs.phases.append(phases)
    seconds, executed, phases = run_expops_once(expops, project, home, quick)
    runs.noop.append(seconds)
    runs.noop_executed.append(executed)
    runs.noop_phases.append(phases)


def p4(settings: Settings) -> tuple[Section, Path]:
    template = make_shared_copy(settings.workdir / "template" / PROJECT_ID, settings.quick)
    runs = settings.runs(3 if not settings.quick else 1)
    ours, ours_cold, theirs = Runs(), Runs(), Runs()
    expops = settings.expops_python.with_name("expops") if settings.expops_python else None
    last = template
    for index in range(runs):
        last = run_ours(template, settings.workdir / f"ours-{index}", ours)
        run_ours(template, settings.workdir / f"ours-cold-{index}", ours_cold, warm_start_off())
        if expops is not None:
            run_theirs(expops, template, settings.workdir / f"expops-{index}", theirs, settings.quick)
    section = Section()
    nodes = ours.cold_executed[0]
    floor_seconds = import_floor(last, runs)[0]
    if expops is None:
        for label, values in (("cold", ours.cold), ("no-op re-run", ours.noop)):
            section.rows.append(Row("P4", f"example end to end, {label}, --cores 2 ({nodes} nodes)",
                                    format_seconds(median(values)), "ExpOps not installed", None,
                                    COLD_TARGET if label == "cold" else NOOP_TARGET,
                                    note="pass --expops-python (a venv with `pip install expops==0.1.27`)"))
        return section, last
    cold_pipeline = median([p["pipeline"] for p in theirs.phases])
    section.rows.append(Row(
        "P4", f"example end to end, cold, --cores 2 ({nodes} nodes) vs `expops run --local`",
        format_seconds(median(ours.cold)), format_seconds(median(theirs.cold)),
        median(ours.cold) / median(theirs.cold), COLD_TARGET,
        note=f"vs ExpOps' pipeline phase alone (no env prep, no Dask shutdown): "
             f"{median(ours.cold) / cold_pipeline:.2f}",
    ))
    section.rows.append(Row(
        "P4", "same, warm start off (every job a fresh interpreter)",
        format_seconds(median(ours_cold.cold)), format_seconds(median(theirs.cold)),
        median(ours_cold.cold) / median(theirs.cold), None,
    ))
    section.rows.append(Row(
        "P4", "example, no-op re-run, --cores 2, vs `expops run --local` again",
        format_seconds(median(ours.noop)), format_seconds(median(theirs.noop)),
        median(ours.noop) / median(theirs.noop), NOOP_TARGET,
        note=f"ExpOps re-executed {median(theirs.noop_executed):.0f} of {median(theirs.cold_executed):.0f} "
             f"processes, expops-smk {median(ours.noop_executed):.0f}",
    ))

    def phase_text(phases: list[dict[str, float]]) -> str:
        return ", ".join(f"{name} {median([p[name] for p in phases]):.1f} s" for name in phases[0])

    section.details.append(
        f"**P4** both tools on one copy of `example_project` whose script imports `{EXPOPS_IMPORT}`"
        f"{' (--quick: a 3-node project instead, ExpOps with MLOPS_ENV_READY=1)' if settings.quick else ''}; fresh copy (and, for ExpOps, "
        "a fresh HOME) per repetition, runs interleaved:\n\n"
        f"- expops-smk `expops-smk run --cores 2` (generate + snakemake): cold {spread(ours.cold)}, "
        f"executed {ours.cold_executed}; no-op {spread(ours.noop)}, jobs run {ours.noop_executed}\n"
        f"- the same with `{WARM_START_VARIABLE}=0`: cold {spread(ours_cold.cold)}, executed "
        f"{ours_cold.cold_executed}; no-op {spread(ours_cold.noop)}\n"
        f"- import floor of one expops-smk job (a process importing the runtime and the project's script, "
        f"for the example pandas + scikit-learn): {format_seconds(floor_seconds)}; × {nodes} jobs / 2 cores = "
        f"{floor_seconds * nodes / 2:.1f} s of a run without warm start goes to imports. With it, the project's "
        "warm server pays that once and forks every later job, as ExpOps' two long-lived Dask workers pay it "
        "once each\n"
        f"- ExpOps 0.1.27 `expops run --local`: cold {spread(theirs.cold)}, processes run {theirs.cold_executed}; "
        f"no-op {spread(theirs.noop)}, processes run again {theirs.noop_executed}\n"
        f"- ExpOps phases (medians), cold: {phase_text(theirs.phases)}; no-op: {phase_text(theirs.noop_phases)}. "
        "'environment' = start until its log says 'Running project': `pip install --upgrade pip setuptools "
        "wheel` into the project interpreter (network), import check, re-exec. No per-project venv is created "
        "because the example declares no `environment:` (with one, ExpOps creates it and pip-installs the "
        "requirements plus expops itself on the first run, about a minute on this kind of machine; not "
        "included here). 'pipeline' = until 'Pipeline completed successfully' (Dask cluster start included); "
        "'shutdown' = Dask cluster teardown until the command returns.\n"
        + (f"\n- ExpOps' no-op re-runs {median(theirs.noop_executed):.0f} of {median(theirs.cold_executed):.0f} "
           "processes: its cache manifests are named after the XPath node ids, which exceed 255 bytes inside the "
           "fan-out ('Failed to cache manifest ... File name too long' in its log), so only the nodes outside the "
           "fan-out are cached." if median(theirs.noop_executed) else "")
    )
    return section, last


# -- P8 -----------------------------------------------------------------------------------------

FLOOR_CODE = "import expops_smk.runtime, pyarrow.parquet, pandas"
SCRIPT_FLOOR_CODE = ("import sys; sys.path[:0] = ['src', '.']; from expops_smk.runtime.user_scripts import install_expops_alias; "
                     "install_expops_alias(); import expops_smk.runtime, model")
"""What a job imports before doing any work: the runtime and, for a node with a function, the
project's script (the example's imports pandas and scikit-learn); a built-in split reads its
Parquet input into pandas instead. Its time and memory are the floor of a per-process job."""


def import_floor(project: Path, runs: int, user_code: bool = True) -> tuple[float, float]:
    """(median seconds, median peak RSS bytes) of a process that only does a job's imports."""
    env = child_env({"PYTHONHASHSEED": "0"})
    code = SCRIPT_FLOOR_CODE if user_code else FLOOR_CODE
    results = [run_timed([PYTHON, "-c", code], project, env=env) for _ in range(runs)]
    return median([r.seconds for r in results]), median([r.max_rss_kb * 1024 for r in results])


def _manifest_bytes(folder: Path) -> int:
    try:
        artifacts = json.loads((folder / "_outputs.json").read_text())["artifacts"]
    except FileNotFoundError:
        return 0
    return sum(artifact["size"] for artifact in artifacts.values())


def p8(settings: Settings, project: Path) -> Section:
    """Peak RSS of the node with the most input + output bytes, and of the largest one running user code.

    Each is executed alone with the run cache emptied, so that its function really runs. Its floor
    is a process that imports what that node imports and does nothing: the runtime, Parquet and
    pandas, plus the project's script (scikit-learn) for a node with a function; built-in splits
    never import the script.
    """
    from expops_smk.config.project import load_project
    from expops_smk.graph.expansion import build_graph

    config = load_project(project)
    graph = build_graph(config)
    sizes = []
    for node in graph.nodes():
        layout = graph.layouts[node.process]
        out_bytes = sum(_manifest_bytes(project / loc.results_dir) for loc in layout.output_locations(node))
        in_bytes = sum(_manifest_bytes(project / item.location.results_dir) for item in graph.inputs(node))
        if not layout.spec.parents and config.data_path is not None:
            in_bytes += config.data_path.stat().st_size
        sizes.append((in_bytes + out_bytes, in_bytes, out_bytes, node))
    sizes.sort(key=lambda item: -item[0])
    largest = sizes[0]
    with_code = next(item for item in sizes if graph.layouts[item[3].process].spec.function is not None)
    work = copy_tree(project, project.parent / "p8")
    env = child_env({"PYTHONHASHSEED": "0"})
    section = Section()
    lines = []
    for kind, (total, in_bytes, out_bytes, node) in (("largest node", largest), ("largest node running user code", with_code)):
        if kind != "largest node" and node == largest[3]:
            continue
        args = [f"--partition={node.partition_value}"] if node.partition_value else []
        args += [f"--seed={node.seed_value}"] if node.seed_value else []
        command = [PYTHON, "-m", "expops_smk.runtime", node.process, *args, "--log", "logs/p8.log"]
        location = graph.layouts[node.process].output_locations(node)[0]
        rss = []
        for _ in range(settings.runs(1 if settings.quick else 3)):
            shutil.rmtree(work / ".expops" / "runs", ignore_errors=True)
            rss.append(run_timed(command, work, env=env).max_rss_kb * 1024)
            record = json.loads((work / location.results_dir / "_run.json").read_text())
            if record["outcome"] != "executed":
                raise RuntimeError(f"P8: {node.label} was {record['outcome']}, not executed")
        user_code = graph.layouts[node.process].spec.function is not None
        peak, base = median(rss), import_floor(work, len(rss), user_code)[1]
        section.rows.append(Row(
            "P8", f"peak RSS of the example's {kind} ({node.label}) vs its data (inputs + outputs on disk)",
            format_bytes(peak), format_bytes(total), peak / total, None,
            note=f"above its import floor ({format_bytes(base)}): {format_bytes(peak - base)} = "
                 f"{(peak - base) / total:.2f}× its data",
        ))
        lines.append(f"- {kind}: `{' '.join(command[1:])}`: peak {format_bytes(peak)} (median of {len(rss)}); "
                     f"inputs {format_bytes(in_bytes)} + outputs {format_bytes(out_bytes)}; import floor "
                     f"{format_bytes(base)} ({'the runtime and the script' if user_code else 'the runtime, Parquet and pandas'})")
    section.details.append(
        "**P8** nodes executed alone with the run cache emptied (so the function runs), peak RSS from wait4; "
        "data = Parquet/pickle bytes on disk of the node's inputs and outputs (plus the raw data file for a "
        "source node):\n\n" + "\n".join(lines) + "\n- largest nodes by data: "
        + ", ".join(f"{n.label} {format_bytes(t)}" for t, _, _, n in sizes[:5])
    )
    return section


def run(settings: Settings, selected: set[str]) -> Section:
    if "P4" in selected or "P8" in selected:
        section, project = p4(settings) if "P4" in selected else (Section(), None)
        if project is None:
            template = make_shared_copy(settings.workdir / "template" / PROJECT_ID, settings.quick)
            project = run_ours(template, settings.workdir / "ours-p8", Runs())
        if "P8" in selected:
            more = p8(settings, project)
            section.rows.extend(more.rows)
            section.details.extend(more.details)
        return section
    return Section()
