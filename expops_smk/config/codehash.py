"""Find process functions in user scripts and hash their code, without importing the scripts.

Validation must tell a user that ``code: "train"`` names no function in ``model.py`` before anything
runs, and must learn which inputs the function asks for. Importing the script would answer both but
would also import torch, open GPUs or run top-level side effects, so scripts are read with ``ast``
only.

The code hash goes into a comment line of each Snakemake rule's command; Snakemake re-runs a job
when its command text changes. To re-run exactly the processes whose behaviour may have changed, a function's hash covers
its own definition plus, transitively, every top-level definition of the same module it refers to
by name (helpers, callbacks, ``@step`` functions, classes, constants, the import that binds a
name). Each part is hashed in a canonical form (``ast.dump`` without positions or docstrings), so
reformatting, comments and docstrings never cause a re-run, while any change to the code does.

The analysis is an over-approximation: a local variable or parameter named like a top-level
definition is treated as a reference to it, so editing that definition also changes the hash. That
costs at most a spurious re-run, never a stale result. What it cannot see: names reached only
dynamically (``globals()["helper"]``, ``getattr(module, "f")``), code in other modules (the
environment and input hashes cover those), and Python upgrades change ``ast.dump`` output and thus
every hash (again a re-run, never staleness).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import xxhash

from expops_smk.errors import ExpopsError


class ScriptError(ExpopsError):
    """A user script that cannot be read or parsed, located as ``FILE:LINE: message``.

    The ``file:line:`` prefix is the form editors and terminals turn into a jump to the fault.
    """

    def __init__(self, script: str | Path, message: str, line: int | None = None) -> None:
        self.script = str(script)
        self.line = line
        self.message = message
        location = self.script if line is None else f"{self.script}:{line}"
        super().__init__(f"{location}: {' '.join(message.split())}")


@dataclass(frozen=True)
class FunctionInfo:
    """What validation and code generation need to know about one top-level function.

    ``params`` lists the parameters the runtime can fill by keyword (positional-or-keyword, then
    keyword-only); ``*args`` never receives anything, so it is left out. ``positional_only`` is
    listed separately because the runtime passes inputs by keyword and cannot fill those: a
    validator can reject such a function with a clear message instead of a TypeError at run time.
    """

    name: str
    script: Path
    lineno: int
    params: tuple[str, ...]
    required: tuple[str, ...]
    has_var_kwargs: bool
    code_hash: str
    positional_only: tuple[str, ...] = ()


def module_functions(script: Path) -> dict[str, FunctionInfo]:
    """Every top-level ``def`` / ``async def`` of ``script``, by name.

    Definitions inside top-level ``if``/``try``/``with`` blocks count too (``try: from fast import f
    except ImportError: def f(...)``), since they become module attributes. When a name is defined
    more than once, the last definition in source order is reported, as Python keeps the last one.
    ``FunctionInfo.script`` is the resolved path. Raises ``ScriptError`` for unreadable files and
    syntax errors.
    """
    return dict(_analyse(Path(script)))


def find_function(script: Path, name: str) -> FunctionInfo | None:
    """The top-level function ``name`` of ``script``, or None when the script defines none."""
    return _analyse(Path(script)).get(name)


# resolved path -> ((st_mtime_ns, st_size), functions). Keyed by path rather than by the whole
# stamp so that an edited script replaces its old entry instead of accumulating stale ones.
_CACHE: dict[Path, tuple[tuple[int, int], dict[str, FunctionInfo]]] = {}

# Nodes whose insides form a scope of their own: names bound there are not module names.
_NEW_SCOPE = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)
_FUNCTION = (ast.FunctionDef, ast.AsyncFunctionDef)
_STAR = "*"


def _analyse(script: Path) -> dict[str, FunctionInfo]:
    """Parse ``script`` once per (path, mtime, size); generation asks about it once per process."""
    resolved = script.resolve()
    try:
        # stat before reading: if the file changes in between, the entry carries the older stamp
        # and the next lookup re-parses instead of trusting content newer than its stamp.
        stat = resolved.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = _CACHE.get(resolved)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        source = resolved.read_bytes()
    except OSError as error:
        raise ScriptError(script, f"cannot read script: {error.strerror or error}") from error
    try:
        # bytes, not text, so that PEP 263 encoding declarations are honoured as Python would.
        tree = ast.parse(source, filename=str(script))
    except SyntaxError as error:
        raise ScriptError(script, f"syntax error: {error.msg}", error.lineno) from error
    except ValueError as error:  # older 3.11 releases report null bytes this way
        raise ScriptError(script, f"cannot parse script: {error}") from error
    functions = _ModuleIndex(tree).functions(resolved)
    _CACHE[resolved] = (stamp, functions)
    return functions


class _ModuleIndex:
    """Which top-level statements define each module name, and which names each one refers to."""

    def __init__(self, tree: ast.Module) -> None:
        self.body = tree.body
        self.refs: list[set[str]] = []
        # name -> [(index of the defining statement, canonical text)], in source order.
        self.defs: dict[str, list[tuple[int, str]]] = {}
        for index, stmt in enumerate(tree.body):
            reads, declared_global = _scan(stmt)
            self.refs.append(reads | declared_global)
            for name, text in _definition_parts(stmt, declared_global):
                self.defs.setdefault(name, []).append((index, text))

    def functions(self, script: Path) -> dict[str, FunctionInfo]:
        found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        for stmt in self.body:
            for node in _scope_nodes(stmt):
                if isinstance(node, _FUNCTION):
                    found[node.name] = node
        return {
            name: _function_info(node, script, self.code_hash(name))
            for name, node in found.items()
        }

    def code_hash(self, name: str) -> str:
        """Hash ``name``'s definitions and, transitively, every module definition they mention.

        The visited set makes recursion and mutual recursion between helpers terminate. A name
        the module does not define (a builtin, or a typo) may come from a ``from x import *``, so
        star imports join the hash whenever such a name is referenced.
        """
        seen: set[str] = set()
        pending = [name]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            parts = self.defs.get(current)
            if parts is None:
                if _STAR in self.defs:
                    pending.append(_STAR)
                continue
            for index, _ in parts:
                pending.extend(self.refs[index])
        canonical = [
            f"{defined}\0{text}"
            for defined in sorted(seen & self.defs.keys())
            for _, text in self.defs[defined]
        ]
        return xxhash.xxh3_128_hexdigest("\0".join(canonical).encode("utf-8"))


def source_hash(tree: ast.Module) -> str:
    """Hash a whole module in the canonical form the function hashes use (no docstrings, no
    positions), so that comments, docstrings and formatting of an imported module never re-run."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, *_FUNCTION, ast.ClassDef)) and node.body and _is_docstring(node.body[0]):
            del node.body[0]
    return xxhash.xxh3_128_hexdigest(_canonical(tree).encode("utf-8"))


