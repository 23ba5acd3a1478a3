"""Which installed distributions (and versions) a process's code imports.

Upgrading scikit-learn can change a model's results although no file of the project changed, so
the run key and the rule's command carry the version of every third-party distribution whose
top-level modules the process's script or its project modules import (``config.imports``).
Generation maps module names to distributions (the expensive part: it reads distributions'
file lists); each job then asks only for the versions of the distributions the plan names, from
the metadata on disk, so it records what is installed when it runs.
Standard-library modules and expops-smk itself never count: expops-smk's own formats are part of
the run key already.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
from typing import Iterable

_OWN = "expops-smk"
_ALIAS = "expops"  # without ExpOps installed, expops-smk serves it (runtime.user_scripts)
# Which distributions provide which modules does not change during one generation; versions are
# always read fresh.
_providers_of: dict[str, list[str]] = {}


def library_versions(modules: Iterable[str]) -> dict[str, str]:
    """``{distribution: version}`` of the installed distributions providing these top-level modules."""
    found: dict[str, str] = {}
    for module in modules:
        if module in sys.stdlib_module_names or module in sys.builtin_module_names:
            continue
        for dist in _providers(module):
            if _normalized(dist) == _OWN:
                continue
            version = _version(dist)
            if version is not None:
                found[dist] = version
    return dict(sorted(found.items()))


def _providers(module: str) -> list[str]:
    """The distributions providing top-level ``module``.

    Most distributions are named like their module (numpy, pandas, torch): one look-up and a read
    of that distribution's file list confirms it. Only the others (sklearn, yaml, PIL) scan every
    installed distribution's ``top_level.txt`` or ``RECORD``, as ``packages_distributions`` would,
    with plain string tests (that function builds a path object per file: ten times slower).
    """
    if module in _providers_of:
        return _providers_of[module]
    try:
        dist = importlib.metadata.distribution(module)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None and _provides(dist, module):
        found = [dist.metadata["Name"]]
    elif dist is None and module == _ALIAS:
        found = []
    else:
        found = [d.metadata["Name"] for d in importlib.metadata.distributions() if _provides(d, module)]
        found = list(dict.fromkeys(found))
    _providers_of[module] = found
    return found


def _provides(dist: importlib.metadata.Distribution, module: str) -> bool:
    top_level = dist.read_text("top_level.txt")
    if top_level is not None:
        return module in top_level.split()
    # RECORD lines are "path,hash,size"; plain string tests, as building paths costs 10x more.
    record = dist.read_text("RECORD") or ""
    return any(line.startswith((f"{module}/", f"{module}.py,")) for line in record.splitlines())


def installed_versions(distributions: Iterable[str]) -> dict[str, str | None]:
    """The versions installed now (None: uninstalled since generation), read fresh from disk.

    ``invalidate_caches`` drops importlib.metadata's directory caches, which a job forked from
    the warm server inherits from before an upgrade.
    """
    importlib.invalidate_caches()
    return {dist: _version(dist) for dist in sorted(distributions)}


def metadata_folders(distributions: Iterable[str]) -> list[str]:
    """Where each distribution's metadata lives (its ``*.dist-info`` folder), for cheap ``stat``s.

    An upgrade replaces the folder (its name carries the version), so a changed fingerprint tells
    the Snakefile to regenerate. Distributions found some other way (eggs, zip files) have none.
    """
    folders = []
    for dist in distributions:
        try:
            path = getattr(importlib.metadata.distribution(dist), "_path", None)
        except importlib.metadata.PackageNotFoundError:
            continue
        if path is not None:
            folders.append(str(path))
    return sorted(folders)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
