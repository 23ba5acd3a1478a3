"""The state and helpers shared by every part of config parsing.

Parsing is split by section (``project``: top level, ``pipeline``: the DAG, ``processes``: one
process, ``fanouts``, ``execution``, ``compute``, ``charts``); each part receives the
``ParseContext`` of the file being read, which knows how to name that file in an error, collects
warnings and checks the value shapes that every section shares.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from expops_smk.errors import ConfigError, shown_path

RESOURCE_KEYS = {"cpus", "threads", "mem_mb", "runtime", "gpus", "gpu", "slurm_partition",
                 "slurm_account", "slurm_extra", "constraint", "qos", "disk_mb", "tmpdir"}
# C0/C1 control characters (NUL, ESC, DEL, ...): Snakemake cannot parse a Snakefile holding a NUL,
# and none of them is ever meant in a name, path, description or sbatch option.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_INTEGER_RESOURCES = {"cpus", "threads", "mem_mb", "runtime", "gpus", "gpu", "disk_mb"}


class ParseContext:
    """One config file being parsed: raises ``ConfigError`` on the first fault, collects warnings."""

    def __init__(self, root: Path, config_file: Path, raw: dict[str, Any]) -> None:
        self.root = root
        self.raw = raw
        self.file = shown_path(config_file, root)
        self.config_file = config_file
        self.warnings: list[str] = []
        # Processes named in process_adjlist -> the line that first names them: a process may be
        # listed there without an entry under processes.
        self.adjlist_nodes: dict[str, int] = {}
        self.declared: set[str] = set()
        # Every process entry by name (adjlist-only names as {}), to name all users of a broken script.
        self.process_items: dict[str, dict[str, Any]] = {}

    def error(self, field_name: str | None, message: str, process: str | None = None) -> ConfigError:
        return ConfigError(self.file, field_name, message, process)

    def warn_unknown(self, mapping: Mapping[str, Any], known: set[str], where: str) -> None:
        for key in mapping:
            if key not in known:
                self.warnings.append(f"{self.file}: {where}: unknown key '{key}' ignored")

    def mapping(self, value: Any, field_name: str, process: str | None = None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(field_name, f"must be a mapping, got {type(value).__name__}", process)
        for key in value:
            if not isinstance(key, str):
                raise self.error(field_name, f"keys must be strings, got {key!r}", process)
        return value

    def check_plain_data(self, value: Any, field_name: str, process: str | None) -> None:
        """Parameters must survive JSON unchanged: jobs read them back from the JSON plan and rule
        commands name them as JSON with sorted keys. A YAML date would reach functions as a date at
        validation and as a string in jobs; mixed int/str keys cannot be sorted at all."""
        stack: list[tuple[Any, str]] = [(value, field_name)]
        while stack:
            item, where = stack.pop()
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise self.error(where, f"key {key!r} must be a string (quote it)", process)
                    stack.append((child, f"{where}.{key}"))
            elif isinstance(item, list):
                stack.extend((child, f"{where}[{index}]") for index, child in enumerate(item))
            elif item is not None and not isinstance(item, (str, int, float)):
                raise self.error(where, f"{type(item).__name__} value '{item}' is not plain data "
                                 "(strings, numbers, booleans, null, lists, mappings); quote it", process)

    def check_text(self, text: str, field_name: str, process: str | None) -> str:
        """``text`` unchanged, unless it holds a control character: those reach generated files."""
        found = CONTROL_CHARACTERS.search(text)
        if found:
            raise self.error(field_name, f"contains the control character {found.group()!r} at position "
                             f"{found.start()}; remove it", process)
        return text

    def one_line(self, value: Any, field_name: str, process: str | None) -> str:
        """Free text written into generated files (docstrings, comments): runs of whitespace
        (tabs, newlines) become one space; any other control character is an error."""
        return self.check_text(" ".join(str(value).split()), field_name, process)

    def project_file(self, rel: Any, field_name: str, process: str | None) -> Path:
        """Resolve a path named in the config; it must stay inside the project folder."""
        if not isinstance(rel, str) or not rel.strip():
            raise self.error(field_name, "must be a relative file path", process)
        self.check_text(rel, field_name, process)
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root):
            raise self.error(field_name, f"'{rel}' points outside the project folder", process)
        return path

    def parse_resources(self, value: Any, field_name: str, name: str | None) -> dict[str, Any]:
        resources = self.mapping(value, field_name, name)
        self.warn_unknown(resources, RESOURCE_KEYS, f"process '{name}': {field_name}" if name else field_name)
        for key, amount in resources.items():
            if key in _INTEGER_RESOURCES:
                if not is_int(amount) or amount < 0:
                    raise self.error(f"{field_name}.{key}", f"must be a non-negative integer, got {amount!r}", name)
            elif not isinstance(amount, (str, int)) or isinstance(amount, bool):
                raise self.error(f"{field_name}.{key}", f"must be a string, got {amount!r}", name)
            elif isinstance(amount, str):
                self.check_text(amount, f"{field_name}.{key}", name)
        return dict(resources)

    def aggregation_flag(self, name: str, item: dict[str, Any], flag: str, section: dict[str, Any]) -> bool:
        """Aggregation is spelled ``<kind>_aggregation: true`` or ``<kind>_parallelism: {aggregation: true}``."""
        values = []
        if flag in item:
            values.append((flag, item[flag]))
        if "aggregation" in section:
            values.append((f"{flag.split('_')[0]}_parallelism.aggregation", section["aggregation"]))
        result = False
        for field_name, value in values:
            if not isinstance(value, bool):
                raise self.error(field_name, f"must be true or false, got {value!r}", name)
            result = result or value
        return result


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
