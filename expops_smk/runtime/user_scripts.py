"""How user scripts, and the pickles of what they return, are imported.

Two problems are solved here:

* Code written for ExpOps (``from expops.core import process, step, log_metric``) must run
  unchanged. When the real ``expops`` package is not installed, ``expops``/``expops.core`` are
  registered as lightweight modules re-exporting expops-smk's API. When it is installed, it is
  left alone: the user asked for it.
* An instance of a class defined in a user script (a dataclass, a torch ``nn.Module``) is pickled
  by reference to its module. Each job is a fresh process, so the job that reads the value must be
  able to import that module by the same name. Scripts are therefore imported under a name derived
  from their path *relative to the project* (the same in every job, in a copy of the project and in
  ``expops_smk.load``), through a finder that imports a script only when something asks for it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Iterable

from expops_smk.runtime import user_api
from expops_smk.store.hashing import hash_bytes

USER_MODULE_PREFIX = "expops_user_"


def install_expops_alias() -> bool:
    """Register ``expops``, ``expops.core`` and ``expops.reporting`` if ``expops`` is absent; return whether it did."""
    if "expops" in sys.modules or importlib.util.find_spec("expops") is not None:
        return False
    package = types.ModuleType("expops")
    package.__path__ = []  # a package, so "import expops.core" resolves through sys.modules
    core = types.ModuleType("expops.core")
    for name in ("process", "step", "log_metric", "SerializableData", "ModelData"):
        setattr(core, name, getattr(user_api, name))
    package.core = core  # type: ignore[attr-defined]
    reporting = types.ModuleType("expops.reporting")  # chart code: from expops.reporting import chart, ChartContext
    reporting.chart = user_api.chart  # type: ignore[attr-defined]
    reporting.ChartContext = user_api.ChartContext  # type: ignore[attr-defined]
    package.reporting = reporting  # type: ignore[attr-defined]
    sys.modules["expops"] = package
    sys.modules["expops.core"] = core
    sys.modules["expops.reporting"] = reporting
    return True


def user_module_name(root: Path, script: Path) -> str:
    """``expops_user_<stem>_<hash of the relative path>``: readable, unique, location-independent."""
    relative = Path(script).resolve().relative_to(Path(root).resolve()).as_posix()
    stem = re.sub(r"\W", "_", Path(script).stem)
    return f"{USER_MODULE_PREFIX}{stem}_{hash_bytes(relative.encode())[:8]}"


class _UserScriptFinder(importlib.abc.MetaPathFinder):
    """Finds ``expops_user_*`` modules among the project's scripts."""

    def __init__(self, scripts: dict[str, Path]) -> None:
        self.scripts = scripts

    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        script = self.scripts.get(name)
        return None if script is None else importlib.util.spec_from_file_location(name, script)


def install_user_scripts(root: Path, scripts: Iterable[Path]) -> dict[Path, str]:
    """Make the project's scripts importable under their stable names; return script -> module name.

    Nothing is imported here. The project folder and the scripts' folders go first on
    ``sys.path`` so scripts can import their sibling modules. Installing for another project in
    the same process replaces the previous mapping and forgets modules loaded from other files.
    """
    install_expops_alias()
    root = Path(root).resolve()
    names = {Path(script).resolve(): user_module_name(root, Path(script)) for script in scripts}
    for folder in dict.fromkeys([root, *(script.parent for script in names)]):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    by_name = {name: script for script, name in names.items()}
    for name, script in by_name.items():
        loaded = sys.modules.get(name)
        if loaded is not None and getattr(loaded, "__file__", None) != str(script):
            del sys.modules[name]
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _UserScriptFinder)]
    sys.meta_path.append(_UserScriptFinder(by_name))
    return names
