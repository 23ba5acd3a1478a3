"""The job client (``expops_smk.runtime.warm_client``, run from its copy in ``.expops/bin``, issue 18 P9).

Every job's process is this client, started with ``python -S``: it must import nothing of
expops-smk and none of the heavy standard-library modules, agree with the full interpreter on the
server's name, and carry a job's arguments and environment to the server exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from projects import write_project

from expops_smk import layout
from expops_smk.codegen.prepare import generate_project
from expops_smk.runtime import warm_client

CONFIG = """\
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      make
    processes:
      - name: make
"""
SCRIPT = "def make():\n    return {'rows': [1]}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = write_project(tmp_path / "project", CONFIG, SCRIPT, script_path="src/main.py")
    generate_project(root)
    return root


def _in_client(root: Path, code: str) -> str:
    """Run ``code`` after importing the project's copy of the client the way job.py does (``-S``)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    prelude = "import sys; sys.path.insert(0, '.expops/bin'); import warm_client; "
    return subprocess.run([sys.executable, "-S", "-c", prelude + code], cwd=root, env=env, text=True,
                          capture_output=True, check=True).stdout.strip()


def test_the_rules_run_the_client_generated_beside_the_python_launcher(project: Path) -> None:
    client = project / ".expops" / "bin" / "warm_client.py"
    assert client.read_bytes() == Path(warm_client.__file__).read_bytes()
    assert (project / layout.JOB_CLIENT).exists()
    assert list((project / ".expops" / "bin" / "__pycache__").glob("warm_client.*.pyc"))  # compiled at parse time
    assert f"-S {layout.JOB_CLIENT} runtime make " in (project / layout.RULES_FILE).read_text()


def test_the_client_imports_no_expops_smk_and_no_heavy_module(project: Path) -> None:
    loaded = set(_in_client(project, "warm_client.server_name(); print(' '.join(sys.modules))").split())
    assert not {name for name in loaded if name.startswith("expops_smk")}
    assert not loaded & {"json", "socket", "signal", "pathlib", "typing", "enum", "re", "hashlib", "site"}


def test_the_client_and_the_full_interpreter_name_the_same_server(project: Path) -> None:
    """The cold launcher (no ``-S``) starts the server the client (``-S``) then finds."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    full = subprocess.run([sys.executable, "-c", "from expops_smk.runtime.warm_client import server_name; "
                           "print(server_name())"], cwd=project, env=env, text=True, capture_output=True,
                          check=True).stdout.strip()
    assert _in_client(project, "print(warm_client.server_name())") == full


def test_a_request_carries_arguments_directory_and_environment_exactly() -> None:
    env = {"A": "x=y", "EMPTY": "", "ODD": "caf\udce9", "PATH": "/bin"}  # '=' in a value, undecodable bytes
    args = ["train", "--partition=p1", "", "--log", "logs/a b.log"]
    data = warm_client.encode(["job", "runtime", "/tmp/pro ject", str(len(args)), *args,
                               *(f"{k}={v}" for k, v in env.items())])
    assert warm_client.parse_request(data) == ("runtime", args, "/tmp/pro ject", env)


@pytest.mark.parametrize("data", [b"", b"job", b"job\0runtime\0/\0" + b"3\0a", b"job\0runtime\0/\0x",
                                  b"job\0runtime\0/\x000\0NOEQUALS", b'{"entry": "runtime"}'])
def test_anything_but_a_request_is_refused(data: bytes) -> None:
    assert warm_client.parse_request(data) is None


def test_the_client_constants_are_the_layouts() -> None:
    """The client cannot import ``layout`` (it runs without expops-smk), so it repeats three names."""
    assert warm_client.DISABLE_VARIABLE == layout.WARM_VARIABLE
    assert warm_client.SERVER_LOG == layout.SERVER_LOG
    assert warm_client.COLD_LAUNCHER == layout.LAUNCHER_MODULE
