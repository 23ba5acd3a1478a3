"""ExpOps ``environment:`` sections: per-process virtualenvs, their run-key digest, conda files, lint.

The end-to-end test builds two tiny pure-Python wheels (no network: pip installs them with
``--no-index --find-links``), gives each environment a different one, and checks which job could
import which, and with which interpreter it ran.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from e2e import EXPOPS_SMK, REPO, SNAKEMAKE, Project
from expops_smk.config.project import load_project
from expops_smk.errors import ExpopsError
from expops_smk.store.environments import ensure_venv, environment_states, remove_environments
from projects import pipeline, write_project

SCRIPT = '''
import importlib.util
import sys

def probe(name):
    called(name)
    return {"python": sys.executable,
            "alpha": importlib.util.find_spec("envpkg_alpha") is not None,
            "beta": importlib.util.find_spec("envpkg_beta") is not None,
            "version": __import__("envpkg_alpha").VERSION if importlib.util.find_spec("envpkg_alpha") else None}

def load(**kwargs):
    return probe("load")

def train(**kwargs):
    return probe("train")

def report(**kwargs):
    return probe("report")
'''


def write_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel of module ``name`` holding ``VERSION``."""
    dist = f"{name}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}.py", f"VERSION = {version!r}\n")
        wheel.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                  "Tag: py3-none-any\n")
        wheel.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def requirements(*lines: str) -> str:
    return "--no-index\n--find-links wheels\n" + "".join(f"{line}\n" for line in lines)


def two_env_project(root: Path) -> Project:
    from e2e import CALLS_HELPER

    write_wheel(root / "wheels", "envpkg_alpha", "1.0")
    write_wheel(root / "wheels", "envpkg_alpha", "2.0")
    write_wheel(root / "wheels", "envpkg_beta", "1.0")
    config = pipeline(
        [{"name": "load"}, {"name": "train"}, {"name": "report", "environment": "reporting"}],
        "load train\nreport",  # report is independent: the requirements edit changes load's outputs
        environment={"main": {"venv": ["requirements.txt"]}, "reporting": {"venv": ["requirements-report.txt"]}})
    write_project(root, config, CALLS_HELPER + SCRIPT, files={
        "requirements.txt": requirements("envpkg_alpha==1.0"),
        "requirements-report.txt": requirements("envpkg_beta==1.0"),
    })
    return Project(root)


@pytest.mark.e2e
def test_two_environments_end_to_end(tmp_path: Path) -> None:
    project = two_env_project(tmp_path / "project")
    first = project.run()
    assert sorted(first.calls) == ["load", "report", "train"], first.describe()
    envs = tmp_path / "project" / ".expops" / "envs"
    created = sorted(p.name for p in envs.iterdir() if p.is_dir())
    assert len(created) == 2
    load, report = project.value("load", "python"), project.value("report", "python")
    # Each job ran its environment's interpreter; the package of one environment only there.
    assert Path(load).parent.parent.parent == envs and Path(report).parent.parent.parent == envs
    assert Path(load).parent.parent != Path(report).parent.parent
    assert project.value("load", "alpha") and not project.value("load", "beta")
    assert project.value("report", "beta") and not project.value("report", "alpha")
    assert project.value("train", "version") == "1.0"

    second = project.snakemake()
    assert second.nothing_to_do and not second.calls, second.describe()
    assert sorted(p.name for p in envs.iterdir() if p.is_dir()) == created

    # Editing one environment's requirements re-runs exactly its processes, in a new environment.
    project.edit("requirements.txt", "envpkg_alpha==1.0", "envpkg_alpha==2.0")
    status = project.command([EXPOPS_SMK, "status", "."], check=False)
    assert "environment changed" in status.output, status.output
    third = project.snakemake()
    assert sorted(third.calls) == ["load", "train"], third.describe()
    assert project.value("train", "version") == "2.0"
    assert len([p for p in envs.iterdir() if p.is_dir()]) == 3

    listing = project.command([EXPOPS_SMK, "envs", "."])
    assert re.search(r"main\s+venv\s+created", listing.output) and "unreferenced" in listing.output, listing.output
    project.command([EXPOPS_SMK, "gc", "."])
    assert len([p for p in envs.iterdir() if p.is_dir()]) == 2

    # Every generated rule names a conda environment: the workflow lints clean.
    lint = project.command([SNAKEMAKE, "--lint"], check=False)
    assert lint.returncode == 0 and "Lints for rule" not in lint.output, lint.output

    assert_printed_command_runs(project, "report")

    cleaned = project.command([EXPOPS_SMK, "clean", "."])
    assert "and 2 environments" in cleaned.output and not envs.exists(), cleaned.output


