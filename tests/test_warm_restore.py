"""The warm server restores a recorded node in its own process and forks only for a job that executes.

Unit tests call ``served_restore.restore_in_server`` in this process, as the server does: a hit
restores and leaves the caller's directory, environment and modules alone; a miss, a forced run
and a restore that cannot be done write nothing and leave the job to a child. Then real client
and server processes: a hit is answered without a fork, a miss and a forced run are forked, and
a server whose watched files changed restores nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2e import CALLS_HELPER, Project, _env
from projects import write_project
from reliability_projects import stop_warm_processes
from test_warm_start import Warm, warm  # noqa: F401  (the fixture: a project with a running server)

from expops_smk.codegen.prepare import generate_project
from expops_smk.layout import FORCED_VARIABLE, JOB_CLIENT, NO_CACHE_VARIABLE
from expops_smk.runtime.preload import Freshness
from expops_smk.runtime.served_restore import restore_in_server
from expops_smk.runtime.warm_client import warm_start_possible

pytestmark = pytest.mark.skipif(not warm_start_possible({}), reason="warm start needs Linux")

CONFIG = """\
metadata: {name: served}
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      make use
      use
    processes:
      - name: make
      - name: use
"""

SCRIPT = CALLS_HELPER + """
import os

SIDE_EFFECT = os.environ.setdefault("SERVED_RESTORE_IMPORTED", "yes")  # importing this must not happen in a restore


def make():
    called("make")
    return {"rows": [1, 2, 3]}


def use(rows):
    called("use")
    return {"total": sum(rows)}
