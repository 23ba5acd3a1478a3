"""Projects, process control and integrity checks for the reliability tests (issue 8).

The crash project is a 35-node fan-out (3 partitions x 3 seeds x 3 processes per branch, plus the
load/split, seed splits and two aggregation levels) whose functions sleep a random 0.05-0.3 s, so
a kill at a random moment lands in every phase of a job: Python start-up, user code, writing
artifacts, the manifest, the run record. Outputs are deterministic (the sleep draws from
``SystemRandom``, never from the seeded RNGs), so any run that completes must reproduce a clean
run's content hashes exactly.

Processes are found through ``/proc`` (no psutil): a run is started in its own session, and
killing it means SIGKILL to its process group plus any descendant that left the group, which is
what a power cut or the OOM killer does to a whole job tree.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from e2e import CALLS_HELPER, SNAKEMAKE, Project, _env, _limit_memory
from projects import write_project

from expops_smk.layout import JOB_CLIENT, MANIFEST as MANIFEST_NAME
from expops_smk.store.artifact_store import Store
from expops_smk.store.hashing import hash_file
from expops_smk.store.maintenance import verify_artifacts

EXPOPS_SMK = str(Path(SNAKEMAKE).with_name("expops-smk"))

SEEDS = (41, 42, 43)

CRASH_CONFIG = """\
metadata: {name: crash}
scripts: {main: src/main.py}
reproducibility: {random_seed: 7}
data: {path: data/raw.csv}
experiment:
  pipeline:
    process_adjlist: |
      load seeds
      seeds prep
      prep train evaluate
      train evaluate
      evaluate per_partition
      per_partition final
    processes:
      - name: load
        code: load
        data_parallelism: {size: 3}
      - name: seeds
        code: seeds
        seed_parallelism: {seeds: [41, 42, 43]}
      - name: prep
      - name: train
      - name: evaluate
      - name: per_partition
        seed_aggregation: true
      - name: final
        data_aggregation: true
"""

CRASH_NODE_COUNT = 1 + 3 + 9 + 9 + 9 + 3 + 1

RAW_CSV = "id,x\n" + "".join(f"{i},{i * 1.5}\n" for i in range(1, 31))

BLOB_BYTES = 3_000_000
"""prep returns a few MB so that a kill often lands while an artifact is being written."""

CRASH_MAIN = CALLS_HELPER + '''
import os
import random
import time


def nap():
    """A random pause that leaves the seeded RNGs alone, so outputs stay deterministic (plus
    CRASH_NAP_SECONDS, for a run that must still be going when another starts)."""
    time.sleep(random.SystemRandom().uniform(0.05, 0.3) + float(os.environ.get("CRASH_NAP_SECONDS", "0")))


def load():
    called("load")
    nap()
    with open("data/raw.csv", encoding="utf-8") as handle:
        rows = [line.split(",") for line in handle.read().splitlines()[1:]]
    return {"data": [(int(a), float(b)) for a, b in rows]}


def seeds(data, context):
    called(context.label)
    nap()
    return {"data": data}


def prep(data, random_seed, context):
    called(context.label)
    nap()
    return {"features": [(i, x * 2 + random_seed) for i, x in data],
            "blob": random.Random(random_seed * 1000 + data[0][0]).randbytes(%(blob)d)}


def train(features, blob, context):
    called(context.label)
    nap()
    return {"model": {"w": sum(x for _, x in features) / len(features), "n": len(blob), "head": blob[:8].hex()}}


def evaluate(model, features, context):
    called(context.label)
    nap()
    return {"score": round(model["w"] * len(features), 6)}


def per_partition(score, context):
    called(context.label)
    nap()
    return {"scores": score}


def final(scores):
    called("final")
    nap()
    return {"all": scores}
''' % {"blob": BLOB_BYTES}


def write_crash_project(root: Path) -> Project:
    """Write the crash project into ``root`` and generate its workflow."""
    write_project(root, CRASH_CONFIG, CRASH_MAIN, script_path="src/main.py", files={"data/raw.csv": RAW_CSV})
    project = Project(root)
    project.generate()
    return project


# -- processes -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Proc:
    """A process seen in /proc; ``started`` (clock ticks since boot) guards against PID reuse."""

    pid: int
    ppid: int
    started: int
    cmdline: str

    @classmethod
    def read(cls, pid: int) -> Proc | None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces and ')'
        return cls(pid, int(fields[1]), int(fields[19]), cmdline.replace(b"\0", b" ").decode(errors="replace"))

    def alive(self) -> bool:
        current = Proc.read(self.pid)
        return current is not None and current.started == self.started and not has_exited(self.pid)

    def kill(self) -> None:
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def has_exited(pid: int) -> bool:
    """Gone, or a zombie its parent has not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def descendants(root_pid: int) -> list[Proc]:
    """Every live process below ``root_pid``, found by walking parent links in /proc."""
    table = [proc for name in os.listdir("/proc") if name.isdigit() and (proc := Proc.read(int(name)))]
    children: dict[int, list[Proc]] = {}
    for proc in table:
        children.setdefault(proc.ppid, []).append(proc)
    found: list[Proc] = []
    stack = [root_pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child.pid)
    return found


