"""expops-smk: run ExpOps experiment projects as Snakemake workflows.

User code imports its API from here (``from expops_smk import process, step, log_metric``).
The names resolve lazily so that ``python -m expops_smk.runtime`` (started once per Snakemake job)
pays only for what the job uses.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.3.0"

_API = {
    "process": "expops_smk.runtime.user_api",
    "step": "expops_smk.runtime.user_api",
    "log_metric": "expops_smk.runtime.user_api",
    "SerializableData": "expops_smk.runtime.user_api",
    "ModelData": "expops_smk.runtime.user_api",
    "load": "expops_smk.results.load",
    "load_all": "expops_smk.results.load",
    "metrics": "expops_smk.results.load",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module_name = _API.get(name)
    if module_name is None:
        raise AttributeError(f"module 'expops_smk' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module_name), name)


def __dir__() -> list[str]:
    """``dir(expops_smk)`` lists the lazily resolved API too, as ``help`` and completion expect."""
    return sorted(set(globals()) | set(_API))