def assert_printed_command_runs(project: Project, process: str) -> None:
    """The command `snakemake -n -p` prints for ``process``'s job, pasted into bash in the project
    folder (no EXPOPS_PYTHON set), runs the job."""
    printed = project.command([SNAKEMAKE, "--cores", "1", "--forcerun", process, "-n", "-p"]).output
    commands = [line.strip().removeprefix("Shell command:").strip() for line in printed.splitlines()
                if f"runtime {process} " in line]
    assert commands, printed
    environ = {k: v for k, v in os.environ.items() if k != "EXPOPS_PYTHON"}
    environ["PYTHONPATH"] = str(REPO)
    pasted = subprocess.run(["bash", "-c", commands[0]], cwd=project.root, capture_output=True, text=True, env=environ)
    assert pasted.returncode == 0, (commands[0], pasted.stderr)
    assert project.run_record(process)["outcome"] in {"executed", "restored"}


@pytest.mark.e2e
def test_failing_requirement_is_one_line(tmp_path: Path) -> None:
    project = two_env_project(tmp_path / "project")
    project.edit("requirements-report.txt", "envpkg_beta==1.0", "envpkg_beta==9.9")
    run = project.run(check=False)
    assert run.returncode != 0
    line = next(line for line in run.output.splitlines() if line.startswith("expops-smk: environment"))
    assert "'reporting'" in line and "requirements-report.txt" in line and ".expops/envs/" in line, run.output
    assert "Traceback" not in run.output
    listing = project.command([EXPOPS_SMK, "envs", "."]).output
    assert re.search(r"reporting\s+venv\s+failed", listing) and re.search(r"main\s+venv\s+created", listing), listing
    logs = list((project.root / ".expops/envs").glob("*.log"))
    assert any("envpkg_beta" in log.read_text() for log in logs)
    assert not [p for p in (project.root / ".expops/envs").iterdir() if p.name.startswith(".building")]


def _create(root: str, wheel_dir: str, out: str) -> None:
    created = ensure_venv(Path(root), "main", "d1", [Path(root) / "requirements.txt"])
    Path(out).write_text(str(created))


