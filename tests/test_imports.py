"""Static import resolution: which project modules a script reaches, without importing anything."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expops_smk.config.codehash import ScriptError
from expops_smk.config.imports import script_imports
from expops_smk.config.libraries import library_versions
from expops_smk.config.project import load_project
from expops_smk.errors import ExpopsError
from projects import write_project


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def reached(root: Path, script: str = "src/main.py") -> set[str]:
    return set(script_imports(root / script, root).modules)


def test_plain_import_of_a_sibling_module(tmp_path: Path) -> None:
    root = tree(tmp_path, {"src/main.py": "from helpers import bump\n", "src/helpers.py": "def bump(x): return x\n"})
    assert reached(root) == {"src/helpers.py"}


def test_dotted_import_reaches_every_package_init(tmp_path: Path) -> None:
    root = tree(tmp_path, {"src/main.py": "import a.b.c\n", "a/__init__.py": "", "a/b/__init__.py": "",
                           "a/b/c.py": "X = 1\n", "a/b/d.py": "X = 2\n"})
    assert reached(root) == {"a/__init__.py", "a/b/__init__.py", "a/b/c.py"}


def test_from_package_import_submodule(tmp_path: Path) -> None:
    root = tree(tmp_path, {"src/main.py": "from pkg import util, CONSTANT\n", "pkg/__init__.py": "CONSTANT = 1\n",
                           "pkg/util.py": "", "pkg/other.py": ""})
    assert reached(root) == {"pkg/__init__.py", "pkg/util.py"}


def test_relative_imports_inside_a_package(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "src/main.py": "from pkg.sub.mod import f\n",
        "pkg/__init__.py": "", "pkg/sub/__init__.py": "from . import sibling\n",
        "pkg/sub/mod.py": "from .util import g\nfrom ..top import h\n",
        "pkg/sub/util.py": "", "pkg/sub/sibling.py": "", "pkg/top.py": "",
    })
    assert reached(root) == {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/mod.py", "pkg/sub/util.py",
                             "pkg/sub/sibling.py", "pkg/top.py"}


def test_cycles_terminate(tmp_path: Path) -> None:
    root = tree(tmp_path, {"src/main.py": "import a\n", "src/a.py": "import b\n", "src/b.py": "import a\nimport main\n"})
    assert reached(root) == {"src/a.py", "src/b.py"}  # the script itself is hashed by codehash


def test_installed_and_standard_modules_are_external_not_project_modules(tmp_path: Path) -> None:
    root = tree(tmp_path, {"src/main.py": "import os, json\nimport yaml\nfrom xxhash import xxh3_64\n"})
    result = script_imports(root / "src/main.py", root)
    assert result.modules == {} and {"os", "json", "yaml", "xxhash"} <= result.external
    versions = library_versions(result.external)
    assert set(versions) == {"PyYAML", "xxhash"}  # standard-library modules never count


def test_module_outside_the_project_is_ignored(tmp_path: Path) -> None:
    tree(tmp_path, {"outside/shared.py": "X = 1\n"})
    root = tree(tmp_path / "project", {"src/main.py": "import sys\nsys.path.insert(0, '../outside')\nimport shared\n"})
    result = script_imports(root / "src/main.py", root)
    assert result.modules == {} and "shared" in result.external


@pytest.mark.parametrize("entry", [
    '"lib"',
    'str(Path(__file__).parent.parent / "lib")',
    'os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib")',
    'str(Path(__file__).resolve().parents[1] / "lib")',
])
def test_literal_sys_path_entries_are_followed(tmp_path: Path, entry: str) -> None:
    root = tree(tmp_path, {
        "src/main.py": f"import os, sys\nfrom pathlib import Path\nsys.path.insert(0, {entry})\nimport extra\n",
        "lib/extra.py": "",
    })
    assert reached(root) == {"lib/extra.py"}


def test_comments_and_docstrings_do_not_change_a_module_hash(tmp_path: Path) -> None:
    root = tree(tmp_path, {"src/main.py": "import helpers\n", "src/helpers.py": "def f():\n    return 1\n"})
    first = script_imports(root / "src/main.py", root).modules
    tree(root, {"src/helpers.py": '"""Doc."""\n# comment\ndef f():\n    """Doc."""\n    return (1)\n'})
    assert script_imports(root / "src/main.py", root).modules == first
    tree(root, {"src/helpers.py": "def f():\n    return 2\n"})
    assert script_imports(root / "src/main.py", root).modules != first


def test_syntax_error_in_a_helper_module_names_it_and_its_processes(tmp_path: Path) -> None:
    config = """\
    scripts: {main: src/main.py}
    experiment:
      pipeline:
        process_adjlist: |
          a b
        processes: [{name: a}, {name: b}]
    """
    root = write_project(tmp_path, config, "import helpers\ndef a():\n    return {}\ndef b():\n    return {}\n",
                         script_path="src/main.py", files={"src/helpers.py": "def broken(:\n"})
    with pytest.raises(ExpopsError) as error:
        load_project(root)
    message = str(error.value)
    assert "\n" not in message and message.startswith("src/helpers.py:1: syntax error")
    assert message.endswith("(imported by processes a, b)")


def test_unreadable_module_is_a_script_error(tmp_path: Path) -> None:
    root = tree(tmp_path, {"src/main.py": "import helpers\n", "src/helpers.py": "x = 1\n"})
    (root / "src/helpers.py").write_bytes(b"\x00")
    with pytest.raises(ScriptError, match="src/helpers.py"):
        script_imports(root / "src/main.py", root)


@settings(max_examples=30, deadline=None)
@given(edges=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=15))
def test_reached_modules_are_exactly_the_transitive_closure(tmp_path_factory: pytest.TempPathFactory,
                                                            edges: list[tuple[int, int]]) -> None:
    root = tmp_path_factory.mktemp("graph")
    imports: dict[int, set[int]] = {i: set() for i in range(6)}
    for source, target in edges:
        imports[source].add(target)
    files = {f"src/m{i}.py": "".join(f"import m{j}\n" for j in sorted(targets)) for i, targets in imports.items()}
    tree(root, {**files, "src/main.py": "import m0\n"})
    closure, pending = set(), [0]
    while pending:
        current = pending.pop()
        if current not in closure:
            closure.add(current)
            pending.extend(imports[current])
    assert reached(root) == {f"src/m{i}.py" for i in closure}


def test_track_library_versions_must_be_a_flag_and_turns_versions_off(tmp_path: Path) -> None:
    config = """\
    scripts: {main: src/main.py}
    execution: {track_library_versions: %s}
    experiment:
      pipeline:
        process_adjlist: |
          a
        processes: [{name: a}]
    """
    script = "import yaml\ndef a():\n    return {}\n"
    on = load_project(write_project(tmp_path / "on", config % "true", script, script_path="src/main.py"))
    assert on.processes["a"].libraries == {"PyYAML": library_versions({"yaml"})["PyYAML"]}
    off = load_project(write_project(tmp_path / "off", config % "false", script, script_path="src/main.py"))
    assert off.processes["a"].libraries == {} and off.execution.track_library_versions is False
    with pytest.raises(ExpopsError, match="execution.track_library_versions"):
        load_project(write_project(tmp_path / "bad", config % "'no'", script, script_path="src/main.py"))


def test_installed_versions_read_from_the_metadata_headers_equal_importlib_metadatas() -> None:
    """A job reads each library's version from its metadata's header block only (issue 18 P9)."""
    import importlib.metadata

    from expops_smk.config.libraries import installed_versions

    names = sorted({dist.metadata["Name"] for dist in importlib.metadata.distributions()})
    assert installed_versions([*names, "not-installed-xyz"]) == {
        **{name: importlib.metadata.version(name) for name in names}, "not-installed-xyz": None}
