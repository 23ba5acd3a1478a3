"""End to end: Snakemake habits on a generated workflow (issue 16): ``--config`` overrides
parameters, user files survive generation, bookkeeping options do not count as code.

One small project (load -> train over two seeds) is run once; each scenario starts from a copy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e import CALLS_HELPER, EXPOPS_SMK, Project
from projects import write_project

pytestmark = pytest.mark.e2e

CONFIG = """\
scripts: {main: src/main.py}
experiment:
  parameters: {offset: 0}
  pipeline:
    process_adjlist: |
      load seeds
      seeds train
    processes:
      - name: load
      - {name: seeds, seed_parallelism: {seeds: [1, 2]}}
      - {name: train, parameters: {lr: 0.5}}
"""

MAIN = CALLS_HELPER + '''

def load(offset):
    called("load")
    return {"data": [1.0 + offset, 2.0 + offset]}


def train(data, lr, random_seed):
    called(f"train {random_seed}")
    return {"score": sum(data) * lr + random_seed}
'''

ALL = {"load", "seeds", "train S1", "train S2"}
TRAIN = {"train S1", "train S2"}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(write_project(tmp_path_factory.mktemp("habits") / "project", CONFIG, MAIN,
                                    script_path="src/main.py"))
    first = project.run()
    assert first.executed == ALL, first.describe()
    return project


@pytest.fixture
def project(baseline: Project, tmp_path: Path) -> Project:
    return baseline.copy(tmp_path / "project")


def status(project: Project) -> str:
    return project.command([EXPOPS_SMK, "status", "."]).output


def test_config_override_runs_only_the_process_that_takes_it_and_removing_it_restores(project: Project) -> None:
    run = project.snakemake("--config", "lr=0.25")
    assert run.executed == TRAIN and sorted(run.calls) == ["train 1", "train 2"], run.describe()
    assert project.value("train", "score", seed="1") == 3.0 * 0.25 + 1
    assert "train S1: up to date" in status(project) and "lr=0.25" in status(project)
    project.command([EXPOPS_SMK, "report", ".", "-o", "report.html"])
    assert "&quot;lr&quot;: 0.25" in (project.root / "report.html").read_text(encoding="utf-8")
    assert project.snakemake("--config", "lr=0.25").nothing_to_do
    back = project.snakemake()
    assert back.restored == TRAIN and back.calls == [], back.describe()
    assert project.value("train", "score", seed="1") == 3.0 * 0.5 + 1
    assert "lr" not in status(project)


def test_config_forms_global_per_process_and_configfile(project: Project) -> None:
    glob = project.snakemake("--config", "parameters={offset: 1}")
    assert glob.executed == ALL and "load" in glob.calls, glob.describe()
    (project.root / "override.yaml").write_text("processes:\n  train: {lr: 2}\n", encoding="utf-8")
    per_file = project.snakemake("--configfile", "override.yaml")
    assert per_file.restored == {"load", "seeds"} and per_file.executed == TRAIN, per_file.describe()
    assert project.value("train", "score", seed="2") == 3.0 * 2 + 2
    assert project.snakemake("--config", "train={lr: 2}").nothing_to_do


def test_unused_config_keys_warn_in_one_line_each(project: Project) -> None:
    run = project.snakemake("-n", "--config", "lrr=1", "parameters={nothing: 2}", "trian={lr: 1}")
    lines = [line for line in run.output.splitlines() if "warning" in line]
    assert any("--config lrr: not used by this workflow (did you mean 'lr'?)" in line for line in lines), run.output
    assert any("no process takes parameter 'nothing'" in line for line in lines)
    assert any("--config trian" in line and "did you mean 'train'" in line for line in lines)
    assert run.nothing_to_do


CUSTOM_RULES = '''\
rule hello:
    """A user's own rule, beside the generated ones."""
    input: "results/train/s1/_outputs.json"
    output: "hello.txt"
    shell: "echo hello > {output}"