def test_concurrent_creation_creates_once(tmp_path: Path) -> None:
    write_wheel(tmp_path / "wheels", "envpkg_alpha", "1.0")
    (tmp_path / "requirements.txt").write_text(requirements("envpkg_alpha==1.0"))
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_create, args=(str(tmp_path), "", str(tmp_path / f"out{i}"))) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
    assert sorted((tmp_path / f"out{i}").read_text() for i in range(2)) == ["False", "True"]
    python = tmp_path / ".expops/envs/d1/bin/python"
    found = subprocess.run([str(python), "-c", "import envpkg_alpha, expops_smk; print(envpkg_alpha.VERSION)"],
                           capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "1.0"
    assert [s.state for s in environment_states(tmp_path, ["d1", "d2"])] == ["created", "missing"]
    removed, freed = remove_environments(tmp_path, keep=set(), dry_run=True)
    assert (tmp_path / ".expops/envs/d1") in removed and freed > 0 and python.exists()


def test_unknown_environment_is_one_line_with_a_hint(make_project) -> None:
    root = make_project(pipeline([{"name": "load", "environment": "reportng"}],
                                 environment={"reporting": {"venv": ["req.txt"]}}),
                        "def load():\n    return {}\n", files={"req.txt": "\n"})
    with pytest.raises(ExpopsError) as error:
        load_project(root)
    message = str(error.value)
    assert "\n" not in message and "load" in message and "environment" in message
    assert "did you mean 'reporting'" in message


def test_requirements_digest_and_default_environment(make_project) -> None:
    config = pipeline([{"name": "load"}, {"name": "show", "environment": "b"}], "load show",
                      environment={"a": {"venv": ["a.txt"]}, "b": {"conda": ["b.yml"]}})
    root = make_project(config, "def load():\n    return {}\n\ndef show():\n    return {}\n",
                        files={"a.txt": "x==1\n", "b.yml": "dependencies: [numpy]\n"})
    project = load_project(root)
    assert project.processes["load"].environment == "a"  # ExpOps: the first environment is the default
    assert project.processes["show"].environment == "b"
    before = project.environments["a"].digest
    (root / "a.txt").write_text("x==2\n")
    assert load_project(root).environments["a"].digest != before
    assert load_project(root).environments["b"].digest == project.environments["b"].digest


@pytest.mark.e2e
def test_conda_environment_files_are_generated_and_lint_clean(tmp_path: Path) -> None:
    config = pipeline([{"name": "load", "environment": "plots"}, {"name": "train"}], "load train",
                      environment={"plots": {"conda": ["envs/plots.yml"]}})
    root = write_project(tmp_path / "project", config, "def load():\n    return {}\n\ndef train(**kw):\n    return {}\n",
                         files={"envs/plots.yml": "channels: [conda-forge]\ndependencies:\n  - numpy\n"})
    project = Project(root)
    project.generate()
    rules = (root / "workflow/rules/processes.smk").read_text()
    assert rules.count('conda:\n        "../envs/plots.yaml"') == 2, rules  # train runs in the default: plots
    plots = yaml.safe_load((root / "workflow/envs/plots.yaml").read_text())
    assert "numpy" in plots["dependencies"]
    pip = next(item["pip"] for item in plots["dependencies"] if isinstance(item, dict))
    assert any(line.startswith("expops-smk") for line in pip) and any(line.startswith("pandas==") for line in pip)
    lint = project.command([SNAKEMAKE, "--lint"], check=False)
    assert lint.returncode == 0 and "Lints for rule" not in lint.output, lint.output
    project.snakemake()  # conda is not deployed without --software-deployment-method conda: runs as before
    assert_printed_command_runs(project, "train")  # .expops/bin/python: the launcher of Snakemake's Python


@pytest.mark.e2e
def test_example_project_lints_clean(tmp_path: Path) -> None:
    root = tmp_path / "example"
    shutil.copytree(REPO / "example_project", root, ignore=shutil.ignore_patterns(
        "results", "logs", ".expops", ".snakemake", "workflow"))
    project = Project(root)
    project.generate()
    lint = project.command([SNAKEMAKE, "--lint"], check=False)
    assert lint.returncode == 0 and "Lints for rule" not in lint.output, lint.output
    runtime = yaml.safe_load((root / "workflow/envs/expops-smk-runtime.yaml").read_text())
    pip = next(item["pip"] for item in runtime["dependencies"] if isinstance(item, dict))
    # The running environment, pinned: expops-smk's dependencies and what the scripts import.
    assert any(line.startswith("scikit-learn==") for line in pip) and any(line.startswith("pyarrow==") for line in pip)


def test_rules_run_their_environments_python_and_name_it_in_their_command(make_project) -> None:
    from expops_smk.codegen.prepare import generate_project

    config = pipeline([{"name": "load", "environment": "plain"}, {"name": "train"}], "load train",
                      environment={"main": {"venv": ["a.txt"]}, "plain": {"conda": ["b.yml"]}})
    root = make_project(config, "def load():\n    return {}\n\ndef train(**kw):\n    return {}\n",
                        files={"a.txt": "x==1\n", "b.yml": "dependencies: [numpy]\n"})
    generate_project(root)
    digest = load_project(root).environments["main"].digest
    rules = (root / "workflow/rules/processes.smk").read_text()
    load_rule, train_rule = rules.split("rule load:")[1].split("rule train:")
    assert f"PYTHONHASHSEED=0 .expops/envs/{digest}/bin/python -m" in train_rule
    assert f"\"# environment: venv environment 'main' {digest}\\n\"" in train_rule
    assert 'conda:\n        "../envs/main.yaml"' in train_rule
    # A conda environment runs where Snakemake runs unless Snakemake deploys it.
    assert "PYTHONHASHSEED=0 .expops/bin/python -m" in load_rule and "../envs/plain.yaml" in load_rule
    main = yaml.safe_load((root / "workflow/envs/main.yaml").read_text())
    assert "x==1" in next(item["pip"] for item in main["dependencies"] if isinstance(item, dict))
    launcher = root / ".expops/bin/python"
    assert os.access(launcher, os.X_OK)
    version = subprocess.run([str(launcher), "-c", "import sys; print(sys.executable)"], capture_output=True,
                             text=True, env={k: v for k, v in os.environ.items() if k != "EXPOPS_PYTHON"})
    assert Path(version.stdout.strip()) == Path(sys.executable)


def test_launcher_quotes_an_interpreter_path_with_spaces_and_dollars(tmp_path: Path, monkeypatch) -> None:
    from expops_smk.codegen.prepare import write_python_launcher

    folder = tmp_path / 'odd "dir" $HOME `x`'
    folder.mkdir()
    (folder / "python").symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(folder / "python"))
    root = tmp_path / "project"
    root.mkdir()
    write_python_launcher(root)
    environ = {k: v for k, v in os.environ.items() if k != "EXPOPS_PYTHON"}
    done = subprocess.run([".expops/bin/python", "-c", "print('ran')"], cwd=root, capture_output=True, text=True,
                          env=environ)
    assert done.stdout == "ran\n", done.stderr


