"""The warm interpreter that jobs are forked from (see ``expops_smk.runtime.launch`` for why and when).

``python -m expops_smk.runtime.warm_server NAME`` claims the socket NAME in the user's 0700 folder
(``claim``; a second server for the same name exits at once), imports the runtime, pandas, pyarrow and the third-party modules the
project's scripts import at top level, then serves job requests: a node the run cache can restore
is restored in this process (``runtime.served_restore``: no user code runs), any other job gets a
forked child. The user's own scripts and helper modules are never imported here: each child imports
them fresh, so an edit is seen by the next job exactly as with a cold start, and code hashes stay
what they were.

The server is one thread (fork and threads do not mix) waiting on its socket, its clients and the
pidfds of its children. It refuses a job, and stops accepting, as soon as a file of a loaded module
or a script changed on disk (an upgraded package, an edited expops-smk, a script with new imports):
the client then runs cold and starts a fresh server. It exits once it has had no job for
``EXPOPS_SMK_WARM_IDLE`` seconds (default 60), or when it cannot serve safely at all.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import io
import os
import random
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from expops_smk.runtime.launch import (ENTRY_POINTS, IDLE_VARIABLE, SERVER_PID_VARIABLE, die_with_parent, job_label,
                                       run_entry_point)
from expops_smk.runtime.warm_client import (MAX_MESSAGE_BYTES, encode, parse_request, peer_credentials, receive,
                                            server_paths)
from expops_smk.runtime.preload import Freshness, freshness, modules_to_preload, preload, project_scripts
from expops_smk.runtime.served_restore import serve_restore


DEFAULT_IDLE_SECONDS = 60.0


@dataclass
class _Job:
    """A forked child and the client waiting for it."""

    connection: socket.socket
    pid: int
    pidfd: int
    done: int  # read end of the pipe the child writes to once its entry point has returned


@dataclass(frozen=True)
class _Request:
    """A job: the entry point, its arguments, the client's working directory and environment."""

    entry: str
    args: list[str]
    cwd: str
    env: dict[str, str]

    @classmethod
    def parse(cls, data: bytes) -> _Request | None:
        """None for anything but a job of a known entry point (the client then runs the job cold,
        which reports an unknown entry point as a usage error)."""
        fields = parse_request(data)
        return cls(*fields) if fields is not None and fields[0] in ENTRY_POINTS else None


@dataclass(frozen=True)
class ChildTask:
    """What a freshly forked child runs, once the server's state is closed."""

    entry: str
    args: list[str]
    done: int  # write end of the server's pipe: one byte once the job has reported its outcome

    def run(self) -> int:
        """Run the job; a child that ends any other way (``os._exit`` in user code) is reported
        by the client, which learns from the server whether this byte was written."""
        try:
            code = run_entry_point(self.entry, self.args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        os.write(self.done, b"1")
        return code


def log(message: str) -> None:
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] pid {os.getpid()}: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    claimed = claim(argv[0])
    if claimed is None:
        return 0  # another job's server has the name, or there is no safe place for its socket
    listener, lock = claimed
    root = Path.cwd()
    started = time.perf_counter()
    scripts = project_scripts(root)  # read from the plan once, for the preload list and the watch list
    loaded, failed = preload(modules_to_preload(root, scripts))
    if failed:
        log("could not preload (jobs import them themselves): " + "; ".join(failed))
    unsafe = threading.active_count() > 1
    gc.freeze()  # keep the imported objects out of the collector, so children do not copy their pages
    listener.listen(64)
    os.close(lock)
    log(f"serving {root} with {len(loaded)} modules preloaded in {time.perf_counter() - started:.1f}s"
        + ("; refusing every job: a preloaded module started a thread" if unsafe else ""))
    server = Server(listener, freshness(root, scripts), idle_seconds(), refuse_all=unsafe)
    task = server.serve()
    if task is None:
        log("exiting: " + ("idle" if server.listener is not None else "replaced, its last job is done"))
        return 0
    leave(task.run())


def leave(code: int) -> NoReturn:
    """End a forked child as the interpreter's exit would, without its finalization.

    Finalizing clears every module and object the child inherited from the server, which writes
    to their reference counts and so copies nearly every page of the server's heap: 40-90 ms per
    job on the benchmark machine, against 3 ms for fork and ``os._exit`` and 4 ms for restoring a
    node. What an exit must still do is done here: wait for the non-daemon threads user code
    started, run the atexit handlers (logging's flush among them), flush files left open with
    data in their buffers (the child's own objects only: the server's are frozen out of ``gc``),
    then the standard streams.
    """
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for item in gc.get_objects():
        if isinstance(item, io.IOBase):
            with contextlib.suppress(Exception):
                if not item.closed and item.writable():
                    item.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code & 0xFF)  # what sys.exit(code) makes of a code outside 0-255


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
    socket_path, pid_file = map(Path, paths)
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


def idle_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(IDLE_VARIABLE, DEFAULT_IDLE_SECONDS)))
    except ValueError:
        log(f"{IDLE_VARIABLE} is not a number of seconds; using {DEFAULT_IDLE_SECONDS:.0f}")
        return DEFAULT_IDLE_SECONDS


