"""Writing generated files: from the packaged templates, and only when their content changes.

Snakemake compares the modification times of the Snakefile and of its includes with those of the
results, so a file rewritten with the same content would make every job look stale.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template


@dataclass(frozen=True)
class GeneratedFile:
    path: Path
    changed: bool


def template(name: str) -> Template:
    """Templates ship inside the package as ``expops_smk.templates`` (the ``workflow_templates/`` folder)."""
    return Template(resources.files("expops_smk.templates").joinpath(name).read_text(encoding="utf-8"))


def write_if_changed(path: Path, content: str) -> bool:
    """Atomically replace ``path`` only when its content differs, keeping its mtime otherwise."""
    try:
        if path.read_text(encoding="utf-8") == content:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)
    return True
