"""Path patterns of a rule's inputs and outputs: a folder per node, wildcards and ``expand()``.

A folder is results/<process>/<partition path>/s<seed path>. Each data (seed) layer of the folder's
stack contributes one component of the partition (seed) path. Relative to the rule that reads or
writes it, a component is either *open* (it belongs to the rule's own {partition}/{seed} wildcard)
or *enumerated* (an expand() placeholder: a collapsed layer at an aggregation, the new layer of a
data split, or every layer in `rule all`). Generation stays O(processes): fan-outs become wildcards
and ``expand()`` calls whose ranges Snakemake unrolls, never lists of expanded nodes.
"""

from __future__ import annotations

from expops_smk.config.names import rule_name
from expops_smk.graph.expansion import ProcessLayout
from expops_smk.graph.nodes import Layer, Stack
from expops_smk.layout import MANIFEST, PARTITIONS_FILE, RESULTS_DIR


DYNAMIC_MARKS = ("partition_numbers(", "listed_numbers(")
BRANCH_MARK = "branch_numbers("


def _component_pattern(kind: str, layers: list[Layer], open_count: int, open_layers: Stack) -> tuple[str, dict[str, str]]:
    """Pattern for one path (partition or seed) whose first ``open_count`` layers are the rule's wildcard."""
    wildcard = "partition" if kind == "data" else "seed"
    prefix = "p" if kind == "data" else ""
    pieces: list[str] = ["{" + wildcard + "}"] if open_count else []
    values: dict[str, str] = {}
    for depth, layer in enumerate(layers[open_count:], start=open_count + 1):
        name = f"{'d' if kind == 'data' else 's'}{depth}"
        pieces.append(f"{prefix}{{{name}}}")
        values[name] = _layer_values(layer, open_layers)
    return "-".join(pieces), values


def _layer_values(layer: Layer, open_layers: Stack) -> str:
    if layer.dynamic:
        return dynamic_values(layer, open_layers)
    if layer.kind == "data":
        return f"range(1, {len(layer.values) + 1})"
    return repr(list(layer.values))


def dynamic_values(layer: Layer, open_layers: Stack) -> str:
    """The partition numbers of a growing-data split, read once its checkpoint has run: until then
    ``.get()`` raises and Snakemake re-evaluates the input function after the split job.

    A split nested in other fan-outs is one checkpoint job per branch of them: ``.get()`` names
    the branch, the rule's own wildcards cut to the split's layers (they are open in every rule
    that enumerates its partitions, but `rule all`). `rule all` enumerates the branches too:
    ``branch_numbers`` tells ``branch_expand`` which of its values make the split's wildcards.
    A split below another data split is read from disk instead (``datum_inputs.split_list``).
    """
    checkpoint = f"checkpoints.{rule_name(layer.owner)}"
    counts = {kind: sum(1 for outer in layer.outer if outer.kind == kind) for kind in ("data", "seed")}
    if not all(outer in open_layers for outer in layer.outer):
        below = ", below_split=True" if layer.below_split else ""
        return f"{BRANCH_MARK}{checkpoint}, data={counts['data']}, seeds={counts['seed']}{below})"
    arguments = []
    for kind, wildcard in (("data", "partition"), ("seed", "seed")):
        if counts[kind]:
            own = sum(1 for other in open_layers if other.kind == kind)
            value = f"wildcards.{wildcard}" if own == counts[kind] else f"outer(wildcards.{wildcard}, {counts[kind]})"
            arguments.append(f"{wildcard}={value}")
    if layer.below_split:
        return f"listed_numbers({checkpoint}{''.join(', ' + argument for argument in arguments)})"
    return f"partition_numbers({checkpoint}.get({', '.join(arguments)}).output[0])"


def _folder_pattern(process: str, folder_stack: Stack, open_layers: Stack,
                    file: str = MANIFEST) -> tuple[str, dict[str, str], dict[str, int]]:
    """Pattern of a folder of ``process``; returns (pattern, expand values, wildcards to trim).

    ``open_layers`` are the rule's own layers. A folder layer that is open keeps the wildcard; one
    that is not is enumerated. When the folder has *fewer* layers of a kind than the rule (an outer
    node broadcast into a nested fan-out), the wildcard must be cut to its first components:
    returned as {wildcard: number of components to keep}.
    """
    parts = [RESULTS_DIR, process]
    values: dict[str, str] = {}
    trims: dict[str, int] = {}
    for kind in ("data", "seed"):
        folder_layers = [layer for layer in folder_stack if layer.kind == kind]
        if not folder_layers:
            continue
        rule_layers = [layer for layer in open_layers if layer.kind == kind]
        open_count = 0
        while open_count < len(folder_layers) and folder_layers[open_count] in rule_layers:
            open_count += 1
        if open_count and open_count < len(rule_layers):
            trims["partition" if kind == "data" else "seed"] = open_count
        pattern, kind_values = _component_pattern(kind, folder_layers, open_count, open_layers)
        values.update(kind_values)
        parts.append(pattern if kind == "data" else f"s{pattern}")
    parts.append(file)
    return "/".join(parts), values, trims


