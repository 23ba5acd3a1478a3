"""Content hashes: xxh3-128 of bytes and of files, the hash every artifact and run record uses.

xxh3-128 is about ten times faster than sha256 on artifacts, which keeps hashing a small fraction
of the cost of writing them; collisions are not a concern for content that a project produces
itself (the store re-checks every object's bytes before it serves them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import xxhash

HASH_ALGORITHM = "xxh3_128"

CHUNK_BYTES = 4 * 1024 * 1024
"""Read size for streaming hashes: large enough to amortise syscalls, small enough for any job."""


def hash_bytes(data: bytes | memoryview) -> str:
    """xxh3-128 hex digest of an in-memory buffer."""
    return xxhash.xxh3_128_hexdigest(data)


def hash_file(path: Path) -> str:
    """xxh3-128 hex digest of a file, read in fixed chunks so memory stays flat for any size."""
    with open(path, "rb", buffering=0) as handle:
        return hash_handle(handle)


def hash_handle(handle: BinaryIO) -> str:
    """xxh3-128 hex digest of what remains to be read from an open binary file, in fixed chunks."""
    hasher = xxhash.xxh3_128()
    buffer = memoryview(bytearray(CHUNK_BYTES))
    while count := handle.readinto(buffer):
        hasher.update(buffer[:count])
    return hasher.hexdigest()


class HashingWriter:
    """File wrapper that hashes everything pickle writes through it, in the same pass."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self._hasher = xxhash.xxh3_128()

    def write(self, data: Any) -> int:
        self._hasher.update(data)
        return self._target.write(data)

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()
