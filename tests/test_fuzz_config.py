"""Bad input (issue 8, scenario 4): hundreds of malformed configs through the real CLI.

Every generated config breaks exactly one rule of a valid base project (wrong types, missing
fields, cycles, bad sizes and seeds, unknown processes, non-UTF-8 bytes, huge files, YAML alias
bombs, Python tags, names and paths that would escape the project). For each one,
``expops-smk validate`` and ``expops-smk generate`` must exit with status 2, print exactly one line
on stderr naming the config file (and the process and field when the fault has them), never a
traceback, never execute a YAML tag, and generate must not write a single file into the project.
"""

from __future__ import annotations

import keyword
import math
import os
import re
import subprocess
import tempfile
import textwrap
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e import _env
from projects import write_project
from reliability_projects import EXPOPS_SMK

from expops_smk.cli import main
from expops_smk.config.yaml_loading import MAX_CONFIG_BYTES, MAX_YAML_NODES

CONFIG_SHOWN = "configs/project_config.yaml"
FUZZ_EXAMPLES = int(os.environ.get("EXPOPS_FUZZ_EXAMPLES", "260"))
MARKER = "PWNED"
"""A YAML tag that executed would create this file in the project folder."""

SCRIPT = textwrap.dedent('''
    def load():
        return {"data": list(range(12))}


    def train(data, epochs):
        return {"model": len(data) * epochs}


    def summary(model):
        return {"models": model}
''')

CHAIN = ["load", "split", "seeds", "train", "summary"]
FUNCTIONS = {"load", "train", "summary"}


def base_config() -> dict[str, Any]:
    """A valid project: load -> 3 partitions -> seeds 41, 42 -> train -> summary (aggregates both)."""
    return {
        "metadata": {"name": "fuzz", "notes": "base"},
        "scripts": {"model": "src/model.py"},
        "reproducibility": {"random_seed": 7},
        "data": {"path": "data/raw.csv"},
        "experiment": {
            "parameters": {"lr": 0.1},
            "pipeline": {
                "process_adjlist": "load split\nsplit seeds\nseeds train\ntrain summary\n",
                "processes": [
                    {"name": "load"},
                    {"name": "split", "data_parallelism": {"size": 3, "data_name": "data"}},
                    {"name": "seeds", "seed_parallelism": {"seeds": [41, 42]}},
                    {"name": "train", "parameters": {"epochs": 2}, "resources": {"mem_mb": 100, "slurm_partition": "cpu"},
                     "retries": 1},
                    {"name": "summary", "data_aggregation": True, "seed_aggregation": True},
                ],
            },
        },
    }


def dump(config: Any) -> bytes:
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True).encode("utf-8")


@dataclass(frozen=True)
class Case:
    """One malformed project and what its one-line error must name."""

    category: str
    content: bytes
    field: str | None = None  # the error names "field '<field>..." (a prefix of the field)
    process: str | None = None  # the error names "process '<process>'"
    contains: str = ""  # a piece of the message
    symlinks: dict[str, str] = dataclass_field(default_factory=dict)  # relative path -> link target
    remove: tuple[str, ...] = ()  # project files to delete

    def write(self, root: Path) -> Path:
        write_project(root, self.content, SCRIPT, files={"data/raw.csv": "id,x\n1,2\n"})
        for relative in self.remove:
            (root / relative).unlink()
        for relative, target in self.symlinks.items():
            link = root / relative
            link.unlink(missing_ok=True)
            link.symlink_to(target)
        return root


def at(config: dict[str, Any], *path: Any) -> Any:
    node = config
    for step in path:
        node = node[step]
    return node


def process(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in at(config, "experiment", "pipeline", "processes") if p["name"] == name)


def mutated(change: Callable[[dict[str, Any]], None]) -> bytes:
    config = base_config()
    change(config)
    return dump(config)


