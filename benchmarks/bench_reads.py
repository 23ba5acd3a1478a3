"""P5 (files read at run time, issue 13): what recording and checking those files costs.

Two ratios, each against the same thing measured without the feature in the same run:

- the audit hook: one node whose function opens 1,000 small files, run as a job's command (a fresh
  interpreter, executing: ``EXPOPS_SMK_NO_CACHE=1``), with the recorder active (as shipped) vs
  absent (the driver puts no-op stand-ins for the reads modules in ``sys.modules``: not imported,
  no audit hook installed, nothing recorded). The recorder's cost in the job is its modules'
  import, the hook (one append per open), its set-up, sorting the opens out by string operations,
  one ``stat`` per folder and the pending record; the second row gives the cost in a warm interpreter (a forked
  job: imports paid; the hook is installed on both sides there, since a hook cannot be removed,
  and does nothing while no call is recorded), with either side first in every other repetition.
  Both rows compare CPU time (user + system; the job's own, start-up included, from
  ``getrusage``): on this shared 2-core machine the wall time of a 30 ms node moves by ±20% with the
  load, as waiting for a CPU is counted in it, and hides a 2% cost; wall ratios are in the notes.
  The details give what sealing the record costs later, outside the job (at the next parse): with
  prepare's stat cache, and the first time (hashing).
- ``prepare()``: ``snakemake -n`` on the 10k-node fan-out of P2 where every ``work`` node has a
  recorded read-set (its partition's file and one shared file: 10,000 records, 1,001 files), vs
  the same project without records. The details give the first parse after the records appeared
  (no stat cache yet: every record read, every file hashed once).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from bench_jobs import FANOUT_CHAIN, FANOUT_SCRIPT, fanout_nodes, fanout_processes, generate, write_expops_project
from common import (PYTHON, SNAKEMAKE, Row, Section, Settings, child_env, format_seconds, fresh_dir, interleave,
                    median, run_timed, spread)

HOOK_TARGET = 1.02
PREPARE_TARGET = 1.1

SCAN_SCRIPT = '''
    def scan(folder, count):
        total = 0
        for index in range(count):
            with open(f"{folder}/f{index}.csv", encoding="utf-8") as handle:
                total += len(handle.read())
        return {"total": total}
'''

DRIVER = '''
import contextlib, sys, types
if sys.argv[1] == "off":  # the recorder's modules are never imported: no audit hook, nothing recorded
    off = types.ModuleType("no_reads")
    off.__dict__.update(
        INITIAL_TOKEN="files-read:none", recorder_for=lambda *args: types.SimpleNamespace(pending=lambda: None),
        recording=contextlib.nullcontext, Pending=lambda *args: None, Reads=dict, marker_token=lambda *args: "files-read:none",
        job_key=lambda *args: "/".join(filter(None, args)), chart_key=lambda chart: chart, changed_reads=lambda *args: [],
        read_run_reads=lambda *args: {}, write_job_record=lambda *args: None, write_pending_reads=lambda *args: None,
        run_record_path=lambda root, key: root / "no-reads" / key)
    for name in ("runtime.reads", "store.pending_reads", "store.read_records", "store.read_markers"):
        sys.modules[f"expops_smk.{name}"] = off
import resource
from expops_smk.runtime.node_job import main
code = main(["scan", "--log", "logs/direct.log"])
usage = resource.getrusage(resource.RUSAGE_SELF)
print(f"cpu={usage.ru_utime + usage.ru_stime:.6f}")  # the whole job's, start-up included
sys.exit(code)
'''

IN_PROCESS = '''
import contextlib, sys, time, types
from pathlib import Path
from expops_smk.runtime import node_run
from expops_smk.store.read_records import read_job_record
shipped = node_run.recorder_for, node_run.recording, node_run.write_pending_reads
off = (lambda *args: types.SimpleNamespace(pending=lambda: None), lambda recorder: contextlib.nullcontext(recorder),
       lambda *args: None)
root = Path(".").resolve()
samples = {"off": [], "on": [], "off_cpu": [], "on_cpu": [], "first": [], "seal": []}
for repetition in range(int(sys.argv[1]) + 1):  # the first round only warms up (imports, caches)
    for mode in ("off", "on") if repetition % 2 else ("on", "off"):  # either goes first as often
        node_run.recorder_for, node_run.recording, node_run.write_pending_reads = shipped if mode == "on" else off
        with open("logs/direct.log", "w", encoding="utf-8") as log:
            started, cpu = time.perf_counter(), time.process_time()
            node_run.NodeRun(root, "scan", "", "", log).run()
            if repetition:
                samples[mode].append(time.perf_counter() - started)
                samples[mode + "_cpu"].append(time.process_time() - cpu)
    started = time.perf_counter()
    _, known = read_job_record(root, "scan")  # the first seal: every file hashed
    first = time.perf_counter()
    read_job_record(root, "scan", known)  # with prepare's stat cache: stat only
    if repetition:
        samples["first"].append(first - started)
        samples["seal"].append(time.perf_counter() - first)
print(" ".join(f"{mode}={sorted(values)[len(values) // 2]:.6f}" for mode, values in samples.items()))
'''


SEAL_AT_RUN_END = '''
import statistics, sys, time
from pathlib import Path
from expops_smk.codegen import read_tokens
from expops_smk.runtime.reads import recorder_for, recording
from expops_smk.store.read_records import INITIAL_TOKEN, write_pending_reads
root, jobs = Path(".").resolve(), int(sys.argv[1])
writes = []
for job in range(jobs):  # what the jobs of a run leave: each read its partition's file and the shared one
    recorder = recorder_for(root, [])
    with recording(recorder):
        for name in ("shared.csv", f"p{job % 1000}.csv"):
            with open(root / "data" / name, "rb") as handle:
                handle.read()
    pending = recorder.pending()
    started = time.perf_counter()
    write_pending_reads(root, f"work/p{job % 1000}/s{job // 1000}", INITIAL_TOKEN, [f"run{job}"], pending)
    writes.append(time.perf_counter() - started)
started = time.perf_counter()
read_tokens.refresh_tokens(root)  # onsuccess: seal them all, write them back
sealed = time.perf_counter() - started
started = time.perf_counter()
read_tokens.refresh_tokens(root)  # the next parse
print(f"write={statistics.median(writes):.6f} seal={sealed:.6f} parse={time.perf_counter() - started:.6f}")
'''


def seal_detail(settings: Settings) -> str:
    """What the end of a run pays to seal the pending records its jobs left (``onsuccess``)."""
    jobs = 200 if settings.quick else 10_000
    root = fresh_dir(settings.workdir / "seal")
    (root / "data").mkdir()
    (root / "data" / "shared.csv").write_text("shared\n" * 100, encoding="utf-8")
    for index in range(min(jobs, 1000)):
        (root / "data" / f"p{index}.csv").write_text(f"{index}\n" * 10, encoding="utf-8")
    time.sleep(0.1)  # the files' ctimes well before the jobs' calls
    load = os.getloadavg()[0]
    out = dict(item.split("=") for item in run_timed([PYTHON, "-c", SEAL_AT_RUN_END, str(jobs)], root).stdout.split())
    return (f"- sealing at the run's end: {jobs:,} pending job records (2 files each, {min(jobs, 1000) + 1:,} distinct "
            f"files) left by the jobs (each paid {float(out['write']) * 1e3:.3f} ms to write its record, median), "
            f"sealed and written back by `onsuccess` in {format_seconds(float(out['seal']))}; the next parse "
            f"{format_seconds(float(out['parse']))} (load average {load:.1f})")


def hook_project(base: Path, files: int) -> Path:
    root = write_expops_project(fresh_dir(base / "hook") / "project", [{"name": "scan"}], [], SCAN_SCRIPT)
    config = root / "configs" / "project_config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "pipeline:", f"parameters: {{folder: data, count: {files}}}\n  pipeline:", 1), encoding="utf-8")
    (root / "data").mkdir()
    for index in range(files):
        (root / "data" / f"f{index}.csv").write_text(f"{index},{index * 2}\n", encoding="utf-8")
    generate(root)
    run_timed([SNAKEMAKE, "--cores", "1"], root)
    return root


def hook_rows(settings: Settings) -> tuple[list[Row], str]:
    files = 100 if settings.quick else 1000
    root = hook_project(settings.workdir, files)
    env = child_env({"PYTHONHASHSEED": "0", "EXPOPS_SMK_NO_CACHE": "1"})
    runs = settings.runs(9 if not settings.quick else 1)

    def job(mode: str) -> tuple[float, float]:
        timed = run_timed([PYTHON, "-c", DRIVER, mode], root, env=env)
        return timed.seconds, float(timed.stdout.split("cpu=")[1])

    pairs = interleave({"on": lambda: job("on"), "off": lambda: job("off")}, runs)
    samples = {mode: [wall for wall, _ in pairs[mode]] for mode in pairs}
    cpu = {mode: [seconds for _, seconds in pairs[mode]] for mode in pairs}
    recorded = len((root / ".expops/reads/jobs/scan.json").read_bytes().partition(b"\n")[2].split(b"\0"))  # paths after the JSON
    if recorded != files:
        raise RuntimeError(f"P5 reads: the node recorded {recorded} of {files} files")
    warm = {key: float(value) for key, value in (item.split("=") for item in run_timed(
        [PYTHON, "-c", IN_PROCESS, str(runs * 5)], root, env=env).stdout.split())}
    on, off = median(cpu["on"]), median(cpu["off"])
    warm_on, warm_off = warm["on_cpu"], warm["off_cpu"]
    rows = [
        Row("P5", f"audit hook: a node job opening {files:,} small files, recorder on vs off (fresh interpreter), "
                  f"CPU time — wall time: {median(samples['on']) / median(samples['off']):.3f}",
            format_seconds(on), format_seconds(off), on / off, HOOK_TARGET),
        Row("P5", "same node run in a warm interpreter (as in a forked job: imports paid, no start-up), CPU time",
            format_seconds(warm_on), format_seconds(warm_off), warm_on / warm_off, HOOK_TARGET,
            note=f"+{(warm_on - warm_off) / files * 1e6:.2f} µs per file; wall time: {warm['on'] / warm['off']:.3f}"),
    ]
    detail = (f"- audit hook, {files} small files read by one node (CPU time: user + system, which waiting for a "
              f"busy CPU does not inflate, as it does the wall time): job with the recorder {spread(cpu['on'])} CPU, "
              f"{spread(samples['on'])} wall; without {spread(cpu['off'])} CPU, {spread(samples['off'])} wall; "
              f"in one warm interpreter (medians of {runs * 5}): {format_seconds(warm_off)} CPU "
              f"({format_seconds(warm['off'])} wall) without, {format_seconds(warm_on)} CPU "
              f"({format_seconds(warm['on'])} wall) with; sealing the record later, outside the job: "
              f"{format_seconds(warm['seal'])} with prepare's stat cache (a stat per file), "
              f"{format_seconds(warm['first'])} the first time (every file hashed, "
              f"{warm['first'] / files * 1e6:.0f} µs per file)")
    return rows, detail


def write_records(root: Path, partitions: int, seeds: list[int]) -> None:
    """A recorded read-set for every work node, as a real run would leave: its partition's file + a shared one."""
    from expops_smk.store.pending_reads import hash_path
    from expops_smk.store.read_records import INITIAL_TOKEN, write_job_record

    def digest(path: Path) -> dict[str, list]:
        st = os.stat(path)
        return {path.relative_to(root).as_posix(): [st.st_size, st.st_mtime_ns, hash_path(path, st.st_size)]}

    data = root / "data"
    data.mkdir(exist_ok=True)
    (data / "shared.csv").write_text("shared\n" * 100, encoding="utf-8")
    for index in range(1, partitions + 1):
        (data / f"p{index}.csv").write_text(f"{index}\n" * 10, encoding="utf-8")
    shared = digest(data / "shared.csv")
    for index in range(1, partitions + 1):
        reads = {**shared, **digest(data / f"p{index}.csv")}
        for seed in seeds:
            write_job_record(root, f"work/p{index}/s{seed}", INITIAL_TOKEN, reads)


