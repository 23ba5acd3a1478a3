"""Why would a node re-run? Compare what each node last ran with against the project as it is now.

Every job records the readable payload its run key was hashed from (code hash, parameters,
fan-out, seed, the content digests of its inputs, the raw data digest) in ``_run.json``; the run
record it names keeps the digests of the files its function read. Status recomputes the current payload and names the fields
that differ, and each file whose content changed ("file changed: data/bc2.csv"). A node whose upstream will re-run
cannot know its future inputs, so it reports "upstream X will re-run"; when every input is known
and the changed payload matches a recorded run, the node will be restored from the run cache
without executing user code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expops_smk.config.model import ProjectConfig
from expops_smk.config.overrides import apply_overrides, recorded_overrides
from expops_smk.config.project import load_project
from expops_smk.graph.expansion import Graph, build_graph
from expops_smk.graph.nodes import Node
from expops_smk.layout import MANIFEST, RUN_FILE
from expops_smk.runtime.reads import stale_reads
from expops_smk.runtime.run_key import hash_payload, location_key, recorded_folder_key, run_payload
from expops_smk.store.artifact_store import Store
from expops_smk.store.artifacts import Artifact
from expops_smk.store.hashing import hash_file
from expops_smk.store.pending_reads import CHANGED_WHILE_RUNNING
from expops_smk.store.read_records import absolute, current_digest, known_file_digests, read_run_reads

UP_TO_DATE = "up to date"
WILL_RUN = "will run"
WILL_RESTORE = "will restore"
NEVER_RUN = "never run"


@dataclass
class NodeStatus:
    node: Node
    state: str
    reasons: list[str] = field(default_factory=list)

    def line(self) -> str:
        detail = f": {'; '.join(self.reasons)}" if self.reasons else ""
        return f"{self.node.label}: {self.state}{detail}"


def project_status(project_dir: str | Path) -> list[NodeStatus]:
    project = apply_overrides(load_project(project_dir), recorded_overrides(project_dir))
    graph = build_graph(project)
    return _Status(project, graph).all()


class _Status:
    def __init__(self, project: ProjectConfig, graph: Graph) -> None:
        self.project = project
        self.graph = graph
        self.store = Store(project.root)
        self.data_digest = hash_file(project.data_path) if project.data_path and project.data_path.is_file() else None
        self.done: dict[Node, NodeStatus] = {}
        self.known_files = known_file_digests(project.root)  # prepare's stat cache: hash only what moved

    def all(self) -> list[NodeStatus]:
        return [self.status(node) for node in self.graph.nodes()]

    def folder(self, location: Node) -> Path:
        return self.project.root / location.results_dir

    def status(self, node: Node) -> NodeStatus:
        layout = self.graph.layouts[node.process]
        locations = layout.output_locations(node)
        recorded = self.recorded_payload(locations[0])
        if recorded is None or not all((self.folder(loc) / MANIFEST).is_file() for loc in locations):
            result = NodeStatus(node, NEVER_RUN if recorded is None else WILL_RUN,
                                [] if recorded is None else ["outputs missing"])
            self.done[node] = result
            return result
        reasons: list[str] = []
        pending = []
        for item in self.graph.inputs(node):
            producer = self.graph.producer(item.location)
            if self.done[producer].state not in (UP_TO_DATE,) and producer.label not in pending:
                pending.append(producer.label)
        reasons += [f"upstream {label} will re-run" for label in pending]
        reasons += self.changed_files(locations[0])
        current = None
        if not pending:
            manifests = [(item, self.manifest(item.location)) for item in self.graph.inputs(node)]
            if all(m is not None for _, m in manifests):
                current = run_payload(self.project, layout.spec, node, manifests,  # type: ignore[arg-type]
                                      None if layout.spec.parents else self.data_digest)
                reasons += _differences(recorded, current, self.graph)
        if not reasons:
            result = NodeStatus(node, UP_TO_DATE)
        elif current is not None and all(
                self.store.has_run(key) and stale_reads(self.project.root, key) == []
                for key in (location_key(hash_payload(current), loc) for loc in locations)):
            result = NodeStatus(node, WILL_RESTORE, reasons + ["a recorded run matches: restored without running code"])
        else:
            result = NodeStatus(node, WILL_RUN, reasons)
        self.done[node] = result
        return result

    def recorded_payload(self, location: Node) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder(location) / RUN_FILE).read_text(encoding="utf-8"))["payload"]
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def changed_files(self, location: Node) -> list[str]:
        """A reason per file the node's function read in its last run whose content differs now
        (or may have changed while it ran: what it read then is not known)."""
        record_key = recorded_folder_key(self.project.root, location.results_dir)
        recorded = read_run_reads(self.project.root, record_key, self.known_files) if record_key else {}
        if recorded is None:
            return ["the files it read were recorded by another expops-smk version"]
        return [f"file changed while the node ran: {path}" if entry[2] == CHANGED_WHILE_RUNNING else f"file changed: {path}"
                for path, entry in sorted(recorded.items())
                if current_digest(absolute(self.project.root, path), self.known_files.get(path))[2] != entry[2]]

    def manifest(self, location: Node) -> dict[str, Artifact] | None:
        try:
            return self.store.read_manifest(self.folder(location))
        except FileNotFoundError:
            return None


def _differences(recorded: dict[str, Any], current: dict[str, Any], graph: Graph) -> list[str]:
    reasons: list[str] = []
    if recorded.get("code") != current["code"]:
        reasons.append("code changed")
    reasons += _changed_modules(recorded.get("modules") or {}, current["modules"])
    reasons += _changed_libraries(recorded.get("libraries") or {}, current["libraries"])
    old_params, new_params = recorded.get("parameters") or {}, current["parameters"]
    for key in sorted(set(old_params) | set(new_params)):
        if old_params.get(key, _MISSING) != new_params.get(key, _MISSING):
            reasons.append(f"parameter {key} changed")
    if recorded.get("fanout") != json.loads(json.dumps(current["fanout"])):
        reasons.append("fan-out changed")
    if recorded.get("random_seed") != current["random_seed"]:
        reasons.append("random_seed changed")
    if recorded.get("data") != current["data"]:
        reasons.append("data changed")
    if recorded.get("environment") != current.get("environment"):
        reasons.append(f"environment changed (now {current.get('environment') or 'the one running Snakemake'})")
    old_inputs = {entry[0]: entry[2] for entry in recorded.get("inputs", [])}
    for folder, _, digests in current["inputs"]:
        if old_inputs.get(folder) != digests:
            reasons.append(f"input {folder} changed")
    if recorded.get("format") != current["format"] and not reasons:
        reasons.append("recorded by another expops-smk version")
    return reasons


def _changed_modules(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """One reason per project module whose canonical source changed, appeared or is no longer used."""
    reasons = []
    for path in sorted(set(old) | set(new)):
        if path not in new:
            reasons.append(f"code changed: {path} no longer imported")
        elif old.get(path) != new[path]:
            reasons.append(f"code changed: {path}")
    return reasons


def _changed_libraries(old: dict[str, str | None], new: dict[str, str | None]) -> list[str]:
    """One reason per distribution whose installed version differs, as ``name old → new``."""
    return [f"{name} {old.get(name) or 'none'} → {new.get(name) or 'none'}"
            for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]


_MISSING = object()
