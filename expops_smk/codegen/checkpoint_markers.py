"""Deleting the marker outputs of data-split checkpoints before Snakemake builds the next DAG.

Why the markers exist is in ``codegen/checkpoints.py``. ``prepare`` (every parse of the Snakefile)
calls ``forget_markers``, so this module imports nothing beyond the standard library.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from expops_smk.layout import CHECKPOINT_MARKERS_DIR

MARKER_SUFFIX = ".ran"
SNAKEMAKE_LOCKS = Path(".snakemake") / "locks"


def forget_markers(root: Path) -> None:
    """Delete the split markers of earlier invocations, unless one may still be running.

    One ``stat`` when there are none (every cluster job re-parses the Snakefile). Snakemake
    holds its locks while it runs (taken after the Snakefile is parsed, so any lock seen here is
    another invocation's, or a crashed one's that ``--unlock`` clears): its markers stay. Only
    ``*.ran`` files below the markers folder are deleted, never through a symlink.
    """
    folder = root / CHECKPOINT_MARKERS_DIR
    if os.path.islink(folder) or not folder.is_dir() or _snakemake_running(root):
        return
    for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            path = Path(dirpath) / name
            if name.endswith(MARKER_SUFFIX) and not path.is_symlink():
                path.unlink(missing_ok=True)
        for name in dirnames:
            with contextlib.suppress(OSError):
                os.rmdir(Path(dirpath) / name)  # only empty, non-symlink folders go
    with contextlib.suppress(OSError):
        os.rmdir(folder)


def _snakemake_running(root: Path) -> bool:
    try:
        return any(os.scandir(root / SNAKEMAKE_LOCKS))
    except FileNotFoundError:
        return False
