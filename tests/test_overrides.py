"""Unit tests of ``config.overrides``: which ``--config`` keys set which parameters, typed how."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from expops_smk.config.model import accepted_parameters
from expops_smk.config.overrides import Overrides, apply_overrides, read_overrides
from expops_smk.config.project import load_project
from projects import write_project

CONFIG = """\
scripts: {main: main.py}
experiment:
  parameters: {C: 1.0, name: "a", layers: [1, 2]}
  pipeline:
    process_adjlist: "prep train"
    processes:
      - name: prep
      - {name: train, parameters: {C: 2.0}}
"""

MAIN = '''
def prep(C, name, layers):
    return {"x": 1}


def train(x, C, depth=3):
    return {"y": x}
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    return load_project(write_project(tmp_path_factory.mktemp("o") / "p", CONFIG, MAIN, script_path="main.py"))


def params(project, config):
    overrides, warnings = read_overrides(config, project)
    applied = apply_overrides(project, overrides)
    return {name: accepted_parameters(applied, spec) for name, spec in applied.processes.items()}, warnings


def test_a_bare_parameter_overrides_every_process_including_their_own_values(project) -> None:
    result, warnings = params(project, {"C": 0.5})
    assert result["prep"]["C"] == 0.5 and result["train"]["C"] == 0.5 and warnings == []


def test_a_process_override_wins_and_touches_only_that_process(project) -> None:
    result, _ = params(project, {"C": 0.5, "train": {"C": "7"}})
    assert result["prep"]["C"] == 0.5 and result["train"]["C"] == 7


def test_strings_from_the_base_yaml_loader_are_typed_like_what_they_replace(project) -> None:
    result, _ = params(project, {"parameters": {"C": "0.25", "name": "1", "layers": ["3", "4"]}})
    assert result["prep"] == {"C": 0.25, "name": "1", "layers": [3, 4]}


def test_an_optional_argument_may_be_set_and_unused_keys_warn(project) -> None:
    result, warnings = params(project, {"processes": {"train": {"depth": "5", "nope": 1}}, "Cc": 1, "trai": {}})
    assert result["train"]["depth"] == 5
    assert any("train.nope" in w for w in warnings)
    assert any("--config Cc" in w and "did you mean 'C'" in w for w in warnings)
    assert any("--config trai: not used" in w and "did you mean 'train'" in w for w in warnings)


def test_no_config_leaves_the_project_as_it_is(project) -> None:
    overrides, warnings = read_overrides({}, project)
    assert not overrides and warnings == [] and apply_overrides(project, overrides) is project


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["C", "name", "layers"]),
                       st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=5)), max_size=3),
       st.dictionaries(st.sampled_from(["C", "depth"]), st.integers(), max_size=2))
def test_overrides_survive_the_environment_round_trip(global_values, train_values) -> None:
    overrides = Overrides(global_values, {"train": train_values} if train_values else {})
    assert Overrides.from_json(overrides.to_json()) == overrides


def test_the_structured_keys_need_mappings(project) -> None:
    overrides, warnings = read_overrides({"parameters": 5, "processes": "x"}, project)
    assert not overrides and warnings == ["--config parameters: expected a mapping, e.g. parameters='{C: 0.5}'",
                                          "--config processes: expected a mapping, e.g. processes='{train: {C: 0.5}}'"]
