"""Writing generated files: from the packaged templates, and only when their content changes.

Snakemake compares the modification times of the Snakefile and of its includes with those of the
results, so a file rewritten with the same content would make every job look stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from expops_smk.store import files as store_files


@dataclass(frozen=True)
class GeneratedFile:
    path: Path
    changed: bool


def template(name: str) -> Template:
    """Templates ship inside the package as ``expops_smk.templates`` (the ``workflow_templates/`` folder)."""
    return Template(resources.files("expops_smk.templates").joinpath(name).read_text(encoding="utf-8"))


def write_if_changed(path: Path, content: str) -> bool:
    """Atomically replace ``path`` only when its content differs, keeping its mtime otherwise."""
    return store_files.write_if_changed(path, content.encode("utf-8"))
