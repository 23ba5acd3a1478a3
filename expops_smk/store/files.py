"""File operations the store is built on: temp names, atomic writes, hard links, and cleanup.

Nothing is ever half-written under its final name: every file is written under a temp name beside
its destination and renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import xxhash

from expops_smk.errors import ExpopsError
from expops_smk.layout import LOGS_DIR, MANIFEST, RESULTS_DIR, STORE_DIR
from expops_smk.store.hashing import CHUNK_BYTES, hash_file

TMP_PREFIX = ".tmp-"
STALE_TMP_SECONDS = 3600
"""A temp file untouched this long belongs to a crashed writer (live writers keep touching theirs)."""


def read_only_mode() -> int:
    """Read-only for whoever the user's umask lets read: 0444 under umask 022, 0400 under 077.

    Artifacts are hard links to store objects, so their mode is the objects' mode; a fixed 0444
    would make every result world-readable even for a user who set ``umask 077``.
    """
    umask = os.umask(0o077)  # the only way to read the umask; set back at once
    os.umask(umask)
    return 0o444 & ~umask


def confined(path: Path, anchor: Path) -> Path:
    """``path`` (below ``anchor``) if it resolves to where it claims, else an ``ExpopsError``.

    The runtime writes and deletes in node folders and the store; a symlink there (a node folder
    linked to ``/etc``, a ``.expops/objects`` pointing elsewhere) would make it write or delete
    outside the project. ``anchor`` itself (``results/``, ``.expops/``) may be a symlink, e.g.
    to a scratch disk: only what lies below it must resolve below its resolved place.
    """
    path = Path(path)
    relative = path.relative_to(anchor)
    expected = Path(os.path.realpath(anchor)) / relative
    actual = Path(os.path.realpath(path))
    if actual != expected:
        raise ExpopsError(f"{path}: refusing to write through a symlink: it resolves to {actual}, "
                          f"outside {expected.parent}")
    return path


def confined_in_project(path: Path, project_root: Path) -> Path:
    """``path`` checked by ``confined`` against the project folder it lies in.

    Below ``.expops/``, ``results/`` (node and chart folders) or ``logs/`` it must resolve below
    their resolved places; elsewhere (a folder outside any project, as in tests) at least ``path``
    itself must not be a symlink.
    """
    path = Path(path)
    for anchor in (Path(project_root) / STORE_DIR, Path(project_root) / RESULTS_DIR, Path(project_root) / LOGS_DIR):
        if path.is_relative_to(anchor):
            return confined(path, anchor)
    return confined(path, path.parent)


def tmp_name() -> str:
    """Unique per process and call, so concurrent writers (threads or jobs) never share a temp."""
    return f"{TMP_PREFIX}{os.getpid()}-{os.urandom(8).hex()}"


def copy_file(src: Path, dst: Path) -> str:
    """Copy a file in fixed chunks and return the hash of the bytes copied.

    Hand-rolled rather than ``shutil`` so the copy is hashed in the same pass and the module does
    not import shutil (and through it bz2/lzma) in every job for a rarely taken path.
    """
    hasher = xxhash.xxh3_128()
    buffer = memoryview(bytearray(CHUNK_BYTES))
    with open(src, "rb", buffering=0) as source, open(dst, "xb") as target:
        while count := source.readinto(buffer):
            hasher.update(buffer[:count])
            target.write(buffer[:count])
    return hasher.hexdigest()


def hash_or_none(path: Path) -> str | None:
    """Hash of a file, or None if it cannot be read (missing, permission, not a file)."""
    try:
        return hash_file(path)
    except OSError:
        return None


def link_into(obj: Path, dest: Path) -> None:
    """Make ``dest`` a hard link to ``obj`` (a read-only copy when linking fails), atomically.

    The link is made under a temp name and renamed over ``dest``. A ``dest`` that already is a
    link to ``obj`` (same inode; a restore over the folder's own last results, the usual case:
    Snakemake deletes only the manifest before a job) is left alone: the link and rename would
    change nothing but cost two directory writes, milliseconds on a loaded disk. A rename onto
    a link to the same object would also do nothing and leave the temp name behind, hence the
    final unlink.
    """
    if _same_file(obj, dest):
        return
    tmp = dest.parent / tmp_name()
    try:
        try:
            os.link(obj, tmp)
        except OSError:  # cross-device store, no hard-link support, or protected_hardlinks
            copy_file(obj, tmp)
            os.chmod(tmp, read_only_mode())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _same_file(obj: Path, dest: Path) -> bool:
    """Whether ``dest`` is a regular file (not a symlink) with ``obj``'s inode."""
    try:
        found, wanted = os.lstat(dest), os.stat(obj)
    except OSError:
        return False
    return stat.S_ISREG(found.st_mode) and (found.st_dev, found.st_ino) == (wanted.st_dev, wanted.st_ino)


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace ``path`` only when its bytes differ, keeping its mtime otherwise: Snakemake
    (and every stat cache) then sees no change. True when it was written."""
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write(path, data)
    return True


def atomic_write(path: Path, data: bytes) -> None:
    """Write bytes to a temp file beside ``path`` and rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / tmp_name()
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_unlinking_first(path: Path, data: bytes) -> None:
    """``atomic_write`` for files a job rewrites every time, with the old file unlinked just before
    the rename: ext4 (``auto_da_alloc``) starts writing a file's data to disk when it is renamed over
    an existing file, 0.15 ms per record here and milliseconds under I/O load; renamed onto a free
    name, it is written back later as usual. A reader may find no file for that moment (and takes it
    as unknown), never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / tmp_name()
    try:
        tmp.write_bytes(data)
        path.unlink(missing_ok=True)
        os.rename(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_linked(paths: list[Path], chunks: list[bytes]) -> None:
    """``write_unlinking_first`` of the same bytes (``chunks``, written by one ``writev``: no copy
    joins them) to several paths (folders made as needed): written once and hard-linked under the
    other names (a system call each, no data written), so the names stay one file until one of
    them is replaced. Where hard links fail, each name is written."""
    first = paths[0]
    tmp = os.path.join(first.parent, tmp_name())
    try:
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask decides, as for write_bytes
    except FileNotFoundError:
        first.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask decides, as for write_bytes
    try:
        try:
            _write_all(descriptor, chunks)
        finally:
            os.close(descriptor)
        for path in paths[1:]:
            try:
                _link_unlinking_first(tmp, path)
            except OSError:  # no hard links here (some network and FUSE file systems), or a writer in between
                write_unlinking_first(path, b"".join(chunks))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(first)
        os.rename(tmp, first)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _write_all(descriptor: int, chunks: list[bytes]) -> None:
    total, written = sum(map(len, chunks)), os.writev(descriptor, chunks)
    if written < total:  # a short write (a signal, a full disk): the rest, plainly
        rest = b"".join(chunks)[written:]
        while rest:
            rest = rest[os.write(descriptor, rest):]


def _link_unlinking_first(source: str, path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    try:
        os.link(source, path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, path)


def remove_recorded(node_dir: Path, names: set[str], keep: frozenset[str] | set[str] = frozenset()) -> None:
    """Delete the files named in ``names`` (ones the store recorded writing) except ``keep``.

    Only plain names directly in ``node_dir`` and only regular files (never a symlink's target):
    a file that merely looks generated, such as a user's ``data.pkl``, is not the store's to delete.
    """
    for name in sorted(set(names) - set(keep)):
        if not name or "/" in name or name in (".", ".."):
            continue
        path = Path(node_dir) / name
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(path)
        except FileNotFoundError:
            pass


def find_manifests(results_dir: Path) -> Iterator[Path]:
    """Every manifest below ``results_dir`` in a stable (sorted) order."""
    for directory, subdirs, files in os.walk(results_dir):
        subdirs.sort()
        if MANIFEST in files:
            yield Path(directory) / MANIFEST


def files_in(directory: Path) -> list[Path]:
    """Sorted regular files directly in ``directory``; empty when it does not exist."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file())