def test_uv_creates_the_environment_when_it_is_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With uv on the PATH, uv creates and fills the environment, with the same result as venv + pip
    (the other tests, without uv, check that path). uv comes from PyPI, as a user would install it."""
    tools = tmp_path / "tools"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                "--target", str(tools), "uv"], capture_output=True, text=True, timeout=600)
    if installed.returncode != 0:
        pytest.skip(f"uv could not be installed from PyPI: {installed.stderr.strip().splitlines()[-1:]}")
    uv = tools / "bin" / "uv"
    monkeypatch.setenv("PATH", f"{uv.parent}{os.pathsep}{os.environ['PATH']}")
    write_wheel(tmp_path / "wheels", "envpkg_alpha", "1.0")
    (tmp_path / "requirements.txt").write_text(requirements("envpkg_alpha==1.0"))
    assert ensure_venv(tmp_path, "main", "d1", [tmp_path / "requirements.txt"])
    log = (tmp_path / ".expops/envs/d1.log").read_text()
    assert f"$ {uv} venv" in log and f"$ {uv} pip install" in log, log
    python = tmp_path / ".expops/envs/d1/bin/python"
    found = subprocess.run([str(python), "-c", "import envpkg_alpha, expops_smk; print(envpkg_alpha.VERSION)"],
                           capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "1.0"
    assert not ensure_venv(tmp_path, "main", "d1", [tmp_path / "requirements.txt"])  # cached: nothing created


def test_an_envs_folder_linked_out_of_the_project_is_refused(tmp_path: Path) -> None:
    """A symlink at .expops/envs must not make the build (or its clean-up) happen elsewhere."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root = tmp_path / "project"
    (root / ".expops").mkdir(parents=True)
    (root / ".expops/envs").symlink_to(outside)
    (root / "requirements.txt").write_text("", encoding="utf-8")
    with pytest.raises(ExpopsError, match="envs"):
        ensure_venv(root, "main", "d1", [root / "requirements.txt"])
    assert list(outside.iterdir()) == []