class Server:
    """Accept job requests and fork; returns from ``serve`` in each child with its task."""

    def __init__(self, listener: socket.socket, freshness: Freshness, idle_seconds: float, refuse_all: bool) -> None:
        self.listener: socket.socket | None = listener
        self.idle_seconds = idle_seconds
        self.refuse_all = refuse_all
        self.freshness = freshness
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, None)
        self.jobs: dict[int, _Job] = {}  # by pid

    def serve(self) -> ChildTask | None:
        """Serve until idle; a refused job counts as activity, so a refusing server is not
        restarted (and its imports paid again) every idle period while jobs keep coming."""
        last_activity = time.monotonic()
        while self.listener is not None or self.jobs:
            timeout = None if self.jobs else self.idle_seconds - (time.monotonic() - last_activity)
            if timeout is not None and timeout <= 0:
                break
            for key, _ in self.selector.select(timeout):
                if key.fileobj is self.listener:
                    task = self.accept()
                    if task is not None:
                        return task
                    last_activity = time.monotonic()
                elif isinstance(key.data, tuple) and key.data[0] == "pidfd":
                    self.reap(self.jobs[key.data[1]])
                    last_activity = time.monotonic()
                else:
                    self.message_from_client(self.jobs[key.data])
        return None

    def stop_accepting(self) -> None:
        """Release the name at once, so that a fresh server can take it while children finish."""
        if self.listener is not None:
            self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None

    def accept(self) -> ChildTask | None:
        assert self.listener is not None
        connection, _ = self.listener.accept()
        try:
            _, uid, _ = peer_credentials(connection)
            if uid != os.getuid():
                connection.close()  # only root could have put it in our folder; serve only our user
                return None
            connection.settimeout(5.0)  # a client sends its request right after connecting
            data, descriptors, _, _ = socket.recv_fds(connection, MAX_MESSAGE_BYTES, 3)
            connection.settimeout(None)
        except OSError:
            connection.close()
            return None
        if not data and not descriptors:  # a starting server checking whether this one answers
            connection.close()
            return None
        request = _Request.parse(data) if len(descriptors) == 3 else None
        refusal = self.refusal() if request is not None else "malformed request"
        if refusal is not None:
            log(f"refusing a job: {refusal}")
            for descriptor in descriptors:
                os.close(descriptor)
            with contextlib.suppress(OSError):
                connection.send(encode(["refused", refusal]))
            connection.close()
            return None
        if request.entry == "runtime" and request.cwd == os.getcwd():  # the name covers the folder: never another
            seconds = serve_restore(connection, request.args, request.cwd, request.env, descriptors, self.freshness)
            if seconds is not None:  # restored in this process, no child (see runtime.served_restore)
                log(f"restored {request.entry} {' '.join(request.args)} in {1000 * seconds:.0f} ms")
                return None
        return self.fork(connection, request, descriptors)

    def refusal(self) -> str | None:
        if self.refuse_all:
            return "unsafe"
        if self.freshness.changed():
            self.stop_accepting()
            return "stale"
        return None

    def fork(self, connection: socket.socket, request: _Request, descriptors: list[int]) -> ChildTask | None:
        sys.stdout.flush()
        sys.stderr.flush()
        done_read, done_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(done_read)
            return self.become_child(connection, request, descriptors, done_write)
        os.close(done_write)
        for descriptor in descriptors:  # the child has its own copies now
            os.close(descriptor)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # cannot watch it: nothing to report to the client, so do not let it run
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(done_read)
            connection.close()
            return None
        self.jobs[pid] = _Job(connection, pid, pidfd, done_read)
        self.selector.register(pidfd, selectors.EVENT_READ, ("pidfd", pid))
        self.selector.register(connection, selectors.EVENT_READ, pid)
        try:
            connection.send(encode(["started", str(pid), job_label(request.entry, request.args)]))
        except OSError:
            os.kill(pid, signal.SIGKILL)  # the client is gone already; reaped when the pidfd fires
        log(f"forked {pid} for {request.entry} {' '.join(request.args)}")
        return None

    def become_child(self, connection: socket.socket, request: _Request, descriptors: list[int],
                     done: int) -> ChildTask:
        """Drop the server's state and take the client's streams, directory and environment."""
        server_pid = os.getppid()
        die_with_parent(server_pid)
        self.selector.close()
        for job in self.jobs.values():
            job.connection.close()
            os.close(job.pidfd)
            os.close(job.done)
        if self.listener is not None:
            self.listener.close()
        connection.close()
        for target, descriptor in enumerate(descriptors):
            os.dup2(descriptor, target)
        for descriptor in descriptors:
            os.close(descriptor)
        os.chdir(request.cwd)
        os.environ.clear()
        os.environ.update(request.env)
        os.environ[SERVER_PID_VARIABLE] = str(server_pid)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        random.seed()  # siblings must not share the server's random state (nodes seed their own)
        return ChildTask(request.entry, request.args, done)

    def message_from_client(self, job: _Job) -> None:
        """A signal to relay, or the client's end of stream: it died, so must its job."""
        try:
            message = receive(job.connection)
        except OSError:
            message = []
        if not message:
            self.selector.unregister(job.connection)
            _kill(job, signal.SIGKILL)
            return
        if len(message) == 2 and message[0] == "signal" and message[1].isdigit():
            _kill(job, int(message[1]))

    def reap(self, job: _Job) -> None:
        _, status = os.waitpid(job.pid, 0)
        self.selector.unregister(job.pidfd)
        os.close(job.pidfd)
        reported = os.read(job.done, 1) == b"1"  # the child has exited: never blocks
        os.close(job.done)
        del self.jobs[job.pid]
        try:
            job.connection.send(encode(["status", str(status), "1" if reported else "0"]))
        except OSError:
            pass  # the client died first
        try:
            self.selector.unregister(job.connection)
        except KeyError:
            pass  # unregistered when the client went away
        job.connection.close()


def _kill(job: _Job, signum: int) -> None:
    """Signal through the pidfd: never a recycled pid, even if the child has just exited."""
    try:
        signal.pidfd_send_signal(job.pidfd, signum)
    except OSError:
        pass  # already exited; the pidfd will report it


if __name__ == "__main__":
    sys.exit(main())
