"""Files that user code read at run time: the records that keep them, their digests, the job token.

A node's outputs depend on the files its function opened as much as on its inputs, so a run records
every such file. The node itself writes the record *pending* (paths and the call's times only, see
``store.pending_reads``), once: as its job record, hard-linked as the run records of its outputs;
whoever reads it first seals it into ``path -> [size, mtime_ns, digest]`` (path relative to the
project when inside it, absolute otherwise), and ``prepare`` (or the run's end) writes the sealed
form back, once, under the names still linked. A restore checks them, ``status`` names the ones
that changed, and ``prepare`` turns them into the per-job *reads token* that the rules carry as a
parameter, so Snakemake schedules exactly the jobs whose files changed.

The token is the one value Snakemake compares: a job records the token it was started with; while
the files it read are unchanged the token stays that value, and once one changes it becomes a hash
of that value and the new digests, which equals no token seen before. Recording the reads therefore
never changes a token by itself (the second run is a no-op), and a file rewritten with the same bytes
changes nothing once the record is sealed. (A file changed back to what an *earlier* run read
re-executes the node: the run record of its key holds the last run's reads.)

Checking is stat-first: a file is hashed only when its size or mtime differs from what was recorded.
Records of another format (older expops-smk) are not trusted: the job re-runs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
from pathlib import Path
from typing import Any, Iterator, Mapping

from expops_smk.layout import READS_DIR, READS_INDEX
from expops_smk.errors import ExpopsError
from expops_smk.store.files import confined_in_project, write_if_changed, write_linked
from expops_smk.store.hashing import hash_bytes
from expops_smk.store.pending_reads import Pending, Reads, hash_path, is_changed_mark, seal

RECORD_FORMAT = 3
"""Format 1 (expops-smk before pending records) kept digests taken in the job, format 2 wrote the
pending record twice (as the run record and as the job record) with its paths inside the JSON;
records of another format are read as unknown, so their jobs run once more and write format 3."""

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
    if known is not None and tuple(known[:2]) == state and not is_changed_mark(known[2]):
        return [*state, known[2]]  # a mark is no digest: what the node read is unknown, never "unchanged"
    try:
        return [*state, hash_path(path, state[0])]
    except OSError:
        return [None, None, MISSING]


def real_digests(reads: Mapping[str, list]) -> Reads:
    """The entries of ``reads`` that hold a digest (not a changed mark): what a stat cache may keep."""
    return {path: entry for path, entry in reads.items() if not is_changed_mark(entry[2])}


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


def chart_key(chart: str) -> str:
    """``chart.<name>``: a chart job's name among the read records; no process name has a dot."""
    return f"chart.{chart}"


def _confined(root: Path, paths: list[Path]) -> list[Path]:
    """``paths`` once the folders they lie in are known to resolve inside the project's store
    (``files.confined``), else an ``ExpopsError``: a ``.expops/reads/jobs/<process>`` linked
    elsewhere would have a record written, or a file of its name unlinked, out there. A name that
    is itself a symlink is harmless: every writer here unlinks it, never writes through it."""
    for folder in {path.parent for path in paths}:
        confined_in_project(folder, root)
    return paths


def job_record_path(root: Path, key: str) -> Path:
    return Path(root) / READS_DIR / "jobs" / f"{key}.json"


def run_record_path(root: Path, record_key: str) -> Path:
    return Path(root) / READS_DIR / "runs" / f"{record_key}.json"


def write_pending_reads(root: Path, key: str, token: str, record_keys: list[str], pending: Pending) -> None:
    """What a node writes after its call: one record (the pending reads, the token the job ran with
    and the run records it is about to write, ``record_keys``), stored once as the job record and
    hard-linked as each of those run records, before they are written (a restore checks them).

    The record is a line of JSON and the paths after it (``Pending.paths_bytes``); one write for the
    job and its run records, where the seal used to find the same pending reads written twice."""
    header = json.dumps({"format": RECORD_FORMAT, "pending": pending.to_json(), "runs": record_keys, "token": token},
                        sort_keys=True)
    paths = _confined(root, [job_record_path(root, key), *(run_record_path(root, record_key) for record_key in record_keys)])
    kept = bool(pending.paths) or token != INITIAL_TOKEN  # a record that says something
    with _records_lock(root, fcntl.LOCK_SH):
        if not kept:
            paths.pop(0).unlink(missing_ok=True)
        if paths:
            write_linked(paths, [header.encode(), b"\n", pending.paths_bytes()])


def write_job_record(root: Path, key: str, token: str, reads: Reads) -> None:
    """A sealed job record: the token the job ran with and what it read (none: no record kept)."""
    path = _confined(root, [job_record_path(root, key)])[0]
    if not reads and token == INITIAL_TOKEN:
        path.unlink(missing_ok=True)
        return
    write_if_changed(path, _record_bytes({"format": RECORD_FORMAT, "token": token, "reads": reads}))


def write_run_reads(root: Path, record_key: str, reads: Reads) -> None:
    write_if_changed(_confined(root, [run_record_path(root, record_key)])[0], _record_bytes({"format": RECORD_FORMAT, "reads": reads}))


def _record_bytes(payload: object) -> bytes:
    """Records of a thousand files are often written again with the same bytes: ``write_if_changed``
    then leaves them alone (and their mtime, which stat caches look at)."""
    return (json.dumps(payload, sort_keys=True) + "\n").encode()


