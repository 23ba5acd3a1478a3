"""Which of the project's own modules a script imports (transitively), found without importing it.

A process's result depends on its helper modules as much as on its function: ``from helpers import
bump`` must re-run the process when ``bump`` changes. So each script's imports are resolved
statically with ``ast``, the way Python would find them at run time, against the script's folder,
the project root, the other scripts' folders (the runtime puts all of them on ``sys.path``) and the
folders a reached file adds to ``sys.path`` with a literal. Every resolved file inside the project
is a project module and is hashed in canonical form (see ``codehash.source_hash``); the top-level
names that resolve to nothing inside the project are reported as external, for library versions.

Seen: ``import a.b.c`` (a/__init__.py, a/b/__init__.py and a/b/c.py), ``from a import b`` where b
is a submodule, relative imports (``from .util import x``, ``from .. import y``), imports anywhere
in a file (also inside functions and ``try`` blocks), cycles, and ``sys.path.insert(i, X)`` /
``sys.path.append(X)`` where X is a string literal, ``__file__``, or built from those with
``Path(...)``, ``.parent``, ``.parents[n]``, ``.resolve()``, ``/``, ``os.path.join``,
``os.path.dirname`` or ``os.path.abspath``. Not seen: ``importlib.import_module(name)``,
``__import__``, paths computed from variables or the environment, ``PYTHONPATH``, ``.pth`` files,
and files outside the project (installed packages count through their versions instead).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from expops_smk.config.codehash import ScriptError, source_hash


@dataclass(frozen=True)
class ScriptImports:
    """``modules``: project-relative path -> canonical hash; ``external``: unresolved top-level names."""

    modules: dict[str, str]
    external: frozenset[str]


@dataclass(frozen=True)
class _Parsed:
    digest: str
    imports: tuple[tuple[int, str, tuple[str, ...]], ...]  # (level, module, names of a from-import)
    path_entries: tuple[ast.expr, ...]


# resolved path -> ((st_mtime_ns, st_size), parsed); generation asks once per process.
_CACHE: dict[Path, tuple[tuple[int, int], _Parsed]] = {}


def script_imports(script: Path, root: Path, script_folders: Iterable[Path] = ()) -> ScriptImports:
    """The project modules ``script`` reaches and the external top-level modules it all imports.

    Raises ``ScriptError`` naming the project module (relative path) that cannot be parsed.
    """
    root = root.resolve()
    script = script.resolve()
    search = list(dict.fromkeys([script.parent, root, *(Path(f).resolve() for f in script_folders)]))
    modules: dict[str, str] = {}
    external: set[str] = set()
    pending, seen = [script], set()
    while pending:
        file = pending.pop()
        if file in seen:
            continue
        seen.add(file)
        parsed = _parse(file, root)
        if file != script:
            modules[file.relative_to(root).as_posix()] = parsed.digest
        for expr in parsed.path_entries:
            for folder in _literal_paths(expr, file, root):
                if folder not in search and _inside(folder, root) and folder.is_dir():
                    search.append(folder)
        for level, module, names in parsed.imports:
            found = list(_resolve(level, module, names, file, search))
            pending.extend(path for path in found if _inside(path, root))
            if level == 0 and module and not found:
                external.add(module.split(".")[0])
    return ScriptImports(dict(sorted(modules.items())), frozenset(external))


def _parse(file: Path, root: Path) -> _Parsed:
    shown = file.relative_to(root).as_posix() if _inside(file, root) else str(file)
    try:
        stat = file.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = _CACHE.get(file)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        tree = ast.parse(file.read_bytes(), filename=shown)
    except OSError as error:
        raise ScriptError(shown, f"cannot read module: {error.strerror or error}") from error
    except SyntaxError as error:
        raise ScriptError(shown, f"syntax error: {error.msg}", error.lineno) from error
    except ValueError as error:
        raise ScriptError(shown, f"cannot parse module: {error}") from error
    imports: list[tuple[int, str, tuple[str, ...]]] = []
    entries: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.extend((0, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imports.append((node.level, node.module or "", tuple(a.name for a in node.names if a.name != "*")))
        elif isinstance(node, ast.Call) and _is_sys_path_call(node):
            entries.append(node.args[-1])
    parsed = _Parsed(source_hash(tree), tuple(imports), tuple(entries))
    _CACHE[file] = (stamp, parsed)
    return parsed


def _resolve(level: int, module: str, names: tuple[str, ...], file: Path, search: list[Path]) -> Iterator[Path]:
    """Files Python executes for this import: every package ``__init__`` on the way, the module,
    and, for ``from X import name``, the submodule ``name`` when there is one."""
    parts = [p for p in module.split(".") if p]
    if level:
        base = file.parent
        for _ in range(level - 1):
            base = base.parent
        if (base / "__init__.py").is_file():
            yield base / "__init__.py"
        folders = [base]
    else:
        folders = search
    for folder in folders:
        chain = list(_walk(folder, parts))
        if parts and not chain:
            continue
        yield from chain
        target = folder.joinpath(*parts)
        if target.is_dir():
            for name in names:
                yield from _walk(target, [name])
        return


def _walk(folder: Path, parts: list[str]) -> Iterator[Path]:
    """Files of the dotted path ``parts`` below ``folder``; stops at the first part not found."""
    current = folder
    for index, part in enumerate(parts):
        package, plain = current / part, current / f"{part}.py"
        if (package / "__init__.py").is_file():
            yield package / "__init__.py"
        elif plain.is_file() and index == len(parts) - 1:
            yield plain
            return
        elif plain.is_file():
            yield plain  # ``a.b`` where a is a module: the import fails at run time after running a
            return
        elif not package.is_dir():  # a folder without __init__.py is a namespace package
            return
        current = package


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _is_sys_path_call(node: ast.Call) -> bool:
    func = node.func
    return (isinstance(func, ast.Attribute) and func.attr in ("insert", "append")
            and isinstance(func.value, ast.Attribute) and func.value.attr == "path"
            and isinstance(func.value.value, ast.Name) and func.value.value.id == "sys"
            and len(node.args) == (2 if func.attr == "insert" else 1))


def _literal_paths(expr: ast.expr, file: Path, root: Path) -> list[Path]:
    """The folders a literal ``sys.path`` entry may name; a relative string is taken relative to
    the project root (where jobs run) and to the file's folder, as either could be meant."""
    values = _evaluate(expr, file, root)
    return [Path(os.path.normpath(value)) for value in values]


