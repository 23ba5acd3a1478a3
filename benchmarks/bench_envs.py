"""E1, E2: venv environments (issue 17): creating one, and the first job that runs in a cached one.

E1 creates an environment whose requirements file names one small local wheel (no network:
``--no-index --find-links``), as expops-smk does (``python -m venv --without-pip``, the running
pip installing into it with ``--python``, or uv when installed), against what ExpOps' VenvManager
does per environment: ``python -m venv`` (pip bootstrapped into it by ensurepip), then that pip
installing the requirements. ExpOps then also installs itself with its dependencies, which needs
PyPI; the baseline leaves that out, so it is the cheaper side's lower bound.

E2 runs a one-process project cold (warm start off, fresh results) whose process uses a cached
environment, against the same project without an ``environment:`` section: the start-up cost of
running in an environment (report only; a venv's interpreter starts like the base one).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from common import (EXPOPS_SMK, PYTHON, SNAKEMAKE, Row, Section, Settings, fresh_dir, interleave, median,
                    run_timed, spread, warm_start_off)

WHEEL = ("envbench_pkg", "1.0")
SCRIPT = "import envbench_pkg\n\n\ndef probe():\n    return {'version': envbench_pkg.VERSION}\n"


def write_wheel(folder: Path) -> None:
    name, version = WHEEL
    dist = f"{name}-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{name}.py", f"VERSION = {version!r}\n")
        wheel.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\n"
                                                  "Tag: py3-none-any\n")
        wheel.writestr(f"{dist}.dist-info/RECORD", "")


def write_requirements(root: Path) -> Path:
    write_wheel(root / "wheels")
    path = root / "requirements.txt"
    path.write_text(f"--no-index\n--find-links wheels\n{WHEEL[0]}=={WHEEL[1]}\n", encoding="utf-8")
    return path


def ours(root: Path, requirements: Path, counter: list[int]) -> float:
    from expops_smk.store.environments import ensure_venv

    counter[0] += 1
    start = time.perf_counter()
    ensure_venv(root, "bench", f"bench{counter[0]}", [requirements])
    return time.perf_counter() - start


def expops_like(root: Path, requirements: Path, counter: list[int]) -> float:
    counter[0] += 1
    target = root / f"expops-env{counter[0]}"
    start = time.perf_counter()
    subprocess.run([PYTHON, "-m", "venv", str(target)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([str(target / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "-r",
                    str(requirements)], cwd=root, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def write_project(root: Path, with_environment: bool) -> Path:
    write_requirements(root)
    lines = ["scripts: {model: src/model.py}"]
    if with_environment:
        lines.append("environment: {bench: {venv: [requirements.txt]}}")
    lines.append("experiment: {pipeline: {processes: [{name: probe}]}}")
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "project_config.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "src").mkdir(exist_ok=True)
    # Without the environment, the package comes from the project folder (PYTHONPATH-free: the script's).
    (root / "src" / "model.py").write_text(SCRIPT if with_environment else
                                           SCRIPT.replace("import envbench_pkg", "import types\nenvbench_pkg = "
                                                          "types.SimpleNamespace(VERSION='1.0')"), encoding="utf-8")
    run_timed([EXPOPS_SMK, "generate", "."], root)
    run_timed([SNAKEMAKE, "--cores", "1"], root, env=warm_start_off())  # creates the environment once
    return root


def first_job(root: Path) -> float:
    shutil.rmtree(root / "results", ignore_errors=True)
    shutil.rmtree(root / ".expops" / "runs", ignore_errors=True)
    return run_timed([SNAKEMAKE, "--cores", "1", "--forceall"], root, env=warm_start_off()).seconds


def run(settings: Settings, selected: set[str]) -> Section:
    section = Section()
    runs = settings.runs(1 if settings.quick else 3)
    root = fresh_dir(settings.workdir / "create")
    requirements = write_requirements(root)
    counters = ([0], [0])
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    samples = interleave({"ours": lambda: ours(root, requirements, counters[0]),
                          "expops": lambda: expops_like(root, requirements, counters[1])}, runs)
    a, b = median(samples["ours"]), median(samples["expops"])
    section.rows.append(Row("E1", "create a venv environment (one local wheel)", f"{a:.2f} s", f"{b:.2f} s", a / b,
                            note="baseline: venv + pip as ExpOps does, without installing ExpOps itself"))
    with_env = write_project(fresh_dir(settings.workdir / "with-env"), True)
    without = write_project(fresh_dir(settings.workdir / "without-env"), False)
    jobs = interleave({"env": lambda: first_job(with_env), "base": lambda: first_job(without)}, runs)
    c, d = median(jobs["env"]), median(jobs["base"])
    section.rows.append(Row("E2", "one-job run, job in a cached environment (cold start)", f"{c:.2f} s",
                            f"{d:.2f} s", c / d, note="baseline: the same job without environment"))
    section.details.append("**E1/E2 (environments)**: " + "; ".join(
        f"{name}: {spread(values)}" for name, values in {**samples, **jobs}.items()))
    return section
