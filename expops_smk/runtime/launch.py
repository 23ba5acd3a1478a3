"""How a job of the generated workflow starts: forked from a warm interpreter when one is running.

A rule's command is ``python -m expops_smk.runtime.launch runtime PROCESS ...``. Started cold, every job
pays for importing pandas, pyarrow and whatever the project's scripts import (scikit-learn: one to
three seconds), which is most of the wall time of a typical small node and the reason a 43-node
project took four times longer than ExpOps, whose two long-lived workers import once. So on a
local Linux run the first job starts a per-project *warm server* (``expops_smk.runtime.warm_server``)
that imports all of that once, and every later job hands it its arguments, working directory,
environment and standard streams over a Unix socket; the server forks a child that runs the entry
point with the modules already loaded.

This process stays the job, as far as Snakemake is concerned: it relays signals to the child,
the server kills the child if this process dies, and it exits with the child's status. Scheduling,
``--cores``, ``-n``, logs and failures are Snakemake's exactly as with a cold start.

Nothing depends on the server: when there is none yet, when it is still importing or refuses the
job, the job runs in this process as a cold start (and, if there was none, starts one). Cluster
jobs always run cold, since a server would outlive the job's allocation; so does a workflow with
``execution: {warm_start: false}`` or ``benchmark: true``, whose Snakefile sets ``EXPOPS_SMK_WARM=0``.

Every job imports this module before anything else, so it imports only the standard library (and
``expops_smk.layout``, which does the same).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import signal
import socket
import stat
import struct
import sys
from pathlib import Path
from typing import Any, Mapping

from expops_smk.layout import SERVER_LOG, WARM_VARIABLE

ENTRY_POINTS = {"runtime": "expops_smk.runtime.node_job", "charts": "expops_smk.runtime.chart_job"}
"""What a job can run: the node runtime and the chart renderer. Each module has ``main(argv)``."""

DISABLE_VARIABLE = WARM_VARIABLE
"""Set to ``0`` to run every job cold (the rules stay as generated)."""

IDLE_VARIABLE = "EXPOPS_SMK_WARM_IDLE"
"""Seconds a server without work waits for the next job before it exits (default 60)."""

SERVER_PID_VARIABLE = "EXPOPS_SMK_WARM_SERVER"
"""Set in a forked job to the server's pid, so its log can say how it was started."""

_SERVER_LOG_LIMIT = 1 << 20  # bytes; a server logs a line per job, so the log is rotated when starting one