_SAME = {"str", "Path", "PurePath", "fspath", "abspath", "realpath", "normpath", "resolve", "absolute"}


def _evaluate(expr: ast.expr, file: Path, root: Path) -> list[str]:
    """Candidate values of a path expression, or [] when it is not built from literals."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        if os.path.isabs(expr.value):
            return [expr.value]
        return [str(root / expr.value), str(file.parent / expr.value)]
    if isinstance(expr, ast.Name) and expr.id == "__file__":
        return [str(file)]
    if isinstance(expr, ast.Attribute) and expr.attr == "parent":
        return [os.path.dirname(v) for v in _evaluate(expr.value, file, root)]
    if (isinstance(expr, ast.Subscript) and isinstance(expr.value, ast.Attribute) and expr.value.attr == "parents"
            and isinstance(expr.slice, ast.Constant) and isinstance(expr.slice.value, int)):
        return [str(Path(v).parents[expr.slice.value]) for v in _evaluate(expr.value.value, file, root)
                if expr.slice.value < len(Path(v).parents)]
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
        return _join(_evaluate(expr.left, file, root), [expr.right])
    if isinstance(expr, ast.Call):
        func = expr.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("resolve", "absolute") and isinstance(func, ast.Attribute) and not expr.args:
            return _evaluate(func.value, file, root)
        if name == "dirname" and len(expr.args) == 1:
            return [os.path.dirname(v) for v in _evaluate(expr.args[0], file, root)]
        if (name == "join" or name in ("Path", "PurePath")) and expr.args:
            return _join(_evaluate(expr.args[0], file, root), expr.args[1:])
        if name in _SAME and len(expr.args) == 1:
            return _evaluate(expr.args[0], file, root)
    return []


def _join(bases: list[str], rest: list[ast.expr]) -> list[str]:
    tail = []
    for part in rest:
        if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
            return []
        tail.append(part.value)
    return [os.path.join(base, *tail) for base in bases]
