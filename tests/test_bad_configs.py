"""Configs that used to validate and then hang or break later (issue 14, items 8-12).

Each bad config must fail ``expops-smk validate`` with exit status 2 and exactly one ``error:``
line naming the file, the process and the field; hostile-but-valid strings must survive into
every generated file, proven by a real ``snakemake -n`` and a real run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from e2e import EXPOPS_SMK, Project
from expops_smk.config.project import load_project
from expops_smk.errors import ConfigError
from expops_smk.graph.expansion import build_graph
from expops_smk.runtime.splitting import empty_partitions, split_rows
from projects import functions, pipeline, write_project

CONFIG_SHOWN = "project/configs/project_config.yaml"
HOSTILE = "it's \"quoted\" \\back\\slash ''' \"\"\" {braces} {{x}} $HOME ${x} Données ✓"


def validate(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXPOPS_SMK, "validate", str(root)], capture_output=True, text=True, timeout=60)


def one_error(root: Path, *fragments: str) -> str:
    """The single ``error:`` line of a failing ``expops-smk validate``, checked for ``fragments``."""
    done = validate(root)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert errors[0].startswith(f"error: {CONFIG_SHOWN}: "), errors[0]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def fan_out(size: Any, seeds: list[int], **sections: Any) -> dict[str, Any]:
    return pipeline([{"name": "split", "data_parallelism": {"size": size}},
                     {"name": "seeds", "seed_parallelism": {"seeds": seeds}, "depends_on": ["split"]},
                     {"name": "train", "depends_on": ["seeds"]}], **sections)


# -- item 8: the total node count is bounded ---------------------------------------------------

def test_fan_out_product_over_the_limit_is_one_error(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", fan_out(1000, list(range(1000))), functions(["train"]))
    line = one_error(root, "process 'train'", "field 'execution.max_nodes'", "1,001,001 nodes",
                     "1,000 partitions of 'split' × 1,000 seeds of 'seeds'", "the limit is 200,000")
    assert line.count("error") == 1


def test_max_nodes_is_configurable(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", fan_out(10, list(range(10)), execution={"max_nodes": 100}),
                         functions(["train"]))
    one_error(root, "111 nodes", "the limit is 100 (execution.max_nodes)")
    root = write_project(root, fan_out(10, list(range(10)), execution={"max_nodes": 111}), functions(["train"]))
    done = validate(root)
    assert done.returncode == 0 and "111 nodes" in done.stdout, done.stderr


@pytest.mark.parametrize("value", [0, -1, True, "many", 1.5])
def test_bad_max_nodes(tmp_path: Path, value: Any) -> None:
    root = write_project(tmp_path / "project", fan_out(2, [1], execution={"max_nodes": value}), functions(["train"]))
    one_error(root, "field 'execution.max_nodes'", "must be a positive integer")


def test_max_nodes_round_trips_through_the_plan(tmp_path: Path) -> None:
    from expops_smk.graph.plan import plan_from_json, plan_to_json

    root = write_project(tmp_path / "project", fan_out(2, [1], execution={"max_nodes": 77}), functions(["train"]))
    project = load_project(root)
    assert plan_from_json(plan_to_json(project, {}), root).project.execution.max_nodes == 77


# -- item 10: empty pipelines and duplicate keys ------------------------------------------------

def test_empty_pipeline_is_an_error(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", pipeline([]), "")
    one_error(root, "field 'pipeline.processes'", "no processes")


DUPLICATE = """\
scripts: {model: src/model.py}
experiment:
  pipeline:
    processes:
      - name: a
        parameters: {lr: 1}
        parameters: {lr: 2}
