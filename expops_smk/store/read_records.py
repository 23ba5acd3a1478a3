"""Files that user code read at run time: their digests, the records that keep them, the job token.

A node's outputs depend on the files its function opened as much as on its inputs, so a run records
every such file as ``path -> [size, mtime_ns, digest]`` (path relative to the project when inside it,
absolute otherwise). A restore checks them, ``status`` names the ones that changed, and ``prepare``
turns them into the per-job *reads token* that the rules carry as a parameter, so Snakemake
schedules exactly the jobs whose files changed.

The token is the one value Snakemake compares: a job records the token it was started with; while
the files it read are unchanged the token stays that value, and once one changes it becomes a hash
of that value and the new digests, which equals no token seen before. Recording the reads therefore
never changes a token by itself (the second run is a no-op), and a file rewritten with the same bytes
changes nothing. (A file changed back to what an *earlier* run read re-executes the node: the run
record of its key holds the last run's reads.)

Checking is stat-first: a file is hashed only when its size or mtime differs from what was recorded.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Iterable, Mapping

from expops_smk.layout import READS_DIR, READS_INDEX
from expops_smk.store.files import write_if_changed
from expops_smk.store.hashing import CHUNK_BYTES, hash_bytes, hash_file

Reads = dict[str, list]
"""path -> [size, mtime_ns, digest]; ``path`` relative to the project when inside it (a copied
project keeps its records), else absolute. Paths are handled as strings, not ``pathlib`` objects: a
node may read thousands of files."""

INITIAL_TOKEN = "files-read:none"
"""The token of a job that never recorded reads (every job, before its first run). Tokens are what
Snakemake prints when the parameter changed ("before: 'files-read:none' now: 'files-read:3f2a...'")."""

MISSING = "missing"
"""The digest of a file that no longer exists or cannot be read."""


def absolute(root: Path | str, path: str) -> str:
    return path if path.startswith("/") else os.path.join(str(root), path)


def file_state(path: Path | str) -> tuple[int, int] | None:
    """(size, mtime_ns) of a regular file (symlinks followed), None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


def current_digest(path: Path | str, known: list | None) -> list:
    """[size, mtime_ns, digest] of ``path`` now; ``known``'s digest is reused when size and mtime match."""
    state = file_state(path)
    if state is None:
        return [None, None, MISSING]
    if known is not None and tuple(known[:2]) == state:
        return [*state, known[2]]
    try:
        return [*state, _hash(path, state[0])]
    except OSError:
        return [None, None, MISSING]


def digest_reads(root: Path, files: Iterable[tuple[str, os.stat_result]], known: Mapping[str, list] | None = None) -> Reads:
    """The reads of one execution from (absolute path, stat) pairs of regular files.

    ``known`` (the node's previous reads) is a stat cache: a file whose size and mtime are as
    recorded there keeps its digest, so re-executing a node hashes only the files that changed.
    """
    reads: Reads = {}
    known = known or {}
    prefix = os.path.join(str(root), "")
    for path, st in sorted(files):
        shown = path[len(prefix):] if path.startswith(prefix) else path
        entry = known.get(shown)
        if entry is not None and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            reads[shown] = list(entry)
            continue
        try:
            reads[shown] = [st.st_size, st.st_mtime_ns, _hash(path, st.st_size)]
        except OSError:
            continue  # removed since it was read: nothing to depend on
    return reads


def _hash(path: Path | str, size: int) -> str:
    """``hash_file``, except that a small file is read in one call (most reads are small files)."""
    if size >= CHUNK_BYTES:
        return hash_file(Path(path))
    with open(path, "rb", buffering=0) as handle:
        return hash_bytes(handle.read())


def changed_reads(root: Path, reads: Mapping[str, list]) -> list[str]:
    """The recorded paths whose content differs now (stat first, hashing only when stat differs)."""
    return [path for path, entry in sorted(reads.items())
            if current_digest(absolute(root, path), entry)[2] != entry[2]]


def known_file_digests(root: Path) -> dict[str, list]:
    """``prepare``'s stat cache (``READS_INDEX``): path -> [size, mtime_ns, digest]; empty if none."""
    try:
        files = json.loads((Path(root) / READS_INDEX).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return files if isinstance(files, dict) else {}


def next_token(token: str, digests: Mapping[str, str]) -> str:
    """The token after the files changed to ``digests``: never equal to ``token`` or an earlier one."""
    return "files-read:" + hash_bytes(json.dumps([token, sorted(digests.items())]).encode())


# -- records ------------------------------------------------------------------------------------

def job_key(process: str, partition: str, seed: str) -> str:
    """``<process>[/<partition>][/s<seed>]``: a job's name among the read records (its wildcards)."""
    return "/".join([process] + ([partition] if partition else []) + ([f"s{seed}"] if seed else []))


def job_record_path(root: Path, key: str) -> Path:
    return Path(root) / READS_DIR / "jobs" / f"{key}.json"


def run_record_path(root: Path, record_key: str) -> Path:
    return Path(root) / READS_DIR / "runs" / f"{record_key}.json"


def write_job_record(root: Path, key: str, token: str, reads: Reads) -> None:
    """What ``prepare`` checks: the token the job ran with and what it read (none: no record kept)."""
    path = job_record_path(root, key)
    if not reads and token == INITIAL_TOKEN:
        path.unlink(missing_ok=True)
        return
    write_if_changed(path, _record_bytes({"token": token, "reads": reads}))  # unchanged: prepare's stat cache keeps its entry


def read_job_record(path: Path) -> tuple[str, Reads] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        token, reads = record["token"], record["reads"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (token, reads) if isinstance(token, str) and isinstance(reads, dict) else None


def write_run_reads(root: Path, record_key: str, reads: Reads) -> None:
    write_if_changed(run_record_path(root, record_key), _record_bytes(reads))


def _record_bytes(payload: object) -> bytes:
    """Records of a thousand files are rewritten by every execution, most often with the same bytes:
    ``write_if_changed`` then leaves them alone."""
    return (json.dumps(payload, sort_keys=True) + "\n").encode()


def read_run_reads(root: Path, record_key: str) -> Reads | None:
    """The reads recorded with a run record; None when there is no (readable) such record."""
    try:
        reads = json.loads(run_record_path(root, record_key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return reads if isinstance(reads, dict) else None

