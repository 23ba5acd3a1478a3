"""Shared fixtures. Project-writing helpers live in ``projects.py`` (plain functions, importable)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from projects import write_project


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """``make_project(config, script, **kwargs)`` writes a project into ``tmp_path/project``.

    Calling it again rewrites the same folder, so one test can compare several configs for the
    same scripts (same root, hence identical resolved paths).
    """
    def make(config: Any, script: str = "", **kwargs: Any) -> Path:
        return write_project(tmp_path / "project", config, script, **kwargs)
    return make
