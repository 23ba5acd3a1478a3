"""The files a ``files:`` split turns into partitions, one partition per file.

Listed in sorted order from a glob (``**`` allowed) or a folder, relative to the project; hidden
files and folders are skipped. Config validation, the Snakefile (the split's declared inputs) and
the split job all list them here, so the three agree on which files there are.
"""

from __future__ import annotations

import glob
from pathlib import Path


def source_files(root: Path, pattern: str) -> list[str]:
    """Files (relative posix paths, sorted) that a ``files:`` split takes: a glob, or every file of
    a folder. Matches outside the project (through ``..`` or a symlink) are refused: the partition
    ids and run keys would depend on files the project does not own. Raises ValueError on none."""
    base = root.resolve()
    target = root / pattern
    if target.is_dir():
        candidates = sorted(target.iterdir())
    else:
        candidates = sorted(Path(match) for match in glob.glob(str(target), recursive=True))
    found: list[str] = []
    for path in candidates:
        if not path.is_file() or path.name.startswith("."):
            continue
        resolved = path.resolve()
        if not resolved.is_relative_to(base):
            raise ValueError(f"{path.relative_to(root).as_posix()} lies outside the project (symlink)")
        found.append(path.relative_to(root).as_posix())
    if not found:
        raise ValueError(f"{pattern!r} matches no file")
    return found