def read_job_record(root: Path, key: str, known: Mapping[str, list] | None = None,
                    write_back: WriteBack | None = None) -> tuple[str, Reads] | None:
    """(token, sealed reads) of a job record; None when missing, unreadable or of another format.

    A pending record is sealed now (``known`` spares hashing); ``write_back`` is given the sealed
    form, to store under the record's name and the names of the run records still linked to it.
    """
    path = job_record_path(root, key)
    loaded = _load(path, any_format=True)
    if loaded is None or not isinstance(loaded[0].get("token"), str):
        return None
    record = loaded[0]
    if record.get("format") != RECORD_FORMAT:  # not trusted: a token the job never ran with re-runs it
        return next_token(record["token"], {"record format": str(record.get("format", 1))}), {}
    reads = _sealed(root, loaded, known)
    if reads is None:
        return None
    if write_back is not None and "pending" in record:
        runs = record.get("runs") if isinstance(record.get("runs"), list) else []
        write_back.add([path, *(run_record_path(root, str(record_key)) for record_key in runs)], loaded,
                       _record_bytes({"format": RECORD_FORMAT, "token": record["token"], "reads": reads}))
    return record["token"], reads


def read_run_reads(root: Path, record_key: str, known: Mapping[str, list] | None = None) -> Reads | None:
    """The reads recorded with a run record (sealed now if pending); None when there is no
    readable such record, or one of format 1 that lists files."""
    loaded = _load(run_record_path(root, record_key), any_format=True)
    if loaded is None or loaded[0].get("format") != RECORD_FORMAT:  # format 1 was the bare reads
        return {} if loaded is not None and loaded[0] == {} else None  # nothing read: nothing to distrust
    return _sealed(root, loaded, known)


_Loaded = tuple[dict[str, Any], bytes, tuple[int, ...]]
"""A record as read: its JSON line, what follows it (a pending record's paths), and the identity of
the file (one name of a record linked under several is the same file)."""


def _load(path: Path, any_format: bool = False) -> _Loaded | None:
    try:
        with open(path, "rb") as handle:
            identity = _identity(os.fstat(handle.fileno()))
            header, _, paths = handle.read().partition(b"\n")
        record = json.loads(header)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or (record.get("format") != RECORD_FORMAT and not any_format):
        return None
    return record, paths, identity


def _identity(st: os.stat_result) -> tuple[int, ...]:
    """What says a record is the file that was read: no writer changes a record in place, and
    linking, unlinking or renaming one sets its ctime (a new file that reuses the inode differs)."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _sealed(root: Path, loaded: _Loaded, known: Mapping[str, list] | None) -> Reads | None:
    record, paths, _ = loaded
    if "pending" in record:
        pending = Pending.from_json(record["pending"], paths)
        return None if pending is None else seal(root, pending, known)
    reads = record.get("reads")
    return reads if isinstance(reads, dict) else None


class WriteBack:
    """Sealed records to store in place of the pending ones they were sealed from, all at once:
    one exclusive lock per batch rather than per record (a run of 10,000 jobs seals 10,000)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.items: list[tuple[list[Path], _Loaded, bytes]] = []  # (names, pending record as read, sealed)

    def add(self, paths: list[Path], loaded: _Loaded, data: bytes) -> None:
        self.items.append((paths, loaded, data))

    def apply(self, batch: int = 500) -> list[Path]:
        """Store each sealed record, written once and linked, under those of its names that are still
        the file it was sealed from (a node that ran since replaced the others). Nodes write under the
        shared lock, so the check and the renames cannot interleave with them. Batches keep the nodes
        of a running workflow from waiting long. Each old name is unlinked before the new file takes
        it, as a node does (renamed over it, ext4 writes the file out: 0.2 ms a record, 2 s for a run
        of 10,000 jobs); a reader in that moment finds no record and takes the run as unknown, so it
        re-executes rather than trusts. Returns the paths replaced."""
        written = []
        folders: dict[Path, bool] = {}  # whether a folder is confined (``_confined``), asked once each
        for start in range(0, len(self.items), batch):
            with contextlib.suppress(OSError), _records_lock(self.root, fcntl.LOCK_EX):
                for paths, loaded, data in self.items[start:start + batch]:
                    same = [path for path in paths if _still(path, loaded) and self._inside(path.parent, folders)]
                    with contextlib.suppress(OSError):
                        if same:
                            write_linked(same, [data])  # unlinking first, as a job does: see files.py
                            written.extend(same)
        self.items.clear()
        return written

    def _inside(self, folder: Path, folders: dict[Path, bool]) -> bool:
        if folder not in folders:
            try:
                folders[folder] = bool(_confined(self.root, [folder / "record"]))
            except ExpopsError:
                folders[folder] = False  # left pending there: each restore seals it again, and writes nothing
        return folders[folder]


def _still(path: Path, loaded: _Loaded) -> bool:
    """Whether ``path`` still is the pending record ``loaded``: the same file (linked under all its
    names), or, where hard links failed (``files.write_linked`` then writes each name), a copy of
    the same bytes. A name another run replaced since is neither."""
    try:
        if _identity(os.stat(path)) == loaded[2]:
            return True
    except OSError:
        return False
    copy = _load(path, any_format=True)
    return copy is not None and copy[:2] == loaded[:2]


@contextlib.contextmanager
def _records_lock(root: Path, kind: int) -> Iterator[None]:
    lock = os.path.join(root, READS_DIR, ".lock")
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC  # a linked .lock would be created out there
    try:
        try:
            descriptor = os.open(lock, flags, 0o666)  # the umask decides, as for every file written
        except FileNotFoundError:  # the first record of the project
            Path(lock).parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(lock, flags, 0o666)
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        raise ExpopsError(f"{lock}: refusing to write through a symlink") from None
    try:
        fcntl.flock(descriptor, kind)
        yield
    finally:
        os.close(descriptor)
