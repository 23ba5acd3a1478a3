"""One process entry: its function (found by parsing the script, never importing it), parameters,
fan-out flags, resources and retries, whichever layout's spelling the user chose."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from expops_smk.config.codehash import FunctionInfo, ScriptError, find_function, module_functions
from expops_smk.config.fanouts import parse_data_parallelism, parse_seed_parallelism
from expops_smk.config.model import ProcessSpec
from expops_smk.config.names import did_you_mean
from expops_smk.config.parser import ParseContext, is_int
from expops_smk.errors import ExpopsError, shown_path

PROCESS_KEYS = {
    "name", "description", "code", "code_function", "script", "script_path", "parameters",
    "hyperparameters", "data_parallelism", "seed_parallelism", "data_aggregation",
    "seed_aggregation", "depends_on", "resources", "environment", "type", "retries", "group",
    "localrule",
}


# -- one process -------------------------------------------------------------------------
def build_process(ctx: ParseContext, name: str, item: dict[str, Any], parents: tuple[str, ...],
                  scripts: dict[str, Path], global_parameters: Mapping[str, Any]) -> ProcessSpec:
    ctx.warn_unknown(item, PROCESS_KEYS, f"process '{name}'")
    description = item.get("description", "")
    own_parameters = parse_parameters(ctx, name, item)
    data_split, data_agg = parse_data_parallelism(ctx, name, item)
    seeds, seed_agg = parse_seed_parallelism(ctx, name, item)
    if data_split is not None and seeds is not None:
        raise ctx.error("seed_parallelism", "a process cannot fan out over both data and seeds; "
                        "put the seed fan-out on a separate process", name)
    if (data_split is not None and data_agg) or (seeds is not None and seed_agg):
        raise ctx.error("data_parallelism" if data_split is not None else "seed_parallelism",
                        "a process cannot both split and aggregate the same kind of fan-out", name)
    script, function = resolve_function(ctx, name, item, scripts, is_split=data_split is not None or seeds is not None,
                                        is_aggregation=data_agg or seed_agg)
    retries = item.get("retries", 0)
    if not is_int(retries) or retries < 0:
        raise ctx.error("retries", f"must be a non-negative integer, got {retries!r}", name)
    return ProcessSpec(
        name=name,
        description=ctx.one_line(description, "description", name),
        script=script,
        function=function,
        parameters=own_parameters,
        data_split=data_split,
        seeds=seeds,
        data_aggregation=data_agg,
        seed_aggregation=seed_agg,
        parents=parents,
        resources=ctx.parse_resources(item.get("resources"), "resources", name),
        retries=int(retries),
    )


def parse_parameters(ctx: ParseContext, name: str, item: dict[str, Any]) -> dict[str, Any]:
    if "parameters" in item and "hyperparameters" in item:
        raise ctx.error("hyperparameters", "give either 'parameters' or 'hyperparameters', not both", name)
    field_name = "hyperparameters" if "hyperparameters" in item else "parameters"
    parameters = dict(ctx.mapping(item.get(field_name), field_name, name))
    ctx.check_plain_data(parameters, field_name, name)
    return parameters


def resolve_function(ctx: ParseContext, name: str, item: dict[str, Any], scripts: dict[str, Path], *,
                     is_split: bool, is_aggregation: bool) -> tuple[Path | None, FunctionInfo | None]:
    """Find the process's function by parsing its script (never importing it).

    ``code: key.fn`` names a script key; ``code: fn`` the default (first) script; without
    ``code`` a split process is a built-in split and any other process uses the function
    named like the process.
    """
    if "code" in item and "code_function" in item:
        raise ctx.error("code_function", "give either 'code' or 'code_function', not both", name)
    code_field = "code_function" if "code_function" in item else "code"
    code = item.get(code_field)
    if code is not None and (not isinstance(code, str) or not code.strip()):
        raise ctx.error(code_field, f"must be a function name, got {code!r}", name)
    if code is None and is_split:
        _warn_ignored_namesake(ctx, name, item, scripts)
        return None, None
    function_name = code.rsplit(".", 1)[-1] if code else name
    script_field = "script_path" if "script_path" in item else "script"
    script = _script_for(ctx, name, item, scripts)
    if not script.is_file():
        raise ctx.error(script_field if item.get(script_field) else code_field,
                        f"script '{shown_path(script, ctx.root)}' does not exist", name)
    try:
        info = find_function(script, function_name)
        available = sorted(module_functions(script)) if info is None else []
    except ScriptError as exc:
        users = [user for user, other in ctx.process_items.items() if _script_of(ctx, user, other, scripts) == script]
        used_by = f" (used by processes: {', '.join(users)})" if len(users) > 1 else ""
        raise ctx.error(code_field, f"{exc}{used_by}", name) from None
    if info is None and name not in ctx.declared:
        # Only named in process_adjlist: most likely a typo there, so point at that line.
        raise ctx.error(f"process_adjlist line {ctx.adjlist_nodes[name]}",
                       f"unknown process '{name}': not under processes and no function '{name}' "
                       f"in {shown_path(script, ctx.root)}{did_you_mean(name, ctx.declared)}", name)
    if info is None:
        what = f"function '{function_name}'" + ("" if code else " (named after the process; set 'code')")
        raise ctx.error(code_field, f"{what} not found in {shown_path(script, ctx.root)}"
                       f"{did_you_mean(function_name, available)}; available: {', '.join(available) or 'none'}",
                        name)
    return script, info


def _script_for(ctx: ParseContext, name: str, item: dict[str, Any], scripts: dict[str, Path]) -> Path:
    """The script a process's function is looked up in: ``script_path``, the script key of
    ``code: key.fn``, else the first script."""
    code_field = "code_function" if "code_function" in item else "code"
    code = item.get(code_field)
    script_field = "script_path" if "script_path" in item else "script"
    if item.get(script_field) is not None:
        return ctx.project_file(item[script_field], script_field, name)
    if isinstance(code, str) and "." in code:
        script_key = code.rsplit(".", 1)[0]
        if script_key not in scripts:
            raise ctx.error(code_field, f"unknown script key '{script_key}' (scripts: {sorted(scripts)})", name)
        return scripts[script_key]
    if scripts:
        return next(iter(scripts.values()))
    raise ctx.error(code_field, "no script to look in: add a 'scripts' section or 'script_path'", name)


def _script_of(ctx: ParseContext, name: str, item: dict[str, Any], scripts: dict[str, Path]) -> Path | None:
    """The script another process reads its function from, without raising: used only to name
    every process that a broken script breaks (a built-in split reads none)."""
    if item.get("code_function", item.get("code")) is None and ("data_parallelism" in item or "seed_parallelism" in item):
        return None
    try:
        return _script_for(ctx, name, item, scripts)
    except ExpopsError:
        return None


def _warn_ignored_namesake(ctx: ParseContext, name: str, item: dict[str, Any], scripts: dict[str, Path]) -> None:
    """A split without ``code`` is built in: a user function named like it is never called, say so."""
    script_field = "script_path" if "script_path" in item else "script"
    candidates = ([(ctx.root / str(item[script_field])).resolve()] if item.get(script_field) is not None
                  else list(scripts.values())[:1])
    for script in candidates:
        try:
            found = (script.is_relative_to(ctx.root) and script.is_file()
                     and find_function(script, name) is not None)
        except ScriptError:
            continue  # the script's own error is reported where a function is looked up in it
        if found:
            ctx.warnings.append(f"{ctx.file}: process '{name}' has no code: it is a built-in split; function "
                                f"'{name}' in {shown_path(script, ctx.root)} is ignored (set code: {name} to use it)")
