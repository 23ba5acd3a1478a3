"""File operations the store is built on: temp names, atomic writes, hard links, and cleanup.

Nothing is ever half-written under its final name: every file is written under a temp name beside
its destination and renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import xxhash

from expops_smk.layout import MANIFEST
from expops_smk.store.artifacts import ARTIFACT_SUFFIXES
from expops_smk.store.hashing import CHUNK_BYTES, hash_file

TMP_PREFIX = ".tmp-"
READ_ONLY = 0o444
STALE_TMP_SECONDS = 3600
"""A temp file untouched this long belongs to a crashed writer (live writers keep touching theirs)."""


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

    The link is made under a temp name and renamed over ``dest``. When ``dest`` already is a link
    to the same object, POSIX rename does nothing and leaves the temp name behind, hence the
    final unlink.
    """
    tmp = dest.parent / tmp_name()
    try:
        try:
            os.link(obj, tmp)
        except OSError:  # cross-device store, no hard-link support, or protected_hardlinks
            copy_file(obj, tmp)
            os.chmod(tmp, READ_ONLY)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes) -> None:
    """Write bytes to a temp file beside ``path`` and rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / tmp_name()
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def is_generated(name: str) -> bool:
    """Files a node execution creates in its dir (as opposed to e.g. the job's log)."""
    return (
        name == MANIFEST
        or name.endswith(ARTIFACT_SUFFIXES)
        or (name.startswith("_") and name.endswith(".json"))
        or name.startswith(TMP_PREFIX)
    )


def remove_generated(node_dir: Path, keep: set[str]) -> None:
    """Delete generated files in ``node_dir`` (not below it) except those named in ``keep``."""
    with os.scandir(node_dir) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and is_generated(entry.name) and entry.name not in keep:
                os.unlink(entry.path)


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