"""


def test_duplicate_yaml_key_names_line_and_key(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", DUPLICATE, functions(["a"]))
    one_error(root, "invalid YAML at line 7", "duplicate key 'parameters'", "first given at line 6")


def test_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    text = ("scripts: {model: src/model.py}\nbase: &base {lr: 1, depth: 2}\n"
            "experiment:\n  pipeline:\n    processes:\n      - name: a\n        parameters:\n"
            "          <<: *base\n          lr: 3\n")
    project = load_project(write_project(tmp_path / "project", text, functions(["a"])))
    assert dict(project.processes["a"].parameters) == {"lr": 3, "depth": 2}


# -- item 12: empty partitions are never silent ---------------------------------------------------

def test_zero_rows_in_a_size_list_warn_at_validation(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", pipeline([{"name": "split", "data_parallelism": {"size": [20, 0, 0]}}]))
    done = validate(root)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "data_parallelism.size" in line]
    assert warnings == [f"warning: {CONFIG_SHOWN}: process 'split': field 'data_parallelism.size': "
                        "partition(s) p2, p3 get 0 rows; their nodes run on empty data"]


def test_empty_partitions_are_numbered() -> None:
    assert empty_partitions(split_rows(list(range(3)), 5)) == [4, 5]
    assert empty_partitions(split_rows({"a": [1, 2]}, 3)) == [3]
    assert empty_partitions(split_rows(list(range(6)), 3)) == []


def test_size_above_the_row_count_warns_in_the_run_and_the_log(tmp_path: Path) -> None:
    script = "def load():\n    return {'data': list(range(3))}\n\ndef use(data):\n    return {'n': len(data)}\n"
    config = pipeline([{"name": "load"}, {"name": "split", "data_parallelism": {"size": 5}, "depends_on": ["load"]},
                       {"name": "use", "depends_on": ["split"]}])
    project = Project(write_project(tmp_path / "project", config, script))
    run = project.run()
    expected = ("warning: node 'split': data_parallelism.size 5: the data has fewer rows than partitions; "
                "partition(s) p4, p5 are empty")
    assert run.output.count(expected) == 1, run.describe()
    assert expected in (project.root / "logs" / "split.log").read_text(encoding="utf-8")
    assert [project.value("use", "n", partition) for partition in ("p1", "p4")] == [1, 0]


# -- item 9: strings that reach generated files --------------------------------------------------

DATA_FILE = "data/in 'q' \"dq\" \\ $y ü.csv"


def hostile_config(**changes: Any) -> dict[str, Any]:
    process = {"name": "load", "description": f"line one\n\tline two {HOSTILE}",
               "parameters": {"text": HOSTILE + "\x00\x1b\n", HOSTILE: 1, "path": DATA_FILE},
               "resources": {"slurm_extra": f"--comment={HOSTILE}", "constraint": HOSTILE}}
    process.update(changes)
    return pipeline([process], metadata={"name": f"{HOSTILE}\n# not a comment"}, data={"path": DATA_FILE})


HOSTILE_SCRIPT = """
    def load(path, text, **kwargs):
        return {"text": text, "keys": sorted(kwargs), "data": open(path).read()}
"""


def test_hostile_strings_survive_into_every_generated_file(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", hostile_config(), HOSTILE_SCRIPT, files={DATA_FILE: "a\n1\n"})
    project = Project(root)
    project.generate()
    generated = [path for path in (root / "workflow").rglob("*") if path.is_file()]
    generated += [path for path in (root / "profiles").rglob("*") if path.is_file()]
    assert generated and all("\x00" not in path.read_text(encoding="utf-8") for path in generated)
    import yaml

    for profile in (root / "profiles").rglob("config.yaml"):
        yaml.safe_load(profile.read_text(encoding="utf-8"))  # every profile is still valid YAML
    dry = project.dry_run()
    assert "load" in dry.output
    project.snakemake()
    assert project.value("load", "text") == HOSTILE + "\x00\x1b\n"
    assert HOSTILE in project.value("load", "keys")
    assert project.value("load", "data") == "a\n1\n"


@pytest.mark.parametrize(("changes", "sections", "field"), [
    ({"description": "bad\x00byte"}, {}, "description"),
    ({"description": "escape \x1b[31m red"}, {}, "description"),
    ({"resources": {"slurm_extra": "--comment=a\x00b"}}, {}, "resources.slurm_extra"),
    ({"resources": {"qos": "a\nb"}}, {}, "resources.qos"),
    ({"script_path": "src/mo\x07del.py"}, {}, "script_path"),
    ({}, {"metadata": {"name": "x\x00y"}}, "metadata.name"),
    ({}, {"data": {"path": "data/a\x00.csv"}}, "data.path"),
    ({}, {"execution": {"resources": {"slurm_partition": "gpu\x7f"}}}, "execution.resources.slurm_partition"),
])
def test_control_characters_are_rejected(tmp_path: Path, changes: dict[str, Any], sections: dict[str, Any],
                                         field: str) -> None:
    config = pipeline([{"name": "load", **changes}], **sections)
    root = write_project(tmp_path / "project", config, "def load():\n    return {}\n")
    process = "process 'load': " if changes else ""
    one_error(root, f"{process}field '{field}'", "control character")


def test_braces_in_the_data_path_are_rejected(tmp_path: Path) -> None:
    config = pipeline([{"name": "load"}], data={"path": "data/{x}.csv"})
    root = write_project(tmp_path / "project", config, "def load():\n    return {}\n", files={"data/{x}.csv": "a\n"})
    one_error(root, "field 'data.path'", "wildcard")


def test_tabs_and_newlines_in_descriptions_become_spaces(tmp_path: Path) -> None:
    config = pipeline([{"name": "load", "description": "one\n\ttwo  three\r\n"}], metadata={"name": "a\nb"})
    project = load_project(write_project(tmp_path / "project", config, "def load():\n    return {}\n"))
    assert project.processes["load"].description == "one two three" and project.name == "a b"


# -- item 11: parameters and arguments against the upstream's returned keys -----------------------

FLOW_SCRIPT = """
    def load():
        if False:
            return {"x": 1, "y": 2}
        return {"x": 3, "z": 4}

    def opaque():
        result = {"x": 1}
        return result

    def train(x, lr):
        return {"model": x * lr}