def runtime_jobs(root_pid: int) -> list[Proc]:
    """The job processes below ``root_pid`` (not their shells): ``python -S .expops/bin/job.py runtime``
    (killing one makes its warm server kill the node it forked), the cold launcher it became
    (``python -m expops_smk.runtime.launch --cold runtime``) or, cold, the runtime."""
    return [proc for proc in descendants(root_pid)
            if (f"{JOB_CLIENT} runtime " in proc.cmdline or "-m expops_smk.runtime " in proc.cmdline
                or ("-m expops_smk.runtime.launch " in proc.cmdline and " runtime " in proc.cmdline))
            and Path(proc.cmdline.split(" ")[0]).name.startswith("python") and not has_exited(proc.pid)]


def warm_processes(root: Path) -> list[Proc]:
    """The project's warm server and the nodes forked from it (they share its command line)."""
    found = []
    for name in os.listdir("/proc"):
        proc = Proc.read(int(name)) if name.isdigit() else None
        if proc is not None and "-m expops_smk.runtime.warm_server" in proc.cmdline and not has_exited(proc.pid):
            try:
                if Path(f"/proc/{name}/cwd").resolve() == root.resolve():
                    found.append(proc)
            except OSError:
                pass  # exited meanwhile
    return found


def start_snakemake(project: Project, *args: str, output: IO[str],
                    env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``snakemake --cores 2 ARGS`` in its own session (so it can be killed as a group)."""
    return subprocess.Popen([SNAKEMAKE, "--cores", "2", *args], cwd=project.root, env={**_env(), **(env or {})}, text=True,
                            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_limit_memory)


def kill_run(process: subprocess.Popen[str], root: Path) -> None:
    """SIGKILL a run started by ``start_snakemake``: its process group, every descendant, and the
    project's warm server with the nodes it forked (as a crash of the machine would), waiting until
    all are gone so that the next run cannot meet a node of this one still writing."""
    tree = descendants(process.pid)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for proc in tree:  # anything that moved to another group or session
        proc.kill()
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(proc.alive() for proc in tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop_warm_processes(root)


def stop_warm_processes(root: Path) -> None:
    """SIGKILL the project's warm server and its nodes by pid; return once all are gone."""
    deadline = time.monotonic() + 30
    while remaining := warm_processes(root):
        assert time.monotonic() < deadline, f"warm processes survive SIGKILL: {remaining}"
        for proc in remaining:
            proc.kill()
        time.sleep(0.05)


def wait_for(condition, timeout: float, poll: float = 0.02) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return bool(condition())


# -- integrity -------------------------------------------------------------------------------------

FINAL_JSON = ("_outputs.json", "_metrics.json", "_run.json")
ARTIFACT_SUFFIXES = (".pkl", ".parquet")


def integrity_problems(root: Path) -> list[str]:
    """What is wrong with the files under final names in ``results/`` at this instant.

    Holds at *any* moment, even right after a kill -9: every manifest's artifacts exist and match
    their hashes (``Store.verify``); every artifact file, listed or not yet listed, holds the
    complete bytes of an object in the store (so no writer ever exposed a half-written file under a
    final name); every JSON record parses.
    """
    store = Store(root)
    problems = list(verify_artifacts(store, root / "results"))
    results = root / "results"
    if not results.is_dir():
        return problems
    for path in sorted(results.rglob("*")):
        if not path.is_file():
            continue
        if path.name.endswith(ARTIFACT_SUFFIXES):
            digest = hash_file(path)
            stored = store.objects_dir / digest[:2] / f"{digest}{path.suffix}"
            if not stored.is_file():
                problems.append(f"{path}: content {digest} is not a complete object of the store")
        elif path.name in FINAL_JSON:
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except ValueError as error:
                problems.append(f"{path}: half-written JSON: {error}")
    return problems


def leftover_temps(root: Path) -> list[Path]:
    """Temp files in result folders (allowed only while a writer runs, never after a completed run)."""
    results = root / "results"
    return sorted(p for p in results.rglob("*") if p.name.startswith(".") and p.is_file()) if results.is_dir() else []


def manifests(root: Path) -> set[str]:
    """Result folders (relative) that hold a manifest."""
    return {p.parent.relative_to(root).as_posix() for p in (root / "results").rglob(MANIFEST_NAME)}


def verify_cli(root: Path) -> subprocess.CompletedProcess[str]:
    """The real ``expops-smk verify`` command, as a user runs it."""
    return subprocess.run([EXPOPS_SMK, "verify", "."], cwd=root, env=_env(), capture_output=True, text=True,
                          timeout=120, preexec_fn=_limit_memory)


def finished_records(root: Path) -> dict[Path, tuple[int, int]]:
    """``_run.json`` identity of every node that finished (manifest present, not marked incomplete).

    A recovery run must leave these alone: Snakemake re-runs only missing or incomplete outputs.
    """
    incomplete = incomplete_outputs(root)
    records = {}
    for manifest in (root / "results").rglob(MANIFEST_NAME):
        relative = manifest.relative_to(root).as_posix()
        record = manifest.with_name("_run.json")
        if relative not in incomplete and record.exists():
            info = record.stat()
            records[record] = (info.st_ino, info.st_mtime_ns)
    return records


def incomplete_outputs(root: Path) -> set[str]:
    """Outputs Snakemake marked as being written (``.snakemake/incomplete``: base64 of the path)."""
    import base64

    folder = root / ".snakemake" / "incomplete"
    if not folder.is_dir():
        return set()
    names = set()
    for marker in folder.iterdir():
        try:
            names.add(base64.urlsafe_b64decode(marker.name.encode()).decode())
        except ValueError:
            continue
    return names


def stale_locks(root: Path) -> list[Path]:
    folder = root / ".snakemake" / "locks"
    return sorted(folder.iterdir()) if folder.is_dir() else []


# -- a project where one partition fails ---------------------------------------------------------------

PARTITION_CONFIG = """\
metadata: {name: partitions}
scripts: {main: src/main.py}
reproducibility: {random_seed: 3}
experiment:
  pipeline:
    process_adjlist: |
      load seeds
      seeds train
      train evaluate
      evaluate per_partition
      per_partition final
    processes:
      - name: load
        code: load
        data_parallelism: {size: 3}
      - name: seeds
        seed_parallelism: {seeds: [41, 42]}
      - name: train
      - name: evaluate
      - name: per_partition
        seed_aggregation: true
      - name: final
        data_aggregation: true
"""

PARTITION_MAIN = CALLS_HELPER + '''

def load():
    called("load")
    return {"data": list(range(12))}


def check_rows(rows, partition):
    if partition == "p2":
        raise ValueError(f"rows {rows[0]}..{rows[-1]} of {partition} are corrupt")


def train(data, random_seed, context):
    called(context.label)
    check_rows(data, context.partition)
    return {"model": sum(data) * random_seed}


def evaluate(model, context):
    called(context.label)
    return {"score": model % 97}


def per_partition(score, context):
    called(context.label)
    return {"scores": score}


def final(scores):
    called("final")
    return {"all": scores}
'''
PARTITION_BUG = "    check_rows(data, context.partition)\n"
"""The line to delete from PARTITION_MAIN to fix partition 2."""


def write_partition_project(root: Path) -> Project:
    write_project(root, PARTITION_CONFIG, PARTITION_MAIN, script_path="src/main.py")
    project = Project(root)
    project.generate()
    return project


# -- bad data at run time, and a data file that must never be unpickled --------------------------------

BAD_DATA_CONFIG = """\
metadata: {name: bad-data}
scripts: {main: src/main.py}
data: {path: data/evil.pkl}
experiment:
  pipeline:
    process_adjlist: |
      load bad_split no_name seeds
      seeds not_dict
    processes:
      - name: load
      - name: bad_split
        code: passthrough
        data_parallelism: {size: [2, 2]}
      - name: no_name
        code: passthrough
        data_parallelism: {size: 2, data_name: rows}
      - name: seeds
        seed_parallelism: {seeds: [41, 42]}
      - name: not_dict
"""

BAD_DATA_MAIN = '''
def load():
    return {"data": list(range(10))}


def passthrough(data):
    return {"data": data}


def not_dict(data):
    return [len(data)]
'''


def evil_pickle(marker: Path) -> bytes:
    """A pickle that creates ``marker`` when it is loaded (and does nothing else)."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps(Evil(), protocol=5)


def write_bad_data_project(root: Path, marker: Path) -> Project:
    write_project(root, BAD_DATA_CONFIG, BAD_DATA_MAIN, script_path="src/main.py")
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "evil.pkl").write_bytes(evil_pickle(marker))
    project = Project(root)
    project.generate()
    return project


# -- filesystems -----------------------------------------------------------------------------------

def mount(*args: str) -> bool:
    """Run ``mount ARGS``; False when the sandbox does not allow it (not root, no CAP_SYS_ADMIN)."""
    try:
        return subprocess.run(["mount", *args], capture_output=True, timeout=30).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def unmount(path: Path) -> None:
    """Unmount a test file system; the warm server of a project on it keeps it busy, so stop it first."""
    for project in path.glob("*/"):
        stop_warm_processes(project)
    subprocess.run(["umount", str(path)], capture_output=True, timeout=30, check=True)


def used_kib(path: Path) -> int:
    info = os.statvfs(path)
    return (info.f_blocks - info.f_bfree) * info.f_frsize // 1024


def file_states(root: Path) -> dict[str, tuple[int, bytes]]:
    """Inode and bytes of every file under ``root/results``: finished work must survive untouched."""
    return {p.relative_to(root).as_posix(): (p.stat().st_ino, p.read_bytes())
            for p in sorted((root / "results").rglob("*")) if p.is_file()}


# -- concurrent store writers (run in spawned processes) -----------------------------------------------

def round_values(round_number: int) -> dict[str, object]:
    import pandas as pd

    return {"blob": random_bytes(round_number, 1_500_000),
            "table": pd.DataFrame({"x": range(2000), "round": [round_number] * 2000}),
            "meta": {"round": round_number, "items": list(range(100))}}


def random_bytes(seed: int, size: int) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


def round_folder(root: Path, round_number: int, worker: int) -> Path:
    """Even rounds: every worker writes the same node folder; odd rounds: one folder each."""
    if round_number % 2 == 0:
        return root / "results" / "shared" / f"r{round_number}"
    return root / "results" / f"w{worker}" / f"r{round_number}"


def store_writer(root: str, worker: int, rounds: int, barrier, queue) -> None:
    """Worker: each round, wait for the others, then write the round's values and manifest at once."""
    store = Store(Path(root))
    for round_number in range(rounds):
        values = round_values(round_number)
        folder = round_folder(Path(root), round_number, worker)
        barrier.wait(timeout=60)
        artifacts = {key: store.write_value(folder, key, value) for key, value in values.items()}
        store.write_manifest(folder, artifacts)
        queue.put((worker, round_number, {key: a.to_json() for key, a in artifacts.items()}))
