"""What a warm server imports before serving, and how it notices that what it imported went stale.

The server preloads the runtime, pandas, pyarrow and the third-party modules the project's scripts
import at top level (never the scripts or the project's own modules: children import those fresh),
and refuses jobs once a loaded module's file, a script or the plan changed on disk.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
import sysconfig
import time
from pathlib import Path

from expops_smk.layout import PLAN_FILE

BASE_MODULES = ("expops_smk.runtime.node_job", "expops_smk.runtime.chart_job", "expops_smk.runtime.user_scripts", "numpy",
                "pandas", "pyarrow.parquet", "pyarrow.dataset")
"""What every node imports (or a chart node, for ``charts``) whatever the project. ``pyarrow.dataset``
is what ``pyarrow.parquet.read_table`` imports on first use (about 20 ms): every node reading a table."""

FULL_SCAN_SECONDS = 1.0
"""How often, at most, every loaded module's file is stat-ed; between scans a job costs only the
stat of their folders (see ``Freshness``)."""

NEVER_PRELOADED = frozenset({"torch", "tensorflow", "jax", "keras", "expops"})
"""Deep-learning frameworks start thread pools at import, after which a fork may deadlock; a child
imports them itself. ``expops`` may be expops-smk's alias, which each job installs itself."""


def modules_to_preload(root: Path, scripts: list[Path]) -> list[str]:
    """The base modules and every third-party module the project's scripts import at top level."""
    names = list(BASE_MODULES)
    for script in scripts:
        try:
            tree = ast.parse(script.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            continue
        names.extend(name for name in top_level_imports(tree) if name not in names and not _is_local(name, root))
    return [name for name in names if name.split(".")[0] not in NEVER_PRELOADED]


def project_scripts(root: Path) -> list[Path]:
    """Script files named in the plan (processes, chart and shared scripts)."""
    from expops_smk.errors import ExpopsError
    from expops_smk.graph.plan import read_plan

    try:
        return read_plan(root / PLAN_FILE, root).project.all_scripts()
    except (ExpopsError, OSError):
        return []


def top_level_imports(tree: ast.Module) -> list[str]:
    """Absolute imports executed when the module loads (including under top-level if/try)."""
    names: list[str] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        statement = pending.pop(0)
        if isinstance(statement, ast.Import):
            names.extend(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom) and statement.level == 0 and statement.module:
            names.append(statement.module)
            # `from sklearn import metrics` imports a submodule; `from pandas import DataFrame` does not,
            # which preload() finds out by trying.
            names.extend(f"{statement.module}.{alias.name}" for alias in statement.names if alias.name != "*")
        elif isinstance(statement, (ast.If, ast.Try)):
            pending.extend(statement.body)
            pending.extend(statement.orelse)
            if isinstance(statement, ast.Try):
                pending.extend(statement.finalbody)
                for handler in statement.handlers:
                    pending.extend(handler.body)
    return names


def _is_local(name: str, root: Path) -> bool:
    """A project module (or none found): the child imports it, so edits are never missed.

    A package installed in a virtualenv inside the project is not local.
    """
    try:
        spec = importlib.util.find_spec(name.split(".")[0])
    except (ImportError, ValueError):
        return True
    if spec is None:
        return True
    installed = {Path(sysconfig.get_path(kind)).resolve() for kind in ("purelib", "platlib")}
    for location in (spec.origin, *(spec.submodule_search_locations or [])):
        if location and location != "built-in":
            path = Path(location).resolve()
            if path.is_relative_to(root) and not any(path.is_relative_to(site) for site in installed):
                return True
    return False


def preload(names: list[str]) -> tuple[list[str], list[str]]:
    """Import what can be imported; a module that fails here is imported (and fails) in the job."""
    loaded, failed = [], []
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a name that is an attribute, not a submodule, is expected
                failed.append(f"{name}: {exc}")
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
        else:
            loaded.append(name)
    return loaded, failed


def freshness(root: Path, scripts: list[Path]) -> Freshness:
    """What makes the server stale: the project's scripts and plan (it would preload what the scripts
    no longer import) and every loaded module's file (it would run old code)."""
    project_files = [*(str(path) for path in scripts), str(root / PLAN_FILE)]
    modules = {getattr(module, "__file__", None) for module in list(sys.modules.values())}
    return Freshness(sorted(project_files), sorted(file for file in modules if file and file not in project_files))


def modification_times(files: list[str]) -> list[int]:
    """About 2 ms for the 1,500 modules of pandas + scikit-learn."""
    stamps = []
    for file in files:
        try:
            stamps.append(os.stat(file).st_mtime_ns)
        except OSError:
            stamps.append(-1)
    return stamps


class Freshness:
    """Whether a watched file changed since the server started, checked cheaply per job.

    The project's own files (scripts, plan) are few and edited in place by anyone: each job stats
    them all. Loaded modules are many (1,500 for pandas + scikit-learn): each job stats only their
    folders, since pip, conda and editors that save by rename add, remove or replace directory
    entries, which changes the folder's mtime at once. A module file rewritten in place changes only
    its own mtime, so every module file is stat-ed too, at most once per ``FULL_SCAN_SECONDS``: such
    an edit of an installed library is noticed within that time.
    """

    def __init__(self, project_files: list[str], module_files: list[str],
                 full_scan_seconds: float = FULL_SCAN_SECONDS) -> None:
        self.project_files = project_files
        self.module_files = module_files
        self.folders = sorted({os.path.dirname(file) for file in module_files})
        self.full_scan_seconds = full_scan_seconds
        self.project_stamps = modification_times(project_files)
        self.folder_stamps = modification_times(self.folders)
        self.module_stamps = modification_times(module_files)
        self.last_full_scan = time.monotonic()

    def watch(self, module_files: list[str]) -> None:
        """Watch modules imported after the server started (by a restore it served itself)."""
        files = [file for file in module_files if file not in self.module_files and file not in self.project_files]
        if not files:
            return
        self.module_files = [*self.module_files, *files]
        self.module_stamps = [*self.module_stamps, *modification_times(files)]
        folders = sorted({os.path.dirname(file) for file in files} - set(self.folders))
        self.folders = [*self.folders, *folders]
        self.folder_stamps = [*self.folder_stamps, *modification_times(folders)]

    def changed(self) -> bool:
        if modification_times(self.project_files) != self.project_stamps:
            return True
        if modification_times(self.folders) != self.folder_stamps:
            return True
        now = time.monotonic()
        if now - self.last_full_scan < self.full_scan_seconds:
            return False
        self.last_full_scan = now
        return modification_times(self.module_files) != self.module_stamps
