"""A node's inputs: the upstream artifacts its function receives, nested by branch, read lazily.

Kept apart from ``node_run`` (which decides restore or execute and calls the function) because
only an execution needs it: a restore never reads an upstream value.
"""

from __future__ import annotations

import contextlib
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from expops_smk.errors import ExpopsError, NodeError
from expops_smk.graph.nodes import NodeInput
from expops_smk.store.artifact_store import Store
from expops_smk.store.artifacts import Artifact


@dataclass(frozen=True)
class _Stored:
    """An upstream artifact that has not been read yet."""

    folder: Path
    artifact: Artifact
    producer: str  # label of the node folder it comes from, for error messages


def upstream_values(root: Path, manifests: list[tuple[NodeInput, dict[str, Artifact]]], label: str) -> dict[str, Any]:
    """Upstream values by key; at an aggregation, values from fanned-out branches are nested by
    branch key (``data1`` then ``seed41``). Keys starting with ``__`` are private to their node.

    Values are not read yet (``_Stored`` leaves): only those the function receives are, so a
    node that takes a scalar from an upstream that also returned a large table neither reads
    the table nor imports pandas (see ``InputReader.materialize``). ``label`` names the node in errors.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for item, manifest in manifests:
        folder = root / item.location.results_dir
        for key, artifact in manifest.items():
            if key.startswith("__"):
                continue
            value = _Stored(folder, artifact, item.location.label)
            if not item.keys:
                if key in values:
                    raise NodeError(label, f"input '{key}' arrives from both {sources[key]} and '{item.upstream}'; "
                                    "rename one of the outputs")
                values[key] = value
                sources[key] = f"'{item.upstream}'"
                continue
            nested = values.setdefault(key, {})
            if key in sources and not sources[key].endswith("(aggregated)"):
                raise NodeError(label, f"input '{key}' arrives both aggregated from '{item.upstream}' and from "
                                f"{sources[key]}; rename one of the outputs")
            sources[key] = f"'{item.upstream}' (aggregated)"
            for branch in item.keys[:-1]:
                nested = nested.setdefault(branch, {})
            if item.keys[-1] in nested:
                raise NodeError(label, f"input '{key}' for branch {'/'.join(item.keys)} arrives from two upstreams")
            nested[item.keys[-1]] = value
    return values


@dataclass(frozen=True)
class InputReader:
    """Reads the values the function receives, from the store, into the node's log and errors."""

    store: Store
    log: TextIO
    label: str

    def materialize(self, value: Any) -> Any:
        """Read the ``_Stored`` leaves of ``value`` (the nesting dicts built by ``upstream_values``).

        Unpickling may import a user script (a class defined there), so its output goes to the
        log, and any failure is reported as one line naming the node and the input.
        """
        if isinstance(value, dict):
            return {key: self.materialize(item) for key, item in value.items()}
        if not isinstance(value, _Stored):
            return value
        try:
            with contextlib.redirect_stdout(self.log):
                return self.store.read_value(value.folder, value.artifact)
        except ExpopsError as exc:
            raise NodeError(self.label, str(exc)) from None
        except Exception as exc:
            traceback.print_exc(file=self.log)
            raise NodeError(self.label, f"cannot read '{value.artifact.file}' of '{value.producer}': "
                            f"{type(exc).__name__}: {exc}") from None