_RELAYED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
_CLUSTER_JOB_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID")
_LIMITS = ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_STACK", "RLIMIT_CPU")
MAX_MESSAGE_BYTES = 1 << 20
"""Upper bound of one protocol message; a request carries the job's whole environment."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ENTRY_POINTS:
        report(f"usage: python -m expops_smk.runtime.launch {{{','.join(ENTRY_POINTS)}}} ARGS...")
        return 2
    entry, args = argv[0], argv[1:]
    if warm_start_possible(os.environ):
        status = run_in_server(entry, args)
        if status is not None:
            return status
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

    for signum in _RELAYED_SIGNALS:
        signal.signal(signum, relay)
    _, status = os.waitpid(child, 0)
    reported = os.read(done_read, 1) == b"1"
    os.close(done_read)
    return exit_status(entry, args, status, reported=reported, relayed=relayed)


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


def exit_status(entry: str, args: list[str], status: int, reported: bool, relayed: set[int] = frozenset()) -> int:
    """The job's exit code for a child's wait status; reports a death the child could not report.

    A child killed by a signal this process relayed (Snakemake cancelling the job) is not reported.
    """
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        if -code not in relayed:
            report(f"expops-smk: {job_label(entry, args)}: killed by {signal.Signals(-code).name} ({_log_hint(args)})")
        return 128 - code
    if reported:
        return code
    report(f"expops-smk: {job_label(entry, args)}: exited with status {code} without reporting ({_log_hint(args)})")
    return code or 1


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


def _log_hint(args: list[str]) -> str:
    values = {flag: value for flag, value in zip(args, args[1:]) if flag.startswith("--")}
    return f"log: {values['--log']}" if "--log" in values else "no log"


def run_entry_point(entry: str, args: list[str]) -> int:
    """Run the job in this process (a cold start, or the forked child of a server)."""
    return int(importlib.import_module(ENTRY_POINTS[entry]).main(args) or 0)


def warm_start_possible(environ: Mapping[str, str]) -> bool:
    """SO_PEERCRED and pidfds are Linux features; cluster jobs must not leave a server."""
    return (sys.platform.startswith("linux") and hasattr(os, "pidfd_open") and hasattr(socket, "send_fds")
            and environ.get(DISABLE_VARIABLE, "1") != "0"
            and not any(name in environ for name in _CLUSTER_JOB_VARIABLES))


def server_name() -> str:
    """Name of the server that may run this job (its socket is ``<name>.sock`` in ``server_dir()``).

    A forked child inherits the server's interpreter, loaded modules and whatever they read while
    importing (thread counts from ``OMP_NUM_THREADS``, locale, limits), so a server serves only
    jobs whose interpreter, project, environment, umask, limits and priority equal its own: the
    name is a hash of all of them. A server is started by such a job, so it matches by construction.
    """
    import resource

    umask = os.umask(0o022)
    os.umask(umask)
    identity = [
        os.getuid(), sys.executable, sys.version, repr(sys.flags), os.getcwd(), sorted(os.environ.items()),
        umask, [resource.getrlimit(getattr(resource, name)) for name in _LIMITS],
        os.getpriority(os.PRIO_PROCESS, 0),
    ]
    digest = hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()[:32]
    return f"expops-smk-warm-{digest}"


_SUN_PATH_BYTES = 107  # sun_path is 108 bytes with its NUL
_PEER_CREDENTIALS = struct.Struct("3i")  # SO_PEERCRED: pid, uid, gid


def server_dir() -> Path | None:
    """The user's own folder for servers' sockets and pid files, or None when it is not safe.

    Not an abstract socket name: those are visible to, and can be bound by, every local user, and a
    squatter would receive the job's environment and standard streams. Only the user can enter
    this folder (created 0700; checked with lstat: a directory, not a symlink, owned by us, no
    group or world bits), so only the user (or root) can put a socket in it. It is below
    ``$XDG_RUNTIME_DIR`` (per-user by design), else ``$TMPDIR`` or /tmp with the uid in its name.
    """
    uid = os.getuid()
    for base in (os.environ.get("XDG_RUNTIME_DIR", ""), os.environ.get("TMPDIR", ""), "/tmp"):
        folder = Path(base) / f"expops-smk-{uid}"
        if not base.startswith("/") or len(str(folder).encode()) + 38 > _SUN_PATH_BYTES:
            continue  # a relative base, or too long for "<32 hex digits>.sock"
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            info = os.lstat(folder)
        except OSError:
            return None
        safe = stat.S_ISDIR(info.st_mode) and info.st_uid == uid and not info.st_mode & 0o077
        return folder if safe else None
    return None


def server_paths(name: str) -> tuple[Path, Path] | None:
    """(socket, pid file) of the server ``name``; None when there is no safe folder for them."""
    folder = server_dir()
    if folder is None:
        return None
    digest = name.rsplit("-", 1)[-1]
    return folder / f"{digest}.sock", folder / f"{digest}.pid"


def authenticated(connection: socket.socket, pid_file: Path) -> bool:
    """Whether the peer is our user's server whose pid its 0600 pid file names (checked before sending)."""
    try:
        pid, uid, _ = _PEER_CREDENTIALS.unpack(
            connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEER_CREDENTIALS.size))
        info = os.lstat(pid_file)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return False
        return uid == os.getuid() and pid == int(pid_file.read_text(encoding="ascii"))
    except (OSError, ValueError):
        return False


