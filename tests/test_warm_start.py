"""Warm start: jobs forked from a per-project warm interpreter (``launch`` + ``warm_server``).

Unit tests for what the server preloads and how a server is named; then real launcher and server
processes: a forked job gives the cold job's results, its exit status and stderr, signals reach it,
it dies with its client or its server, a changed file retires the server, an unsafe preload makes
it refuse every job, and an idle server exits. Every project is run through real Snakemake as well
(the whole e2e suite goes through the launcher), here once warm against once cold.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from e2e import Project, _env
from projects import write_project
from reliability_projects import has_exited, stop_warm_processes, wait_for
from test_e2e_core import write_core

from expops_smk.layout import JOB_CLIENT, SERVER_LOG
from expops_smk.runtime.warm_client import server_name, warm_start_possible
from expops_smk.runtime.preload import modules_to_preload, project_scripts, top_level_imports
from expops_smk.codegen.prepare import generate_project

pytestmark = pytest.mark.skipif(not warm_start_possible({}), reason="warm start needs Linux")

CONFIG = """\
metadata: {name: warm}
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      make
      where
      fail
      sleepy
      vanish
    processes:
      - name: make
      - name: where
      - name: fail
      - name: sleepy
      - name: vanish
"""

SCRIPT = """\
import os
import time

import numpy as np
import pandas as pd
from sklearn import metrics


def make():
    return {"table": pd.DataFrame({"x": np.arange(5)}), "score": float(metrics.accuracy_score([1, 0], [1, 1]))}


def where():
    return {"cwd": os.getcwd(), "hash_seed": os.environ.get("PYTHONHASHSEED"), "hash": hash("expops")}


def fail():
    raise ValueError("boom")


def sleepy():
    time.sleep(120)
    return {}


def vanish():
    os._exit(0)
"""


# -- unit: what is preloaded, which server serves whom --------------------------------------------

def test_top_level_imports_are_those_run_when_the_module_loads() -> None:
    tree = ast.parse(textwrap.dedent("""\
        import a.b, c
        from d import e, f
        from . import local
        from .g import h
        try:
            import i
        except ImportError:
            import j
        if True:
            from k import *
        def later():
            import never
        class Later:
            import never_either
        """))
    assert sorted(top_level_imports(tree)) == ["a.b", "c", "d", "d.e", "d.f", "i", "j", "k"]


def test_preload_skips_project_modules_and_fork_unsafe_frameworks(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path / "p", CONFIG, SCRIPT.replace(
        "import os\n", "import os\nimport helpers\nimport torch\nfrom expops.core import process\nimport nonexistent_xyz\n"),
        script_path="src/main.py", files={"helpers.py": "X = 1\n"})
    monkeypatch.syspath_prepend(str(root))  # `helpers` importable, as it would be for a job
    generate_project(root)
    names = modules_to_preload(root.resolve(), project_scripts(root.resolve()))
    assert {"numpy", "pandas", "sklearn", "sklearn.metrics", "os", "time", "expops_smk.runtime.node_job"} <= set(names)
    assert not {"helpers", "torch", "expops.core", "nonexistent_xyz"} & set(names)


def test_a_server_serves_only_jobs_with_its_directory_and_environment(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = server_name()
    assert server_name() == first
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert server_name() != first
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert server_name() == first
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    assert server_name() != first


@pytest.mark.parametrize("environ, possible", [
    ({}, True), ({"EXPOPS_SMK_WARM": "0"}, False), ({"EXPOPS_SMK_WARM": "1"}, True),
    ({"SLURM_JOB_ID": "17"}, False), ({"PBS_JOBID": "3.server"}, False),
])
def test_warm_start_is_off_when_disabled_and_in_cluster_jobs(environ: dict[str, str], possible: bool) -> None:
    assert warm_start_possible(environ) is possible


# -- real launcher and server processes -----------------------------------------------------------

class Warm:
    """A generated project whose nodes are launched directly, as Snakemake's shell would."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def start(self, process: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-S", JOB_CLIENT, "runtime", process,  # as the rules do
                                 "--log", f"logs/{process}.log"], cwd=self.root, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def launch(self, process: str) -> subprocess.CompletedProcess[str]:
        job = self.start(process)
        stdout, stderr = job.communicate(timeout=120)
        return subprocess.CompletedProcess(job.args, job.returncode, stdout, stderr)

    def job_log(self, process: str) -> str:
        path = self.root / "logs" / f"{process}.log"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def forked(self, process: str) -> bool:
        return "forked from the warm interpreter" in self.job_log(process)

    def restored_in_server(self, process: str) -> bool:
        """Restored by the server in its own process, no child forked (``runtime.served_restore``)."""
        return "restored by the warm interpreter" in self.job_log(process)

    def server_log(self) -> str:
        path = self.root / SERVER_LOG
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def servers(self) -> list[int]:
        """Pids of the servers that started serving, oldest first."""
        return [int(pid) for pid in re.findall(r"pid (\d+): serving", self.server_log())]

    def wait_for_server(self, count: int = 1) -> int:
        assert wait_for(lambda: len(self.servers()) >= count, 60)
        return self.servers()[count - 1]

    def child_of(self, process: str) -> int:
        """Pid of the node the server forked for ``process`` (the last one)."""
        assert wait_for(lambda: f"for runtime {process} " in self.server_log(), 30)
        return int(re.findall(rf"forked (\d+) for runtime {process} ", self.server_log())[-1])


