"""The job's side of the warm-start protocol: hand the job to the project's warm server, else run cold.

A rule's command is ``python -S .expops/bin/job.py runtime PROCESS ...``: ``job.py`` imports a copy
of this module (``expops-smk`` writes both at each parse, see ``codegen.prepare``), so that a job
the warm server serves never imports expops-smk, nor runs ``site`` (``-S``): an interpreter that
starts without ``site`` and the editable install's import hook, and imports only this module and
the standard library, costs a third of one that imports ``expops_smk.runtime.launch``, which was
most of what a restored node cost. When no server takes the job, it ``exec``-s the cold launcher
(``python -m expops_smk.runtime.launch``: same process, same arguments, and what the client found
out, so nothing is asked twice), which starts a server when none answered and runs the job itself.
``launch`` and ``warm_server`` import this module too: the protocol, the server's authentication
and the relaying of signals and exit status exist once.

So this module imports only the standard library, and nothing of expops-smk: it runs from its copy.
"""

import os
import stat  # imported by `os` already
import sys

import _signal  # not `signal`, `socket`, `json`, `pathlib` or `typing`: importing those (enum,
import _socket  # selectors, re, urllib.parse...) cost more than the rest of a served job's client

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

DISABLE_VARIABLE = "EXPOPS_SMK_WARM"
"""Set to ``0`` to run every job cold (``expops_smk.layout.WARM_VARIABLE``; a test keeps them equal)."""
SERVER_LOG = ".expops/warm_server.log"
"""``expops_smk.layout.SERVER_LOG``, for the message of a job whose server died (a test keeps them equal)."""
COLD_LAUNCHER = "expops_smk.runtime.launch"
"""What runs a job no server took (``python -m`` COLD_LAUNCHER ENTRY ARGS; ``layout.LAUNCHER_MODULE``)."""
COLD_FLAG, START_FLAG = "--cold", "--start-server"
"""What the client tells the cold launcher it found: run cold; or start server NAME, then run cold."""

MAX_MESSAGE_BYTES = 1 << 20
"""Upper bound of one protocol message; a request carries the job's whole environment."""
RELAYED_SIGNALS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2)
_CLUSTER_JOB_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID")
_LIMITS = ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_STACK", "RLIMIT_CPU")
_SUN_PATH_BYTES = 107  # sun_path is 108 bytes with its NUL


def main(argv: list[str] | None = None) -> int:
    """The job's exit status when a server ran it; otherwise this process becomes the cold launcher."""
    argv = sys.argv[1:] if argv is None else argv
    status, to_start = run_in_server(argv[0], argv[1:]) if argv and warm_start_possible(os.environ) else (None, None)
    if status is not None:
        return status
    told = [START_FLAG, to_start] if to_start is not None else [COLD_FLAG]
    os.execv(sys.executable, [sys.executable, "-m", COLD_LAUNCHER, *told, *argv])


def warm_start_possible(environ: "Mapping[str, str]") -> bool:
    """SO_PEERCRED and pidfds are Linux features; cluster jobs must not leave a server."""
    return (sys.platform.startswith("linux") and hasattr(os, "pidfd_open") and hasattr(_socket, "SCM_RIGHTS")
            and environ.get(DISABLE_VARIABLE, "1") != "0"
            and not any(name in environ for name in _CLUSTER_JOB_VARIABLES))


