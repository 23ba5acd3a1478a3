"""ExpOps' ``configs/compute_config.yaml``: its Dask-on-Slurm worker options as job resource defaults.

ExpOps runs Dask workers through dask-jobqueue; in expops-smk a Snakemake job plays the role of a
worker, so a worker's cores, memory, wall time and queue become every job's defaults.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from expops_smk.config.yaml_loading import read_yaml
from expops_smk.errors import ConfigError, shown_path
from expops_smk.layout import COMPUTE_CONFIG_FILE


def read_compute_config(root: Path, warnings: list[str]) -> tuple[dict[str, Any], int | None]:
    """Resource defaults and job count from ``configs/compute_config.yaml`` when it targets Slurm.

    ExpOps runs Dask workers through dask-jobqueue with ``options: {worker_cores, worker_memory,
    walltime, queue, ...}`` and ``num_workers``; a Snakemake job plays the role of a worker, so
    those become the default cpus, mem_mb, runtime and partition of every job, and the number of
    jobs in flight. Other providers (``local``) have nothing to translate.
    """
    path = root / COMPUTE_CONFIG_FILE
    if not path.is_file():
        return {}, None
    raw = read_yaml(path, root, warnings)  # ExpOps' own template gives a key twice here
    shown = shown_path(path, root)
    if str(raw.get("provider", "")).lower() != "slurm":
        return {}, None
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(shown, "options", f"must be a mapping, got {type(options).__name__}")
    defaults: dict[str, Any] = {}
    for key, convert, name in (("worker_cores", _positive_int, "cpus"), ("worker_memory", memory_mb, "mem_mb"),
                               ("walltime", walltime_minutes, "runtime"), ("queue", _text, "slurm_partition"),
                               ("account", _text, "slurm_account"), ("project", _text, "slurm_account"),
                               ("job_extra_directives", _directives, "slurm_extra"),
                               ("job_extra", _directives, "slurm_extra")):
        if options.get(key) is not None and name not in defaults:
            try:
                defaults[name] = convert(options[key])
            except ValueError as exc:
                raise ConfigError(shown, f"options.{key}", str(exc)) from None
    jobs = raw.get("num_workers")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ConfigError(shown, "num_workers", f"must be a positive integer, got {jobs!r}")
    if not defaults and jobs is None:
        warnings.append(f"{shown}: provider slurm without options (worker_cores, worker_memory, walltime, queue): "
                        "nothing to translate")
    return defaults, jobs


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return str(value).strip()


def _directives(value: Any) -> str:
    """dask-jobqueue's extra ``#SBATCH`` directives (a list of ``--flag=value``) -> one slurm_extra."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"must be a list of sbatch options, got {value!r}")
    return " ".join(item.strip() for item in items if item.strip())


_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)b?\s*$", re.IGNORECASE)
_MEMORY_FACTORS_MB = {"k": 1e-3, "m": 1.0, "g": 1e3, "t": 1e6, "p": 1e9}
_BINARY_FACTORS_MB = {"k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0**2, "p": 1024.0**3}


def memory_mb(value: Any) -> int:
    """Dask's memory strings in whole megabytes (rounded up): '4GB' -> 4000, '4GiB' -> 4096, '512MB' -> 512.

    Binary units count in MiB, which is what Slurm's ``--mem`` means by its numbers. A bare number
    is rejected: Dask would read it as bytes, a user most likely meant megabytes.
    """
    match = _MEMORY.match(value) if isinstance(value, str) else None
    if match is None or not match.group(2):
        raise ValueError(f"must be a size with a unit such as '4GB', '4000MB' or '4GiB', got {value!r}")
    amount, unit, binary = float(match.group(1)), match.group(2).lower(), bool(match.group(3))
    megabytes = math.ceil(amount * (_BINARY_FACTORS_MB if binary else _MEMORY_FACTORS_MB)[unit])
    if megabytes < 1:
        raise ValueError(f"must be at least 1 MB, got {value!r}")
    return megabytes


_WALLTIME = re.compile(r"^\s*(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?\s*$")


def walltime_minutes(value: Any) -> int:
    """Slurm time formats in whole minutes (rounded up): '01:30:00' -> 90, '2-00:00:00' -> 2880, '45' -> 45.

    As in Slurm: 'MM', 'MM:SS', 'HH:MM:SS', 'D-HH', 'D-HH:MM', 'D-HH:MM:SS'.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _WALLTIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"must be a Slurm time such as '01:00:00' (HH:MM:SS) or minutes, got {value!r}")
    days, first, second, third = (int(part) if part is not None else None for part in match.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = days * 86400 + first * 3600 + (second or 0) * 60 + (third or 0)
    elif third is not None:  # HH:MM:SS
        seconds = first * 3600 + (second or 0) * 60 + third
    else:  # MM[:SS]
        seconds = first * 60 + (second or 0)
    if seconds < 1:
        raise ValueError(f"must be longer than zero, got {value!r}")
    return math.ceil(seconds / 60)
