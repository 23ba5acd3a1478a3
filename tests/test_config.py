"""expops_smk.config: the three ExpOps layouts read into one model, and every validation error.

Each error test asserts the one-line message names the file, the field and (when there is one) the
process, because that is what a user reads instead of a traceback.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from expops_smk.config import yaml_loading
from expops_smk.config.model import DataSplit, ProjectConfig
from expops_smk.config.project import load_project
from expops_smk.errors import ConfigError
from expops_smk.graph.expansion import build_graph
from projects import SCRIPT, functions, pipeline

MakeProject = Callable[..., Path]
CONFIG_SHOWN = "project/configs/project_config.yaml"

MODEL_SCRIPT = """
    def load(data_path, **kwargs):
        return {"df": data_path}

    def train(df, lr, random_seed):
        return {"model": (df, lr, random_seed)}

    def summarise(model):
        return {"summary": model}
"""
DATA_FILES = {"data/raw.csv": "a,b\n1,2\n"}
CHAIN = ["load split", "split seeds", "seeds train", "train summarise"]


def load(root: Path) -> ProjectConfig:
    project = load_project(root)
    build_graph(project)  # fan-out checks live in the graph
    return project


def error_of(make_project: MakeProject, config: Any, script: str = "", **kwargs: Any) -> ConfigError:
    root = make_project(config, script, **kwargs)
    with pytest.raises(ConfigError) as info:
        load(root)
    return info.value


def assert_names(error: ConfigError, field: str, process: str | None = None, *, contains: str = "") -> None:
    text = str(error)
    assert "\n" not in text
    assert text.startswith(f"{CONFIG_SHOWN}: ")
    assert error.field == field, text
    assert f"field '{field}'" in text
    if process is None:
        assert error.process is None and "process '" not in text.split("field")[0], text
    else:
        assert error.process == process and f"process '{process}'" in text, text
    assert contains in text, text


# -- the three layouts -------------------------------------------------------------------------

def layout_model_parameters() -> dict[str, Any]:
    """Early docs: model.parameters.pipeline, code_function, hyperparameters, *_parallelism.aggregation."""
    return {
        "metadata": {"name": "demo"},
        "scripts": {"model": SCRIPT},
        "reproducibility": {"random_seed": 7},
        "data": {"path": "data/raw.csv"},
        "model": {"parameters": {
            "data_path": "data/raw.csv",
            "lr": 0.1,
            "pipeline": {
                "process_adjlist": "\n".join(CHAIN) + "\n",
                "processes": [
                    {"name": "load", "code_function": "load"},
                    {"name": "split", "data_parallelism": {"size": 2}},
                    {"name": "seeds", "seed_parallelism": {"seeds": [41, 42]}},
                    {"name": "train", "code_function": "train", "hyperparameters": {"lr": 0.5}},
                    {"name": "summarise", "code_function": "model.summarise",
                     "data_parallelism": {"aggregation": True}, "seed_parallelism": {"aggregation": True}},
                ],
            },
        }},
    }


def layout_experiment_parameters() -> dict[str, Any]:
    """Later docs: experiment.parameters.pipeline, code, parameters, *_aggregation flags."""
    return {
        "metadata": {"name": "demo"},
        "scripts": {"model": SCRIPT},
        "reproducibility": {"random_seed": 7},
        "data": {"path": "data/raw.csv"},
        "experiment": {"parameters": {
            "data_path": "data/raw.csv",
            "lr": 0.1,
            "pipeline": {
                "process_adjlist": ["# the chain, one edge a line", "load split  # raw rows",
                                    "", "split seeds", "seeds train", "train summarise"],
                "processes": [
                    {"name": "load", "code": "model.load"},
                    {"name": "split", "data_parallelism": {"size": 2}},
                    {"name": "seeds", "seed_parallelism": {"seeds": [41, 42]}},
                    {"name": "train", "code": "train", "parameters": {"lr": 0.5}},
                    {"name": "summarise", "code": "summarise", "data_aggregation": True, "seed_aggregation": True},
                ],
            },
        }},
    }


def layout_experiment_pipeline() -> dict[str, Any]:
    """expops 0.1.27: experiment.pipeline with the globals in experiment.parameters; depends_on."""
    return {
        "metadata": {"name": "demo"},
        "scripts": {"model": SCRIPT},
        "reproducibility": {"random_seed": 7},
        "data": {"path": "data/raw.csv"},
        "experiment": {
            "parameters": {"data_path": "data/raw.csv", "lr": 0.1},
            "pipeline": {"processes": [
                {"name": "load"},
                {"name": "split", "data_parallelism": {"size": 2}, "depends_on": ["load"]},
                {"name": "seeds", "seed_parallelism": {"seeds": [41, 42]}, "depends_on": "split"},
                {"name": "train", "parameters": {"lr": 0.5}, "depends_on": ["seeds"]},
                {"name": "summarise", "data_aggregation": True, "seed_aggregation": True, "depends_on": ["train"]},
            ]},
        },
    }


def test_three_layouts_read_into_the_same_model(make_project: MakeProject) -> None:
    models = []
    for layout in (layout_model_parameters, layout_experiment_parameters, layout_experiment_pipeline):
        project = load(make_project(layout(), MODEL_SCRIPT, files=DATA_FILES))
        assert project.warnings == (), layout.__name__
        models.append(project)
    assert models[0] == models[1] == models[2]

    project = models[0]
    root = project.root
    assert project.name == "demo"
    assert project.random_seed == 7
    assert project.data_path == root / "data" / "raw.csv"
    assert project.scripts == {"model": root / SCRIPT}
    assert project.global_parameters == {"data_path": "data/raw.csv", "lr": 0.1}
    assert list(project.processes) == ["load", "split", "seeds", "train", "summarise"]
    specs = project.processes
    assert [specs[name].parents for name in specs] == [(), ("load",), ("split",), ("seeds",), ("train",)]
    assert specs["load"].function is not None and specs["load"].function.name == "load"
    assert specs["load"].script == root / SCRIPT
    assert specs["split"].function is None and specs["split"].data_split == DataSplit(2, None, "data")
    assert specs["seeds"].function is None and specs["seeds"].seeds == (41, 42)
    assert specs["train"].parameters == {"lr": 0.5}
    assert specs["train"].function.required == ("df", "lr", "random_seed")
    assert specs["summarise"].data_aggregation and specs["summarise"].seed_aggregation
    assert not specs["train"].is_aggregation and not specs["load"].is_split


@pytest.mark.parametrize("spelling", ["string", "list", "depends_on", "both"])
def test_dag_spellings_give_the_same_parents(make_project: MakeProject, spelling: str) -> None:
    edges = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    processes = [{"name": name} for name in edges]
    adjlist: str | list[str] | None = None
    if spelling == "string":
        adjlist = "a b c   # fan out\n# nothing here\n\nb d\nc d\n"
    elif spelling == "list":
        adjlist = ["a b c", "# comment line", "b d  # trailing comment", "c d"]
    elif spelling == "depends_on":
        processes = [{"name": name, "depends_on": parents} for name, parents in edges.items()]
    else:  # half in the adjacency list, half in depends_on; a repeated edge counts once
        adjlist = "a b c\nb d"
        processes = [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d", "depends_on": ["c", "b"]}]
    project = load(make_project(pipeline(processes, adjlist), functions(edges)))
    assert {name: list(spec.parents) for name, spec in project.processes.items()} == edges
    assert project.children() == {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}


def test_topological_order_keeps_declaration_order_where_free(make_project: MakeProject) -> None:
    processes = [{"name": "report"}, {"name": "z_first"}, {"name": "a_second"}]
    project = load(make_project(pipeline(processes, "a_second report\nz_first report"),
                                functions(["report", "z_first", "a_second"])))
    assert list(project.processes) == ["z_first", "a_second", "report"]


def test_process_only_in_adjlist_uses_the_function_named_like_it(make_project: MakeProject) -> None:
    project = load(make_project(pipeline([{"name": "a"}], "a b"), functions(["a", "b"])))
    assert list(project.processes) == ["a", "b"]
    assert project.processes["b"].function.name == "b"
    assert project.processes["b"].parents == ("a",)


def test_function_resolution(make_project: MakeProject) -> None:
    """code 'key.fn' -> scripts[key]; 'fn' -> the first (default) script; none -> named like the
    process; script_path on the process overrides them."""
    config = pipeline(
        [
            {"name": "keyed", "code": "extra.helper"},
            {"name": "plain", "code": "shared"},
            {"name": "named"},
            {"name": "own_file", "code_function": "local", "script_path": "src/own.py"},
        ],
        scripts={"model": SCRIPT, "extra": "src/extra.py"},
    )
    files = {"src/extra.py": functions(["helper", "shared"]), "src/own.py": functions(["local"])}
    project = load(make_project(config, functions(["shared", "named"]), files=files))
    root = project.root
    resolved = {name: (spec.script.relative_to(root).as_posix(), spec.function.name)
                for name, spec in project.processes.items()}
    assert resolved == {
        "keyed": ("src/extra.py", "helper"),
        "plain": (SCRIPT, "shared"),
        "named": (SCRIPT, "named"),
        "own_file": ("src/own.py", "local"),
    }


def test_defaults_without_optional_sections(make_project: MakeProject) -> None:
    project = load(make_project(pipeline([{"name": "a"}]), functions(["a"])))
    assert project.random_seed == 42
    assert project.data_path is None
    assert project.global_parameters == {}
    assert project.name == "project"  # the folder's name


def test_project_name_is_one_line(make_project: MakeProject) -> None:
    """The name is written into comments of the generated Snakefile: a newline would inject code."""
    config = pipeline([{"name": "a"}], metadata={"name": "demo\nprint('injected')\n#"})
    assert load(make_project(config, functions(["a"]))).name == "demo print('injected') #"


def test_data_split_sizes_and_names(make_project: MakeProject) -> None:
    config = pipeline([
        {"name": "by_count", "data_parallelism": {"size": 3, "data_name": "df"}},
        {"name": "by_rows", "data_parallelism": {"size": [50, 20, 0, 20]}},
        {"name": "one_seed", "seed_parallelism": {"seeds": 5}},
    ])
    specs = load(make_project(config)).processes
    assert specs["by_count"].data_split == DataSplit(3, None, "df")
    assert specs["by_rows"].data_split == DataSplit(4, (50, 20, 0, 20), "data")
    assert specs["one_seed"].seeds == (5,)


def test_unknown_keys_warn_and_still_load(make_project: MakeProject) -> None:
    config = pipeline([{"name": "a", "colour": "red", "data_parallelism": {"size": 2, "speed": 9},
                        "resources": {"fpgas": 1}}], bogus={"x": 1})
    config["experiment"]["pipeline"]["extra"] = True
    project = load(make_project(config, functions(["a"])))
    warnings = "\n".join(project.warnings)
    for key in ("bogus", "colour", "speed", "fpgas", "extra"):
        assert f"unknown key '{key}'" in warnings
    assert "process 'a'" in warnings
    assert project.processes["a"].data_split == DataSplit(2, None, "data")


def test_pipeline_in_two_places_warns(make_project: MakeProject) -> None:
    config = pipeline([{"name": "a"}], model={"parameters": {"pipeline": {"processes": [{"name": "b"}]}}})
    project = load(make_project(config, functions(["a", "b"])))
    assert list(project.processes) == ["b"]
    assert any("using model.parameters.pipeline" in warning for warning in project.warnings)


@pytest.mark.parametrize(("text", "field", "process", "message"), [
    ("parameters: {start: 2020-01-01}", "parameters.start", "a", "date value '2020-01-01' is not plain data"),
    ("hyperparameters: {grid: {1: x, b: y}}", "hyperparameters.grid", "a", "key 1 must be a string"),
    ("parameters: {tags: [x, !!set {y: null}]}", "parameters.tags[1]", "a", "set value"),
    ("parameters: {blob: !!binary aGk=}", "parameters.blob", "a", "bytes value"),
])
def test_parameters_must_be_plain_data(make_project: MakeProject, text: str, field: str, process: str,
                                       message: str) -> None:
    """Jobs read parameters back from JSON: a date would become a string, int keys cannot be sorted."""
    config = f"scripts: {{model: {SCRIPT}}}\nexperiment:\n  pipeline:\n    processes:\n      - {{name: a, {text}}}\n"
    assert_names(error_of(make_project, config, functions(["a"])), field, process, contains=message)


def test_global_parameters_must_be_plain_data(make_project: MakeProject) -> None:
    config = (f"scripts: {{model: {SCRIPT}}}\nexperiment:\n  parameters: {{when: 2020-01-01 10:00:00}}\n"
              "  pipeline: {processes: [{name: a}]}\n")
    assert_names(error_of(make_project, config, functions(["a"])), "experiment.parameters.when",
                 contains="datetime value")


def test_plain_parameters_pass_unchanged(make_project: MakeProject) -> None:
    params = {"lr": 0.1, "layers": [64, 32], "opt": {"name": "adam", "betas": [0.9, 0.99]}, "flag": True,
              "none": None, "inf": float("inf")}
    project = load(make_project(pipeline([{"name": "a", "parameters": params}]), functions(["a"])))
    assert project.processes["a"].parameters == params


# -- the DAG -----------------------------------------------------------------------------------

def test_unknown_process_in_adjlist(make_project: MakeProject) -> None:
    error = error_of(make_project, pipeline([{"name": "a"}, {"name": "train"}], "a train\ntrain evalute\n"),
                     functions(["a", "train", "evaluate"]))
    assert_names(error, "process_adjlist line 2", "evalute", contains="unknown process 'evalute'")


def test_unknown_process_in_depends_on(make_project: MakeProject) -> None:
    error = error_of(make_project, pipeline([{"name": "a"}, {"name": "b", "depends_on": ["a", "ghost"]}]),
                     functions(["a", "b"]))
    assert_names(error, "depends_on", "b", contains="unknown process 'ghost'")


@pytest.mark.parametrize(("adjlist", "cycle", "field"), [
    ("a b\nb a", "a -> b -> a", "process_adjlist"),
    ("a b\nb c\nc a", "a -> b -> c -> a", "process_adjlist"),
    ("start a\na b\nb c\nc b", "b -> c -> b", "process_adjlist"),
    ("a b\na a", "a -> a", "process_adjlist line 2"),
])
def test_cycle_in_adjlist_is_named(make_project: MakeProject, adjlist: str, cycle: str, field: str) -> None:
    names = ["start", "a", "b", "c"]
    processes = [{"name": name} for name in names if name in adjlist.split()]
    error = error_of(make_project, pipeline(processes, adjlist), functions(names))
    assert_names(error, field, cycle.split()[0], contains=f"cycle: {cycle}")


def test_cycle_through_depends_on_is_named(make_project: MakeProject) -> None:
    processes = [{"name": "a", "depends_on": ["c"]}, {"name": "b", "depends_on": ["a"]},
                 {"name": "c", "depends_on": ["b"]}]
    error = error_of(make_project, pipeline(processes), functions("abc"))
    assert_names(error, "depends_on", "a", contains="cycle: a -> b -> c -> a")


def test_cycle_across_both_spellings(make_project: MakeProject) -> None:
    error = error_of(make_project, pipeline([{"name": "a", "depends_on": ["b"]}, {"name": "b"}], "a b"),
                     functions("ab"))
    assert_names(error, "depends_on + process_adjlist", "a", contains="cycle: a -> b -> a")


def test_duplicate_process_names(make_project: MakeProject) -> None:
    error = error_of(make_project, pipeline([{"name": "a"}, {"name": "b"}, {"name": "a", "code": "b"}]),
                     functions("ab"))
    assert_names(error, "name", "a", contains="duplicate process name")


def test_names_clashing_once_dashes_become_underscores(make_project: MakeProject) -> None:
    error = error_of(make_project, pipeline([{"name": "pre_process"}, {"name": "pre-process", "code": "pre_process"}]),
                     functions(["pre_process"]))
    assert_names(error, "name", "pre-process", contains="clashes with 'pre_process'")


@pytest.mark.parametrize("name", ["../x", "a/b", "/abs", "a b", "..", "", "x" * 65, "1st", "ü"])
def test_unsafe_process_names(make_project: MakeProject, name: str) -> None:
    error = error_of(make_project, pipeline([{"name": "ok"}, {"name": name, "code": "ok"}]), functions(["ok"]))
    assert_names(error, "processes[1].name", contains="not a safe process name")


@pytest.mark.parametrize("token", ["../x", "a/b", "/abs"])
def test_unsafe_names_in_adjlist(make_project: MakeProject, token: str) -> None:
    error = error_of(make_project, pipeline([{"name": "ok"}], f"ok b\nok {token}"), functions(["ok", "b"]))
    assert_names(error, "process_adjlist line 2", contains="not a safe process name")


@pytest.mark.parametrize(("name", "reason"), [("all", "target rule"), ("class", "Python keyword"),
                                              ("lambda", "Python keyword")])
def test_names_that_cannot_be_rules(make_project: MakeProject, name: str, reason: str) -> None:
    error = error_of(make_project, pipeline([{"name": name, "code": "f"}]), functions(["f"]))
    assert_names(error, "processes[0].name", contains=reason)
    error = error_of(make_project, pipeline([{"name": "f"}], f"f {name}"), functions(["f"]))
    assert_names(error, "process_adjlist line 1", contains=reason)


# -- parallelism ---------------------------------------------------------------------------------

def test_both_parallelisms_on_one_process(make_project: MakeProject) -> None:
    error = error_of(make_project, pipeline([
        {"name": "split", "data_parallelism": {"size": 2}, "seed_parallelism": {"seeds": [1, 2]}}]))
    assert_names(error, "seed_parallelism", "split", contains="both data and seeds")


def test_split_and_aggregate_same_kind(make_project: MakeProject) -> None:
    error = error_of(make_project, pipeline([
        {"name": "split", "data_parallelism": {"size": 2, "aggregation": True}}]))
    assert_names(error, "data_parallelism", "split", contains="both split and aggregate")


@pytest.mark.parametrize("size", [0, -1, 1.5, "3", True, None, [], [1, -1], [1, "a"], [2, True], {"n": 2}, 10**6])
def test_bad_data_split_size(make_project: MakeProject, size: Any) -> None:
    error = error_of(make_project, pipeline([{"name": "split", "data_parallelism": {"size": size}}]))
    assert_names(error, "data_parallelism.size", "split", contains="must be a positive integer")


@pytest.mark.parametrize(("seeds", "message"), [
    (["a", 2], "seed 'a' is not an integer"),
    ([1.5], "seed 1.5 is not an integer"),
    ([1, True], "seed True is not an integer"),
    ([41, 42, 41, 7, 7], "duplicate seed(s) [7, 41]"),
    ([], "non-empty list"),
    ("41", "non-empty list"),
    ([2**64], "does not fit in 64 bits"),
])
def test_bad_seeds(make_project: MakeProject, seeds: Any, message: str) -> None:
    error = error_of(make_project, pipeline([{"name": "seeds", "seed_parallelism": {"seeds": seeds}}]))
    assert_names(error, "seed_parallelism.seeds", "seeds", contains=message)


def test_many_distinct_seeds_validate_quickly(make_project: MakeProject) -> None:
    """Duplicate detection is linear: 100,000 seeds (the fan-out limit) must not take minutes."""
    seeds = ", ".join(map(str, range(100_000)))
    text = f"scripts: {{model: {SCRIPT}}}\nexperiment:\n  pipeline:\n    processes:\n" \
           f"      - {{name: seeds, seed_parallelism: {{seeds: [{seeds}]}}}}\n"
    project = load_project(make_project(text))
    assert len(project.processes["seeds"].seeds) == 100_000


@pytest.mark.parametrize("flag", [{"data_aggregation": True}, {"data_parallelism": {"aggregation": True}}])
def test_aggregation_without_any_fan_out(make_project: MakeProject, flag: dict[str, Any]) -> None:
    error = error_of(make_project, pipeline([{"name": "a"}, {"name": "agg", **flag}], "a agg"), functions(["a", "agg"]))
    assert_names(error, "data_aggregation", "agg", contains="no open data fan-out")


def test_aggregation_of_the_wrong_kind(make_project: MakeProject) -> None:
    config = pipeline([{"name": "split", "data_parallelism": {"size": 2}}, {"name": "agg", "seed_aggregation": True}],
                      "split agg")
    error = error_of(make_project, config, functions(["agg"]))
    assert_names(error, "seed_aggregation", "agg", contains="no open seed fan-out")


def test_aggregation_after_the_fan_out_is_closed(make_project: MakeProject) -> None:
    config = pipeline([{"name": "split", "data_parallelism": {"size": 2}}, {"name": "agg", "data_aggregation": True},
                       {"name": "again", "data_aggregation": True}], "split agg\nagg again")
    error = error_of(make_project, config, functions(["agg", "again"]))
    assert_names(error, "data_aggregation", "again", contains="no open data fan-out")


def test_bad_aggregation_flag(make_project: MakeProject) -> None:
    config = pipeline([{"name": "split", "data_parallelism": {"size": 2}}, {"name": "agg", "data_aggregation": "yes"}],
                      "split agg")
    assert_names(error_of(make_project, config, functions(["agg"])), "data_aggregation", "agg",
                 contains="must be true or false")


def test_merging_branches_of_different_fan_outs(make_project: MakeProject) -> None:
    config = pipeline([
        {"name": "by_rows", "data_parallelism": {"size": 2}},
        {"name": "by_seed", "seed_parallelism": {"seeds": [1, 2]}},
        {"name": "left"}, {"name": "right"}, {"name": "join"},
    ], "root by_rows by_seed\nby_rows left\nby_seed right\nleft join\nright join")
    error = error_of(make_project, config, functions(["root", "left", "right", "join"]))
    assert_names(error, "depends_on", "join", contains="branches of different fan-outs")
    assert "'left'" in str(error) and "'right'" in str(error)


def test_merging_two_data_fan_outs(make_project: MakeProject) -> None:
    config = pipeline([{"name": "d1", "data_parallelism": {"size": 2}},
                       {"name": "d2", "data_parallelism": {"size": 2}}, {"name": "m"}],
                      "r d1 d2\nd1 m\nd2 m")
    error = error_of(make_project, config, functions(["r", "m"]))
    assert_names(error, "depends_on", "m", contains="data fan-out of 'd1'")
    assert "data fan-out of 'd2'" in str(error)


# -- functions and files ---------------------------------------------------------------------------

def test_function_not_found(make_project: MakeProject) -> None:
    error = error_of(make_project, pipeline([{"name": "train", "code": "fit"}]), functions(["prepare", "score"]))
    assert_names(error, "code", "train", contains="function 'fit' not found")
    assert "available: prepare, score" in str(error)


def test_function_named_after_process_not_found(make_project: MakeProject) -> None:
    config = pipeline([{"name": "train"}])
    error = error_of(make_project, config, functions(["prepare"]))
    assert_names(error, "code", "train", contains="named after the process")


def test_unknown_script_key(make_project: MakeProject) -> None:
    error = error_of(make_project, pipeline([{"name": "train", "code": "nets.fit"}]), functions(["fit"]))
    assert_names(error, "code", "train", contains="unknown script key 'nets'")


def test_scripts_are_parsed_not_imported(make_project: MakeProject, tmp_path: Path) -> None:
    """Validation must not run user code: a script whose top level raises (or writes) still validates."""
    sentinel = tmp_path / "imported"
    script = f"""
        import torch_that_is_not_installed
        open({str(sentinel)!r}, "w").write("ran")
        raise SystemExit("the script was imported")

        def train(df):
            return {{}}
    """
    project = load(make_project(pipeline([{"name": "train", "parameters": {"df": 1}}]), script))
    assert project.processes["train"].function.params == ("df",)
    assert not sentinel.exists()


def test_script_with_syntax_error(make_project: MakeProject) -> None:
    error = error_of(make_project, pipeline([{"name": "train"}]), "def train(:\n    pass\n")
    assert_names(error, "code", "train", contains="model.py:1")


def test_missing_script_file(make_project: MakeProject) -> None:
    error = error_of(make_project, pipeline([{"name": "train", "script_path": "src/nope.py"}]), functions(["train"]))
    assert_names(error, "script_path", "train", contains="does not exist")


@pytest.mark.parametrize(("section", "field"), [
    ({"scripts": {"model": "../outside.py"}}, "scripts.model"),
    ({"data": {"path": "../../etc/passwd"}}, "data.path"),
    ({"data": {"path": "/etc/passwd"}}, "data.path"),
])
def test_paths_must_stay_inside_the_project(make_project: MakeProject, section: dict, field: str) -> None:
    config = pipeline([{"name": "a"}], **section)
    assert_names(error_of(make_project, config, functions(["a"])), field, contains="outside the project")


def test_script_path_outside_the_project(make_project: MakeProject) -> None:
    config = pipeline([{"name": "a", "script_path": "../elsewhere/model.py"}])
    assert_names(error_of(make_project, config, functions(["a"])), "script_path", "a", contains="outside the project")


def test_missing_data_file(make_project: MakeProject) -> None:
    config = pipeline([{"name": "a"}], data={"path": "data/missing.csv"})
    assert_names(error_of(make_project, config, functions(["a"])), "data.path", contains="does not exist")


def test_unsafe_data_name(make_project: MakeProject) -> None:
    config = pipeline([{"name": "split", "data_parallelism": {"size": 2, "data_name": "../df"}}])
    assert_names(error_of(make_project, config), "data_parallelism.data_name", "split", contains="not a safe output key")


def test_bad_random_seed(make_project: MakeProject) -> None:
    config = pipeline([{"name": "a"}], reproducibility={"random_seed": "forty-two"})
    assert_names(error_of(make_project, config, functions(["a"])), "reproducibility.random_seed",
                 contains="must be an integer")


@pytest.mark.parametrize("section", ["compute", "environment", "metadata", "scripts", "reproducibility", "data"])
def test_known_sections_of_the_wrong_type(make_project: MakeProject, section: str) -> None:
    config = pipeline([{"name": "a"}])
    config[section] = 5
    assert_names(error_of(make_project, config, functions(["a"])), section, contains="must be a mapping, got int")


def test_no_pipeline(make_project: MakeProject) -> None:
    error = error_of(make_project, {"experiment": {"parameters": {"x": 1}}})
    assert_names(error, "pipeline", contains="experiment.pipeline")


# -- the file itself -----------------------------------------------------------------------------

def file_error(make_project: MakeProject, text: str | bytes) -> str:
    error = error_of(make_project, text)
    message = str(error)
    assert "\n" not in message and message.startswith(f"{CONFIG_SHOWN}: ")
    assert error.field is None
    return message


def test_yaml_is_safe_loaded(make_project: MakeProject) -> None:
    message = file_error(make_project, "experiment: !!python/object/apply:os.system ['touch pwned']\n")
    assert "invalid YAML at line 1" in message and "python/object" in message


def test_python_name_tag_rejected(make_project: MakeProject) -> None:
    assert "invalid YAML" in file_error(make_project, "a: !!python/name:os.system\n")


def test_not_utf8(make_project: MakeProject) -> None:
    assert "not valid UTF-8 (byte 17)" in file_error(make_project, b"metadata: {name: \xff\xfe}\n")


def test_utf8_bom_and_non_ascii_are_fine(make_project: MakeProject) -> None:
    text = ("\ufeffmetadata: {name: Données}\nscripts: {model: src/model.py}\n"
            "experiment: {pipeline: {processes: [{name: a}]}}\n")
    assert load(make_project(text, functions(["a"]))).name == "Données"


def test_alias_bomb(make_project: MakeProject) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert "alias bomb" in file_error(make_project, "\n".join(lines) + "\n")


def test_self_referencing_alias(make_project: MakeProject) -> None:
    assert "self-referencing alias" in file_error(make_project, "a: &loop [1, *loop]\n")


@pytest.mark.parametrize("loader", ["libyaml", "pure-python"])
def test_deep_nesting(make_project: MakeProject, monkeypatch: pytest.MonkeyPatch, loader: str) -> None:
    """libyaml caps the depth itself; the pure-Python loader recurses until RecursionError."""
    if loader == "pure-python":
        monkeypatch.setattr(yaml_loading, "safe_loader", lambda: yaml.SafeLoader)
    elif not yaml.__with_libyaml__:
        pytest.skip("PyYAML built without libyaml")
    message = file_error(make_project, "a: " + "[" * 1200 + "]" * 1200 + "\n")
    assert "invalid YAML" in message and "nest" in message


@pytest.mark.parametrize("text", ["a: 2020-13-45\n", "a: !!int x\n", "a: !!timestamp x\n", "a: 1" + "0" * 5000 + "\n"])
def test_scalars_python_cannot_build(make_project: MakeProject, text: str) -> None:
    assert "invalid YAML" in file_error(make_project, text)


@pytest.mark.parametrize(("text", "message"), [
    ("a: [1, 2\n", "invalid YAML"),
    ("- just\n- a list\n", "top level must be a mapping"),
    ("", "top level must be a mapping"),
    ("1: x\n", "top-level keys must be strings"),
])
def test_malformed_files(make_project: MakeProject, text: str, message: str) -> None:
    assert message in file_error(make_project, text)


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="project config not found"):
        load_project(tmp_path)


def test_layout_equality_ignores_warnings_only(make_project: MakeProject) -> None:
    """Guard for the layout test above: two different pipelines must not compare equal."""
    first = load(make_project(pipeline([{"name": "a", "parameters": {"x": 1}}]), functions(["a"])))
    second = load(make_project(pipeline([{"name": "a", "parameters": {"x": 2}}]), functions(["a"])))
    assert replace(first, warnings=()) != replace(second, warnings=())
