"""A job never talks to a warm server it has not authenticated (issue 14, item 1).

Another local user (or a process of ours that is not the server) squats where the job would
connect: the job sends nothing (the squatter gets no environment and no file descriptors) and runs
cold with the right result. The tests with a second user create one with ``useradd`` (root only).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e import Project, _env
from projects import one_process_project

from expops_smk.codegen.prepare import generate_project
from expops_smk.layout import JOB_CLIENT
from expops_smk.runtime.warm_client import warm_start_possible

pytestmark = pytest.mark.skipif(not warm_start_possible({}), reason="warm start needs Linux")

SQUATTER = textwrap.dedent("""\
    import json, socket, sys
    mode, where = sys.argv[1], sys.argv[2]
    if mode == "bind":
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(where)
    else:
        listener = socket.socket(fileno=int(where))
    listener.listen(8)  # SO_PEERCRED reports whoever called listen(): this process
    print("ready", flush=True)
    while True:
        connection, _ = listener.accept()
        connection.settimeout(10)
        try:
            data, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
        except OSError:
            data, fds = b"", []
        print(json.dumps({"bytes": len(data), "fds": len(fds)}), flush=True)
        connection.close()
""")


@pytest.fixture
def job(tmp_path: Path) -> Iterator[tuple[Project, dict[str, str], Path]]:
    """A generated one-node project, and an env whose XDG_RUNTIME_DIR is a fresh dir like /tmp."""
    root = one_process_project(tmp_path / "project", "squat", "make")
    generate_project(root)
    base = Path(tempfile.mkdtemp(prefix="expops-squat-", dir="/tmp"))
    base.chmod(0o1777)  # like /tmp: anyone may create a folder in it
    env = {**_env(), "XDG_RUNTIME_DIR": str(base), "EXPOPS_SMK_WARM_IDLE": "5"}
    yield Project(root), env, base
    shutil.rmtree(base, ignore_errors=True)


def _server_name(root: Path, env: dict[str, str]) -> str:
    """The name the job computes: same interpreter, directory and environment."""
    return subprocess.run([sys.executable, "-c", "from expops_smk.runtime.warm_client import server_name; "
                           "print(server_name())"], cwd=root, env=env, text=True, capture_output=True,
                          check=True).stdout.strip()


def _launch(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-S", JOB_CLIENT, "runtime", "make", "--log",  # as the rules do
                           "logs/make.log"], cwd=root, env=env, text=True, capture_output=True, timeout=120)


def _other_python(user: str | None) -> str:
    """The squatter needs only the standard library; another user may not be able to run our venv's."""
    if user is None:
        return sys.executable
    found = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.skip("no system python3 that another user can run")
    return found


def _squatter(args: list[str], user: str | None, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[str]:
    proc = subprocess.Popen([_other_python(user), "-c", SQUATTER, *args], user=user, pass_fds=pass_fds, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr
    return proc


def _received(proc: subprocess.Popen[str]) -> list[dict[str, int]]:
    """What the squatter got from each connection (killed by its pid first)."""
    proc.kill()
    stdout, _ = proc.communicate(timeout=30)
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _assert_ran_cold_and_right(project: Project, done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr
    assert project.value("make", "rows") == [1, 2, 3]
    assert "forked from the warm interpreter" not in (project.root / "logs" / "make.log").read_text()
    assert not (project.root / ".expops" / "warm_server.log").exists()  # no server started on a doubt


@pytest.fixture
def other_user() -> Iterator[str]:
    """A throwaway local user, removed afterwards (its processes are killed by pid in the tests)."""
    if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("needs root and useradd/userdel to create a second local user")
    name = f"expsq{os.getpid() % 100000}"
    created = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                             capture_output=True, text=True)
    if created.returncode != 0:
        pytest.skip(f"useradd failed: {created.stderr.strip()}")
    yield name
    subprocess.run(["userdel", name], capture_output=True, check=False)


def test_a_folder_precreated_by_another_user_is_refused(job: tuple[Project, dict[str, str], Path],
                                                         other_user: str) -> None:
    project, env, base = job
    name = _server_name(project.root, env)
    folder = base / f"expops-smk-{os.getuid()}"
    subprocess.run([_other_python(other_user), "-c", f"import os; os.mkdir({str(folder)!r}); os.chmod({str(folder)!r}, 0o777)"],
                   user=other_user, check=True, cwd="/")
    squatter = _squatter(["bind", str(folder / f"{name.rsplit('-', 1)[-1]}.sock")], other_user)
    try:
        done = _launch(project.root, env)
    finally:
        received = _received(squatter)
    assert received == []  # never even connected
    _assert_ran_cold_and_right(project, done)


def test_a_socket_in_our_folder_served_by_another_user_gets_nothing(job: tuple[Project, dict[str, str], Path],
                                                                     other_user: str) -> None:
    """Defence in depth: even a socket in the 0700 folder is checked (here, one root handed over)."""
    _socket_in_our_folder_gets_nothing(job, other_user)


def test_a_socket_in_our_folder_not_served_by_the_recorded_pid_gets_nothing(
        job: tuple[Project, dict[str, str], Path]) -> None:
    _socket_in_our_folder_gets_nothing(job, None)


def _socket_in_our_folder_gets_nothing(job: tuple[Project, dict[str, str], Path], user: str | None) -> None:
    project, env, base = job
    name = _server_name(project.root, env)
    folder = base / f"expops-smk-{os.getuid()}"
    folder.mkdir(mode=0o700)
    digest = name.rsplit("-", 1)[-1]
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(folder / f"{digest}.sock"))
    squatter = _squatter(["fd", str(listener.fileno())], user, pass_fds=(listener.fileno(),))
    listener.close()
    pid_file = folder / f"{digest}.pid"
    # A user's squatter passes the pid check and fails the uid check; ours fails the pid check.
    pid_file.write_text(str(squatter.pid if user else os.getpid()))
    pid_file.chmod(0o600)
    try:
        done = _launch(project.root, env)
    finally:
        received = _received(squatter)
    assert received == [{"bytes": 0, "fds": 0}]  # connected, checked, closed without sending anything
    _assert_ran_cold_and_right(project, done)