@pytest.fixture
def warm(tmp_path: Path) -> Warm:
    """The project with a running server (started by a first, cold job) and ten idle seconds."""
    root = write_project(tmp_path / "project", CONFIG, SCRIPT, script_path="src/main.py")
    generate_project(root)
    env = {**_env(), "PYTHONHASHSEED": "0", "EXPOPS_SMK_WARM_IDLE": "10"}
    project = Warm(root, env)
    first = project.launch("make")
    assert first.returncode == 0, first.stderr
    assert not project.forked("make")  # no server yet: this job ran cold and started one
    project.wait_for_server()
    yield project
    stop_warm_processes(root)


def test_a_forked_job_gives_the_cold_result(warm: Warm) -> None:
    cold_manifest = (warm.root / "results" / "make" / "_outputs.json").read_text()
    done = warm.launch("make")  # its run cache entry is there: the server restores it itself
    assert done.returncode == 0, done.stderr
    assert warm.restored_in_server("make")
    assert (warm.root / "results" / "make" / "_outputs.json").read_text() == cold_manifest
    where = warm.launch("where")
    assert where.returncode == 0 and warm.forked("where")
    results = Project(warm.root)
    assert results.value("where", "cwd") == str(warm.root)
    assert results.value("where", "hash_seed") == "0"
    cold_hash = subprocess.run([sys.executable, "-c", "print(hash('expops'))"], env={"PYTHONHASHSEED": "0"},
                               capture_output=True, text=True, check=True).stdout
    assert results.value("where", "hash") == int(cold_hash)  # the server's hash seed is the jobs' one


def test_exit_status_and_error_line_come_from_the_forked_job(warm: Warm) -> None:
    failed = warm.launch("fail")
    assert warm.forked("fail")
    assert failed.returncode == 1
    assert failed.stderr == ("expops-smk: node 'fail': the process function raised ValueError: boom "
                             "(traceback in logs/fail.log)\n")
    assert 'raise ValueError("boom")' in warm.job_log("fail")


def test_os_exit_in_a_forked_job_is_reported_even_with_status_0(warm: Warm) -> None:
    """A forked job that never returns to the runtime is reported by its client, as a cold one is."""
    vanished = warm.launch("vanish")
    assert warm.forked("vanish")
    assert vanished.returncode == 1
    assert vanished.stderr.splitlines() == [
        "expops-smk: node 'vanish': exited with status 0 without reporting (log: logs/vanish.log)"]
    assert not (warm.root / "results/vanish/_outputs.json").exists()
    assert warm.launch("where").returncode == 0  # a job that reports is not affected


def test_signals_reach_the_forked_job(warm: Warm) -> None:
    job = warm.start("sleepy")
    child = warm.child_of("sleepy")
    assert wait_for(lambda: "calling sleepy" in warm.job_log("sleepy"), 30)
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=30) == 128 + signal.SIGTERM
    assert wait_for(lambda: has_exited(child), 10)
    assert warm.launch("where").returncode == 0 and warm.forked("where")  # the server serves on


def test_a_job_dies_with_its_client(warm: Warm) -> None:
    job = warm.start("sleepy")
    child = warm.child_of("sleepy")
    job.kill()
    job.wait(timeout=30)
    assert wait_for(lambda: has_exited(child), 10)


def test_a_job_dies_with_its_server_and_the_client_says_so(warm: Warm) -> None:
    job = warm.start("sleepy")
    child = warm.child_of("sleepy")
    os.kill(warm.servers()[0], signal.SIGKILL)
    _, stderr = job.communicate(timeout=30)
    assert job.returncode == 1
    assert stderr.startswith("expops-smk: node 'sleepy': the warm interpreter stopped while running this job") and stderr.count("\n") == 1
    assert wait_for(lambda: has_exited(child), 10)


def test_a_forked_job_killed_by_a_signal_is_reported_in_one_line(warm: Warm) -> None:
    job = warm.start("sleepy")
    os.kill(warm.child_of("sleepy"), signal.SIGSEGV)
    _, stderr = job.communicate(timeout=30)
    assert job.returncode == 128 + signal.SIGSEGV
    assert stderr.splitlines() == ["expops-smk: node 'sleepy': killed by SIGSEGV (log: logs/sleepy.log)"]
    assert not (warm.root / "results/sleepy/_outputs.json").exists()


