"""What flows along the DAG's edges, where the scripts' source tells: returned keys meet arguments.

A node's function receives its parameters and its parents' returned values by keyword, so a
parameter named like an upstream output collides in every node, and an argument that matches
nothing (a typo such as ``X_trian``) is never filled. Both are run-time failures of every node. They are found here, once per
process, wherever the parents' returned keys are statically known: every ``return`` of the
parent's function is a dict literal with string-constant keys, or the parent is a built-in split,
which passes its own inputs through. Anything less certain (``return result``, ``**extra``, a
generator) counts as unknown and raises nothing; the run-time checks stay.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Mapping

from expops_smk.config.model import ProcessSpec
from expops_smk.config.parser import ParseContext

# Names the runtime fills itself (see expops_smk.runtime.node_run.NodeRun.call).
RUNTIME_ARGUMENTS = frozenset({"random_seed", "context", "hyperparameters", "data"})
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def check_dataflow(ctx: ParseContext, processes: Mapping[str, ProcessSpec],
                   global_parameters: Mapping[str, object]) -> None:
    """Raise a ``ConfigError`` for the first process whose parameters or arguments cannot work."""
    modules: dict[Path, ast.Module | None] = {}
    outputs: dict[str, frozenset[str] | None] = {}
    for spec in processes.values():  # topological order: parents first
        inputs = {parent: outputs[parent] for parent in spec.parents}
        outputs[spec.name] = keys = _outputs(spec, inputs, modules)
        if keys is not None and spec.data_split is not None and spec.data_split.files is not None:
            outputs[spec.name] = keys | {spec.data_split.data_name}  # each partition receives its file's path
        if spec.function is None:
            continue
        parameters = {**global_parameters, **spec.parameters}
        for parent, keys in inputs.items():
            for key in sorted((keys or frozenset()) & parameters.keys()):
                where = "" if key in spec.parameters else " (a global parameter)"
                raise ctx.error(f"parameters.{key}", f"parameter '{key}'{where} collides with the output '{key}' "
                                f"of upstream '{parent}'; rename one", spec.name)
        if any(keys is None for keys in inputs.values()):
            continue
        available = set(parameters) | RUNTIME_ARGUMENTS | {key for keys in inputs.values() for key in keys or ()}
        if spec.seeds is not None:
            available.add("seeds")
        # Only required arguments: one with a default legitimately stays unset when nothing offers it.
        unknown = [name for name in spec.function.required if name not in available]
        if unknown:
            offered = ", ".join(sorted(available - RUNTIME_ARGUMENTS)) or "none"
            raise ctx.error("code", f"required argument '{unknown[0]}' of function '{spec.function.name}' matches no "
                            f"parameter and no upstream output (available: {offered})", spec.name)


def _outputs(spec: ProcessSpec, inputs: Mapping[str, frozenset[str] | None],
             modules: dict[Path, ast.Module | None]) -> frozenset[str] | None:
    """The keys a process's nodes return, or None when the source does not say for certain."""
    if spec.function is None:  # a built-in split passes its inputs through
        if any(keys is None for keys in inputs.values()):
            return None
        return frozenset(key for keys in inputs.values() for key in keys or ())
    if spec.script is None:
        return None
    if spec.script not in modules:
        try:
            modules[spec.script] = ast.parse(spec.script.read_bytes())
        except (OSError, SyntaxError, ValueError):
            modules[spec.script] = None
    module = modules[spec.script]
    return None if module is None else returned_keys(module, spec.function.name)


def returned_keys(module: ast.Module, name: str) -> frozenset[str] | None:
    """Keys of the dicts the top-level function ``name`` returns, when every return is a dict
    literal with string-constant keys; else None. Unknown too: a generator, a decorated function
    (the decorator may change what it returns), a name also bound elsewhere in the module."""
    definitions = [stmt for stmt in module.body if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
                   and stmt.name == name]
    if len(definitions) != 1 or definitions[0].decorator_list or _bound_elsewhere(module, definitions[0]):
        return None
    function = definitions[-1]
    keys: set[str] = set()
    returns = 0
    stack: list[ast.AST] = list(function.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return None
        if isinstance(node, ast.Return):
            value = node.value
            if not isinstance(value, ast.Dict) or not all(
                    isinstance(key, ast.Constant) and isinstance(key.value, str) for key in value.keys):
                return None
            returns += 1
            keys.update(key.value for key in value.keys if isinstance(key, ast.Constant))
        if not isinstance(node, _SCOPES):
            stack.extend(ast.iter_child_nodes(node))
    return frozenset(keys) if returns else None


def _bound_elsewhere(module: ast.Module, function: ast.stmt) -> bool:
    """True when a module statement other than ``function`` may (re)bind its name."""
    name = getattr(function, "name")
    for stmt in module.body:
        if stmt is function:
            continue
        for node in ast.walk(stmt):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
                return True
            if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
                return True
            if isinstance(node, ast.alias) and (node.asname or node.name).split(".")[0] in (name, "*"):
                return True
    return False