"""

ARGS = ["make", "--log", "logs/make.log"]


@pytest.fixture
def recorded(tmp_path: Path) -> Project:
    """A project whose node ``make`` ran once, cold (its run is in the run cache)."""
    root = write_project(tmp_path / "project", CONFIG, SCRIPT, script_path="src/main.py")
    generate_project(root)
    done = subprocess.run([sys.executable, "-S", JOB_CLIENT, "runtime", *ARGS], cwd=root, capture_output=True, text=True,
                          env={**_env(), "EXPOPS_SMK_WARM": "0"}, timeout=120)
    assert done.returncode == 0, done.stderr
    return Project(root)


def job_env() -> dict[str, str]:
    return {key: value for key, value in _env().items() if key not in (FORCED_VARIABLE, NO_CACHE_VARIABLE)}


def test_a_recorded_node_is_restored_here_leaving_this_process_alone(recorded: Project, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the job's folder is passed, never entered
    artifact = recorded.root / "results/make" / recorded.manifest("make")["rows"]["file"]
    before = artifact.stat()
    time.sleep(0.01)  # a link made now would move the file's ctime
    environ, modules = dict(os.environ), set(sys.modules)
    assert restore_in_server(ARGS, str(recorded.root), job_env())
    assert recorded.run_record("make")["outcome"] == "restored"
    assert recorded.calls() == ["make"]  # the cold run's only
    assert "restored by the warm interpreter" in (recorded.root / "logs/make.log").read_text(encoding="utf-8")
    assert recorded.value("make", "rows") == [1, 2, 3]
    after = artifact.stat()  # already the recorded object: left as it was, not linked and renamed again
    assert (after.st_ino, after.st_nlink, after.st_ctime_ns) == (before.st_ino, before.st_nlink, before.st_ctime_ns)
    assert os.getcwd() == str(tmp_path) and dict(os.environ) == environ
    new = {name: getattr(sys.modules[name], "__file__", None) or "" for name in set(sys.modules) - modules}
    assert not [name for name, file in new.items() if file.startswith(str(recorded.root))]  # no user code imported


@pytest.mark.parametrize("extra", [
    {NO_CACHE_VARIABLE: "1"},
    {FORCED_VARIABLE: json.dumps({"rules": ["make"]})},
    {FORCED_VARIABLE: json.dumps({"files": ["results/make/_outputs.json"]})},
    {FORCED_VARIABLE: json.dumps({"all": True})},
])
def test_a_forced_run_is_left_to_a_child_and_nothing_is_written(recorded: Project, extra: dict[str, str]) -> None:
    log = recorded.root / "logs/make.log"
    log.unlink()
    run_file = (recorded.root / "results/make/_run.json").read_bytes()
    assert not restore_in_server(ARGS, str(recorded.root), {**job_env(), **extra})
    assert not log.exists()
    assert (recorded.root / "results/make/_run.json").read_bytes() == run_file
    assert restore_in_server(ARGS, str(recorded.root), job_env())  # the same job, not forced


def test_a_miss_is_left_to_a_child(recorded: Project) -> None:
    assert not restore_in_server(["use", "--log", "logs/use.log"], str(recorded.root), job_env())  # never ran
    assert not (recorded.root / "logs/use.log").exists() and not (recorded.root / "results/use").exists()


def test_a_restore_that_cannot_be_done_is_left_to_a_child(recorded: Project, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (recorded.root / "logs/elsewhere").symlink_to(outside)
    assert not restore_in_server(["make", "--log", "logs/elsewhere/make.log"], str(recorded.root), job_env())
    assert not list(outside.iterdir())  # never written through the symlink
    assert not restore_in_server(["make", "--bogus"], str(recorded.root), job_env())  # the child reports the usage
    artifact = recorded.root / "results/make" / recorded.manifest("make")["rows"]["file"]
    artifact.chmod(0o644)
    artifact.write_bytes(b"damaged")  # the stored object too (a hard link): its hash no longer matches
    assert not restore_in_server(ARGS, str(recorded.root), job_env())


def test_a_module_watched_after_the_start_is_seen_when_replaced(tmp_path: Path) -> None:
    module = tmp_path / "lib" / "late.py"
    module.parent.mkdir()
    module.write_text("x = 1\n")
    past = time.time_ns() - 10**10
    os.utime(module.parent, ns=(past, past))
    freshness = Freshness([], [], full_scan_seconds=3600)
    freshness.watch([str(module)])
    assert not freshness.changed()
    (module.parent / "late.py.new").write_text("x = 2\n")
    os.replace(module.parent / "late.py.new", module)
    assert freshness.changed()


# -- real client and server processes ------------------------------------------------------------

def test_the_server_restores_a_recorded_node_without_forking(warm: Warm) -> None:  # noqa: F811
    done = warm.launch("make")  # the fixture's first job ran it cold
    assert done.returncode == 0 and done.stderr == "" and done.stdout == ""
    assert warm.restored_in_server("make")
    assert re.search(r"restored runtime make --log logs/make.log in \d+ ms", warm.server_log())
    assert "for runtime make " not in warm.server_log()  # no child was forked for it
    assert Project(warm.root).run_record("make")["outcome"] == "restored"


def test_the_server_forks_a_node_that_must_execute(warm: Warm) -> None:  # noqa: F811
    failed = warm.launch("fail")  # not recorded (it never succeeds): executed by a child, which reports
    assert failed.returncode == 1 and warm.forked("fail")
    assert failed.stderr == ("expops-smk: node 'fail': the process function raised ValueError: boom "
                             "(traceback in logs/fail.log)\n")
    assert warm.launch("where").returncode == 0 and warm.forked("where")
    assert Project(warm.root).run_record("where")["outcome"] == "executed"
    assert warm.launch("where").returncode == 0 and warm.restored_in_server("where")


def test_a_server_with_a_changed_script_restores_nothing(warm: Warm) -> None:  # noqa: F811
    assert warm.launch("make").returncode == 0 and warm.restored_in_server("make")
    script = warm.root / "src" / "main.py"
    os.utime(script, ns=(time.time_ns(), time.time_ns() + 10_000_000_000))  # same code: still restorable
    done = warm.launch("make")
    assert done.returncode == 0, done.stderr
    assert "refusing a job: stale" in warm.server_log()
    assert not warm.restored_in_server("make") and not warm.forked("make")  # restored cold
    assert Project(warm.root).run_record("make")["outcome"] == "restored"


def test_a_server_of_a_forced_invocation_forks_every_node(tmp_path: Path) -> None:
    """The forcing variables are part of the job's environment, so of the server's name too."""
    root = write_project(tmp_path / "project", CONFIG, SCRIPT, script_path="src/main.py")
    generate_project(root)
    project = Warm(root, {**job_env(), "EXPOPS_SMK_WARM_IDLE": "10", FORCED_VARIABLE: json.dumps({"rules": ["make"]})})
    try:
        assert project.launch("make").returncode == 0  # cold, starts the server
        project.wait_for_server()
        done = project.launch("make")
        assert done.returncode == 0, done.stderr
        assert project.forked("make") and Project(root).run_record("make")["outcome"] == "executed"
        assert Project(root).calls() == ["make", "make"]
    finally:
        stop_warm_processes(root)
