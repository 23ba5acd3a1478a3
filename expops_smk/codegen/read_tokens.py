"""The rules' ``reads`` input: each job's reads marker, brought up to date at every parse.

Snakemake cannot see the files a function opened (they are not declared inputs), so ``prepare``
checks the files every job recorded and hands each job a token (``store.read_records``): the token
the job last ran with while its files are unchanged, a new one once one of them changed. A job that
never read a changed file has the constant initial token and no extra input; every other job has
its marker file (``store.read_markers``) as input ``reads``, whose content is its token, so
Snakemake re-runs exactly the jobs whose token moved since they last ran. They are not ``params:``
(as they once were): comparing params makes Snakemake import pandas in every run (issue 18).

The check is stat-first, through a stat cache kept in ``READS_INDEX``: a parse in which nothing
changed costs one ``stat`` per job record and one per distinct file read, and a file is hashed again
only when its size or mtime changed. Projects whose functions read no files pay one ``stat``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from expops_smk.layout import READS_DIR, READS_INDEX
from expops_smk.store.files import atomic_write, confined_in_project
from expops_smk.store.read_markers import marker_path, sync_markers
from expops_smk.store.read_records import (INITIAL_TOKEN, WriteBack, absolute, chart_key, current_digest, job_key,
                                           next_token, read_job_record, real_digests)

_INDEX_FORMAT = 3  # 1, 2: what records of formats 1 and 2 said, which are no longer trusted
_markers: dict[str, list[str]] = {}
"""Job key -> [its marker's path], for the jobs whose token moved at the last refresh."""
_moved_processes: set[str] = set()


def reads_marker(process: str) -> Callable[[Any], list[str]] | list[str]:
    """The ``reads=`` input of ``process``'s rule: an input function giving its job's marker or
    nothing, or, while no job of ``process`` has a moved token, an empty list.

    The rules are read after ``prepare`` refreshed the tokens, so most rules get the empty list:
    Snakemake then calls no function for their jobs (an input function costs it about 0.1 ms per
    job, a tenth of a no-op run's gap to a hand-written Snakefile at 1,000 jobs). Where a token
    moved, the function is a key and a dictionary lookup per job."""
    if process not in _moved_processes:
        return []

    def marker(wildcards: Any) -> list[str]:
        key = job_key(process, getattr(wildcards, "partition", ""), getattr(wildcards, "seed", ""))
        return _markers.get(key, [])

    return marker


def chart_reads_marker(chart: str) -> list[str]:
    """The ``reads=`` input of chart ``chart``'s rule: its marker, or nothing (a chart rule has one
    job and no wildcards, and is read after ``prepare`` refreshed the tokens)."""
    return _markers.get(chart_key(chart), [])


def refresh_tokens(root: Path) -> dict[str, str]:
    """Check every job's recorded reads, bring the markers up to date, and return the token of each
    job with a record."""
    global _markers, _moved_processes
    tokens = _compute_tokens(Path(root))
    moved = {key: token for key, token in tokens.items() if token != INITIAL_TOKEN}
    sync_markers(Path(root), moved)
    _markers = {key: [marker_path(key)] for key in moved}
    _moved_processes = {key.split("/", 1)[0] for key in moved}
    return tokens


def seal_reads(workflow_dir: str | Path) -> None:
    """Seal the records the run's jobs left pending (``onsuccess``/``onerror``), so that a file
    rewritten with the same bytes after the run is found unchanged by the next parse rather than
    counted as changed since the node ran. Never fails the run: the next parse seals them anyway."""
    try:
        refresh_tokens(Path(workflow_dir).resolve().parent)
    except (OSError, ValueError) as exc:
        print(f"expops-smk: the files read by the run's jobs are checked at the next parse ({exc})", file=sys.stderr)


def _compute_tokens(root: Path) -> dict[str, str]:
    jobs_dir = root / READS_DIR / "jobs"
    if not jobs_dir.is_dir():
        return {}
    index = _read_index(root)
    old_records, files = index["records"], dict(index["files"])
    records: dict[str, list] = {}
    write_back = WriteBack(root)  # pending records are sealed here and stored sealed after the loop
    for key, path, st in _scan(jobs_dir, ""):
        entry = old_records.get(key)
        if entry is None or entry[:2] != [st.st_size, st.st_mtime_ns]:
            loaded = read_job_record(root, key, files, write_back)
            if loaded is None:
                continue  # half-written, foreign or older: the job's next run rewrites it
            token, reads = loaded
            entry = [st.st_size, st.st_mtime_ns, token, {p: e[2] for p, e in reads.items()}]
            files.update(real_digests(reads))  # what the job saw when it read them: hashed again only if they moved on
        records[key] = entry
    for path in write_back.apply():  # a sealed job record's stat is what the next parse compares
        key = path.relative_to(jobs_dir).as_posix()[:-len(".json")] if path.is_relative_to(jobs_dir) else None
        with contextlib.suppress(OSError, KeyError):
            st = path.stat()
            records[key][:2] = [st.st_size, st.st_mtime_ns]
    current: dict[str, str] = {}
    new_files: dict[str, list] = {}
    for path in sorted({p for entry in records.values() for p in entry[3]}):
        new_files[path] = current_digest(absolute(root, path), files.get(path))
        current[path] = new_files[path][2]
    tokens = {}
    for key, (_, _, token, digests) in records.items():
        now = {p: current[p] for p in digests}
        tokens[key] = token if now == digests else next_token(token, now)
    new_index = {"format": _INDEX_FORMAT, "records": records, "files": new_files}
    if new_index != index:
        atomic_write(confined_in_project(root / READS_INDEX, root), json.dumps(new_index, sort_keys=True).encode())
    return tokens


def _read_index(root: Path) -> dict[str, Any]:
    empty: dict[str, Any] = {"format": _INDEX_FORMAT, "records": {}, "files": {}}
    try:
        index = json.loads((root / READS_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return empty
    if not isinstance(index, dict) or index.get("format") != _INDEX_FORMAT:
        return empty
    return index


def _scan(folder: Path, prefix: str) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(job key, path, stat) of every record below ``folder`` (temp files of writers skipped)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from _scan(Path(entry.path), f"{prefix}{entry.name}/")
            elif entry.name.endswith(".json") and entry.is_file(follow_symlinks=False):
                yield f"{prefix}{entry.name[:-5]}", Path(entry.path), entry.stat()
