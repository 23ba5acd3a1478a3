"""The compact view of ``expops-smk run``: a progress bar instead of hundreds of lines of Snakemake log.

Snakemake stays the engine and keeps its full log in ``.snakemake/log/``; this module runs it as a
child process and reads its console output line by line, turning it into a few events: the jobs
to run (the "Job stats" table, without the ``all`` target), a job started (its rule and
wildcards, as a node label such as ``train P1 S41``), finished, or failed (the one-line error the
node printed, or else the rule and its log file). Lines that expops-smk itself prints
(``expops-smk: ...``) are shown as they come.

On a terminal the view is a live ``rich`` progress bar with what is running, the elapsed time and
an estimate of what is left; elsewhere (CI, pipes) it is one plain line per event, without escape
codes. Plain ``snakemake`` keeps its own output.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

TARGET_RULE = "all"
"""The generated Snakefile's default target: a job of it is bookkeeping, not a node."""

PASS_THROUGH_FLAGS = frozenset({
    "-n", "--dry-run", "--dryrun", "--dag", "--rulegraph", "--filegraph", "--summary", "-S",
    "--detailed-summary", "-D", "--lint", "--list-rules", "-l", "--list-target-rules", "--lt", "--unlock",
    "--report", "--delete-all-output", "--delete-temp-output", "--list-changes", "--lc", "-h", "--help",
    "--version", "-v", "--cleanup-metadata", "--cm", "--printshellcmds", "-p", "--verbose", "--debug-dag",
    "--containerize", "--archive", "--generate-unit-tests", "--d3dag", "--print-compilation",
})
"""Snakemake flags whose output is the point (previews, listings, reports): shown as Snakemake prints it."""

_TIME_LINE = re.compile(r"^\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]$")
_RULE_LINE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):$")  # data splits are checkpoints
_STEPS_LINE = re.compile(r"^\d+ of (\d+) steps \(")
_FIELD_LINE = re.compile(r"^    (\w+): (.*)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+)")
_ERROR_IN_RULE = re.compile(r"^Error in rule (\S+):$")
_STATS_ROW = re.compile(r"^(\S+)\s+(\d+)$")
_NODE_ERROR = re.compile(r"^expops-smk: node '([^']+)': ")
_LOG_FILE = re.compile(r"^Complete log\(s\): (.+)$")


def wants_view(args: tuple[str, ...]) -> bool:
    """Whether ``expops-smk run ARGS`` shows the compact view (not for previews and listings)."""
    return not any(arg.split("=", 1)[0] in PASS_THROUGH_FLAGS for arg in args)


@dataclass
class RunState:
    """What the view knows about the run so far, built from Snakemake's console output."""

    total: int | None = None
    done: int = 0
    running: dict[str, str] = field(default_factory=dict)  # jobid -> node label
    failed: list[str] = field(default_factory=list)  # one line per failed job
    log_file: str | None = None
    nothing_to_do: bool = False
    started_at: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def remaining(self) -> float | None:
        """Seconds left, from the mean time per finished job so far."""
        if not self.done or self.total is None:
            return None
        return self.elapsed() / self.done * max(self.total - self.done - len(self.failed), 0)


class OutputReader:
    """Feeds Snakemake's console lines into a ``RunState`` and tells the view what happened."""

    def __init__(self, state: RunState, show: Callable[[str], None]) -> None:
        self.state = state
        self.show = show  # a line the user must see now (a failure, expops-smk's own messages)
        self._stats: dict[str, int] | None = None
        self._targets = 0  # jobs of the target rule in the job stats: not counted as jobs
        self._job: dict[str, str] | None = None  # the job block being read: rule and fields
        self._error: dict[str, str] | None = None  # the "Error in rule" block being read
        self._reported: set[str] = set()  # labels whose failure a node already reported itself
        self.tail: list[str] = []  # the last lines, shown when Snakemake fails before any job

    def feed(self, raw: str) -> None:
        line = raw.rstrip("\n")
        self.tail = (self.tail + [line])[-30:]
        if self._stats is not None and self._read_stats(line):
            return
        if line == "Job stats:":
            self._stats = {}
        elif line.startswith("Nothing to be done"):
            self.state.nothing_to_do = True
        elif match := _RULE_LINE.match(line):
            self._close_blocks()
            if match.group(1) != TARGET_RULE:
                self._job = {"rule": match.group(1)}
        elif match := _ERROR_IN_RULE.match(line):
            self._close_blocks()
            self._error = {"rule": match.group(1)}
        elif (match := _FIELD_LINE.match(line)) and (self._job is not None or self._error is not None):
            (self._job if self._job is not None else self._error)[match.group(1)] = match.group(2)  # type: ignore[index]
        elif match := _FINISHED.match(line):
            self._close_blocks()
            if self.state.running.pop(match.group(1), None) is not None:
                self.state.done += 1
        elif match := _NODE_ERROR.match(line):
            self._reported.add(match.group(1))
            self._fail(line.removeprefix("expops-smk: "))
        elif line.startswith("expops-smk: "):
            self.show(line)
        elif match := _STEPS_LINE.match(line):
            # After a checkpoint (a growing-data split) Snakemake adds the jobs it now knows of.
            self.state.total = int(match.group(1)) - self._targets
        elif match := _LOG_FILE.match(line):
            self.state.log_file = os.path.relpath(match.group(1))
        elif _TIME_LINE.match(line) or not line.startswith("    "):
            self._close_blocks()

    def finish(self) -> None:
        self._close_blocks()

    def _read_stats(self, line: str) -> bool:
        match = _STATS_ROW.match(line.strip())
        if match is None:
            return line.startswith(("job", "---"))
        name, count = match.groups()
        if name == "total":
            assert self._stats is not None
            self._targets = self._stats.get(TARGET_RULE, 0)
            self.state.total = int(count) - self._targets
            self._stats = None
        else:
            self._stats[name] = int(count)  # type: ignore[index]
        return True

    def _close_blocks(self) -> None:
        if self._job is not None and "jobid" in self._job:
            self.state.running[self._job["jobid"]] = node_label(self._job["rule"], self._job.get("wildcards", ""))
        self._job = None
        if self._error is not None and "jobid" in self._error:
            label = self.state.running.pop(self._error["jobid"], None) or self._error["rule"]
            if label not in self._reported:
                log = self._error.get("log", "").split(" (")[0]
                self._fail(f"{label} failed" + (f" (log: {log})" if log else ""))
        self._error = None

    def _fail(self, text: str) -> None:
        self.state.failed.append(text)
        self.show(f"FAILED {text}")