def prepare_rows(settings: Settings) -> tuple[list[Row], str]:
    partitions, seed_count = (20, 5) if settings.quick else (1000, 10)
    seeds = list(range(41, 41 + seed_count))
    nodes = fanout_nodes(partitions, seed_count)
    base = fresh_dir(settings.workdir / "prepare")
    plain = write_expops_project(base / "plain", fanout_processes(partitions, seeds), FANOUT_CHAIN, FANOUT_SCRIPT)
    generate(plain)
    recorded = base / "recorded"
    shutil.copytree(plain, recorded, symlinks=True)
    generate(recorded)
    write_records(recorded.resolve(), partitions, seeds)
    first = run_timed([SNAKEMAKE, "-n", "--cores", "2"], recorded).seconds  # builds the stat cache
    runs = settings.runs(3 if not settings.quick else 1)
    samples = interleave({
        "recorded": lambda: run_timed([SNAKEMAKE, "-n", "--cores", "2"], recorded).seconds,
        "plain": lambda: run_timed([SNAKEMAKE, "-n", "--cores", "2"], plain).seconds,
    }, runs)
    ours, baseline = median(samples["recorded"]), median(samples["plain"])
    inside = interleave({"recorded": lambda: _prepare_seconds(recorded), "plain": lambda: _prepare_seconds(plain)},
                        settings.runs(5))
    added = median(inside["recorded"]) - median(inside["plain"])
    row = Row("P5", f"`snakemake -n` with a recorded read-set per work node ({nodes} nodes, "
                    f"{partitions * seed_count} read-sets, {partitions + 1} files) vs without",
              format_seconds(ours), format_seconds(baseline), ours / baseline, PREPARE_TARGET,
              note=f"prepare() itself, timed inside the parse: {format_seconds(median(inside['recorded']))} vs "
                   f"{format_seconds(median(inside['plain']))}, +{added / baseline:.1%} of the dry run")
    detail = (f"- prepare() on {nodes} nodes: `snakemake -n` with read-sets {spread(samples['recorded'])}, "
              f"without {spread(samples['plain'])}; the first parse after the records appeared (every record "
              f"read, every file hashed, stat cache written) {format_seconds(first)}")
    return [row], detail


def _prepare_seconds(project: Path) -> float:
    """What the Snakefile's prepare() call costs at a parse, without Snakemake's own work around it."""
    code = ("import time; from expops_smk.codegen.prepare import prepare; t = time.perf_counter(); "
            "prepare('workflow'); print(time.perf_counter() - t)")
    return float(run_timed([PYTHON, "-c", code], project).stdout.strip())


def run(settings: Settings, selected: set[str]) -> Section:
    section = Section()
    details = []
    for measure in (hook_rows, prepare_rows):
        rows, detail = measure(settings)
        section.rows.extend(rows)
        details.append(detail)
        if measure is hook_rows:
            details.append(seal_detail(settings))
    section.details.append("**P5, files read at run time** (issue 13; `bench_reads.py`):\n\n" + "\n".join(details))
    return section


if __name__ == "__main__":
    sys.exit("run benchmarks/run.py")
