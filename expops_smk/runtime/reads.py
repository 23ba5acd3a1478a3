"""Which files the user's function read: a Python audit hook on ``open``, active only around the call.

Every ``open()``, ``io.open``, ``pathlib`` read, ``os.open`` (and what goes through them: ``np.load``,
``pandas.read_csv``, ``pickle.load`` of an opened file) raises the audit event ``open`` with
``(path, mode, flags)``. While a ``Recorder`` is active the hook appends the path of a plain read
to a list and does nothing else: a node may open thousands of files, and each microsecond per
``open`` shows in its run time. Audit hooks cannot be removed, so one hook is installed per process,
when it first records a call (in a job, or in a job forked from the warm server, which never
records: the imports and start-up before the call raise thousands of audit events that no hook
then sees), and does nothing while no call is being recorded: reading inputs and writing
artifacts by the runtime itself is never recorded.

After the call, ``Recorder.pending`` keeps the distinct paths, the paths opened for writing, the
call's start and end and one ``stat`` per folder read from: no system call per file. Sorting the
paths out, resolving the left-out folders and files to their real paths, and checking the files
(stat, digest, the ctime rule) is the seal's work (``store.pending_reads``), done after the job.

What is left out, because something else already tracks it or it is not the project's data: the
node's own inputs and the store (``results/``, ``.expops/``), the job log, the interpreter, its
standard library and site-packages (library versions are in the run key), ``/proc``, ``/sys``,
``/dev``, bytecode caches, files the call itself opened for writing, whatever is not a regular
file, and files already gone when the call returned (``_REMOVALS``: those it removed itself).
"""

from __future__ import annotations

import contextlib
import functools
import os
import site
import sys
import sysconfig
import time
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from expops_smk.layout import RESULTS_DIR, STORE_DIR
from expops_smk.store.pending_reads import Pending
from expops_smk.store.read_records import changed_reads, read_run_reads

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_READ_MODES = frozenset(("r", "rb", "rt", "br", "tr"))
_SYSTEM_DIRS = ("/proc", "/sys", "/dev")
_FOLDER = itemgetter(0)  # of str.rpartition("/"): the folder of an absolute path ("" for "/")
_REMOVALS = frozenset(("os.remove", "os.rename", "os.rmdir", "shutil.rmtree"))
"""Audit events whose first argument is a path the call removed (or moved away): a file it read
and then removed (a temporary file) is not a read, as it was not when checked right after the call."""


class Recorder:
    """The ``open`` events of the call: ``reads`` holds the absolute str paths opened with a read
    mode (nearly all of them, appended by the hook as they come), ``others`` the rest as
    ``(absolute path, mode, flags)``. Sorting them out is left to the seal. (A plain class: making
    a dataclass costs a fresh job's import 0.3 ms.)"""

    __slots__ = ("root", "excluded_dirs", "excluded_files", "reads", "others", "removed", "started_ns", "ended_ns")

    def __init__(self, root: str, excluded_dirs: tuple[str, ...], excluded_files: frozenset[str]) -> None:
        self.root = root
        self.excluded_dirs = excluded_dirs  # each ending in "/": one str.startswith checks them all
        self.excluded_files = excluded_files
        self.reads: list[str] = []
        self.others: list[tuple[str, str | None, int]] = []
        self.removed: list[str] = []
        self.started_ns = 0
        self.ended_ns = 0

    def opened_other(self, path: Any, mode: str | None, flags: int) -> None:
        """An open that is not a plain read of an absolute str path: bytes, a relative path (cwd
        taken now: the function may chdir later), ``os.open``, a write mode, or a descriptor (its
        own open was seen, or was not a path)."""
        if isinstance(path, int):
            return
        path = os.fsdecode(path)
        self.others.append((path if path.startswith("/") else f"{os.getcwd()}/{path}", mode, flags))

    def removed_path(self, path: Any) -> None:
        if isinstance(path, (str, bytes, os.PathLike)):
            path = os.fsdecode(path)
            self.removed.append(path if path.startswith("/") else f"{os.getcwd()}/{path}")

    def pending(self) -> Pending:
        """What the node records: the distinct paths read and written, the call's start and end
        (wall clock, the clock of file ctimes), and the identity of each folder read from."""
        read = dict.fromkeys(self.reads)
        written = []
        for path, mode, flags in self.others:
            if flags & _WRITE_FLAGS if mode is None else ("w" in mode or "a" in mode or "x" in mode or "+" in mode):
                written.append(path)
            else:
                read[path] = None
        # Each path's folder by C-level calls (map, rpartition, itemgetter): a third cheaper than a
        # comprehension, which for 1,000 paths costs a job more than the hook that recorded them.
        folders = set(map(_FOLDER, map(str.rpartition, read, repeat("/"))))
        return Pending(self.root, list(read), list(dict.fromkeys(written)), self.started_ns, self.ended_ns,
                       list(dict.fromkeys(self.removed)), list(self.excluded_dirs), sorted(self.excluded_files),
                       _identities(folders))