def _render_pattern(pattern: str, values: dict[str, str], trims: dict[str, int]) -> str:
    """A plain string, an ``expand()`` keeping the rule's wildcards, or an input function (also
    whenever a growing-data layer is enumerated: its values exist only after its checkpoint ran).

    Inside ``expand()`` the rule's own wildcards are escaped (``{{partition}}``) so they stay open;
    an input function instead fills them from the job's wildcards, trimmed to the outer layers.
    A nested growing layer enumerated with the branches around it goes to ``branch_expand``, which
    reads each branch's partitions in turn.
    """
    if any(BRANCH_MARK in value for value in values.values()):
        args = ", ".join(f"{name}={value}" for name, value in values.items())
        return f'lambda wildcards: branch_expand("{pattern}", {args})'
    if trims or any(mark in value for value in values.values() for mark in DYNAMIC_MARKS):
        args = [f"{w}=outer(wildcards.{w}, {trims[w]})" if w in trims else f"{w}=wildcards.{w}"
                for w in ("partition", "seed") if "{" + w + "}" in pattern]
        args += [f"{name}={value}" for name, value in values.items()]
        return f'lambda wildcards: expand("{pattern}", {", ".join(args)})'
    if values:
        escaped = pattern.replace("{partition}", "{{partition}}").replace("{seed}", "{{seed}}")
        args = ", ".join(f"{name}={value}" for name, value in values.items())
        return f'expand("{escaped}", {args})'
    return f'"{pattern}"'


def input_pattern(parent: ProcessLayout, node_stack: Stack) -> str:
    return _render_pattern(*_folder_pattern(parent.name, parent.output_stack, node_stack))


def output_pattern(layout: ProcessLayout) -> str:
    if layout.child_layer is not None and layout.child_layer.dynamic:
        # The partitions' manifests are not known before the job: it declares their list instead.
        return f'"{_folder_pattern(layout.name, layout.stack, layout.stack, PARTITIONS_FILE)[0]}"'
    pattern, values, trims = _folder_pattern(layout.name, layout.output_stack, layout.stack)
    assert not trims, "a process's outputs always keep all of its own layers open"
    return _render_pattern(pattern, values, trims)


def all_locations(layout: ProcessLayout) -> str:
    pattern, values, _ = _folder_pattern(layout.name, layout.output_stack, ())
    return _render_pattern(pattern, values, {})


def first_partition_pattern(split: ProcessLayout, node_stack: Stack) -> str | None:
    """The manifest of a data split's first partition, in the node's outer branches (one file).

    Snakemake finds the producer of a file by matching it against the rule's outputs in order,
    so the first of a split's 1,000 outputs is found at once, where the node's own partition would
    cost 500 matches on average per job. Layers the node does not share are at their first value.
    """
    own = split.child_layer
    if own is not None and own.dynamic:  # a growing split declares only its list of partitions
        return _first_branch(split, *_folder_pattern(split.name, split.stack, node_stack, PARTITIONS_FILE))
    pattern, values, trims = _folder_pattern(split.name, split.output_stack, tuple(layer for layer in node_stack if layer != own))
    outer = [layer for layer in split.output_stack if layer.kind == "data" and layer != own]
    node_data = [layer for layer in node_stack if layer.kind == "data"]
    open_count = 0
    while open_count < len(outer) and outer[open_count] in node_data:
        open_count += 1
    trims.pop("partition", None)
    if open_count and open_count < len(node_data):
        trims["partition"] = open_count
    return _first_branch(split, pattern, values, trims, split.output_stack)


def _first_branch(split: ProcessLayout, pattern: str, values: dict[str, str], trims: dict[str, int],
                  folder_stack: Stack | None = None) -> str | None:
    """``pattern`` with the layers the node does not share at their first value; None when one of
    them is a growing layer, whose first partition is not known before its split ran."""
    stack = split.stack if folder_stack is None else folder_stack
    for name in values:  # d<depth> / s<depth>: the depth-th data / seed layer of the folder
        kind = "data" if name.startswith("d") else "seed"
        layer = [item for item in stack if item.kind == kind][int(name[1:]) - 1]
        if layer.dynamic:
            return None
        pattern = pattern.replace("{" + name + "}", "1" if kind == "data" else str(layer.values[0]))
    return _render_pattern(pattern, {}, trims)