def setter(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        at(config, *path[:-1])[path[-1]] = value
    return change


def process_setter(name: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        process(config, name)[key] = value
    return change


def with_placeholder(where: str) -> tuple[bytes, bytes]:
    """The base config dumped with a placeholder scalar at ``where``; returns (text, placeholder).

    Replacing the placeholder in the text puts raw YAML (tags, anchors, long flow lists) where
    ``yaml.safe_dump`` could not, or only slowly, write it.
    """
    placeholder = "PLACEHOLDER_VALUE"
    config = base_config()
    if where == "metadata":
        config["metadata"]["notes"] = placeholder
    elif where == "parameters":
        config["experiment"]["parameters"]["blob"] = placeholder
    elif where == "process":
        process(config, "train")["parameters"]["blob"] = placeholder
    elif where == "seed":
        config["reproducibility"]["random_seed"] = placeholder
    elif where == "seeds":
        process(config, "seeds")["seed_parallelism"]["seeds"] = placeholder
    elif where == "size":
        process(config, "split")["data_parallelism"]["size"] = placeholder
    else:
        raise AssertionError(where)
    return dump(config), placeholder.encode()


def replaced(where: str, raw_yaml: str) -> bytes:
    text, placeholder = with_placeholder(where)
    return text.replace(placeholder, raw_yaml.encode())


# -- value strategies ------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
short_text = st.text(max_size=6)
non_empty_text = st.text(min_size=1, max_size=6)
small_lists = st.lists(st.integers(-3, 3), max_size=3)
non_mappings = st.one_of(st.integers(), non_empty_text, st.lists(st.integers(), min_size=0, max_size=3), finite,
                         st.booleans())
non_ints = st.one_of(short_text, finite, st.booleans(), small_lists, st.dictionaries(short_text, st.integers(), max_size=2),
                     st.none())
non_bools = st.one_of(st.integers(), short_text, finite, st.none(), small_lists)
non_lists = st.one_of(st.integers().filter(bool), non_empty_text, st.just(True), finite.filter(bool),
                      st.dictionaries(non_empty_text, st.integers(), min_size=1, max_size=2))
bad_counts = st.one_of(st.integers(max_value=-1), short_text, finite, st.booleans(), st.none(), small_lists)
bad_strings = st.one_of(finite, st.lists(st.integers(), max_size=2), st.dictionaries(short_text, st.integers(), max_size=2),
                        st.booleans(), st.none())
bad_paths = st.one_of(st.integers(), st.just(""), st.just("   "), st.booleans(), finite, small_lists)
bad_code = st.one_of(st.integers(), st.just(""), st.just("  "), small_lists, st.booleans(), finite)
bad_depends = st.one_of(st.integers(), st.lists(st.integers(), min_size=1, max_size=2), st.booleans(), finite, st.none(),
                        st.dictionaries(non_empty_text, st.integers(), min_size=1, max_size=2))

ESCAPING = ["../x", "/abs", "a/b", "..", ".", "x/../../y", "/etc/passwd", "..\\x", "C:\\x", "~root", "-x", "x\0y",
            "../../../../tmp/evil"]
SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
SAFE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
OUTSIDE_PATHS = ["/etc/passwd", "../outside.py", "src/../../outside.py", "/abs/model.py", "~/../../outside.py",
                 "./../x.py"]
unsafe_names = st.one_of(st.sampled_from(ESCAPING), st.text(min_size=1, max_size=8).filter(lambda s: not SAFE_NAME.match(s)))
unsafe_keys = st.one_of(st.sampled_from(ESCAPING + [".hidden", "", "a..b"]),
                        st.text(max_size=8).filter(lambda s: not SAFE_KEY.match(s) or ".." in s))
fresh_names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: n not in set(CHAIN) | FUNCTIONS and not keyword.iskeyword(n) and n != "all")


# -- malformed configs, by category ----------------------------------------------------------------

WRONG_TYPES: list[tuple[str, Any, Callable[[Any], Callable[[dict[str, Any]], None]], str, str | None]] = [
    # (what, bad values, how to apply, field prefix, process)
    ("scripts", non_mappings, lambda v: setter("scripts", value=v), "scripts", None),
    ("scripts.model", bad_paths, lambda v: setter("scripts", "model", value=v), "scripts.model", None),
    ("reproducibility", non_mappings, lambda v: setter("reproducibility", value=v), "reproducibility", None),
    ("random_seed", non_ints, lambda v: setter("reproducibility", "random_seed", value=v),
     "reproducibility.random_seed", None),
    ("data", non_mappings, lambda v: setter("data", value=v), "data", None),
    ("data.path", bad_paths, lambda v: setter("data", "path", value=v), "data.path", None),
    ("metadata", non_mappings, lambda v: setter("metadata", value=v), "metadata", None),
    ("model", non_mappings, lambda v: setter("model", value=v), "model", None),
    ("experiment", non_mappings, lambda v: setter("experiment", value=v), "experiment", None),
    ("experiment.parameters", non_mappings, lambda v: setter("experiment", "parameters", value=v),
     "experiment.parameters", None),
    ("pipeline", non_mappings, lambda v: setter("experiment", "pipeline", value=v), "experiment.pipeline", None),
    ("processes", non_lists, lambda v: setter("experiment", "pipeline", "processes", value=v), "pipeline.processes", None),
    ("process_adjlist", st.one_of(st.integers(), finite, st.booleans(),
                                  st.lists(st.integers(), min_size=1, max_size=2),
                                  st.dictionaries(non_empty_text, st.integers(), min_size=1, max_size=2)),
     lambda v: setter("experiment", "pipeline", "process_adjlist", value=v), "process_adjlist", None),
    ("process item", st.one_of(st.integers(), non_empty_text, small_lists, st.booleans()),
     lambda v: setter("experiment", "pipeline", "processes", 3, value=v), "processes[3]", None),
    ("name", st.one_of(st.integers(), st.just(""), small_lists, st.booleans(), finite, st.none()),
     lambda v: setter("experiment", "pipeline", "processes", 1, "name", value=v), "processes[1]", None),
    ("parameters", non_mappings, lambda v: process_setter("train", "parameters", v), "parameters", "train"),
    ("data_parallelism", non_mappings, lambda v: process_setter("split", "data_parallelism", v), "data_parallelism", "split"),
    ("seed_parallelism", non_mappings, lambda v: process_setter("seeds", "seed_parallelism", v), "seed_parallelism", "seeds"),
    ("data_aggregation", non_bools, lambda v: process_setter("summary", "data_aggregation", v), "data_aggregation", "summary"),
    ("seed_aggregation", non_bools, lambda v: process_setter("summary", "seed_aggregation", v), "seed_aggregation", "summary"),
    ("resources", non_mappings, lambda v: process_setter("train", "resources", v), "resources", "train"),
    ("resources.mem_mb", bad_counts, lambda v: process_setter("train", "resources", {"mem_mb": v}), "resources.mem_mb", "train"),
    ("resources.slurm_partition", bad_strings, lambda v: process_setter("train", "resources", {"slurm_partition": v}),
     "resources.slurm_partition", "train"),
    ("compute", non_mappings, lambda v: setter("compute", value=v), "compute", None),
    ("compute.resources", non_mappings, lambda v: setter("compute", value={"resources": v}), "compute.resources", None),
    ("retries", bad_counts, lambda v: process_setter("train", "retries", v), "retries", "train"),
    ("code", bad_code, lambda v: process_setter("train", "code", v), "code", "train"),
    ("depends_on", bad_depends, lambda v: process_setter("train", "depends_on", v), "depends_on", "train"),
    ("data_name type", st.one_of(st.integers(), finite, st.booleans(), small_lists),
     lambda v: setter("experiment", "pipeline", "processes", 1, "data_parallelism", "data_name", value=v),
     "data_parallelism.data_name", "split"),
]


@st.composite
def wrong_types(draw: st.DrawFn) -> Case:
    what, values, apply, field_name, owner = draw(st.sampled_from(WRONG_TYPES))
    value = draw(values)
    return Case("wrong type", mutated(apply(value)), field_name, owner, contains="")


def _drop_name(config: dict[str, Any]) -> None:
    del at(config, "experiment", "pipeline", "processes", 2)["name"]


def _drop_pipeline(config: dict[str, Any]) -> None:
    del config["experiment"]["pipeline"]


def _drop_scripts(config: dict[str, Any]) -> None:
    del config["scripts"]


def _drop_size(config: dict[str, Any]) -> None:
    del process(config, "split")["data_parallelism"]["size"]


MISSING = [
    Case("missing", mutated(_drop_name), "processes[2].name", None, "is missing"),
    Case("missing", mutated(_drop_pipeline), "pipeline", None, "no pipeline found"),
    Case("missing", mutated(_drop_scripts), "code", "load", "no script to look in"),
    Case("missing", mutated(_drop_size), "data_parallelism.size", "split", "is missing"),
    Case("missing", dump(base_config()), "code", "load", "does not exist", remove=("src/model.py",)),
    Case("missing", dump(base_config()), "data.path", None, "does not exist", remove=("data/raw.csv",)),
]


@st.composite
def cycles(draw: st.DrawFn) -> Case:
    i = draw(st.integers(0, len(CHAIN) - 1))
    j = draw(st.integers(i, len(CHAIN) - 1))
    if draw(st.booleans()):
        def change(config: dict[str, Any]) -> None:
            config["experiment"]["pipeline"]["process_adjlist"] += f"{CHAIN[j]} {CHAIN[i]}\n"
        return Case("cycle", mutated(change), "process_adjlist", CHAIN[i], "cycle: ")
    return Case("cycle", mutated(process_setter(CHAIN[i], "depends_on", [CHAIN[j]])), "depends_on", CHAIN[i], "cycle: ")


@st.composite
def bad_sizes(draw: st.DrawFn) -> Case:
    size = draw(st.one_of(
        st.integers(max_value=0), st.integers(min_value=100_001), finite, short_text, st.booleans(), st.none(),
        st.just([]), st.lists(st.integers(max_value=-1), min_size=1, max_size=3),
        st.lists(finite, min_size=1, max_size=3), st.lists(non_empty_text, min_size=1, max_size=3),
        st.dictionaries(short_text, st.integers(), max_size=2)))
    content = mutated(setter("experiment", "pipeline", "processes", 1, "data_parallelism", "size", value=size))
    return Case("bad size", content, "data_parallelism.size", "split")


def _has_duplicates(values: list[int]) -> bool:
    return len(set(values)) < len(values)


@st.composite
def bad_seeds(draw: st.DrawFn) -> Case:
    seeds = draw(st.one_of(
        st.just([]), short_text, finite, st.booleans(), st.none(), st.dictionaries(short_text, st.integers(), max_size=2),
        st.lists(st.integers(-3, 3), min_size=2, max_size=5).filter(_has_duplicates),
        st.lists(finite, min_size=1, max_size=3), st.lists(non_empty_text, min_size=1, max_size=3),
        st.lists(st.booleans(), min_size=1, max_size=2),
        st.integers(min_value=2**64), st.integers(max_value=-(2**63) - 1),
        st.lists(st.integers(min_value=2**64, max_value=2**80), min_size=1, max_size=2)))
    content = mutated(setter("experiment", "pipeline", "processes", 2, "seed_parallelism", "seeds", value=seeds))
    return Case("bad seeds", content, "seed_parallelism.seeds", "seeds")


@st.composite
def unknown_processes(draw: st.DrawFn) -> Case:
    name = draw(fresh_names)
    how = draw(st.sampled_from(["adjlist", "depends_on", "code", "script key"]))
    if how == "adjlist":
        def change(config: dict[str, Any]) -> None:
            config["experiment"]["pipeline"]["process_adjlist"] += f"train {name}\n"
        return Case("unknown process", mutated(change), "process_adjlist line 5", name, f"unknown process '{name}'")
    owner = draw(st.sampled_from(CHAIN))
    if how == "depends_on":
        return Case("unknown process", mutated(process_setter(owner, "depends_on", [name])), "depends_on", owner,
                    f"unknown process '{name}'")
    if how == "code":
        return Case("unknown process", mutated(process_setter(owner, "code", name)), "code", owner, f"'{name}' not found")
    key = name if name != "model" else "other"
    return Case("unknown process", mutated(process_setter(owner, "code", f"{key}.load")), "code", owner,
                f"unknown script key '{key}'")


@st.composite
def non_utf8(draw: st.DrawFn) -> Case:
    text = dump(base_config())
    position = draw(st.integers(0, len(text)))
    bad = draw(st.sampled_from([b"\xff", b"\xfe", b"\xc3\x28", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
                                b"\xc0\xaf", b"\xe2\x82"]))
    return Case("non-UTF-8", text[:position] + bad + text[position:], None, None, "not valid UTF-8")


@st.composite
def huge_files(draw: st.DrawFn) -> Case:
    extra = draw(st.integers(1, 2_000_000))
    filler = draw(st.sampled_from([b"#", b"x: ", b"  "]))
    text = dump(base_config())
    padding = MAX_CONFIG_BYTES - len(text) + extra
    body = {b"#": b"\n#" + b"x" * padding, b"x: ": b"\nfiller: " + b"y" * padding, b"  ": b"\n" + b" " * padding}[filler]
    return Case("huge file", text + body + b"\n", None, None, "the limit is")


@st.composite
def anchor_bombs(draw: st.DrawFn) -> Case:
    """Billion laughs (and a self-referencing alias) at several places of the config.

    Every bomb costs the validator a walk of MAX_YAML_NODES values, so shapes come from a short list.
    """
    where = draw(st.sampled_from(["metadata", "parameters", "process", "seed"]))
    shape = draw(st.sampled_from(["loop", (4, 0), (10, 0), (12, 1)]))
    if shape == "loop":
        return Case("anchor bomb", replaced(where, "&loop [1, [2, *loop]]"), None, None, "self-referencing alias")
    width, extra = shape
    depth = math.ceil(math.log(MAX_YAML_NODES + 1) / math.log(width)) + extra
    layers = [f"&a0 [{', '.join(['lol'] * width)}]"]
    layers += [f"&a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, depth)]
    return Case("anchor bomb", replaced(where, f"[{', '.join(layers)}]"), None, None, "alias bomb")


PYTHON_TAGS = [
    f"!!python/object/apply:os.system ['touch {MARKER}']",
    f"!!python/object/apply:subprocess.call [['touch', '{MARKER}']]",
    f"!!python/object/new:pathlib.Path ['{MARKER}']",
    f"!!python/object/apply:builtins.open ['{MARKER}', 'w']",
    "!!python/name:os.system",
    "!!python/module:os",
    f"!!python/object:pathlib.PosixPath {{}}",
]


@st.composite
def python_tags(draw: st.DrawFn) -> Case:
    where = draw(st.sampled_from(["metadata", "parameters", "process", "seed"]))
    return Case("python tag", replaced(where, draw(st.sampled_from(PYTHON_TAGS))), None, None, "invalid YAML")


@st.composite
def escaping_names(draw: st.DrawFn) -> Case:
    how = draw(st.sampled_from(["process name", "adjlist token", "data_name", "scripts", "data.path", "script_path",
                                "symlink"]))
    if how == "process name":
        name = draw(unsafe_names)
        return Case("escape", mutated(setter("experiment", "pipeline", "processes", 3, "name", value=name)),
                    "processes[3].name", None, "not a safe process name")
    if how == "adjlist token":
        token = draw(st.sampled_from([t for t in ESCAPING if t != "x\0y"]))
        def change(config: dict[str, Any]) -> None:
            config["experiment"]["pipeline"]["process_adjlist"] += f"{token} train\n"
        return Case("escape", mutated(change), "process_adjlist line 5", None, "not a safe process name")
    if how == "data_name":
        key = draw(unsafe_keys)
        content = mutated(setter("experiment", "pipeline", "processes", 1, "data_parallelism", "data_name", value=key))
        return Case("escape", content, "data_parallelism.data_name", "split", "not a safe output key")
    if how == "symlink":
        target = draw(st.sampled_from(["/etc/hostname", "/etc", "../../outside.csv"]))
        return Case("escape", dump(base_config()), "data.path", None, "outside the project",
                    symlinks={"data/raw.csv": target})
    path = draw(st.sampled_from(OUTSIDE_PATHS))
    if how == "scripts":
        return Case("escape", mutated(setter("scripts", "model", value=path)), "scripts.model", None, "outside the project")
    if how == "data.path":
        return Case("escape", mutated(setter("data", "path", value=path)), "data.path", None, "outside the project")
    return Case("escape", mutated(process_setter("train", "script_path", path)), "script_path", "train",
                "outside the project")


INVALID_YAML = [
    b"\nexperiment: [1, 2\n", b"\n\tbad: tab\n", b"\nkey: value: other\n", b"\n- item after a mapping\n",
    b"\nnotes: 'unterminated\n", b"\nalias: *nowhere\n", b"\n{unclosed: 1\n", b"\n]\n", b"\n%YAML 9.9\n---\n",
]


@st.composite
def invalid_yaml(draw: st.DrawFn) -> Case:
    return Case("invalid YAML", dump(base_config()) + draw(st.sampled_from(INVALID_YAML)), None, None, "invalid YAML")


@st.composite
def not_mappings(draw: st.DrawFn) -> Case:
    text = draw(st.sampled_from([b"", b"[]\n", b"- a\n- b\n", b"42\n", b"null\n", b"'just text'\n", b"~\n", b"---\n"]))
    return Case("not a mapping", text, None, None, "top level must be a mapping")


FANOUT_MISUSE = [
    ("load", "data_aggregation", True, "data_aggregation", "no open data fan-out"),
    ("load", "seed_aggregation", True, "seed_aggregation", "no open seed fan-out"),
    ("split", "seed_aggregation", True, "seed_aggregation", "no open seed fan-out"),
    ("split", "data_aggregation", True, "data_parallelism", "cannot both split and aggregate"),
    ("seeds", "seed_aggregation", True, "seed_parallelism", "cannot both split and aggregate"),
    ("split", "seed_parallelism", {"seeds": [1, 2]}, "seed_parallelism", "both data and seeds"),
]


@st.composite
def fanout_misuse(draw: st.DrawFn) -> Case:
    owner, key, value, field_name, message = draw(st.sampled_from(FANOUT_MISUSE))
    return Case("fan-out misuse", mutated(process_setter(owner, key, value)), field_name, owner, message)


CATEGORIES = {
    "wrong type": wrong_types(), "missing": st.sampled_from(MISSING), "cycle": cycles(), "bad size": bad_sizes(),
    "bad seeds": bad_seeds(), "unknown process": unknown_processes(), "non-UTF-8": non_utf8(), "huge file": huge_files(),
    "anchor bomb": anchor_bombs(), "python tag": python_tags(), "escape": escaping_names(),
    "invalid YAML": invalid_yaml(), "not a mapping": not_mappings(), "fan-out misuse": fanout_misuse(),
}
malformed_configs = st.one_of(*CATEGORIES.values())


# -- checks ----------------------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Every path under ``root`` (dirs too) with its kind, size and mtime: any write shows up."""
    state = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            info = path.lstat()
            state[path.relative_to(root).as_posix()] = (path.is_dir(), info.st_size, info.st_mtime_ns)
    return state


def assert_one_line_error(case: Case, exit_code: int, stderr: str, stdout: str, command: str) -> None:
    context = f"{command} [{case.category}] {case.content[:300]!r}\nstderr: {stderr[-2000:]}"
    assert exit_code == 2, context
    assert "Traceback" not in stderr + stdout, context
    lines = stderr.splitlines()
    assert len(lines) == 1, context
    line = lines[0]
    assert line.startswith("error: ") and CONFIG_SHOWN in line, context
    if case.field is not None:
        assert f"field '{case.field}" in line, context
    if case.process is not None:
        assert f"process '{case.process}'" in line, context
    assert case.contains in line, context


def check_case(case: Case, runner: CliRunner) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = case.write(Path(tmp) / "project")
        before = snapshot(Path(tmp))
        for command in ("validate", "generate"):
            result = runner.invoke(main, [command, str(root)])
            assert isinstance(result.exception, SystemExit), (command, case, result.exception)
            assert_one_line_error(case, result.exit_code, result.stderr, result.stdout, command)
        assert snapshot(Path(tmp)) == before, f"generate wrote into the project: {case}"
        assert not (root / MARKER).exists() and not Path(MARKER).exists()


def test_the_base_config_is_valid(tmp_path: Path) -> None:
    """Guard: every fuzz case breaks exactly one rule of this project, so it must pass on its own."""
    root = Case("valid", dump(base_config())).write(tmp_path / "project")
    result = CliRunner().invoke(main, ["validate", str(root)])
    assert result.exit_code == 0 and result.stderr == "", result.output
    assert "5 processes, 12 nodes" in result.stdout


def test_malformed_configs_fail_with_one_line_and_write_nothing() -> None:
    runner = CliRunner()
    seen: list[str] = []

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(case=malformed_configs)
    def check(case: Case) -> None:
        seen.append(case.category)
        check_case(case, runner)

    check()
    assert len(seen) >= 200
    assert set(seen) == set(CATEGORIES), f"categories never generated: {set(CATEGORIES) - set(seen)}"


@pytest.mark.parametrize("case", MISSING, ids=lambda case: f"{case.field}: {case.contains}")
def test_missing_fields_and_files(case: Case) -> None:
    """The fixed cases run every time, whatever hypothesis happens to draw."""
    check_case(case, CliRunner())


SUBPROCESS_CASES = [
    Case("python tag", dump(base_config()).replace(b"notes: base", f"notes: {PYTHON_TAGS[0]}".encode()),
         None, None, "invalid YAML"),
    Case("anchor bomb", b"a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
         + b"".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n".encode() for i in range(1, 9)),
         None, None, "alias bomb"),
    Case("non-UTF-8", b"metadata: {name: \xff\xfe}\n" + dump(base_config()), None, None, "not valid UTF-8"),
    Case("huge file", dump(base_config()) + b"#" + b"x" * MAX_CONFIG_BYTES + b"\n", None, None, "the limit is"),
    Case("cycle", mutated(process_setter("load", "depends_on", ["train"])), "depends_on", "load", "cycle: load -> "),
    Case("escape", mutated(setter("experiment", "pipeline", "processes", 3, "name", value="../x")),
         "processes[3].name", None, "'../x' is not a safe process name"),
    Case("escape", mutated(setter("experiment", "pipeline", "processes", 1, "data_parallelism", "data_name", value="/abs")),
         "data_parallelism.data_name", "split", "'/abs' is not a safe output key"),
]


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=lambda case: case.category)
def test_real_cli_process_exits_2_with_one_line(tmp_path: Path, case: Case) -> None:
    """As a user sees it: a separate process, its exit status and its raw stderr."""
    root = case.write(tmp_path / "project")
    before = snapshot(tmp_path)
    for command in ("validate", "generate"):
        done = subprocess.run([EXPOPS_SMK, command, "."], cwd=root, env=_env(), capture_output=True, text=True,
                              timeout=60)
        assert_one_line_error(case, done.returncode, done.stderr, done.stdout, command)
    assert snapshot(tmp_path) == before
    assert not (root / MARKER).exists()
