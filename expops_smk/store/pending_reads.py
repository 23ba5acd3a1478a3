"""Reads a node recorded but nobody checked yet, and the *seal* that turns them into digests soundly.

A node records only the paths its function opened and when the call started and ended
(``runtime.reads``): a stat and a digest per file would cost the job more than the opens themselves.
The files are stat'ed and hashed later, outside the job: at the next parse (``prepare``), by
``status`` or by a restore check. What the function read is what a file held while it ran; the seal
only sees what it holds now. The two are the same when the file has not changed since before the
call started, and its ctime says so: writing, truncating, ``touch``, ``chmod`` and renaming a file
onto the path all set it to the current time, and nothing sets it back. Hence the rule: a file whose
ctime is before the call's start, less the file system's timestamp granularity, is hashed and its
digest is what the node read; any other file *may* have changed while the node ran (or since), so it
is recorded as changed: the node re-executes, and ``status`` says why.

The same holds for the path's folder: a folder renamed into place (``mv data.new data``) brings
files whose ctimes are old, so the folders' identities (device, inode) taken right after the call
must still be those of the folders found at the seal. Their mtimes tell whether a file missing at
the seal was already missing when the call returned (not a read, as before) or was removed since
(changed).
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path
from typing import Any, Mapping

from expops_smk.store.hashing import CHUNK_BYTES, hash_bytes, hash_file

Reads = dict[str, list]
"""path -> [size, mtime_ns, digest]; ``path`` relative to the project when inside it (a copied
project keeps its records), else absolute. Paths are handled as strings, not ``pathlib`` objects: a
node may read thousands of files."""

CHANGED_WHILE_RUNNING = "changed-while-the-node-ran"
"""The digest of a file whose ctime falls inside the call: what the node read is not known."""

CHANGED_SINCE = "changed-before-it-was-checked"
"""The digest of a file changed (or removed, or its folder replaced) after the call, before the
seal: what the node read is not known either. Neither value equals a real digest."""

FINE_GRANULARITY_NS = 20_000_000
"""Linux stamps files from a clock that advances once per tick (at most 10 ms at HZ=100), so a
file changed just after the start can carry a stamp up to one tick before it; twice that to spare."""

COARSE_GRANULARITY_NS = 2_000_000_000
"""The margin for a stamp that is a whole 10 ms: it comes from a coarse file system (FAT: 2 s,
HFS+ and old ext3 inodes: 1 s). A finer stamp falls on such a boundary once in 10^7, and then only
widens the margin."""


class Pending:
    """What a node records after its call, before any file is checked (see the module docstring).
    (A plain class: making a dataclass costs a fresh job's import 0.3 ms.)"""

    __slots__ = ("root", "paths", "written", "started_ns", "ended_ns", "removed", "excluded_dirs", "excluded_files",
                 "folders")

    def __init__(self, root: str, paths: list[str], written: list[str], started_ns: int, ended_ns: int,
                 removed: list[str], excluded_dirs: list[str], excluded_files: list[str],
                 folders: dict[str, list[int]]) -> None:
        self.root = root  # the project folder of the node, absolute
        self.paths = paths  # distinct absolute paths opened for reading, as opened
        self.written = written  # distinct absolute paths opened for writing: the node's own outputs
        self.started_ns = started_ns
        self.ended_ns = ended_ns
        self.removed = removed  # absolute paths the call removed or renamed away
        self.excluded_dirs = excluded_dirs  # absolute, ending in "/": left out, and so is a symlink leading there
        self.excluded_files = excluded_files  # absolute
        self.folders = folders  # folder of a path read -> [st_dev, st_ino, st_mtime_ns] right after the call

    def to_json(self) -> dict[str, Any]:
        """Everything but ``paths``, which go beside the JSON as ``paths_bytes`` (see there)."""
        return {"root": self.root, "written": self.written, "started_ns": self.started_ns,
                "ended_ns": self.ended_ns, "removed": self.removed, "excluded_dirs": self.excluded_dirs,
                "excluded_files": self.excluded_files, "folders": self.folders}

    def paths_bytes(self) -> bytes:
        """The paths separated by NUL (which no path holds), as the file system spells them: joined and
        encoded at C speed, where JSON would escape each NUL into six bytes (0.1 ms per 1,000 paths)."""
        return "\0".join(self.paths).encode("utf-8", "surrogateescape")

    @staticmethod
    def from_json(data: Any, paths: bytes) -> Pending | None:
        try:
            listed = paths.decode("utf-8", "surrogateescape").split("\0") if paths else []
            return Pending(str(data["root"]), listed, list(data["written"]), int(data["started_ns"]),
                           int(data["ended_ns"]), list(data["removed"]), list(data["excluded_dirs"]),
                           list(data["excluded_files"]), dict(data["folders"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def margin_ns(ctime_ns: int) -> int:
    return COARSE_GRANULARITY_NS if ctime_ns % 10_000_000 == 0 else FINE_GRANULARITY_NS


def seal(root: Path | str, pending: Pending, known: Mapping[str, list] | None = None) -> Reads:
    """The reads of ``pending`` with digests, files that may have changed marked as changed.

    ``known`` (path -> [size, mtime_ns, digest], e.g. prepare's stat cache) spares hashing a file
    whose size and mtime are as known there. Left out, as the recorder promises: files the call
    opened for writing, bytecode, the excluded folders and files; and, as when the node checked
    right after the call: what is not a regular file, what was gone when the call returned (its
    folder's listing is unchanged since, or the call removed it: a temporary file, an open that
    failed), and symlinks that lead into the excluded folders.
    """
    known = known or {}
    moved = str(root) != pending.root  # a copied project: its own files count (their folders differ)
    prefix = os.path.join(pending.root, "")
    excluded_dirs = _with_real_dirs(tuple(pending.excluded_dirs))
    excluded_files = frozenset(pending.excluded_files) | frozenset(map(_real_file, pending.excluded_files))
    written = {_normal(path) for path in pending.written}
    removed = frozenset(_normal(path) for path in pending.removed)
    removed_trees = tuple(os.path.join(path, "") for path in removed)
    folders: dict[str, tuple[str, str]] = {}  # folder -> (what became of it since the call, real path)
    reads: Reads = {}
    for opened in pending.paths:
        path = _normal(opened)
        if path in written or path.endswith(".pyc") or path in excluded_files or path.startswith(excluded_dirs):
            continue
        shown = path[len(prefix):] if path.startswith(prefix) else path
        if moved and shown != path:
            path = os.path.join(str(root), shown)
        folder, _, name = path.rpartition("/")
        if folder not in folders:
            folders[folder] = (_folder_since(folder or "/", pending.folders.get(opened[:opened.rindex("/")])),
                               os.path.realpath(folder or "/"))
        since, real_folder = folders[folder]
        entry = _entry(path, name, since, real_folder, pending, (excluded_dirs, excluded_files), removed,
                       removed_trees, known.get(shown))
        if entry is not None:
            reads[shown] = entry
    return dict(sorted(reads.items()))


def _entry(path: str, name: str, since: str, real_folder: str, pending: Pending,
           excluded: tuple[tuple[str, ...], frozenset[str]], removed: frozenset[str], removed_trees: tuple[str, ...],
           known: list | None) -> list | None:
    """[size, mtime_ns, digest or changed mark] of one path read, None when it is no read."""
    if since == "absent":
        return None  # no such folder when the call returned: no such file either
    try:
        link = os.lstat(path)
        st = os.stat(path) if stat.S_ISLNK(link.st_mode) else link
    except OSError:
        if since == "same listing" or path in removed or path.startswith(removed_trees):
            return None
        return [None, None, CHANGED_SINCE]  # may have been there when the call returned
    if not stat.S_ISREG(st.st_mode):
        return None  # a folder, a pipe, a device: nothing to depend on
    real = os.path.realpath(path) if link is not st else f"{real_folder.rstrip('/')}/{name}"
    if real != path and (real in excluded[1] or real.startswith(excluded[0])):
        return None  # a symlink into the store or results: tracked there
    changed = max(link.st_ctime_ns, st.st_ctime_ns)
    if since == "replaced" or changed > pending.ended_ns + margin_ns(changed):
        return [st.st_size, st.st_mtime_ns, CHANGED_SINCE]
    if changed >= pending.started_ns - margin_ns(changed):
        return [st.st_size, st.st_mtime_ns, CHANGED_WHILE_RUNNING]
    if known is not None and known[:2] == [st.st_size, st.st_mtime_ns] and not is_changed_mark(known[2]):
        return [st.st_size, st.st_mtime_ns, known[2]]
    return [st.st_size, st.st_mtime_ns, _hash_unchanged(path, st)]


@functools.lru_cache(maxsize=16)
def _with_real_dirs(dirs: tuple[str, ...]) -> tuple[str, ...]:
    """The left-out folders (each ending in "/") as given and resolved: the recorder gives them as
    absolute paths, leaving the ``realpath`` calls to the seal. Cached: every record of a project
    names the same ones. (They are the store, the results and the interpreter's folders: were one
    of them re-pointed while this process runs, files below its former target, the old store, would
    still be left out, and those below the new one counted as read.)"""
    return tuple(sorted({*dirs, *(os.path.join(os.path.realpath(folder), "") for folder in dirs)}))


def _real_file(path: str) -> str:
    """The real path of a left-out file (a job's log, a source node's data), through its folder:
    one ``realpath`` per folder, not per job. A left-out file that is itself a symlink keeps its
    target counted as a read (a re-run too many, never one too few)."""
    folder, _, name = path.rpartition("/")
    return os.path.join(_real_folder(folder or "/"), name)


@functools.lru_cache(maxsize=256)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def _normal(path: str) -> str:
    """``os.path.normpath`` of an absolute path, skipped for the usual path that needs none."""
    return os.path.normpath(path) if "//" in path or "/." in path or path.endswith("/") else path


def _folder_since(folder: str, recorded: list[int] | None) -> str:
    """"absent" (it was not there when the call returned), "replaced" (another folder, or none, is
    there now), "same listing" (same folder, no entry added or removed since) or "same folder"."""
    if recorded is None:
        return "absent"
    try:
        st = os.stat(folder)
    except OSError:
        return "replaced"
    if [st.st_dev, st.st_ino] != list(recorded[:2]):
        return "replaced"
    return "same listing" if st.st_mtime_ns == recorded[2] else "same folder"


def is_changed_mark(digest: Any) -> bool:
    return digest in (CHANGED_WHILE_RUNNING, CHANGED_SINCE)


def _hash_unchanged(path: str, st: os.stat_result) -> str:
    """The digest of ``path``, or ``CHANGED_SINCE`` if it changed while being hashed (then the bytes
    hashed need not be the ones the node read)."""
    try:
        digest = hash_path(path, st.st_size)
        after = os.stat(path)
    except OSError:
        return CHANGED_SINCE
    same = (after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns) == (
        st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return digest if same else CHANGED_SINCE


def hash_path(path: Path | str, size: int) -> str:
    """``hash_file``, except that a small file is read in one call (most reads are small files)."""
    if size >= CHUNK_BYTES:
        return hash_file(Path(path))
    with open(path, "rb", buffering=0) as handle:
        return hash_bytes(handle.read())
