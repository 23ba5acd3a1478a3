"""Read a project's YAML files safely: plain data only, bounded in size and depth, one-line errors.

A config is user input that anything may have written (a generator, a merge gone wrong, a hostile
collaborator), so it is loaded with the safe loader (no Python tags), capped in bytes and in the
number of values it expands to (alias bombs), and every fault becomes a ``ConfigError`` naming the
file and line instead of a YAML traceback. A key given twice in one mapping is an error too:
YAML loaders silently keep the last one, so a second ``parameters:`` would replace the first. Where
ExpOps' own files have one (its premier-league template's ``compute_config.yaml`` gives ``queue``
twice), the caller may ask for a warning instead, and the last value wins as it does in ExpOps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from expops_smk.errors import ConfigError, shown_path

MAX_CONFIG_BYTES = 5 * 1024 * 1024
MAX_YAML_NODES = 200_000


def safe_loader() -> type:
    """The safe loader (plain data only, no Python tags), in its libyaml build when present (~5x faster)."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_STRICT_LOADERS: dict[type, type] = {}


def strict_loader(base: type) -> type:
    """``base`` with mappings that reject a key given twice (naming its line and the first one).

    Only construction changes, so the libyaml parser of ``CSafeLoader`` stays in use. Keys that
    arrive through a ``<<`` merge may be overridden, as YAML intends; explicit keys may not. A
    loader whose ``duplicates`` attribute is a list records each one there instead of raising.
    """
    if base not in _STRICT_LOADERS:
        import yaml

        def construct_mapping(self: Any, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                first: dict[Any, Any] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        earlier = first.setdefault(key, key_node)
                    except TypeError:
                        continue  # an unhashable key: the base constructor reports it
                    if earlier is not key_node:
                        problem = f"duplicate key {key!r} (first given at line {earlier.start_mark.line + 1})"
                        if self.duplicates is None:
                            raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
                        self.duplicates.append(f"line {key_node.start_mark.line + 1}: {problem}")
            return base.construct_mapping(self, node, deep)

        _STRICT_LOADERS[base] = type(f"Strict{base.__name__}", (base,),
                                     {"construct_mapping": construct_mapping, "duplicates": None})
    return _STRICT_LOADERS[base]


def read_yaml(path: Path, root: Path, warnings: list[str] | None = None) -> dict[str, Any]:
    """The mapping in ``path``; with ``warnings``, a key given twice is a warning (the last value
    wins) rather than an error."""
    shown = shown_path(path, root)
    if not path.is_file():
        raise ConfigError(shown, None, "project config not found (expected configs/project_config.yaml)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(shown, None, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(shown, None, f"file is {len(data)} bytes; the limit is {MAX_CONFIG_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(shown, None, f"file is not valid UTF-8 (byte {exc.start})") from None
    import yaml  # here, not at module top: jobs import this module (through the plan) but never read YAML

    try:
        loader = strict_loader(safe_loader())(text)
        duplicates: list[str] | None = [] if warnings is not None else None
        loader.duplicates = duplicates
        try:
            loaded = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(shown, None, f"invalid YAML{where}: {problem}") from None
    except RecursionError:
        # PyYAML composes nested collections recursively: '[[[[...' would escape as a traceback.
        raise ConfigError(shown, None, "invalid YAML: collections nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - safe loading has no side effects to protect
        # Scalar constructors raise plain Python errors (`2020-13-45`: ValueError, `!!timestamp x`:
        # AttributeError, a 5,000-digit int: ValueError); each is a fault of the file, not a crash.
        raise ConfigError(shown, None, f"invalid YAML: {type(exc).__name__}: {exc}") from None
    if warnings is not None:
        warnings.extend(f"{shown}: {duplicate}; the last value is used, as in ExpOps" for duplicate in duplicates or [])
    _check_bounded(loaded, shown)
    if not isinstance(loaded, dict):
        raise ConfigError(shown, None, "top level must be a mapping")
    return loaded


def _check_bounded(value: Any, shown: str) -> None:
    """Reject alias bombs and self-referencing aliases before anything walks the structure.

    ``yaml.safe_load`` shares objects for aliases, so a "billion laughs" file loads in
    microseconds but explodes as soon as it is traversed; count nodes with a budget instead.
    """
    budget = MAX_YAML_NODES
    stack: list[tuple[Any, frozenset[int]]] = [(value, frozenset())]
    while stack:
        item, ancestors = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError(shown, None, f"config expands to more than {MAX_YAML_NODES} values (alias bomb?)")
        if isinstance(item, (dict, list)):
            if id(item) in ancestors:
                raise ConfigError(shown, None, "config contains a self-referencing alias")
            inner = ancestors | {id(item)}
            children = list(item.keys()) + list(item.values()) if isinstance(item, dict) else item
            stack.extend((child, inner) for child in children)