def claim(name: str) -> tuple[socket.socket, int] | None:
    """For a starting server: its socket, bound (not listening), its pid file written, and a lock.

    None when there is no safe folder, another server is starting (it holds the lock) or serving
    (its socket answers). The caller listens once its imports are done (until then jobs get
    ECONNREFUSED and run cold), then closes the lock. The socket of a server that exited, or that
    stopped accepting because a file changed, answers nothing and is replaced.
    """
    import fcntl

    paths = server_paths(name)
    if paths is None:
        return None
    socket_path, pid_file = paths
    try:
        lock = os.open(socket_path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as probe:
            if probe.connect_ex(str(socket_path)) == 0:
                os.close(lock)
                return None
        socket_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(str(socket_path))
        tmp = pid_file.with_name(f".{pid_file.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with open(descriptor, "w", encoding="ascii") as handle:
            handle.write(str(os.getpid()))
        os.replace(tmp, pid_file)
    except OSError:
        os.close(lock)
        return None
    return listener, lock


def run_in_server(entry: str, args: list[str]) -> int | None:
    """The job's exit code, or None when no server took it (the caller then runs it itself)."""
    name = server_name()
    paths = server_paths(name)
    if paths is None:  # no folder only we can enter: never talk to (or start) a server
        return None
    socket_path, pid_file = paths
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with connection:
        try:
            connection.connect(str(socket_path))
        except OSError:  # none yet, or still importing: this job runs cold
            start_server(name)
            return None
        if not authenticated(connection, pid_file):
            return None  # someone else's socket: send nothing, run cold
        request = {"entry": entry, "args": args, "cwd": os.getcwd(), "env": dict(os.environ)}
        try:
            socket.send_fds(connection, [json.dumps(request).encode()], [0, 1, 2])
            reply = receive(connection)
        except OSError:
            return None
        if reply is None or "started" not in reply:
            if reply is not None and reply.get("refused") == "stale":
                start_server(name)  # the stale server has released the name already
            return None
        return _wait(connection, int(reply["started"]), entry, args)


def _wait(connection: socket.socket, child: int, entry: str, args: list[str]) -> int:
    """Relay signals to the forked child until the server reports its exit status."""

    relayed: set[int] = set()

    def relay(signum: int, _frame: Any) -> None:
        relayed.add(signum)
        try:
            connection.send(json.dumps({"signal": signum}).encode())
        except OSError:
            pass  # the server is gone; it killed the child on its way out, or we report below

    for signum in _RELAYED_SIGNALS:
        signal.signal(signum, relay)
    try:
        reply = receive(connection)
    except OSError:
        reply = None
    if reply is None or "status" not in reply:
        report(f"expops-smk: {job_label(entry, args)}: the warm interpreter stopped while running this job "
               f"(pid {child}); run snakemake again, or set {DISABLE_VARIABLE}=0 (server log: {SERVER_LOG})")
        return 1
    # The server watched the child's pipe: it says whether the job reported its own outcome.
    return exit_status(entry, args, int(reply["status"]), reported=reply.get("reported") is True, relayed=relayed)


def receive(connection: socket.socket) -> dict[str, Any] | None:
    """One JSON message, or None at end of stream."""
    data = connection.recv(MAX_MESSAGE_BYTES)
    return json.loads(data) if data else None


def send(connection: socket.socket, message: Mapping[str, Any]) -> None:
    connection.send(json.dumps(message).encode())


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


def report(line: str) -> None:
    """Print one line to stderr in a single write(2).

    Jobs share Snakemake's stderr, and print() writes a text and its newline separately (stderr is
    write-through): the messages of two jobs failing at once would run into one line.
    """
    sys.stderr.flush()
    try:
        descriptor = sys.stderr.fileno()
    except (AttributeError, OSError):  # stderr replaced in-process (tests, embedding): no descriptor
        sys.stderr.write(line + "\n")
        return
    os.write(descriptor, (line + "\n").encode("utf-8", "backslashreplace"))


if __name__ == "__main__":
    sys.exit(main())