def node_label(rule: str, wildcards: str) -> str:
    """``train P1 S41`` from rule ``train`` and ``partition=p1, seed=41``: the node's label, as in
    ``graph``, ``status`` and its own error lines (which is how a failure is named only once)."""
    from expops_smk.graph.nodes import Node, parse_partition, parse_seed

    values = dict(item.split("=", 1) for item in wildcards.split(", ") if "=" in item)
    try:
        return Node(rule, parse_partition(values.get("partition", "")), parse_seed(values.get("seed", ""))).label
    except (KeyError, ValueError):  # not an expops-smk job (a user's own rule): its rule name
        return rule


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


def summary(state: RunState, returncode: int) -> str:
    """The last line: what was done, how long it took, where the full log is."""
    log = f" · full log: {state.log_file}" if state.log_file else ""
    if state.nothing_to_do:
        return "Nothing to be done: every node is up to date."
    if state.total is None and returncode != 0:
        return f"snakemake stopped with exit status {returncode} before running any job (its output is above){log}"
    total = state.total if state.total is not None else state.done
    text = f"done {state.done}/{total} jobs in {clock(state.elapsed())}"
    if state.failed:
        text += f", {len(state.failed)} failed"
    elif returncode != 0:
        text += f", snakemake exited with status {returncode}"
    return text + log


def run_with_view(command: list[str], out: TextIO | None = None) -> int:
    """Run Snakemake with the compact view on ``out`` (default stdout); return its exit status."""
    out = out or sys.stdout
    state = RunState()
    live = out.isatty()
    view = _LiveView(state, out) if live else None
    reader = OutputReader(state, view.show if view else (lambda line: print(line, file=out, flush=True)))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace", bufsize=1)
    assert process.stdout is not None
    plain = _PlainEvents(state, out) if not live else None
    try:
        with view if view else contextlib.nullcontext():
            for line in process.stdout:
                reader.feed(line)
                if view:
                    view.refresh()
                elif plain:
                    plain.report()
    except KeyboardInterrupt:  # Snakemake got the same signal: let it shut its jobs down
        for line in process.stdout:
            reader.feed(line)
    returncode = process.wait()
    reader.finish()
    if returncode != 0 and not state.failed:  # Snakemake stopped before any job: say why
        print("\n".join(line for line in reader.tail if line.strip() and not line.startswith("expops-smk: ")),
              file=out)
    print(summary(state, returncode), file=out, flush=True)
    return returncode


class _PlainEvents:
    """Non-terminal output: one line each time the number of finished jobs changes."""

    def __init__(self, state: RunState, out: TextIO) -> None:
        self.state = state
        self.out = out
        self.seen: tuple[int, int | None] = (0, None)
        self.started: set[str] = set()

    def report(self) -> None:
        for jobid, label in self.state.running.items():
            if jobid not in self.started:
                self.started.add(jobid)
                print(f"started {label}", file=self.out, flush=True)
        now = (self.state.done, self.state.total)
        if now != self.seen and self.state.total is not None:
            text = (f"{self.state.total} jobs to run" if self.seen[1] is None
                    else f"done {self.state.done}/{self.state.total} jobs · elapsed {clock(self.state.elapsed())}")
            self.seen = now
            print(text, file=self.out, flush=True)


class _LiveView:
    """A ``rich`` progress bar: done/total jobs, what is running, elapsed time and estimate."""

    def __init__(self, state: RunState, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.state = state
        self.console = Console(file=out)
        self.progress = Progress(TextColumn("[bold]expops-smk run"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("jobs"), TimeElapsedColumn(), TextColumn("{task.fields[left]}"),
                                 TextColumn("{task.fields[running]}"), console=self.console, transient=False)
        self.task = self.progress.add_task("run", total=None, left="", running="")

    def __enter__(self) -> _LiveView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh()
        self.progress.stop()

    def show(self, line: str) -> None:
        self.progress.console.print(line, markup=False, highlight=False)

    def refresh(self) -> None:
        left = self.state.remaining()
        running = sorted(self.state.running.values())
        text = ", ".join(running[:3]) + (f" +{len(running) - 3}" if len(running) > 3 else "")
        self.progress.update(self.task, total=self.state.total, completed=self.state.done,
                             left=f"~{clock(left)} left" if left is not None else "",
                             running=f"running: {text}" if text else "")