"""


def flow(load_name: str = "load", **train: Any) -> dict[str, Any]:
    return pipeline([{"name": "load", "code": load_name},
                     {"name": "split", "data_parallelism": {"size": 2, "data_name": "x"}, "depends_on": ["load"]},
                     {"name": "train", "depends_on": ["split"], **train}])


def test_parameter_named_like_an_upstream_output(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", flow(parameters={"lr": 1, "z": 0}), FLOW_SCRIPT)
    one_error(root, "process 'train'", "field 'parameters.z'", "parameter 'z' collides with the output 'z' "
              "of upstream 'split'")


def test_global_parameter_named_like_an_upstream_output(tmp_path: Path) -> None:
    config = flow(parameters={"lr": 1})
    config["experiment"]["parameters"] = {"y": 5}
    root = write_project(tmp_path / "project", config, FLOW_SCRIPT)
    one_error(root, "process 'train'", "field 'parameters.y'", "(a global parameter)")


def test_misspelt_argument_is_caught(tmp_path: Path) -> None:
    script = FLOW_SCRIPT.replace("def train(x, lr):", "def train(x, l_r, epochs=3):")
    root = write_project(tmp_path / "project", flow(parameters={"lr": 1}), script)
    one_error(root, "process 'train'", "field 'code'", "required argument 'l_r'", "available: lr, x, y, z")


def test_unknown_upstream_keys_raise_nothing(tmp_path: Path) -> None:
    """``return result`` hides the keys: no static error, whatever the parameters are named."""
    script = FLOW_SCRIPT.replace("def train(x, lr):", "def train(x, l_r):")
    root = write_project(tmp_path / "project", flow("opaque", parameters={"x": 1}), script)
    assert validate(root).returncode == 0


def test_valid_flow_validates(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", flow(parameters={"lr": 2}), FLOW_SCRIPT)
    done = validate(root)
    assert done.returncode == 0 and "error" not in done.stderr, done.stderr


@pytest.mark.parametrize(("source", "keys"), [
    ("def f():\n    return {'a': 1, 'b': 2}\n", {"a", "b"}),
    ("def f(c):\n    if c:\n        return {'a': 1}\n    return {'b': 2}\n", {"a", "b"}),
    ("def f():\n    def g():\n        return 1\n    return {'a': g()}\n", {"a"}),
    ("def f():\n    return {'a': 1, **other}\n", None),
    ("def f():\n    return {k: 1}\n", None),
    ("def f():\n    return dict(a=1)\n", None),
    ("def f():\n    yield {'a': 1}\n", None),
    ("def f():\n    pass\n", None),
    ("@wrap\ndef f():\n    return {'a': 1}\n", None),
    ("def f():\n    return {'a': 1}\nf = other\n", None),
    ("def f():\n    return {'a': 1}\nfrom m import *\n", None),
    ("def f():\n    return {'a': 1}\ntry:\n    from fast import f\nexcept ImportError:\n    pass\n", None),
])
def test_returned_keys_are_known_only_when_certain(source: str, keys: set[str] | None) -> None:
    import ast

    from expops_smk.config.dataflow import returned_keys

    found = returned_keys(ast.parse(source), "f")
    assert (None if found is None else set(found)) == keys
