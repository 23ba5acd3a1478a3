"""The run key: everything that determines a node's outputs, hashed.

If a node's key ran before and its artifacts are still in the store, the job restores them instead
of running user code (early cutoff and the run cache). ``expops-smk status`` compares a recorded
payload with the current one field by field to say *why* a node would re-run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from expops_smk.config.environments import environment_field
from expops_smk.config.libraries import installed_versions
from expops_smk.config.model import ProcessSpec, ProjectConfig, accepted_parameters
from expops_smk.graph.nodes import Node, NodeInput
from expops_smk.layout import RUN_FILE
from expops_smk.store.artifacts import Artifact
from expops_smk.store.hashing import hash_bytes

RUNTIME_FORMAT = 6
"""Part of every run key. 2: user scripts are imported under location-independent module names,
so pickles of classes defined in them differ from (and are readable unlike) those of format 1.
3: RNGs are seeded from the node's canonical id, not its process name (unseeded draws changed).
4: the key covers the project modules and library versions the process's script imports.
5: tables whose Parquet round trip is not exact are pickled, so recorded runs of earlier formats may
hold lossy Parquet artifacts that must not be restored.
6: a run is restored only if the files its function read are unchanged (``read_records``); records of
earlier formats do not say what their function read."""


def run_payload(project: ProjectConfig, spec: ProcessSpec, node: Node,
                manifests: list[tuple[NodeInput, dict[str, Artifact]]], data_digest: str | None) -> dict[str, Any]:
    """Everything that determines a node's outputs; its hash is the run key of the run cache.

    ``expops-smk status`` compares a recorded payload with the current one field by field to say
    *why* a node would re-run, so every field is kept readable rather than pre-hashed.
    """
    function = spec.function
    payload = {
        "format": RUNTIME_FORMAT,
        "node": node.id,
        "code": function.code_hash if function else "builtin-split-1",
        # Readable per file and per distribution, so status can name what changed. Versions are
        # read where the payload is made (the job's environment), not taken from generation.
        "modules": dict(spec.modules),
        "libraries": installed_versions(spec.libraries),
        "parameters": accepted_parameters(project, spec),
        "fanout": [spec.data_split and [spec.data_split.count, spec.data_split.row_counts,
                                        spec.data_split.data_name]
                   + ([spec.data_split.describe()] if spec.data_split.mode != "size" else []), spec.seeds],
        "random_seed": None if node.seed else project.random_seed,
        "inputs": [[item.location.results_dir, list(item.keys), {k: a.digest for k, a in sorted(m.items())}]
                   for item, m in manifests],
        "data": data_digest,
    }
    environment = environment_field(project, spec)
    if environment is not None:  # absent otherwise: the keys of projects without environments stay as they were
        payload["environment"] = environment
    return payload


def hash_payload(payload: Mapping[str, Any]) -> str:
    return hash_bytes(json.dumps(payload, sort_keys=True, default=str).encode())


def location_key(run_key: str, location: Node) -> str:
    """Run records are kept per output folder (a data split writes one folder per partition)."""
    return folder_key(run_key, location.results_dir)


def folder_key(run_key: str, results_dir: str) -> str:
    """The run record's name for ``run_key`` in the folder ``results_dir`` (relative, ``/``-separated)."""
    return hash_bytes(f"{run_key}|{results_dir}".encode())


def recorded_folder_key(project_root: Path, results_dir: str) -> str | None:
    """The run record of the folder's last execution, as its ``_run.json`` names it; None if unknown.

    That record lists what the execution wrote (so only that is deleted before the next one) and
    the artifacts it produced (so ``verify`` catches a manifest rewritten to match a replaced file).
    """
    try:
        run_key = json.loads((Path(project_root) / results_dir / RUN_FILE).read_text(encoding="utf-8"))["run_key"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return folder_key(run_key, results_dir) if isinstance(run_key, str) else None