def test_an_edited_script_retires_the_server(warm: Warm) -> None:
    first = warm.servers()[0]
    script = warm.root / "src" / "main.py"
    script.write_text(script.read_text() + "\n# edited\n")
    os.utime(script, ns=(time.time_ns(), time.time_ns() + 10_000_000_000))
    done = warm.launch("where")
    assert done.returncode == 0 and not warm.forked("where")  # refused: ran cold, started a new server
    assert "refusing a job: stale" in warm.server_log()
    second = warm.wait_for_server(2)
    assert second != first
    assert wait_for(lambda: has_exited(first), 10)
    assert f"pid {first}: exiting: replaced, its last job is done" in warm.server_log()
    assert warm.launch("where").returncode == 0 and warm.restored_in_server("where")  # the cold job recorded it
    assert re.findall(r"pid (\d+): restored runtime where", warm.server_log())[-1] == str(second)


def test_an_idle_server_exits(warm: Warm) -> None:
    server = warm.servers()[0]
    assert wait_for(lambda: has_exited(server), 30)
    assert "exiting: idle" in warm.server_log()


def test_a_server_whose_preload_starts_a_thread_refuses_every_job(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "threaded_lib.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n")
    root = write_project(tmp_path / "project", CONFIG, "import threaded_lib\n" + SCRIPT, script_path="src/main.py")
    generate_project(root)
    env = _env()
    env.update(PYTHONHASHSEED="0", EXPOPS_SMK_WARM_IDLE="10", PYTHONPATH=f"{site}{os.pathsep}{env['PYTHONPATH']}")
    project = Warm(root, env)
    try:
        assert project.launch("make").returncode == 0
        project.wait_for_server()
        for _ in range(3):
            done = project.launch("where")
            assert done.returncode == 0, done.stderr
            assert not project.forked("where")
        assert "refusing every job: a preloaded module started a thread" in project.server_log()
        assert len(project.servers()) == 1  # refusing clients do not start new servers
    finally:
        stop_warm_processes(root)


@pytest.mark.e2e
def test_snakemake_warm_and_cold_give_identical_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The core e2e project (data and seed fan-outs, aggregations, RNG seeding), cold against warm."""
    warm_project = write_core(tmp_path / "warm")
    warm_project.run()
    cold_project = write_core(tmp_path / "cold")
    monkeypatch.setenv("EXPOPS_SMK_WARM", "0")
    cold_project.run()
    logs = {name: [path.read_text(encoding="utf-8") for path in (project.root / "logs").rglob("*.log")]
            for name, project in (("warm", warm_project), ("cold", cold_project))}
    forked = {name: sum("forked from the warm interpreter" in text for text in texts) for name, texts in logs.items()}
    assert forked["cold"] == 0 and forked["warm"] >= len(logs["warm"]) // 2, forked
    assert warm_project.digests() == cold_project.digests()
    assert len(warm_project.digests()) > 20


def test_freshness_sees_a_replaced_module_at_once_and_a_module_edited_in_place_within_the_interval(tmp_path: Path) -> None:
    from expops_smk.runtime.preload import Freshness

    package = tmp_path / "lib"
    package.mkdir()
    module = package / "mod.py"
    module.write_text("x = 1\n")
    past = time.time_ns() - 10**10
    os.utime(package, ns=(past, past))
    os.utime(module, ns=(past, past))
    freshness = Freshness([], [str(module)], full_scan_seconds=3600)
    assert not freshness.changed()
    module.write_text("x = 2\n")  # in place: only the file's mtime moves
    assert not freshness.changed()  # between full scans only folders are stat-ed
    freshness.last_full_scan -= 3600
    assert freshness.changed()

    replaced = Freshness([], [str(module)], full_scan_seconds=3600)
    (package / "mod.py.new").write_text("x = 3\n")
    os.replace(package / "mod.py.new", module)  # how pip and most editors write: the folder changes
    assert replaced.changed()

    script = tmp_path / "main.py"
    script.write_text("import lib\n")
    project = Freshness([str(script)], [str(module)], full_scan_seconds=3600)
    assert not project.changed()
    with open(script, "a") as handle:  # a project file edited in place is seen by the next job
        handle.write("# edited\n")
    os.utime(script, ns=(past, time.time_ns() + 10**10))
    assert project.changed()


def test_a_cold_job_dies_with_its_launcher(tmp_path: Path) -> None:
    """The cold launcher forks the node: Snakemake killing the job (the launcher) must kill the node
    too, or it would go on writing results for a job already reported failed."""
    root = write_project(tmp_path / "project", CONFIG, SCRIPT, script_path="src/main.py")
    generate_project(root)
    project = Warm(root, {**_env(), "PYTHONHASHSEED": "0", "EXPOPS_SMK_WARM": "0"})
    job = project.start("sleepy")
    assert wait_for(lambda: "calling sleepy" in project.job_log("sleepy"), 60)
    children = [int(pid) for pid in Path(f"/proc/{job.pid}/task/{job.pid}/children").read_text().split()]
    assert len(children) == 1
    job.kill()
    job.wait(timeout=30)
    assert wait_for(lambda: has_exited(children[0]), 10)
    assert not (root / "results/sleepy/_outputs.json").exists()
