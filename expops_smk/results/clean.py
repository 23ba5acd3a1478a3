"""``expops-smk clean [--dry-run]``: remove what the tool wrote for a project, and nothing else.

``snakemake --delete-all-output`` and ``--summary`` see only declared outputs: the manifests
(``_outputs.json``) and chart folders. Artifacts stay undeclared on purpose (Snakemake would
touch them and compare their mtimes; content hashes decide re-runs, README "What re-runs"), so
``--delete-all-output`` leaves them behind. ``clean`` is the complete alternative. It removes only
files the tool recorded writing: per node of the plan its manifest, the artifacts the manifest lists,
``_run.json`` and ``_metrics.json`` (and a growing-data split's ``_partitions.json``); per chart the PNGs its ``_chart.json`` lists and that record;
the ``report_files`` folder (``results/report``), the jobs' ``*.log`` files, and the store
``.expops/``. The generated workflow (``workflow/``) stays: ``expops-smk generate`` rewrites it.
A symlink is never followed: a linked file or folder is skipped and named.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from expops_smk.errors import ExpopsError
from expops_smk.graph.expansion import build_graph
from expops_smk.graph.partitions import partitions_file
from expops_smk.graph.plan import read_plan
from expops_smk.layout import CHART_RECORD, ENVS_DIR, LOGS_DIR, MANIFEST, METRICS_FILE, PLAN_FILE, RESULTS_DIR, RUN_FILE, STORE_DIR, chart_dir
from expops_smk.runtime.run_key import recorded_folder_key
from expops_smk.store.artifacts import Artifact, parse_artifacts
from expops_smk.store.environments import remove_environments

REPORT_FILES_DIR = f"{RESULTS_DIR}/report"


@dataclass
class CleanReport:
    removed: list[Path] = field(default_factory=list)
    skipped_links: list[Path] = field(default_factory=list)
    freed_bytes: int = 0
    environments: list[Path] = field(default_factory=list)  # .expops/envs/ entries, removed whole


def clean(project_dir: Path, dry_run: bool) -> CleanReport:
    root = Path(project_dir).resolve()
    if not (root / PLAN_FILE).is_file():
        raise ExpopsError(f"{root / PLAN_FILE}: missing; nothing expops-smk wrote can be identified")
    report = CleanReport()
    for path in sorted(set(_recorded_files(root))):
        if not is_inside(root, path):
            report.skipped_links.append(path)
        elif path.exists() and not path.is_dir():  # regular files, and the warm server's socket
            report.removed.append(path)
    # A hard-linked artifact and its store object are the same bytes: count each inode once.
    report.freed_bytes = sum({(st.st_dev, st.st_ino): st.st_size for st in map(os.lstat, report.removed)}.values())
    # Environments are folders expops-smk created whole (their bin/python is a symlink to the
    # interpreter, which rmtree removes without following): removed as folders, not file by file.
    report.environments, freed = remove_environments(root, set(), dry_run)
    report.freed_bytes += freed
    if not dry_run:
        for path in report.removed:
            path.unlink()
        store_dirs = {Path(folder) for folder, _, _ in os.walk(root / STORE_DIR)} if is_inside(root, root / STORE_DIR) else set()
        remove_empty_dirs(root, {path.parent for path in report.removed} | store_dirs)
    return report


def _recorded_files(root: Path) -> Iterator[Path]:
    project = read_plan(root / PLAN_FILE, root).project
    graph = build_graph(project)
    for node in graph.nodes():
        for location in graph.output_locations(node):
            yield from node_files(root, location.results_dir)
    for layout in graph.layouts.values():  # a growing-data split's list of its partitions, per branch
        if layout.child_layer is not None and layout.child_layer.dynamic:
            yield from (root / partitions_file(split) for split in layout.nodes())
    for process in graph.layouts:  # logs/<process>.log, or logs/<process>/... under a fan-out
        yield root / LOGS_DIR / f"{process}.log"
        yield from _walk(root, root / LOGS_DIR / process, "*.log")
    for name in project.charts:
        folder = root / chart_dir(name)
        yield folder / CHART_RECORD
        yield from (folder / png for png in _json(folder / CHART_RECORD).get("pngs", []))
    yield from _walk(root, root / LOGS_DIR / "charts", "*.log")
    yield root / LOGS_DIR / "report_files.log"
    yield from _walk(root, root / REPORT_FILES_DIR, "*")
    yield from (path for path in _walk(root, root / STORE_DIR, "*") if not path.is_relative_to(root / ENVS_DIR))


def node_files(root: Path, results_dir: str) -> Iterator[Path]:
    """What a node's execution wrote into its folder: the manifest, the artifacts it lists,
    ``_run.json`` and ``_metrics.json`` (whether they exist or not). Once the manifest is gone
    (``--delete-all-output``), the run record that ``_run.json`` names lists the same artifacts."""
    folder = root / results_dir
    yield from (folder / name for name in (MANIFEST, RUN_FILE, METRICS_FILE))
    record_key = recorded_folder_key(root, results_dir)
    record = None if record_key is None else root / STORE_DIR / "runs" / f"{record_key}.json"
    for source in (folder / MANIFEST, record):
        if source is not None:
            yield from (folder / artifact.file for artifact in _manifest(source))


def is_inside(root: Path, path: Path) -> bool:
    """Whether ``path`` is a real (non-symlink) entry whose every parent resolves inside ``root``."""
    if path.is_symlink():
        return False
    try:
        return path.parent.resolve().is_relative_to(root) and not any(
            parent.is_symlink() for parent in path.parents if parent.is_relative_to(root) and parent != root)
    except OSError:
        return False


def remove_empty_dirs(root: Path, folders: set[Path]) -> None:
    """Remove folders that deleting left empty, bottom up, never the project root itself."""
    for folder in sorted(folders, key=lambda path: len(path.parts), reverse=True):
        while folder != root and folder.is_relative_to(root) and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _manifest(path: Path) -> list[Artifact]:
    """The artifacts a manifest or run record lists (validated names); none if it is unreadable."""
    try:
        return list(parse_artifacts(_json(path)).values())
    except ValueError:
        return []


def _walk(root: Path, top: Path, pattern: str) -> Iterator[Path]:
    """Files under ``top`` matching ``pattern``, not descending into symlinked folders (a
    symlinked ``top`` itself is yielded, so that ``clean`` names it as skipped)."""
    if top.is_symlink() or not is_inside(root, top):
        yield top
        return
    if not top.is_dir():
        return
    for folder, dirs, files in os.walk(top, followlinks=False):
        yield from (Path(folder) / name for name in files if Path(name).match(pattern))
