"""Whether a job must execute user code even when the run cache holds its outputs.

Snakemake does not tell a job that it was forced (``--forcerun``, ``--forceall``, ``--force``): the
Snakefile's ``onstart`` handler exports what the invocation forces in ``EXPOPS_SMK_FORCED`` and the
job compares its own rule and output manifests against it. ``EXPOPS_SMK_NO_CACHE=1`` (what
``expops-smk run --no-cache`` sets) and ``execution: {benchmark: true}`` bypass the cache for every
job that runs, so timings and benchmark TSVs measure executions, not restores.
"""

from __future__ import annotations

import json
import os
from typing import Mapping, Sequence

from expops_smk.layout import FORCED_VARIABLE, NO_CACHE_VARIABLE


def cache_bypass_reason(environ: Mapping[str, str], rule: str, outputs: Sequence[str],
                        benchmark: bool) -> str | None:
    """Why this job must execute (one phrase for its log), or None when it may restore.

    ``outputs`` are the job's manifest paths relative to the project folder.
    """
    if environ.get(NO_CACHE_VARIABLE, "") not in ("", "0"):
        return f"{NO_CACHE_VARIABLE} is set"
    if benchmark:
        return "execution.benchmark is on (benchmarks measure executions)"
    try:
        forced = json.loads(environ.get(FORCED_VARIABLE) or "{}")
    except ValueError:
        forced = {}
    if not isinstance(forced, dict):
        return None
    if forced.get("all"):
        return "snakemake --forceall"
    if rule in (forced.get("rules") or []):
        return f"snakemake forced rule {rule}"
    files = {os.path.normpath(item) for item in forced.get("files") or [] if isinstance(item, str)}
    hit = [path for path in outputs if os.path.normpath(path) in files]
    if hit:
        return f"snakemake forced {hit[0]}"
    return None
