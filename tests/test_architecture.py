"""The package's shape: layers that import only downwards, no cycles, small modules, thin ``__init__``s.

The layer contract lives in ``pyproject.toml`` (``[tool.importlinter]``) and is checked with
import-linter, the tool made for this; the second test proves the check can fail by adding one
upward import to a copy of the package.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "expops_smk"
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
MAX_MODULE_LINES = 400


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT_IMPORTS, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=120)


def test_layers_import_only_downwards_and_no_module_cycles() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, upward", [
    ("store/hashing.py", "import expops_smk.config.model"),      # the bottom layer reaching up
    ("config/names.py", "from expops_smk.graph import nodes"),    # parsing depending on expansion
    ("runtime/seeding.py", "import expops_smk.codegen.files"),    # two siblings that must stay apart
])
def test_an_upward_import_breaks_the_contract(tmp_path: Path, module: str, upward: str) -> None:
    shutil.copytree(PACKAGE, tmp_path / "expops_smk", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "expops_smk" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{upward}  # noqa\n", encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout


def test_a_cycle_between_siblings_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(PACKAGE, tmp_path / "expops_smk", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "expops_smk" / "graph" / "nodes.py"  # expansion imports nodes; now nodes imports expansion
    target.write_text(target.read_text(encoding="utf-8") + "\nimport expops_smk.graph.expansion  # noqa\n",
                      encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "No import cycles" in result.stdout and "BROKEN" in result.stdout


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_is_over_the_size_limit(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(REPO)} has {lines} lines; split it by concept"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*/__init__.py")), ids=lambda path: path.parent.name)
def test_a_subpackage_init_only_documents_or_re_exports(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    body = tree.body[1:] if ast.get_docstring(tree) else tree.body
    allowed = (ast.ImportFrom, ast.Import)
    assert all(isinstance(statement, allowed) for statement in body), f"{path} holds code, not just re-exports"
    assert ast.get_docstring(tree), f"{path} does not say what its layer is for"


def test_every_subpackage_and_module_has_a_layer() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = next(contract["layers"] for contract in config["contracts"] if contract["type"] == "layers")
    named = {name.strip() for layer in layers for name in layer.split("|")}
    top_level = {f"expops_smk.{path.parent.name}" for path in PACKAGE.glob("*/__init__.py")}
    top_level |= {f"expops_smk.{path.stem}" for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    assert top_level == named
