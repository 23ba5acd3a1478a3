"""How a job of the generated workflow starts: forked from a warm interpreter when one is running.

Started cold, every job pays for importing pandas, pyarrow and whatever the project's scripts
import (scikit-learn: one to three seconds), which is most of the wall time of a typical small node
and the reason a 43-node project took four times longer than ExpOps, whose two long-lived workers
import once. So on a local Linux run the first job starts a per-project *warm server*
(``expops_smk.runtime.warm_server``) that imports all of that once, and every later job hands it
its arguments, working directory, environment and standard streams over a Unix socket; the server
forks a child that runs the entry point with the modules already loaded (or, for a node the run
cache can restore, restores it in its own process: ``expops_smk.runtime.served_restore``).

A rule's command runs the small client ``expops_smk.runtime.warm_client`` (from its copy in
``.expops/bin``, without expops-smk or ``site``), which hands the job to the server; this module is
what it ``exec``-s when no server took the job: ``python -m expops_smk.runtime.launch --cold runtime
PROCESS ...`` (or ``--start-server NAME``, when no server answered: it starts one). It runs the job
in a forked child of its own (a cold start). Run without either flag, it asks the server itself.

The job's process stays the job, as far as Snakemake is concerned: it relays signals to the child,
the server kills the child if this process dies, and it exits with the child's status. Scheduling,
``--cores``, ``-n``, logs and failures are Snakemake's exactly as with a cold start.

Cluster jobs always run cold, since a server would outlive the job's allocation; so does a workflow
with ``execution: {warm_start: false}`` or ``benchmark: true``, whose Snakefile sets
``EXPOPS_SMK_WARM=0``.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from expops_smk.layout import SERVER_LOG
from expops_smk.runtime.warm_client import (COLD_FLAG, RELAYED_SIGNALS, START_FLAG, exit_status, report, run_in_server,
                                            warm_start_possible)

ENTRY_POINTS = {"runtime": "expops_smk.runtime.node_job", "charts": "expops_smk.runtime.chart_job"}
"""What a job can run: the node runtime and the chart renderer. Each module has ``main(argv)``."""

IDLE_VARIABLE = "EXPOPS_SMK_WARM_IDLE"
"""Seconds a server without work waits for the next job before it exits (default 60)."""

SERVER_PID_VARIABLE = "EXPOPS_SMK_WARM_SERVER"
"""Set in a forked job to the server's pid, so its log can say how it was started."""

_SERVER_LOG_LIMIT = 1 << 20  # bytes; a server logs a line per job, so the log is rotated when starting one


def main(argv: list[str] | None = None) -> int:
    """``[--cold | --start-server NAME] ENTRY ARGS``: the job client passes what it found out (it
    tried the server already); without either, try the server here."""
    argv = sys.argv[1:] if argv is None else argv
    tried, to_start = argv[:1] in ([COLD_FLAG], [START_FLAG]), None
    if argv[:1] == [COLD_FLAG]:
        argv = argv[1:]
    elif argv[:1] == [START_FLAG]:
        to_start, argv = (argv[1] if len(argv) > 1 else None), argv[2:]
    if not argv or argv[0] not in ENTRY_POINTS:
        report(f"usage: python -m expops_smk.runtime.launch [{COLD_FLAG} | {START_FLAG} NAME] "
               f"{{{','.join(ENTRY_POINTS)}}} ARGS...")
        return 2
    entry, args = argv[0], argv[1:]
    if not tried and warm_start_possible(os.environ):
        status, to_start = run_in_server(entry, args)
        if status is not None:
            return status
    if to_start is not None:
        start_server(to_start)
    return run_cold(entry, args)


def run_cold(entry: str, args: list[str]) -> int:
    """Run the job in a forked child and wait for it, so a death the job cannot report is reported.

    ``os._exit()``, a segfault or a kill in user code end the process with no word in the log; run
    in this process, they would take the only witness with them and leave Snakemake's own "missing
    output" as the only message. The child writes to a pipe once its entry point returned (it has
    reported whatever went wrong by then); a child that ends without doing so is reported here in
    one line naming the node. Forking this small interpreter costs about a millisecond. This must
    run as the program's main: the child leaves through ``sys.exit`` (atexit handlers run as in a
    plain job).
    """
    if not hasattr(os, "fork"):
        return run_entry_point(entry, args)
    done_read, done_write = os.pipe()
    launcher = os.getpid()
    child = os.fork()
    if child == 0:
        os.close(done_read)
        die_with_parent(launcher)  # Snakemake killing the job (this launcher) kills the node
        try:
            code = run_entry_point(entry, args)
        except SystemExit as exc:  # argparse's usage errors (user code's are caught in the job)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        os.write(done_write, b"1")
        sys.exit(code)
    os.close(done_write)
    relayed: set[int] = set()

    def relay(signum: int, _frame: Any) -> None:
        relayed.add(signum)
        try:
            os.kill(child, signum)
        except OSError:
            pass  # already gone

    for signum in RELAYED_SIGNALS:
        signal.signal(signum, relay)
    _, status = os.waitpid(child, 0)
    reported = os.read(done_read, 1) == b"1"
    os.close(done_read)
    return exit_status(job_label(entry, args), args, status, reported=reported, relayed=relayed)


def die_with_parent(parent: int) -> None:
    """Ask the kernel to kill this forked child when ``parent`` dies (the launcher, or the warm
    server): its job's failure is then reported, and a job whose failure was reported must not go on
    writing results. Linux only (prctl); elsewhere a killed launcher leaves its node running."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0 or os.getppid() != parent:
        os._exit(1)  # the parent died before the request took effect: nobody waits for this job


_PR_SET_PDEATHSIG = 1  # prctl option, from <linux/prctl.h>


def job_label(entry: str, args: list[str]) -> str:
    """``node 'train P1 S41'`` or ``chart 'losses'``, from the job's own arguments (no plan read)."""
    values = {flag: value for flag, value in zip(args, args[1:]) if flag.startswith("--")}
    name = args[0] if args else "?"
    if entry == "charts":
        return f"chart '{name}'"
    from expops_smk.graph.nodes import Node, parse_partition, parse_seed

    try:
        node = Node(name, parse_partition(values.get("--partition", "")), parse_seed(values.get("--seed", "")))
    except (KeyError, ValueError):
        return f"node '{name}'"
    return f"node '{node.label}'"


def run_entry_point(entry: str, args: list[str]) -> int:
    """Run the job in this process (a cold start, or the forked child of a server)."""
    return int(importlib.import_module(ENTRY_POINTS[entry]).main(args) or 0)


def start_server(name: str) -> None:
    """Start a server in the background (its own session, so Snakemake's job kills miss it).

    Several jobs may start one at once: the first to lock the name serves, the others exit.
    """
    import subprocess

    log_path = Path(SERVER_LOG)
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if log_path.exists() and log_path.stat().st_size > _SERVER_LOG_LIMIT:
            log_path.replace(log_path.with_name(log_path.name + ".1"))  # keep the previous one
        with open(log_path, "ab") as log:
            subprocess.Popen([sys.executable, "-m", "expops_smk.runtime.warm_server", name], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    except OSError:
        pass  # no server: jobs keep running cold


if __name__ == "__main__":
    sys.exit(main())
