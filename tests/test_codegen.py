"""The generated workflow's text: rules, wildcards, params, and rewriting only what changed."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from projects import write_project

from expops_smk.codegen.files import write_if_changed
from expops_smk.layout import PLAN_FILE, RULES_FILE, SNAKEFILE
from expops_smk.config.project import load_project
from expops_smk.graph.expansion import build_graph
from expops_smk.codegen.prepare import generate_project
from expops_smk.codegen.command_comments import comment_literal, shell_block
from expops_smk.codegen.overriding import parameters_comment

CONFIG = """\
scripts: {main: src/main.py}
reproducibility: {random_seed: 3}
experiment:
  parameters: {lr: 0.1, unused: 1}
  pipeline:
    process_adjlist: |
      load split
      split seeds
      seeds train-model
      train-model agg
    processes:
      - name: load
      - {name: split, data_parallelism: {size: PARTITIONS, data_name: frame}}
      - {name: seeds, seed_parallelism: {seeds: SEEDS}}
      - {name: train-model, code: train, parameters: {depth: 3}, retries: 2}
      - {name: agg, data_aggregation: true, seed_aggregation: true}
"""

MAIN = '''
def load():
    return {"frame": [1, 2, 3]}


def train(frame, lr, depth, random_seed):
    return {"model": (lr, depth)}


def agg(model):
    return {"models": model}
'''


def make(root: Path, partitions: int = 3, seeds: list[int] | None = None) -> Path:
    config = CONFIG.replace("PARTITIONS", str(partitions)).replace("SEEDS", str(seeds or [41, 42]))
    return write_project(root, config, MAIN, script_path="src/main.py")


def rules_of(root: Path) -> dict[str, str]:
    text = (root / RULES_FILE).read_text()
    blocks = re.split(r"^(?=(?:rule|checkpoint) )", text, flags=re.MULTILINE)[1:]
    return {re.match(r"(?:rule|checkpoint) (\w+):", block).group(1): block for block in blocks}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = make(tmp_path / "project")
    generate_project(root)
    return root


def test_standard_layout(project: Path) -> None:
    for relative in (SNAKEFILE, RULES_FILE, PLAN_FILE):
        assert (project / relative).is_file()
    assert 'include: "rules/processes.smk"' in (project / SNAKEFILE).read_text()


def test_one_rule_per_process_with_literal_prefixes(project: Path) -> None:
    rules = rules_of(project)
    assert list(rules) == ["load", "split", "seeds", "train_model", "agg"]
    assert '"results/load/_outputs.json"' in rules["load"]
    assert 'expand("results/split/p{d1}/_outputs.json", d1=range(1, 4))' in rules["split"]
    assert '"results/seeds/{partition}/_outputs.json"' in rules["seeds"]
    assert '"results/train-model/{partition}/s{seed}/_outputs.json"' in rules["train_model"]
    assert ('train_model=expand("results/train-model/p{d1}/s{s1}/_outputs.json", d1=range(1, 4), s1=[41, 42])'
            in rules["agg"])
    assert "retries: 2" in rules["train_model"]


def test_every_rule_logs_per_job(project: Path) -> None:
    rules = rules_of(project)
    assert '"logs/load.log"' in rules["load"]
    assert '"logs/seeds/{partition}.log"' in rules["seeds"]
    assert '"logs/train-model/{partition}/s{seed}.log"' in rules["train_model"]


def test_shell_command(project: Path) -> None:
    shell = rules_of(project)["train_model"].split("shell:", 1)[1].strip().splitlines()[-1].strip()
    # A path relative to the project folder: `snakemake -p` prints a command that runs as is there.
    assert shell == ("+ 'PYTHONHASHSEED=0 .expops/bin/python -m expops_smk.runtime.launch runtime train-model "
                     "--partition={wildcards.partition} --seed={wildcards.seed} --log {log}'")
    assert "os.environ.update(EXPOPS_PYTHON=sys.executable)" in (project / SNAKEFILE).read_text()
    assert 'conda:\n        "../envs/expops-smk-runtime.yaml"' in rules_of(project)["train_model"]


def test_commands_name_code_hash_and_accepted_parameters(project: Path) -> None:
    spec = load_project(project).processes["train-model"]
    train = rules_of(project)["train_model"]
    assert f"'# code: code of train(): {spec.function.code_hash}\\n'" in train
    assert """+ parameters_comment('train-model', '{"depth": 3, "lr": 0.1}')""" in train  # not "unused": train does not take it
    assert parameters_comment("train-model", '{"depth": 3, "lr": 0.1}') == '# parameters: {{"depth": 3, "lr": 0.1}}\n'
    assert "random_seed" not in train  # inside a seed fan-out the branch seed replaces it
    assert "'# random_seed: reproducibility.random_seed=3\\n'" in rules_of(project)["load"]
    assert "'# fanout: data_name=frame size=3\\n'" in rules_of(project)["split"]
    assert "'# fanout: seeds=[41, 42]\\n'" in rules_of(project)["seeds"]
    assert "reads=reads_marker('train-model')," in train


@pytest.mark.parametrize("value", ["{name}", "a\nrm -rf x", "}{", "\\n", "é", "'\""])
def test_no_value_becomes_part_of_the_command(value: str) -> None:
    """Snakemake formats the command (braces) and bash runs it (a newline would end the comment)."""
    block = shell_block([comment_literal("parameters", value)], "'true'")
    command = eval("(" + block + ")")  # as Snakemake evaluates the directive
    formatted = command.format()  # Snakemake formats the command with the job's values; none named here
    assert formatted.count("\n") == 1 and formatted.startswith("# parameters: ") and formatted.endswith("\ntrue")


def test_wildcard_constraints(project: Path) -> None:
    snakefile = (project / SNAKEFILE).read_text()
    partition = re.search(r'partition=r"(.+)",', snakefile).group(1)
    seed = re.search(r'seed=r"(.+)",', snakefile).group(1)
    for value in ("p1", "p12", "p1-p2", "p3-p1-p2"):
        assert re.fullmatch(partition, value)
    for value in ("1", "p", "p1-", "p1-2", "p1/p2", "s1"):
        assert not re.fullmatch(partition, value)
    for value in ("41", "-2", "41-7", "-2-7", "41--7"):
        assert re.fullmatch(seed, value)
    for value in ("s41", "41-", "4 1", "41/7"):
        assert not re.fullmatch(seed, value)


def test_unchanged_regeneration_keeps_files_and_mtimes(project: Path) -> None:
    before = {path: path.stat().st_mtime_ns for path in (project / "workflow").rglob("*") if path.is_file()}
    time.sleep(0.01)
    assert not any(item.changed for item in generate_project(project))
    assert {path: path.stat().st_mtime_ns for path in before} == before


def test_a_parameter_change_rewrites_only_rules_and_plan(project: Path) -> None:
    config = project / "configs/project_config.yaml"
    config.write_text(config.read_text().replace("depth: 3", "depth: 4"))
    changed = {item.path.relative_to(project).as_posix() for item in generate_project(project) if item.changed}
    assert changed == {RULES_FILE, PLAN_FILE}


def test_write_if_changed(tmp_path: Path) -> None:
    path = tmp_path / "deep/file.txt"
    assert write_if_changed(path, "a") is True
    assert write_if_changed(path, "a") is False
    assert write_if_changed(path, "b") is True and path.read_text() == "b"
    assert [p.name for p in path.parent.iterdir()] == ["file.txt"]  # no temp file left behind


def test_generation_is_linear_in_processes_not_nodes(tmp_path: Path) -> None:
    small = make(tmp_path / "small", partitions=2, seeds=[1, 2])
    large = make(tmp_path / "large", partitions=100, seeds=list(range(100)))
    assert build_graph(load_project(large)).node_count() > 10_000
    started = time.perf_counter()
    generate_project(large)
    assert time.perf_counter() - started < 1.0
    generate_project(small)
    small_lines = (small / RULES_FILE).read_text().splitlines()
    large_lines = (large / RULES_FILE).read_text().splitlines()
    assert len(small_lines) == len(large_lines)
    text = (large / RULES_FILE).read_text()
    assert "range(1, 101)" in text and "p100" not in text  # partitions are a range, never listed


def test_no_generated_rule_has_params(project: Path) -> None:
    """Snakemake serializes every up-to-date job's params in every run, importing pandas for it."""
    for path in (project / "workflow").rglob("*"):
        if path.is_file() and path.suffix in ("", ".smk"):
            assert not re.search(r"^\s*params:", path.read_text(encoding="utf-8"), re.MULTILINE), path
