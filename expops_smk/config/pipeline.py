"""The DAG of processes: the process list, ``process_adjlist`` lines, ``depends_on``, and their order.

ExpOps draws the DAG in ``pipeline.process_adjlist`` (each line: a source and its targets); a
process may appear there without an entry under ``processes``, and ``depends_on`` lists are a
natural alternative. Both become one edge list, ordered parents-first with the declaration order
kept where the DAG allows, so generated rules and error messages come out the same on every run.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from expops_smk.config.names import did_you_mean, is_safe_name, reserved_reason, rule_name
from expops_smk.config.parser import ParseContext

Edge = tuple[str, str, str]
"""(source, target, where the edge was written: ``process_adjlist line N`` or ``depends_on``)."""


def parse_process_list(ctx: ParseContext, pipeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ctx.warn_unknown(pipeline, {"processes", "process_adjlist"}, "pipeline")
    items = pipeline.get("processes") or []
    if not isinstance(items, list):
        raise ctx.error("pipeline.processes", f"must be a list, got {type(items).__name__}")
    declared: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items):
        where = f"processes[{index}]"
        item = ctx.mapping(item, where)
        name = item.get("name")
        if name is None:
            raise ctx.error(f"{where}.name", "is missing")
        if not is_safe_name(name):
            raise ctx.error(f"{where}.name", f"{name!r} is not a safe process name "
                            "(letters, digits, '_' and '-', starting with a letter or '_')")
        if reserved_reason(name):
            raise ctx.error(f"{where}.name", reserved_reason(name))
        if name in declared:
            raise ctx.error("name", "duplicate process name", name)
        declared[name] = item
    rule_names: dict[str, str] = {}
    for name in declared:
        rule = rule_name(name)
        if rule in rule_names:
            raise ctx.error("name", f"clashes with '{rule_names[rule]}' once '-' becomes '_'", name)
        rule_names[rule] = name
    return declared


def parse_adjlist(ctx: ParseContext, adjlist: Any) -> list[Edge]:
    if adjlist is None:
        return []
    if isinstance(adjlist, str):
        lines = adjlist.splitlines()
    elif isinstance(adjlist, list) and all(isinstance(line, str) for line in adjlist):
        lines = adjlist
    else:
        raise ctx.error("process_adjlist", "must be a string or a list of strings")
    edges: list[Edge] = []
    for number, line in enumerate(lines, start=1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        for token in tokens:
            if not is_safe_name(token):
                raise ctx.error(f"process_adjlist line {number}", f"{token!r} is not a safe process name")
            if reserved_reason(token):
                raise ctx.error(f"process_adjlist line {number}", reserved_reason(token))
            ctx.adjlist_nodes.setdefault(token, number)
        source, *targets = tokens
        edges.extend((source, target, f"process_adjlist line {number}") for target in targets)
    return edges


def parse_depends_on(ctx: ParseContext, name: str, item: dict[str, Any]) -> list[str]:
    depends = item.get("depends_on", [])
    if isinstance(depends, str):
        depends = [depends]
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        raise ctx.error("depends_on", "must be a list of process names", name)
    return depends


def without_chart_edges(ctx: ParseContext, edges: list[Edge],
                        charts: Mapping[str, Any]) -> list[Edge]:
    """Drop edges into charts; a chart's probes, not the DAG, decide what it waits for.

    ExpOps' own templates list a chart in process_adjlist as the target of a process it draws,
    so such lines are accepted. A chart returns nothing, so it cannot feed a process.
    """
    kept = []
    for source, target, where in edges:
        if source in charts:
            raise ctx.error(where, f"'{source}' is a chart: it returns nothing another process could consume",
                            source)
        if target not in charts:
            kept.append((source, target, where))
    for name in charts:
        ctx.adjlist_nodes.pop(name, None)
    return kept


def topological_order(ctx: ParseContext, declared: dict[str, dict[str, Any]],
                      edges: list[Edge]) -> list[str]:
    """Order processes parents-first, keeping declaration order where the DAG allows it."""
    names = list(declared)
    names += [extra for extra in ctx.adjlist_nodes if extra not in declared]
    known = set(names)
    for source, target, where in edges:
        for endpoint in (source, target):
            if endpoint not in known:
                owner = target if where == "depends_on" else None
                raise ctx.error(where, f"unknown process '{endpoint}'{did_you_mean(endpoint, known)}", owner)
        if source == target:
            raise ctx.error(where, f"cycle: {source} -> {source}", source)
    successors: dict[str, list[str]] = {name: [] for name in names}
    indegree = dict.fromkeys(names, 0)
    for source, target, _ in edges:
        if target not in successors[source]:
            successors[source].append(target)
            indegree[target] += 1
    position = {name: i for i, name in enumerate(names)}
    ready = sorted((n for n in names if indegree[n] == 0), key=position.__getitem__)
    order: list[str] = []
    while ready:
        current = ready.pop(0)
        order.append(current)
        for nxt in successors[current]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
                ready.sort(key=position.__getitem__)
    if len(order) < len(names):
        remaining = [n for n in names if indegree[n] > 0]
        predecessors = {n: [s for s in remaining if n in successors[s]] for n in remaining}
        cycle = _find_cycle(predecessors)
        # Start at the first-declared process of the cycle: the same message on every run.
        start = min(range(len(cycle) - 1), key=lambda i: position[cycle[i]])
        cycle = cycle[start:-1] + cycle[:start] + [cycle[start]]
        steps = set(zip(cycle, cycle[1:]))
        fields = sorted({"depends_on" if where == "depends_on" else "process_adjlist"
                         for source, target, where in edges if (source, target) in steps})
        raise ctx.error(" + ".join(fields), "cycle: " + " -> ".join(cycle), cycle[0])
    return order


def _find_cycle(predecessors: Mapping[str, Iterable[str]]) -> list[str]:
    """Return one cycle, in edge direction, as a closed path (first == last).

    Every process left over by Kahn's algorithm still has an unprocessed predecessor, so walking
    predecessors from any of them must revisit a process: that loop is a cycle.
    """
    current = next(iter(predecessors))
    walk: list[str] = []
    seen: dict[str, int] = {}
    while current not in seen:
        seen[current] = len(walk)
        walk.append(current)
        current = next(iter(predecessors[current]))
    loop = walk[seen[current]:]
    loop.reverse()
    return loop + [loop[0]]
