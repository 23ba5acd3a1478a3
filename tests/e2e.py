"""Run real ``expops-smk generate`` + ``snakemake`` on a project folder and observe what ran.

Test projects' functions call ``called(...)`` (``CALLS_HELPER``), which appends one line to
``calls.log`` in the job's working directory (the project folder): the exact record of which
user code executed. Independently, every node writes ``_run.json`` with ``"outcome": "executed"``
or ``"restored"``; ``Project.run`` reports the outcome of every node whose ``_run.json`` was
rewritten during that invocation, i.e. every node Snakemake scheduled.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
EXPOPS_SMK = str(Path(sys.executable).with_name("expops-smk"))
TIMEOUT = 300
MEMORY_LIMIT = 12_000_000_000
CALLS_LOG = "calls.log"

CALLS_HELPER = '''
def called(what):
    """Test hook: one line per execution of user code (calls.log in the project folder)."""
    with open("calls.log", "a", encoding="utf-8") as handle:
        handle.write(f"{what}\\n")
'''
"""Paste into a test script; ``called`` reaches every function's code hash, which is harmless."""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@dataclass
class Run:
    """One command's result plus what it did to the project's nodes."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    outcomes: dict[str, str] = field(default_factory=dict)  # node label -> executed | restored
    calls: list[str] = field(default_factory=list)  # lines appended to calls.log

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def nothing_to_do(self) -> bool:
        return "Nothing to be done" in self.output

    def labels(self, outcome: str) -> set[str]:
        return {label for label, found in self.outcomes.items() if found == outcome}

    @property
    def executed(self) -> set[str]:
        return self.labels("executed")

    @property
    def restored(self) -> set[str]:
        return self.labels("restored")

    def calls_to(self, prefix: str) -> list[str]:
        """This run's calls.log lines that start with ``prefix`` (a function's), sorted: jobs run
        in parallel, so their order is not the test's business."""
        return sorted(call for call in self.calls if call.startswith(prefix))

    def describe(self) -> str:
        return f"$ {' '.join(self.command)}\nexit {self.returncode}\n{self.output[-6000:]}"


def assert_nothing_ran(run: Run) -> None:
    """Snakemake had nothing to do: no node was scheduled and no user code executed."""
    assert run.nothing_to_do, run.describe()
    assert run.outcomes == {} and run.calls == []


@dataclass
class Project:
    root: Path

    def command(self, args: list[str], check: bool = True) -> Run:
        before_runs = self._run_files()
        before_calls = len(self.calls())
        done = subprocess.run(args, cwd=self.root, env=_env(), capture_output=True, text=True,
                              timeout=TIMEOUT, preexec_fn=_limit_memory)
        run = Run(args, done.returncode, done.stdout, done.stderr)
        for path, stamp in self._run_files().items():
            if before_runs.get(path) != stamp:
                record = json.loads(path.read_text(encoding="utf-8"))
                run.outcomes[record["label"]] = record["outcome"]
        run.calls = self.calls()[before_calls:]
        if check and run.returncode != 0:
            raise AssertionError(run.describe())
        return run

    def generate(self, check: bool = True) -> Run:
        return self.command([EXPOPS_SMK, "generate", "."], check)

    def snakemake(self, *args: str, check: bool = True) -> Run:
        return self.command([SNAKEMAKE, "--cores", "2", *args], check)

    def run(self, *args: str, check: bool = True) -> Run:
        """Generate, then run snakemake (as a user following the README does)."""
        self.generate()
        return self.snakemake(*args, check=check)

    def dry_run(self) -> Run:
        return self.snakemake("-n")

    def status(self) -> str:
        """What ``expops-smk status .`` prints: one line per node (what ran last, what runs next)."""
        return self.command([EXPOPS_SMK, "status", "."]).stdout

    def status_by_node(self) -> dict[str, str]:
        """``status`` as node label -> the rest of its line."""
        return dict(line.split(": ", 1) for line in self.status().splitlines())

    def calls(self) -> list[str]:
        try:
            return (self.root / CALLS_LOG).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []

    def _run_files(self) -> dict[Path, tuple[int, int]]:
        results = self.root / "results"
        if not results.is_dir():
            return {}
        return {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in results.rglob("_run.json")}

    # -- reading results ----------------------------------------------------------------------
    def node_dir(self, process: str, partition: str = "", seed: str = "") -> Path:
        from expops_smk.layout import results_dir

        return self.root / results_dir(process, partition, seed)

    def manifest(self, process: str, partition: str = "", seed: str = "") -> dict[str, Any]:
        return json.loads((self.node_dir(process, partition, seed) / "_outputs.json").read_text())["artifacts"]

    def value(self, process: str, key: str, partition: str = "", seed: str = "") -> Any:
        from expops_smk.store.artifact_store import Store
        from expops_smk.store.artifacts import Artifact

        folder = self.node_dir(process, partition, seed)
        artifact = Artifact.from_json(self.manifest(process, partition, seed)[key])
        return Store(self.root).read_value(folder, artifact)

    def partitions(self, folder: str) -> list[dict[str, Any]]:
        """The partitions a growing split's run listed: ``folder`` is its node's, below results/."""
        return json.loads((self.root / "results" / folder / "_partitions.json").read_text())["partitions"]

    def run_record(self, process: str, partition: str = "", seed: str = "") -> dict[str, Any]:
        return json.loads((self.node_dir(process, partition, seed) / "_run.json").read_text())

    def digests(self) -> dict[str, str]:
        """Every artifact's file hash by path: equal for two projects that computed the same."""
        result = {}
        for manifest in sorted((self.root / "results").rglob("_outputs.json")):
            folder = manifest.parent.relative_to(self.root).as_posix()
            for key, artifact in json.loads(manifest.read_text())["artifacts"].items():
                result[f"{folder}/{key}"] = artifact["object"]
        return result

    # -- changing the project -----------------------------------------------------------------
    def touch_all(self) -> int:
        """Give every file in the project (workflow, scripts, data, results, store) a new mtime."""
        count = 0
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                os.utime(path)
                count += 1
        return count

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.root / relative
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{old!r} must occur once in {relative}"
        path.write_text(text.replace(old, new), encoding="utf-8")

    def append(self, relative: str, text: str) -> None:
        """Grow a data file by ``text`` (new rows), as a user adding data does."""
        with open(self.root / relative, "a", encoding="utf-8") as handle:
            handle.write(text)

    def copy(self, destination: Path, keep_times: bool = True) -> Project:
        """``cp -a`` (times and hard links kept), or a plain copy whose files all get new mtimes."""
        if keep_times:
            subprocess.run(["cp", "-a", str(self.root), str(destination)], check=True)
            return Project(destination)
        shutil.copytree(self.root, destination)
        copied = Project(destination)
        copied.touch_all()
        return copied
