"""Errors that reach users as one clear line instead of a traceback.

Every failure caused by the user's project (a bad config key, a missing function, a node whose
function returned the wrong type) is raised as an ``ExpopsError``; the CLI and the node runtime
print ``str(error)`` and exit with status 2, so a user always learns the file, the process and the
field at fault without reading Python internals.
"""

from __future__ import annotations

from pathlib import Path


class ExpopsError(Exception):
    """A problem in the user's project, reported as one line."""


class ConfigError(ExpopsError):
    """Invalid project configuration, located by file, process and field."""

    def __init__(
        self,
        file: str | Path,
        field: str | None,
        message: str,
        process: str | None = None,
    ) -> None:
        self.file = str(file)
        self.field = field
        self.process = process
        self.message = message
        parts = [self.file]
        if process is not None:
            parts.append(f"process '{process}'")
        if field is not None:
            parts.append(f"field '{field}'")
        super().__init__(": ".join(parts) + ": " + _one_line(message))


class NodeError(ExpopsError):
    """A failure while running one expanded node, named by its human label."""

    def __init__(self, label: str, message: str) -> None:
        self.label = label
        super().__init__(f"node '{label}': {_one_line(message)}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def shown_path(path: Path, root: Path) -> str:
    """How a project file is named in error messages: relative to the folder holding the project
    (``myproject/configs/project_config.yaml``), or absolute when it lies elsewhere."""
    try:
        return str(Path(path).relative_to(Path(root).parent))
    except ValueError:
        return str(path)
