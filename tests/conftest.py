"""Shared fixtures. Project-writing helpers live in ``projects.py`` (plain functions, importable)."""

from __future__ import annotations

import os
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


# Warm servers outlive the snakemake run that started them by this many idle seconds (default 60);
# short here, so that the many small projects of the suite do not keep interpreters around.
os.environ.setdefault("EXPOPS_SMK_WARM_IDLE", "3")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--crash-count", type=int, default=None,
                     help="kills in the reliability crash loop (default 5; the issue's full loop is 20)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--crash-count") is not None:
        os.environ["EXPOPS_CRASH_COUNT"] = str(config.getoption("--crash-count"))
