"""Let code written for ExpOps (``from expops.core import process, step, log_metric``) run unchanged.

When the real ``expops`` package is not installed, the node runtime registers lightweight modules
``expops`` and ``expops.core`` that re-export expops-smk's API. When it is installed, it is left
alone: the user asked for it.
"""

from __future__ import annotations

import importlib.util
import sys
import types

from expops_smk import api


def install_expops_alias() -> bool:
    """Register ``expops``/``expops.core`` aliases if ``expops`` is absent; return whether it did."""
    if "expops" in sys.modules or importlib.util.find_spec("expops") is not None:
        return False
    package = types.ModuleType("expops")
    package.__path__ = []  # a package, so "import expops.core" resolves through sys.modules
    core = types.ModuleType("expops.core")
    for name in ("process", "step", "log_metric", "SerializableData", "ModelData"):
        setattr(core, name, getattr(api, name))
    package.core = core  # type: ignore[attr-defined]
    sys.modules["expops"] = package
    sys.modules["expops.core"] = core
    return True
