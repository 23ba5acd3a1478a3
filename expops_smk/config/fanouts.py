"""``data_parallelism`` and ``seed_parallelism``: which fan-out a process opens, and whether it aggregates.

Both spellings of aggregation that ExpOps configs use are accepted here (``data_aggregation: true``
and ``data_parallelism: {aggregation: true}``). Whether an aggregation has a fan-out to close is a
property of the whole graph, checked when the graph is expanded.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from expops_smk.config.model import DEFAULT_DATA_NAME, DataSplit
from expops_smk.config.names import is_safe_key
from expops_smk.config.parser import ParseContext, is_int
from expops_smk.store.sources import source_files

MAX_FANOUT = 100_000
# Seeds become path segments (results/<process>/s<seed>/): bounding them to 64-bit integers keeps
# every segment short, and they are what numpy, torch and friends accept.
SEED_RANGE = (-(2**63), 2**64 - 1)
GROWING_MODES = ("rows_per_partition", "by", "files")
"""The data_parallelism modes beside ``size`` whose partitions stay put as data grows (issue #19)."""
_PARALLELISM_KEYS = {"data_parallelism": {"size", "data_name", "aggregation", *GROWING_MODES, "buckets"},
                     "seed_parallelism": {"seeds", "aggregation"}}


def parse_data_parallelism(ctx: ParseContext, name: str, item: dict[str, Any]) -> tuple[DataSplit | None, bool]:
    section = ctx.mapping(item.get("data_parallelism"), "data_parallelism", name)
    ctx.warn_unknown(section, _PARALLELISM_KEYS["data_parallelism"], f"process '{name}': data_parallelism")
    aggregation = ctx.aggregation_flag(name, item, "data_aggregation", section)
    modes = [key for key in ("size", *GROWING_MODES) if key in section]
    if len(modes) > 1:
        raise ctx.error(f"data_parallelism.{modes[1]}", f"cannot be combined with '{modes[0]}'; choose one way to split", name)
    if "buckets" in section and modes != ["by"]:
        raise ctx.error("data_parallelism.buckets", "needs 'by' (the column whose values are hashed into buckets)", name)
    if not modes:
        if "data_name" in section:
            raise ctx.error("data_parallelism.size", "is missing", name)
        return None, aggregation
    data_name = section.get("data_name", DEFAULT_DATA_NAME)
    if not is_safe_key(data_name):
        raise ctx.error("data_parallelism.data_name", f"{data_name!r} is not a safe output key", name)
    if modes[0] != "size":
        return _growing_split(ctx, name, section, modes[0], data_name), aggregation
    size = section["size"]
    if is_int(size):
        if not 1 <= size <= MAX_FANOUT:
            raise ctx.error("data_parallelism.size", f"must be a positive integer (at most {MAX_FANOUT}), got {size}", name)
        return DataSplit(int(size), None, data_name), aggregation
    if isinstance(size, list) and size and len(size) <= MAX_FANOUT and all(is_int(n) and n >= 0 for n in size):
        empty = [str(index) for index, rows in enumerate(size, start=1) if rows == 0]
        if empty:
            # ExpOps accepts a 0 (its sizes are non-negative), so this stays valid, but never silent.
            ctx.warnings.append(f"{ctx.file}: process '{name}': field 'data_parallelism.size': partition(s) "
                                f"p{', p'.join(empty)} get 0 rows; their nodes run on empty data")
        return DataSplit(len(size), tuple(int(n) for n in size), data_name), aggregation
    raise ctx.error("data_parallelism.size",
                    f"must be a positive integer or a non-empty list of non-negative integers, got {size!r}", name)


def _growing_split(ctx: ParseContext, name: str, section: dict[str, Any], mode: str, data_name: str) -> DataSplit:
    """``rows_per_partition: N``, ``by: column`` (``buckets: K``) or ``files: glob``."""
    value = section[mode]
    field = f"data_parallelism.{mode}"
    if mode == "rows_per_partition":
        if not is_int(value) or value < 1:
            raise ctx.error(field, f"must be a positive integer, got {value!r}", name)
        return DataSplit(0, None, data_name, rows_per_partition=int(value))
    if not isinstance(value, str) or not value.strip():
        what = "a column name" if mode == "by" else "a glob or folder inside the project"
        raise ctx.error(field, f"must be {what}, got {value!r}", name)
    if mode == "files":
        if value.startswith("/") or ".." in value.replace("\\", "/").split("/"):
            raise ctx.error(field, f"{value!r} must be a relative path inside the project", name)
        try:
            source_files(ctx.root, value)
        except ValueError as exc:
            raise ctx.error(field, str(exc), name) from None
        return DataSplit(0, None, data_name, files=value)
    buckets = section.get("buckets")
    if buckets is not None and (not is_int(buckets) or not 1 <= buckets <= MAX_FANOUT):
        raise ctx.error("data_parallelism.buckets", f"must be a positive integer (at most {MAX_FANOUT}), got {buckets!r}", name)
    if buckets is None:
        return DataSplit(0, None, data_name, by=value)
    return DataSplit(int(buckets), None, data_name, by=value, buckets=int(buckets))


def parse_seed_parallelism(ctx: ParseContext, name: str, item: dict[str, Any]) -> tuple[tuple[int, ...] | None, bool]:
    section = ctx.mapping(item.get("seed_parallelism"), "seed_parallelism", name)
    ctx.warn_unknown(section, _PARALLELISM_KEYS["seed_parallelism"], f"process '{name}': seed_parallelism")
    aggregation = ctx.aggregation_flag(name, item, "seed_aggregation", section)
    if "seeds" not in section:
        return None, aggregation
    seeds = section["seeds"]
    if is_int(seeds):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds or len(seeds) > MAX_FANOUT:
        raise ctx.error("seed_parallelism.seeds", f"must be an integer or a non-empty list of integers, got {seeds!r}", name)
    for seed in seeds:
        if not is_int(seed):
            raise ctx.error("seed_parallelism.seeds", f"seed {seed!r} is not an integer", name)
        if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
            raise ctx.error("seed_parallelism.seeds", f"seed {seed} does not fit in 64 bits", name)
    duplicates = sorted(seed for seed, count in Counter(seeds).items() if count > 1)
    if duplicates:
        raise ctx.error("seed_parallelism.seeds", f"duplicate seed(s) {duplicates}", name)
    return tuple(int(s) for s in seeds), aggregation
