"""Reads markers: the per-job input file that carries a job's reads token once it has moved.

Snakemake cannot see the files a function opened, so ``prepare`` turns them into a token per job
(``read_records``). A job whose token is still the initial one has no marker and no extra input.
Once one of its files changed, ``.expops/reads/changed/<job>.token`` holds its token and is an
input of that job alone: its appearance (a new, newer input) and each later change of its content
(newer, with another checksum than the one Snakemake recorded) schedule the job; the same content
never does, since the marker is rewritten only when its content changes. The job reads its token
from here and records it with its reads, so the next parse computes the same token and leaves the
marker alone: that run's successor is a no-op.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Mapping

from expops_smk.layout import READS_MARKERS_DIR
from expops_smk.store.files import atomic_write, confined_in_project, write_if_changed
from expops_smk.store.read_records import INITIAL_TOKEN

SUFFIX = ".token"


def marker_path(key: str) -> str:
    """The marker of job ``key`` relative to the project (as the rules name their inputs)."""
    return f"{READS_MARKERS_DIR}/{key}{SUFFIX}"


def marker_token(root: Path, key: str) -> str:
    """The token a job runs with: its marker's content, or the initial token when it has none."""
    try:
        token = (Path(root) / marker_path(key)).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return INITIAL_TOKEN
    return token or INITIAL_TOKEN


def sync_markers(root: Path, moved: Mapping[str, str]) -> None:
    """Give every job in ``moved`` (key -> token other than the initial one) its marker, rewriting
    only markers whose content changes, and delete the markers of every other job.

    Called at every parse, so it checks markers by ``lstat`` against a small index of what it wrote
    (token, size, mtime_ns): 10,000 moved jobs cost a directory walk, not 10,000 reads, and the
    symlink checks (``confined_in_project``) run only for the files it writes or deletes.
    """
    folder = os.path.join(str(root), READS_MARKERS_DIR)
    existing = dict(_markers(folder, ""))
    index_path = os.path.join(folder, INDEX_NAME)
    known = _read_index(index_path)
    written: dict[str, list] = {}
    for key, token in moved.items():
        found = existing.get(key)
        if found is None or known.get(key) != [token, *found[1:]]:
            path = confined_in_project(Path(folder, f"{key}{SUFFIX}"), Path(root))
            write_if_changed(path, token.encode("utf-8"))
            st = os.lstat(path)
            found = (str(path), st.st_size, st.st_mtime_ns)
        written[key] = [token, *found[1:]]
    for key, (path, _, _) in existing.items():
        if key not in moved:
            confined_in_project(Path(path), Path(root)).unlink(missing_ok=True)
    if written != known and (written or os.path.lexists(index_path)):
        atomic_write(confined_in_project(Path(index_path), Path(root)), json.dumps(written, sort_keys=True).encode())


INDEX_NAME = ".index.json"
"""Beside the markers: key -> [token, size, mtime_ns] of each marker as last written or checked."""


def _read_index(path: str) -> dict[str, list]:
    try:
        with open(path, encoding="utf-8") as handle:
            index = json.load(handle)
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def _markers(folder: str, prefix: str) -> Iterator[tuple[str, tuple[str, int, int]]]:
    """(job key, (path, size, mtime_ns)) of every marker below ``folder``; symlinks, hidden files
    (writers' temps, the index) and other files are skipped."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _markers(entry.path, f"{prefix}{entry.name}/")
        elif entry.name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            yield f"{prefix}{entry.name[:-len(SUFFIX)]}", (entry.path, st.st_size, st.st_mtime_ns)