'''


def test_user_rules_and_profile_keys_survive_regeneration(project: Project) -> None:
    custom = project.root / "workflow/rules/custom.smk"
    custom.write_text(CUSTOM_RULES, encoding="utf-8")
    user_profile = project.root / "workflow/profiles/default/user.yaml"
    user_profile.write_text("keep-going: true\nrerun-incomplete: false\n", encoding="utf-8")
    project.edit("configs/project_config.yaml", "parameters: {lr: 0.5}", "parameters: {lr: 0.25}")
    run = project.snakemake("hello.txt")
    assert (project.root / "hello.txt").read_text() == "hello\n" and run.executed == {"train S1"}, run.describe()
    assert custom.read_text(encoding="utf-8") == CUSTOM_RULES
    import yaml

    profile = yaml.safe_load((project.root / "workflow/profiles/default/config.yaml").read_text(encoding="utf-8"))
    assert profile["keep-going"] is True and profile["rerun-incomplete"] is False and profile["cores"] == "all"
    project.edit("configs/project_config.yaml", "parameters: {lr: 0.25}", "parameters: {lr: 0.5}")
    project.generate()
    assert custom.read_text(encoding="utf-8") == CUSTOM_RULES
    assert "keep-going: true" in (project.root / "workflow/profiles/default/config.yaml").read_text(encoding="utf-8")


def test_a_generated_file_edited_by_hand_is_never_overwritten(project: Project) -> None:
    snakefile = project.root / "workflow/Snakefile"
    edited = snakefile.read_text(encoding="utf-8") + "\nprint('mine')\n"
    snakefile.write_text(edited, encoding="utf-8")
    project.edit("configs/project_config.yaml", "parameters: {lr: 0.5}", "parameters: {lr: 0.25}")
    message = ("workflow/Snakefile was edited by hand; move your changes to a file of your own in workflow/rules/ "
               "(every *.smk there is included), or delete workflow/Snakefile to regenerate it")
    for run in (project.generate(check=False), project.snakemake("-n", check=False)):
        assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.output, run.describe()
    assert snakefile.read_text(encoding="utf-8") == edited
    profile = project.root / "workflow/profiles/default/config.yaml"
    profile.write_text(profile.read_text(encoding="utf-8") + "keep-going: true\n", encoding="utf-8")
    snakefile.unlink()
    run = project.generate(check=False)
    assert run.returncode == 2 and "workflow/profiles/default/config.yaml was edited by hand; put your settings in " \
        "workflow/profiles/default/user.yaml (merged into it)" in run.stderr, run.describe()
    profile.unlink()
    project.generate()
    assert project.snakemake().executed == TRAIN


def test_switching_bookkeeping_options_reschedules_nothing(project: Project) -> None:
    config = "configs/project_config.yaml"
    project.edit(config, "scripts: {main: src/main.py}\n",
                 "scripts: {main: src/main.py}\nexecution: {benchmark: true, warm_start: false, resources: {mem_mb: 900}}\n")
    project.edit(config, "{name: train, parameters: {lr: 0.5}}", "{name: train, parameters: {lr: 0.5}, retries: 2}")
    assert project.snakemake("-n").nothing_to_do
    assert 'os.environ.update(EXPOPS_SMK_WARM="0")' in (project.root / "workflow/Snakefile").read_text(encoding="utf-8")
    forced = project.snakemake("-R", "train")
    assert forced.executed == TRAIN and (project.root / "benchmarks/train/s1.tsv").is_file(), forced.describe()
    project.edit(config, "benchmark: true, warm_start: false, ", "")
    assert project.snakemake("-n").nothing_to_do


def test_run_shows_a_compact_view_and_snakemake_keeps_the_full_log(project: Project) -> None:
    project.edit("src/main.py", 'called(f"train {random_seed}")',
                 'called(f"train {random_seed}")\n    if random_seed == 2:\n        raise ValueError("bad seed")')
    failed = project.command([EXPOPS_SMK, "run", ".", "--cores", "2"], check=False)
    lines = failed.stdout.splitlines()
    assert failed.returncode != 0 and "\x1b[" not in failed.output, failed.describe()
    assert "FAILED node 'train S2': the process function raised ValueError: bad seed (traceback in logs/train/s2.log)" \
        in lines, failed.describe()
    assert lines[-1].startswith("done 1/2 jobs in ") and ", 1 failed · full log: .snakemake/log/" in lines[-1]
    assert len(failed.output.splitlines()) < 15  # instead of Snakemake's ~100 lines
    log = project.root / lines[-1].split("full log: ")[1]
    assert "Error in rule train:" in log.read_text(encoding="utf-8") and "Finished jobid" in log.read_text(encoding="utf-8")
    project.edit("src/main.py", "    if random_seed == 2:\n        raise ValueError(\"bad seed\")\n", "")
    fixed = project.command([EXPOPS_SMK, "run", ".", "--cores", "2"])
    assert fixed.stdout.splitlines()[-1].startswith("done 2/2 jobs in "), fixed.describe()
    again = project.command([EXPOPS_SMK, "run", "."])
    assert again.stdout.splitlines()[-1] == "Nothing to be done: every node is up to date."


def test_summary_and_delete_all_output_do_what_the_readme_says(project: Project) -> None:
    """README ("What re-runs"): --summary sees declared outputs only, one manifest per node;
    the artifacts are listed in the manifests; --delete-all-output removes only the manifests, and the
    next run restores every node from the run cache (`expops-smk clean` removing the rest is tested in
    test_metrics_report)."""
    summary = project.snakemake("--summary").stdout.splitlines()
    files = sorted(line.split("\t")[0] for line in summary[1:] if line.strip())
    assert files == ["results/load/_outputs.json", "results/seeds/_outputs.json",
                     "results/train/s1/_outputs.json", "results/train/s2/_outputs.json"], summary
    assert all("\tok\t" in line for line in summary[1:] if line.strip())
    artifacts = sorted(project.root.glob("results/**/*.p*"))
    assert artifacts and not any(str(path.relative_to(project.root)) in files for path in artifacts)
    project.snakemake("--delete-all-output")
    assert not list(project.root.glob("results/**/_outputs.json")) and all(path.exists() for path in artifacts)
    again = project.snakemake()
    assert again.restored == ALL and again.calls == [], again.describe()
