"""Chart entries: processes with ``probe_paths`` that draw other nodes' metrics (as in ExpOps).

A chart has code and XPath selectors but no parameters, fan-out or outputs. Here its function is
found and its selectors are read as written; which nodes they pick is a question about the
expanded graph, answered in ``expops_smk.graph.probes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from expops_smk.config.model import ChartSpec, ProcessSpec
from expops_smk.config.parser import ParseContext
from expops_smk.config.processes import resolve_function
from expops_smk.layout import CHARTS_DIR

CHART_KEYS = {"name", "description", "code", "code_function", "script", "script_path", "probe_paths",
              "chart_type", "type", "environment"}
_CHART_TYPES = ("static", "dynamic")


def is_chart(item: Mapping[str, Any]) -> bool:
    """ExpOps' test: probe_paths, a chart_type or ``type: chart`` make a process entry a chart."""
    return "probe_paths" in item or "chart_type" in item or item.get("type") == "chart"


def parse_charts(ctx: ParseContext, items: Mapping[str, dict[str, Any]], processes: Mapping[str, ProcessSpec],
                 scripts: Mapping[str, Path]) -> dict[str, ChartSpec]:
    """Validate chart entries; dynamic (JavaScript) charts are skipped with a warning."""
    charts: dict[str, ChartSpec] = {}
    for name, item in items.items():
        ctx.warn_unknown(item, CHART_KEYS, f"chart '{name}'")
        chart_type = item.get("chart_type", "static")
        if chart_type not in _CHART_TYPES:
            raise ctx.error("chart_type", f"must be 'static' or 'dynamic', got {chart_type!r}", name)
        selectors = parse_probe_paths(ctx, name, item)
        if chart_type == "dynamic":
            ctx.warnings.append(f"{ctx.file}: chart '{name}': dynamic (JavaScript) charts are not "
                                "supported; the chart is skipped")
            continue
        if "charts" in processes:
            raise ctx.error("name", f"a process cannot be named 'charts' in a project with charts: "
                            f"{CHARTS_DIR}/ holds the charts' PNGs", "charts")
        script, function = resolve_function(ctx, name, item, dict(scripts), is_split=False, is_aggregation=False)
        assert script is not None and function is not None
        charts[name] = ChartSpec(name=name, script=script, function=function, selectors=selectors,
                                 description=ctx.one_line(item.get("description", ""), "description", name))
    return charts


def parse_probe_paths(ctx: ParseContext, name: str, item: dict[str, Any]) -> dict[str, str]:
    """``probe_paths``: key -> selector, as a mapping or a list of one-key mappings (both appear
    in ExpOps configs); a value may also be ``{path: selector, ...}``."""
    raw = item.get("probe_paths")
    if raw is None:
        raise ctx.error("probe_paths", "is missing: a chart needs at least one 'key: XPath selector'", name)
    if isinstance(raw, list):
        entries: list[tuple[Any, Any]] = []
        for index, entry in enumerate(raw):
            entries.extend(ctx.mapping(entry, f"probe_paths[{index}]", name).items())
    else:
        entries = list(ctx.mapping(raw, "probe_paths", name).items())
    if not entries:
        raise ctx.error("probe_paths", "is empty: a chart needs at least one 'key: XPath selector'", name)
    selectors: dict[str, str] = {}
    for key, value in entries:
        field_name = f"probe_paths.{key}"
        if not key:
            raise ctx.error("probe_paths", "keys must be non-empty strings", name)
        if key in selectors:
            raise ctx.error(field_name, "duplicate key", name)
        if isinstance(value, dict):
            value = value.get("path")
        if not isinstance(value, str) or not value.strip():
            raise ctx.error(field_name, f"must be an XPath selector string (or a mapping with 'path'), "
                            f"got {value!r}", name)
        selectors[key] = value.strip()
    return selectors