def _function_info(
    node: ast.FunctionDef | ast.AsyncFunctionDef, script: Path, code_hash: str
) -> FunctionInfo:
    args = node.args
    # Defaults align with the tail of positional-only + positional-or-keyword parameters.
    positional = [*args.posonlyargs, *args.args]
    first_default = len(positional) - len(args.defaults)
    required = [a.arg for i, a in enumerate(args.args, len(args.posonlyargs)) if i < first_default]
    required += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    return FunctionInfo(
        name=node.name,
        script=script,
        lineno=node.lineno,
        params=tuple(a.arg for a in [*args.args, *args.kwonlyargs]),
        required=tuple(required),
        has_var_kwargs=args.kwarg is not None,
        code_hash=code_hash,
        positional_only=tuple(a.arg for a in args.posonlyargs),
    )


def _scan(stmt: ast.stmt) -> tuple[set[str], set[str]]:
    """Names ``stmt`` reads and names it declares ``global``, anywhere inside it.

    Local bindings are not subtracted from the reads (see the module docstring): a local that
    shadows a module name only over-approximates the hash. The same single walk drops function
    and class docstrings in place, so editing documentation never re-runs anything.
    """
    reads: set[str] = set()
    declared_global: set[str] = set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            reads.add(node.id)
        elif isinstance(node, ast.Global):
            declared_global.update(node.names)
        elif isinstance(node, (*_FUNCTION, ast.ClassDef)) and _is_docstring(node.body[0]):
            del node.body[0]
    return reads, declared_global


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _canonical(node: ast.AST) -> str:
    return ast.dump(node, annotate_fields=True, include_attributes=False)


def _definition_parts(stmt: ast.stmt, declared_global: set[str]) -> Iterator[tuple[str, str]]:
    """(name, canonical text) for each module name the top-level ``stmt`` defines or changes.

    An import contributes, per name, only the alias that binds it, so adding ``log_metric`` to
    ``from expops_smk import step`` leaves functions that use only ``step`` untouched. Any other
    statement is one indivisible part of every name it touches, including the names functions
    inside it declare ``global`` (they may assign them).
    """
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        for alias in stmt.names:
            if isinstance(stmt, ast.Import):
                single: ast.stmt = ast.Import(names=[alias])
            else:
                single = ast.ImportFrom(module=stmt.module, names=[alias], level=stmt.level)
            yield _alias_binding(alias), _canonical(single)
        return
    text = _canonical(stmt)
    for name in sorted(_affected_names(stmt) | declared_global):
        yield name, text


def _alias_binding(alias: ast.alias) -> str:
    if alias.name == "*":
        return _STAR
    # ``import a.b`` binds ``a``.
    return alias.asname or alias.name.split(".")[0]


def _affected_names(stmt: ast.stmt) -> set[str]:
    """Module names a top-level statement binds or mutates.

    Mutations count because they change what a function sees: ``FEATURES.append("x")``,
    ``CONFIG["lr"] = 0.1``, ``np.random.seed(0)``.
    """
    names: set[str] = set()
    for node in _scope_nodes(stmt):
        if isinstance(node, (*_FUNCTION, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(
            node.ctx, (ast.Store, ast.Del)
        ):
            names.update(_root_name(node))
        elif (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and not isinstance(node.value.func, ast.Name)
        ):
            names.update(_root_name(node.value.func))
        elif isinstance(node, ast.alias):
            names.add(_alias_binding(node))
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
    return names


def _root_name(node: ast.expr) -> Iterator[str]:
    """The name at the root of ``a.b[c].d(...)``, if it is a plain name."""
    while True:
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        else:
            break
    if isinstance(node, ast.Name):
        yield node.id


def _scope_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """``node`` and its descendants in the same scope; nested scopes are yielded, not entered."""
    yield node
    if isinstance(node, _NEW_SCOPE):
        return
    for child in ast.iter_child_nodes(node):
        yield from _scope_nodes(child)
