"""Shared pieces of the benchmark suite: result rows, timing, subprocesses, the machine description.

Every figure the suite reports is a ratio of two measurements taken in the same run, so that a
loaded machine (other jobs, thermal limits) shifts both sides alike. Measurements of the two sides
are interleaved (ours, baseline, ours, baseline, ...) for the same reason, and each side reports
the median of its repetitions.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from expops_smk.layout import WARM_VARIABLE

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BIN = Path(PYTHON).parent
SNAKEMAKE = str(BIN / "snakemake")
EXPOPS_SMK = str(BIN / "expops-smk")
COMMAND_TIMEOUT = 1800
"""Seconds any one measured command may take before the suite gives up on it."""
WARM_START_VARIABLE = WARM_VARIABLE
MEMORY_LIMIT = 16_000_000_000
"""Address-space limit of every child process (bytes): a runaway step fails instead of swapping."""


@dataclass
class Row:
    """One line of the results table.

    ``ratio`` is ours/baseline for times and memory (lower is better) unless ``higher_is_better``
    (throughputs). ``target`` is the bound the ratio must meet, ``None`` for report-only rows.
    """

    id: str
    measure: str
    ours: str
    baseline: str
    ratio: float | None
    target: float | None = None
    higher_is_better: bool = False
    exact: bool = False  # the ratio must equal the target (counts of executed nodes)
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "n/a"
        if self.target is None:
            return "report"
        if self.exact:
            return "met" if abs(self.ratio - self.target) < 1e-9 else "MISSED"
        if self.higher_is_better:
            return "met" if self.ratio >= self.target else "MISSED"
        return "met" if self.ratio <= self.target else "MISSED"

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "report"
        if self.exact:
            return f"= {self.target:g}"
        return f"{'≥' if self.higher_is_better else '≤'} {self.target:g}×"


@dataclass
class Section:
    """A benchmark's rows plus the detail it wants printed below the table (markdown)."""

    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Settings:
    quick: bool
    repeat: int
    workdir: Path
    expops_python: Path | None

    def runs(self, minimum: int = 1) -> int:
        """Repetitions per measurement: the configured count, never fewer than ``minimum``."""
        return max(self.repeat, minimum)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """"median (min–max, n=k)" for the details, so noisy measurements show as noisy."""
    return f"{median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"


def warm_bytecode() -> None:
    """Compile expops-smk's modules to ``__pycache__`` before measuring, as ``pip install`` does.

    Some environments (this one included) export PYTHONDONTWRITEBYTECODE=1; then every job would
    compile the package from source (0.1-0.2 s per process) while pandas & co. load cached bytecode
    from their installation, which measures the environment, not expops-smk. Measured commands run
    without that variable (``child_env``), and the cache is filled here once.
    """
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(REPO / "expops_smk"), str(REPO / "workflow_templates")],
                   env=child_env(), check=False, stdout=subprocess.DEVNULL)


def limit_memory() -> None:
    """``preexec_fn`` of every child: cap its address space (see MEMORY_LIMIT)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of measured commands: this repository importable (bytecode caching stays on, as
    for any user: a job must not pay for compiling expops-smk's modules)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # see warm_bytecode
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("PYTHONSTARTUP", None)
    env.update(extra or {})
    return env


def warm_start_off() -> dict[str, str]:
    """The environment of expops-smk runs measured without warm start: every job a fresh interpreter."""
    return child_env({WARM_START_VARIABLE: "0"})


@dataclass
class Timed:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    max_rss_kb: int  # peak RSS of the largest child process waited for by this call

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_timed(command: Sequence[str], cwd: Path, *, env: dict[str, str] | None = None, check: bool = True,
              timeout: float = COMMAND_TIMEOUT) -> Timed:
    """Run a command, returning its wall time and the peak RSS of its process tree's largest member.

    RSS comes from ``wait4`` on the direct child: Linux reports the maximum over the child and every
    descendant it waited for (``getrusage(RUSAGE_CHILDREN)`` would instead keep the maximum over
    the whole suite). Output goes to temp files so the wait can be ``wait4`` itself.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(list(command), cwd=cwd, env=env or child_env(), stdout=out, stderr=err,
                                   text=True, preexec_fn=limit_memory, start_new_session=True)
        timer = threading.Timer(timeout, _kill_group, (process.pid,))
        timer.start()
        try:
            _, status, rusage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode == -signal.SIGKILL and seconds >= timeout:
        raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(command)}\n{stderr[-3000:]}")
    result = Timed(seconds, process.returncode, stdout, stderr, rusage.ru_maxrss)
    if check and process.returncode != 0:
        raise RuntimeError(f"exit {process.returncode}: {' '.join(command)} (in {cwd})\n"
                           f"{stdout[-3000:]}\n{stderr[-3000:]}")
    return result


def _kill_group(pid: int) -> None:
    """Timeout: kill the command and everything it started (it leads its own session)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def interleave(sides: dict[str, Callable[[], float]], runs: int) -> dict[str, list[float]]:
    """Call each side's measurement ``runs`` times, alternating sides; returns the samples per side."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(runs):
        for name, measure in sides.items():
            samples[name].append(measure())
    return samples


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def copy_tree(src: Path, dst: Path) -> Path:
    """``cp -a``: keeps mtimes and hard links (the store's results are links into .expops)."""
    if dst.exists():
        shutil.rmtree(dst)
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    return dst


def package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_description() -> list[tuple[str, str]]:
    """What the numbers were measured on: they are only comparable within one such description."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        ("CPU", cpu),
        ("nproc", str(os.cpu_count())),
        ("memory", memory),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("snakemake", package_version("snakemake")),
        ("pyarrow", package_version("pyarrow")),
        ("pandas", package_version("pandas")),
        ("xxhash", package_version("xxhash")),
        ("load average at start (1/5/15 min)", load),
    ]


def format_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")