def _identities(folders: Iterable[str]) -> dict[str, list[int]]:
    """[st_dev, st_ino, st_mtime_ns] of each folder holding a read file, right after the call: one
    ``stat`` per folder, not per file (see ``store.pending_reads`` for what the seal makes of them)."""
    identities = {}
    for folder in folders:
        try:
            st = os.stat(folder or "/")
        except OSError:
            continue  # gone already: so are the files in it
        identities[folder] = [st.st_dev, st.st_ino, st.st_mtime_ns]
    return identities


def recorder_for(root: Path, own_inputs: Iterable[Path | str | IO[str] | None] = ()) -> Recorder:
    """A recorder for a node of the project in ``root`` whose own files are ``own_inputs``.

    Those are paths or open files (the job log), relative to ``root``; None entries are skipped.
    They, the store and the results are given as absolute paths; the seal adds their real paths
    (a ``realpath`` costs a job more than recording 100 opens).
    """
    root_text = os.path.abspath(root)
    paths = [item if isinstance(item, (str, Path)) else getattr(item, "name", None) for item in own_inputs]
    files = frozenset(os.path.normpath(os.path.join(root_text, path)) for path in paths
                      if isinstance(path, (str, Path)) and path)
    return Recorder(root_text, _excluded_dirs(root_text), files)


@functools.lru_cache(maxsize=4)
def _excluded_dirs(root: str) -> tuple[str, ...]:
    """The store, the results and the interpreter's folders, each ending in "/"."""
    dirs = {os.path.join(root, STORE_DIR), os.path.join(root, RESULTS_DIR)}
    dirs |= {folder for folder in _interpreter_dirs() if not _below(root, folder)}
    return tuple(sorted(os.path.join(folder, "") for folder in dirs))


@functools.lru_cache(maxsize=1)
def _interpreter_dirs() -> frozenset[str]:
    """Prefixes, standard library and site-packages of the running interpreter (and its venv's
    base), as given and resolved, and the system folders; computed once per process (by the warm
    server before it forks), since resolving them costs a job more than recording 1,000 opens.

    A prefix that contains the project (a project inside a conda environment's folder) is skipped
    by the caller; its standard library and site-packages folders still count.
    """
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    paths += [value for key, value in sysconfig.get_paths().items() if key in ("stdlib", "platstdlib", "purelib", "platlib")]
    paths += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE:
        paths.append(site.getusersitepackages())
    paths = [path for path in dict.fromkeys([*paths, *_SYSTEM_DIRS]) if path]
    return frozenset(os.path.abspath(path) for path in paths) | frozenset(os.path.realpath(path) for path in paths)


def _below(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def stale_reads(root: Path, record_key: str) -> list[str] | None:
    """Files read by the run recorded under ``record_key`` that changed since; None if unknown.

    Unknown (no reads record beside the run record, or one of an older format) means the run
    cannot be trusted to restore.
    """
    reads = read_run_reads(root, record_key)
    return None if reads is None else changed_reads(root, reads)


_active: Recorder | None = None
_reads_append: Any = None  # _active.reads.append, looked up once per call instead of once per open
_cwd: str | None = None
"""The working directory relative paths are read from, asked once (``os.getcwd`` is a system call)
and forgotten at each ``os.chdir``/``os.fchdir`` audit event. (A ``chdir`` made in C, outside
Python's ``os``, is not seen: relative paths read after it would be resolved against the old one.)"""


def _hook(event: str, args: tuple[Any, ...]) -> None:
    """Called for every audit event of the process: as little as possible, recording or not.
    (A ``try`` costs nothing until something raises; a hook that raised would fail the open.)"""
    global _cwd
    if event == "open":
        if _reads_append is not None:
            try:
                path, mode, flags = args
                if path.__class__ is str and mode in _READ_MODES:
                    if path[:1] == "/":
                        _reads_append(path)
                    else:
                        _reads_append(f"{_cwd or _current_dir()}/{path}")
                else:
                    _active.opened_other(path, mode, flags)  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001
                pass
    elif event == "os.chdir":
        _cwd = None
    elif _active is not None and event in _REMOVALS:
        try:
            _active.removed_path(args[0])
        except Exception:  # noqa: BLE001
            pass


def _current_dir() -> str:
    global _cwd
    _cwd = os.getcwd()
    return _cwd


@contextlib.contextmanager
def recording(recorder: Recorder) -> Iterator[Recorder]:
    """Record the files opened inside the ``with`` block (the user's call) into ``recorder``.

    The start time is taken before the first open can happen and the end time after the last:
    a file whose ctime is not before the start may have changed while the call read it.
    """
    global _active, _reads_append, _cwd, _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    previous, _cwd = _active, None
    recorder.started_ns = time.time_ns()
    _active, _reads_append = recorder, recorder.reads.append
    try:
        yield recorder
    finally:
        _active = previous
        _reads_append = None if previous is None else previous.reads.append
        recorder.ended_ns = time.time_ns()


_installed = False  # the hook, in this process (a forked child has its parent's, if any)
_interpreter_dirs()
