"""``expops-smk gc`` and ``expops-smk verify``: keep the store small and prove results intact.

gc keeps exactly what the current project can use: the result folders of its current nodes and the
run records those folders were produced by. Everything else (the files nodes of removed processes
or partitions wrote, run records of earlier parameter/code/data states, objects only they
referenced) is deleted, and so are environments under .expops/envs/ that no current environment
entry uses; files the tool did not write stay where they are. Collected states can no longer be
restored without running user code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from expops_smk.config.project import load_project
from expops_smk.graph.expansion import build_graph
from expops_smk.results.clean import is_inside, node_files, remove_empty_dirs
from expops_smk.layout import MANIFEST, RESULTS_DIR, RUN_FILE
from expops_smk.results.environments import referenced_digests
from expops_smk.runtime.run_key import location_key, recorded_folder_key
from expops_smk.store.artifact_store import Store
from expops_smk.store.environments import remove_environments
from expops_smk.store.maintenance import collect_store_garbage, verify_artifacts


@dataclass(frozen=True)
class GcReport:
    stale_folders: list[Path]
    store_files: list[Path]
    freed_bytes: int
    kept_files: list[Path]  # in stale folders, not written by the tool
    environments: list[Path] = field(default_factory=list)  # unreferenced .expops/envs/ entries


def collect_garbage(project_dir: str | Path, dry_run: bool) -> GcReport:
    root = Path(project_dir).resolve()
    graph = build_graph(load_project(root))
    current: set[Path] = set()
    keep_run_keys: set[str] = set()
    for node in graph.nodes():
        for location in graph.output_locations(node):
            folder = root / location.results_dir
            current.add(folder)
            try:
                run_key = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))["run_key"]
            except (FileNotFoundError, ValueError, KeyError):
                continue
            keep_run_keys.add(location_key(run_key, location))
    results = root / RESULTS_DIR
    stale = sorted(m.parent for m in results.rglob(MANIFEST) if m.parent not in current) if results.is_dir() else []
    # Only what the nodes' executions recorded writing goes; a file of the user's in such a
    # folder (notes, a plot) stays, and so does the folder around it.
    written = [path for folder in stale for path in dict.fromkeys(node_files(root, folder.relative_to(root).as_posix()))
               if is_inside(root, path) and path.is_file()]
    freed_by_folders = sum(_unshared_size(path) for path in written)
    if not dry_run:
        for path in written:
            path.unlink()
        remove_empty_dirs(root, set(stale))
    kept = sorted({path for folder in stale for path in folder.rglob("*") if path.is_symlink() or not path.is_dir()} - set(written))
    removed, freed = collect_store_garbage(Store(root), keep_run_keys, results, dry_run, ignore_dirs=frozenset(stale))
    environments, freed_by_envs = remove_environments(root, referenced_digests(root), dry_run)
    return GcReport(stale, removed, freed + freed_by_folders + freed_by_envs, kept, environments)


def _unshared_size(path: Path) -> int:
    """Bytes a file frees when deleted: hard-linked files free nothing until their last link goes."""
    info = path.lstat()
    return info.st_size if info.st_nlink <= 1 else 0


def verify(project_dir: str | Path) -> list[str]:
    """One line per artifact whose content no longer matches its recorded hash (or is missing), and
    per manifest that disagrees with the run record its folder's ``_run.json`` names."""
    root = Path(project_dir).resolve()
    return verify_artifacts(Store(root), root / RESULTS_DIR,
                            lambda folder: recorded_folder_key(root, folder.relative_to(root).as_posix()))