def server_name() -> str:
    """Name of the server that may run this job (its socket is ``<name>.sock`` in ``server_dir()``).

    A forked child inherits the server's interpreter, loaded modules and whatever they read while
    importing (thread counts from ``OMP_NUM_THREADS``, locale, limits), so a server serves only
    jobs whose interpreter, project, environment, umask, limits and priority equal its own: the
    name is a hash of all of them. A server is started by such a job, so it matches by construction.
    ``-S`` is left out of the interpreter's flags: the client has it, the cold launcher it
    ``exec``-s (which starts the server) has not.
    """
    import resource

    umask = os.umask(0o022)
    os.umask(umask)
    flags = {name: getattr(sys.flags, name) for name in dir(sys.flags)
             if not name.startswith(("_", "n_")) and name not in ("count", "index", "no_site")}
    identity = [
        os.getuid(), sys.executable, sys.version, flags, os.getcwd(), sorted(os.environ.items()),
        umask, [resource.getrlimit(getattr(resource, name)) for name in _LIMITS],
        os.getpriority(os.PRIO_PROCESS, 0),
    ]
    digest = _sha256(repr(identity).encode("utf-8", "backslashreplace")).hexdigest()[:32]
    return f"expops-smk-warm-{digest}"


def _sha256(data: bytes) -> "Any":
    """SHA-256 from the interpreter's built-in module when it has one: ``hashlib`` loads OpenSSL."""
    try:
        from _sha2 import sha256  # Python 3.12 and later
    except ImportError:
        try:
            from _sha256 import sha256  # Python 3.11
        except ImportError:
            from hashlib import sha256
    return sha256(data)


def server_dir() -> str | None:
    """The user's own folder for servers' sockets and pid files, or None when it is not safe.

    Not an abstract socket name: those are visible to, and can be bound by, every local user, and a
    squatter would receive the job's environment and standard streams. Only the user can enter
    this folder (created 0700; checked with lstat: a directory, not a symlink, owned by us, no
    group or world bits), so only the user (or root) can put a socket in it. It is below
    ``$XDG_RUNTIME_DIR`` (per-user by design), else ``$TMPDIR`` or /tmp with the uid in its name.
    """
    uid = os.getuid()
    for base in (os.environ.get("XDG_RUNTIME_DIR", ""), os.environ.get("TMPDIR", ""), "/tmp"):
        folder = os.path.join(base, f"expops-smk-{uid}")
        if not base.startswith("/") or len(os.fsencode(folder)) + 38 > _SUN_PATH_BYTES:
            continue  # a relative base, or too long for "<32 hex digits>.sock"
        try:
            try:
                os.mkdir(folder, 0o700)
            except FileExistsError:
                pass
            info = os.lstat(folder)
        except OSError:
            return None
        safe = stat.S_ISDIR(info.st_mode) and info.st_uid == uid and not info.st_mode & 0o077
        return folder if safe else None
    return None


def server_paths(name: str) -> tuple[str, str] | None:
    """(socket, pid file) of the server ``name``; None when there is no safe folder for them."""
    folder = server_dir()
    if folder is None:
        return None
    digest = name.rsplit("-", 1)[-1]
    return os.path.join(folder, f"{digest}.sock"), os.path.join(folder, f"{digest}.pid")


def unix_socket() -> _socket.socket:
    """A socket of the kind servers listen on: one message per send, so no framing is needed."""
    return _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)


def peer_credentials(connection: _socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, from the kernel (SO_PEERCRED)."""
    import _struct

    return _struct.unpack("3i", connection.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12))


def authenticated(connection: _socket.socket, pid_file: str) -> bool:
    """Whether the peer is our user's server whose pid its 0600 pid file names (checked before sending)."""
    try:
        pid, uid, _ = peer_credentials(connection)
        info = os.lstat(pid_file)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return False
        descriptor = os.open(pid_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            recorded = int(os.read(descriptor, 32))
        finally:
            os.close(descriptor)
        return uid == os.getuid() and pid == recorded
    except (OSError, ValueError):
        return False


def run_in_server(entry: str, args: list[str]) -> tuple[int | None, str | None]:
    """(the job's exit code, None) when a server ran it; else (None, the name of a server to start,
    or None when none should be: someone else's socket, no safe folder, a refusal)."""
    name = server_name()
    paths = server_paths(name)
    if paths is None:  # no folder only we can enter: never talk to (or start) a server
        return None, None
    socket_path, pid_file = paths
    connection = unix_socket()
    try:
        try:
            connection.connect(socket_path)
        except OSError:  # none yet, or still importing: this job runs cold
            return None, name
        if not authenticated(connection, pid_file):
            return None, None  # someone else's socket: send nothing, run cold
        request = encode(["job", entry, os.getcwd(), str(len(args)), *args, *(f"{k}={v}" for k, v in os.environ.items())])
        try:
            connection.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, _FDS)])
            reply = receive(connection)
        except OSError:
            return None, None
        if reply[:1] != ["started"] or len(reply) != 3:
            stale = reply == ["refused", "stale"]
            return None, (name if stale else None)  # a stale server has released the name already
        return wait(connection, int(reply[1]), reply[2], args), None
    finally:
        connection.close()


