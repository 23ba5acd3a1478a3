"""Which files the user's function read: a Python audit hook on ``open``, active only around the call.

Every ``open()``, ``io.open``, ``pathlib`` read, ``os.open`` (and what goes through them: ``np.load``,
``pandas.read_csv``, ``pickle.load`` of an opened file) raises the audit event ``open`` with
``(path, mode, flags)``. The hook records read-only opens of paths while a ``Recorder`` is active.
Audit hooks cannot be removed, so one hook is installed per process when this module is imported
(in the warm server, whose forked jobs inherit it) and does nothing while no call is being recorded:
reading inputs and writing artifacts by the runtime itself is never recorded.

What is left out, because something else already tracks it or it is not the project's data: the
node's own inputs and the store (``results/``, ``.expops/``), the job log, the interpreter, its
standard library and site-packages (library versions are in the run key), ``/proc``, ``/sys``,
``/dev``, bytecode caches, files the call itself opened for writing, and whatever is not a regular
file once the call returns (directories, pipes, deleted temporary files).
"""

from __future__ import annotations

import contextlib
import os
import site
import stat
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from expops_smk.layout import RESULTS_DIR, STORE_DIR
from expops_smk.store.read_records import Reads, changed_reads, job_record_path, read_job_record, read_run_reads

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_SYSTEM_DIRS = ("/proc", "/sys", "/dev")


@dataclass
class Recorder:
    """Absolute paths opened while active; relative paths are resolved against the cwd of the open."""

    excluded_dirs: tuple[str, ...]  # each ending in "/": one str.startswith checks them all
    excluded_files: frozenset[str]
    read: dict[str, None] = field(default_factory=dict)  # insertion-ordered set
    written: set[str] = field(default_factory=set)

    def opened(self, path: Any, mode: str | None, flags: int) -> None:
        """The hook's work per open: as little as possible, since a node may open thousands of files."""
        if path.__class__ is not str:
            if isinstance(path, int):  # an already open descriptor: its open was seen (or was not a path)
                return
            path = os.fsdecode(path)
        if not path.startswith("/"):
            path = f"{os.getcwd()}/{path}"  # the cwd of this open: the function may chdir later
        if (flags & _WRITE_FLAGS) if mode is None else ("w" in mode or "a" in mode or "x" in mode or "+" in mode):
            self.written.add(path)
        else:
            self.read.setdefault(path)

    def files(self) -> list[tuple[str, os.stat_result]]:
        """The recorded reads that count, with their ``stat``: see the module docstring for what is left out."""
        written = {_normal(path) for path in self.written}
        real_dirs: dict[str, str] = {}
        result = []
        for path in dict.fromkeys(_normal(raw) for raw in self.read):
            if path in written or path.endswith(".pyc") or self.excluded(path):
                continue
            try:
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    real, st = os.path.realpath(path), os.stat(path)
                else:
                    folder, _, name = path.rpartition("/")
                    if folder not in real_dirs:
                        real_dirs[folder] = os.path.realpath(folder or "/")
                    real = f"{real_dirs[folder].rstrip('/')}/{name}"
            except OSError:  # gone already (a temporary file): nothing to depend on
                continue
            if stat.S_ISREG(st.st_mode) and (real == path or not self.excluded(real)):
                result.append((path, st))
        return result

    def excluded(self, path: str) -> bool:
        return path in self.excluded_files or path.startswith(self.excluded_dirs)


def recorder_for(root: Path, own_inputs: Iterable[Path | str | IO[str] | None] = ()) -> Recorder:
    """A recorder for a node of the project in ``root`` whose own files are ``own_inputs``.

    Those are paths or open files (the job log), relative to ``root``; None entries are skipped.
    """
    root = Path(os.path.abspath(root))
    paths = [item if isinstance(item, (str, Path)) else getattr(item, "name", None) for item in own_inputs]
    dirs = [root / STORE_DIR, root / RESULTS_DIR, *map(Path, _SYSTEM_DIRS)]
    dirs += [Path(p) for p in _interpreter_dirs() if not _below(str(root), os.path.abspath(p))]
    files = {os.path.abspath(root / path) for path in paths if isinstance(path, (str, Path)) and path}
    both = {os.path.abspath(d) for d in dirs} | {os.path.realpath(d) for d in dirs}
    return Recorder(tuple(sorted(os.path.join(folder, "") for folder in both)),
                    frozenset(files | {os.path.realpath(f) for f in files}))


def _interpreter_dirs() -> list[str]:
    """Prefixes, standard library and site-packages of the running interpreter (and its venv's base).

    A prefix that contains the project (a project inside a conda environment's folder) is skipped
    by the caller; its standard library and site-packages folders still count.
    """
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    paths += [value for key, value in sysconfig.get_paths().items() if key in ("stdlib", "platstdlib", "purelib", "platlib")]
    paths += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE:
        paths.append(site.getusersitepackages())
    return [p for p in dict.fromkeys(paths) if p]


def _normal(path: str) -> str:
    """``os.path.normpath`` of an absolute path, skipped for the usual path that needs none."""
    return os.path.normpath(path) if "//" in path or "/." in path or path.endswith("/") else path


def _below(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def previous_reads(root: Path, job: str) -> Reads:
    """What the job's last run read (its record), the stat cache of its next execution."""
    record = read_job_record(job_record_path(root, job))
    return {} if record is None else record[1]


def stale_reads(root: Path, record_key: str) -> list[str] | None:
    """Files read by the run recorded under ``record_key`` that changed since; None if unknown.

    Unknown (no reads record beside the run record) means the run cannot be trusted to restore.
    """
    reads = read_run_reads(root, record_key)
    return None if reads is None else changed_reads(root, reads)


_active: Recorder | None = None


def _hook(event: str, args: tuple[Any, ...]) -> None:
    """Called for every audit event of the process: as little as possible when nothing records."""
    if event == "open" and _active is not None:
        try:
            _active.opened(*args)
        except Exception:  # noqa: BLE001 - an audit hook that raises would fail the user's open()
            pass


@contextlib.contextmanager
def recording(recorder: Recorder) -> Iterator[Recorder]:
    """Record the files opened inside the ``with`` block (the user's call) into ``recorder``."""
    global _active
    previous, _active = _active, recorder
    try:
        yield recorder
    finally:
        _active = previous


sys.addaudithook(_hook)
