"""Write small ExpOps projects into a temporary folder for tests (import as ``from projects import ...``).

A project is ``configs/project_config.yaml`` plus one script; tests describe the config as a dict
(dumped with its key order kept, so layouts read as the user would write them) or as raw YAML
text when the exact spelling matters (comments, tags, aliases, bytes).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

SCRIPT = "src/model.py"


def write_project(
    root: Path,
    config: Mapping[str, Any] | str | bytes,
    script: str = "",
    *,
    script_path: str = SCRIPT,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Write the project into ``root`` (created if needed) and return ``root``.

    ``script`` goes to ``script_path`` (dedented); ``files`` maps further relative paths to text.
    """
    root = Path(root)
    config_file = root / "configs" / "project_config.yaml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(config, bytes):
        config_file.write_bytes(config)
    elif isinstance(config, str):
        config_file.write_text(textwrap.dedent(config), encoding="utf-8")
    else:
        config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    for relative, text in {script_path: script, **(files or {})}.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def functions(names: Iterable[str]) -> str:
    """Script source defining one trivial process function per name."""
    return "".join(f"def {name}(**kwargs):\n    return {{}}\n\n\n" for name in names)


def pipeline(processes: list[dict[str, Any]], adjlist: str | list[str] | None = None,
             **sections: Any) -> dict[str, Any]:
    """A config in the ExpOps 0.1.27 layout (``experiment.pipeline``) with ``scripts.model``."""
    config: dict[str, Any] = {"scripts": {"model": SCRIPT}}
    config.update(sections)
    body: dict[str, Any] = {}
    if adjlist is not None:
        body["process_adjlist"] = adjlist
    body["processes"] = processes
    experiment = dict(config.get("experiment", {}))
    experiment["pipeline"] = body
    config["experiment"] = experiment
    return config
