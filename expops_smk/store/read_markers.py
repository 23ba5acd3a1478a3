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

import os
from pathlib import Path
from typing import Iterator, Mapping

from expops_smk.layout import READS_MARKERS_DIR
from expops_smk.store.files import confined_in_project, write_if_changed
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
    only markers whose content changes, and delete the markers of every other job."""
    root = Path(root)
    for key, token in moved.items():
        write_if_changed(confined_in_project(root / marker_path(key), root), token.encode("utf-8"))
    for key, path in _markers(root / READS_MARKERS_DIR, ""):
        if key not in moved:
            confined_in_project(path, root).unlink(missing_ok=True)


def _markers(folder: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    """(job key, path) of every marker below ``folder`` (writers' temp files skipped)."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _markers(Path(entry.path), f"{prefix}{entry.name}/")
        elif entry.name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
            yield f"{prefix}{entry.name[:-len(SUFFIX)]}", Path(entry.path)