_FDS = b"".join(number.to_bytes(4, sys.byteorder) for number in (0, 1, 2))
"""The job's standard streams as SCM_RIGHTS data (an array of C ints): the child writes to them."""


def parse_request(data: bytes) -> tuple[str, list[str], str, dict[str, str]] | None:
    """(entry, args, cwd, environment) of a job request, or None when it is not one."""
    fields = decode(data)
    if len(fields) < 4 or fields[0] != "job" or not fields[3].isdigit():
        return None
    count = int(fields[3])
    if len(fields) < 4 + count:
        return None
    pairs = [item.partition("=") for item in fields[4 + count:]]
    if any(not key or not sep for key, sep, _ in pairs):
        return None
    return fields[1], fields[4:4 + count], fields[2], {key: value for key, _, value in pairs}


def wait(connection: _socket.socket, child: int, label: str, args: list[str]) -> int:
    """Relay signals to the forked child until the server reports its exit status."""

    relayed: set[int] = set()

    def relay(signum: int, _frame: object) -> None:
        relayed.add(signum)
        try:
            connection.send(encode(["signal", str(signum)]))
        except OSError:
            pass  # the server is gone; it killed the child on its way out, or we report below

    for signum in RELAYED_SIGNALS:
        _signal.signal(signum, relay)
    try:
        reply = receive(connection)
    except OSError:
        reply = []
    if reply[:1] != ["status"] or len(reply) != 3:
        report(f"expops-smk: {label}: the warm interpreter stopped while running this job "
               f"(pid {child}); run snakemake again, or set {DISABLE_VARIABLE}=0 (server log: {SERVER_LOG})")
        return 1
    # The server watched the child's pipe: it says whether the job reported its own outcome.
    return exit_status(label, args, int(reply[1]), reported=reply[2] == "1", relayed=relayed)


def exit_status(label: str, args: list[str], status: int, reported: bool, relayed: set[int] = frozenset()) -> int:
    """The job's exit code for a child's wait status; reports a death the child could not report.

    A child killed by a signal this process relayed (Snakemake cancelling the job) is not reported.
    """
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        if -code not in relayed:
            import signal

            report(f"expops-smk: {label}: killed by {signal.Signals(-code).name} ({_log_hint(args)})")
        return 128 - code
    if reported:
        return code
    report(f"expops-smk: {label}: exited with status {code} without reporting ({_log_hint(args)})")
    return code or 1


def _log_hint(args: list[str]) -> str:
    values = {flag: value for flag, value in zip(args, args[1:]) if flag.startswith("--")}
    return f"log: {values['--log']}" if "--log" in values else "no log"


def encode(fields: list[str]) -> bytes:
    """One protocol message: its fields joined by NUL, which no argument, path or environment
    variable can hold (so nothing needs quoting, and no JSON module is imported to read it)."""
    return b"\0".join(os.fsencode(field) for field in fields)


def decode(data: bytes) -> list[str]:
    """The fields of one message; ``[]`` at end of stream."""
    return [os.fsdecode(field) for field in data.split(b"\0")] if data else []


def receive(connection: _socket.socket) -> list[str]:
    """The fields of the next message, or ``[]`` at end of stream."""
    return decode(connection.recv(MAX_MESSAGE_BYTES))


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
