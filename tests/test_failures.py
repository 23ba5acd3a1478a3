"""A job that fails in any way says so in one line naming its node, and writes no outputs.

In-process (``node_job.main``): ``sys.exit()`` and KeyboardInterrupt in user code, values that
cannot be pickled. Real processes (``python -m expops_smk.runtime.launch``, cold): ``os._exit`` and
a segfault, which no code in the dying process can report, so the launcher does; and
``sys.exit(0)`` through a real Snakemake run, which used to end in a silent MissingOutputException.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from e2e import CALLS_HELPER, Project
from projects import write_project

from expops_smk.codegen.prepare import generate_project
from expops_smk.runtime import node_job
from expops_smk.runtime.launch import job_label
from expops_smk.runtime.warm_client import exit_status

CONFIG = """\
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      load quit quit_none interrupt unpicklable deep exit3 segfault frames
      frames check
    processes:
      - name: load
      - name: quit
      - name: quit_none
      - name: interrupt
      - name: unpicklable
      - name: deep
      - name: exit3
      - name: segfault
      - name: frames
      - name: check
"""

MAIN = CALLS_HELPER + '''
import os
import sys

if os.environ.get("EXIT_AT_IMPORT"):
    sys.exit(0)


class Bad:
    def __reduce__(self):
        raise ValueError("no reduce for you")


def load():
    return {"data": [1, 2]}


def quit(data):
    called("quit")
    sys.exit(0)


def quit_none(data):
    sys.exit()


def interrupt(data):
    raise KeyboardInterrupt


def unpicklable(data):
    return {"fine": 1, "obj": Bad()}


def deep(data):
    value = []
    for _ in range(100_000):
        value = [value]
    return {"nested": value}


def exit3(data):
    called("exit3")
    os._exit(3)


def segfault(data):
    import ctypes
    ctypes.string_at(0)


def frames(data):
    called("frames")
    import pandas as pd
    return {"ints": pd.DataFrame({"v": pd.Series([1, None, 2 ** 60 + 1], dtype=object)}),
            "nested": pd.DataFrame({"l": [[1, 2], [3]], "t": [(1,), (2,)], "d": [{"a": 1}, {"b": 2}]}),
            "mixed": pd.DataFrame({"m": pd.Series([1, 2.5], dtype=object), 0: [True, False]}),
            "plain": pd.DataFrame({"x": [0.5, float("nan")], "n": [1, 2], "s": ["a", "b"]})}


def check(ints, nested, mixed, plain):
    called("check")
    assert ints["v"].tolist() == [1, None, 2 ** 60 + 1] and ints["v"].dtype == object, ints
    assert nested["l"].tolist() == [[1, 2], [3]] and nested["t"].tolist() == [(1,), (2,)], nested
    assert nested["d"].tolist() == [{"a": 1}, {"b": 2}], nested
    assert [type(v) for v in mixed["m"]] == [int, float] and list(mixed.columns) == ["m", 0], mixed
    assert plain["n"].dtype == "int64" and plain["s"].tolist() == ["a", "b"], plain
    return {"ok": True}
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    root = write_project(tmp_path / "project", CONFIG, MAIN, script_path="src/main.py")
    generate_project(root)
    monkeypatch.chdir(root)
    assert node_job.main(["load", "--log", "logs/load.log"]) == 0
    capsys.readouterr()
    return root


def run_in_process(process: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = node_job.main([process, *args, "--log", f"logs/{process}.log"])
    return code, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("process, line", [
    ("quit", "the process function called sys.exit(0)"),
    ("quit_none", "the process function called sys.exit(None)"),
    ("interrupt", "the process function raised KeyboardInterrupt"),
])
def test_sys_exit_and_keyboard_interrupt_fail_the_node(project: Path, capsys: pytest.CaptureFixture[str],
                                                       process: str, line: str) -> None:
    code, err = run_in_process(process, capsys)
    assert code == 1
    assert err == [f"expops-smk: node '{process}': {line} (traceback in logs/{process}.log)"]
    log = (project / f"logs/{process}.log").read_text()
    assert "Traceback (most recent call last)" in log and ("SystemExit" in log or "KeyboardInterrupt" in log)
    assert not (project / "results" / process / "_outputs.json").exists()


@pytest.mark.parametrize("process, line, in_log", [
    ("unpicklable", "output 'obj' cannot be saved: Bad is not picklable (ValueError: no reduce for you)",
     "raise ValueError(\"no reduce for you\")"),
    ("deep", "output 'nested' cannot be saved: list is not picklable (RecursionError: maximum recursion depth",
     "RecursionError"),
])
def test_an_unpicklable_output_names_the_node_and_logs_the_traceback(
        project: Path, capsys: pytest.CaptureFixture[str], process: str, line: str, in_log: str) -> None:
    code, err = run_in_process(process, capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"expops-smk: node '{process}': {line}") and err[0].endswith(f"(log: logs/{process}.log)")
    log = (project / f"logs/{process}.log").read_text()
    assert "Traceback (most recent call last)" in log and in_log in log
    folder = project / "results" / process
    assert not (folder / "_outputs.json").exists() and not list(folder.glob("*.pkl"))


def launch(root: Path, process: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A cold job, as a rule starts it."""
    return subprocess.run([sys.executable, "-m", "expops_smk.runtime.launch", "runtime", process, "--log",
                           f"logs/{process}.log"], cwd=root, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "EXPOPS_SMK_WARM": "0", **env})


@pytest.mark.parametrize("process, code, line", [
    ("exit3", 3, "exited with status 3 without reporting"),
    ("segfault", 128 + 11, "killed by SIGSEGV"),
    ("quit", 1, "the process function called sys.exit(0)"),
])
def test_a_cold_job_that_dies_is_reported_by_the_launcher(project: Path, process: str, code: int, line: str) -> None:
    done = launch(project, process)
    assert done.returncode == code, done.stderr
    hint = "traceback in" if process == "quit" else "log:"
    assert done.stderr.splitlines() == [f"expops-smk: node '{process}': {line} ({hint} logs/{process}.log)"]
    assert "calling " + process in (project / f"logs/{process}.log").read_text()
    assert not (project / "results" / process / "_outputs.json").exists()


def test_sys_exit_at_import_fails_the_job(project: Path) -> None:
    done = launch(project, "quit", EXIT_AT_IMPORT="1")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "expops-smk: node 'quit': importing main.py called sys.exit(0) (traceback in logs/quit.log)"]
    assert not (project / "calls.log").exists()


def test_the_launcher_names_the_node_from_its_arguments() -> None:
    assert job_label("runtime", ["train", "--partition", "p1-p2", "--seed", "41--7", "--log", "l"]) == \
        "node 'train P1-P2 S41-S-7'"  # Node.label, as the job's own messages
    assert job_label("runtime", ["train", "--partition", "bogus"]) == "node 'train'"
    assert job_label("charts", ["losses", "--log", "l"]) == "chart 'losses'"


def test_exit_status_reports_only_deaths_the_job_did_not_report(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--seed", "41", "--log", "logs/t.log"]
    label = job_label("runtime", args)
    assert exit_status(label, args, 2 << 8, reported=True) == 2
    assert exit_status(label, args, 15, reported=False, relayed={15}) == 128 + 15  # Snakemake cancelled it
    assert capsys.readouterr().err == ""
    assert exit_status(label, args, 0, reported=False) == 1
    assert capsys.readouterr().err.splitlines() == [
        "expops-smk: node 'train S41': exited with status 0 without reporting (log: logs/t.log)"]


def test_snakemake_run_reports_every_failure_in_one_line_and_tricky_frames_arrive_exactly(tmp_path: Path) -> None:
    """Warm or cold (the first job starts the warm server; which later jobs it serves varies)."""
    root = write_project(tmp_path / "project", CONFIG, MAIN, script_path="src/main.py")
    project = Project(root)
    run = project.run("--keep-going", check=False)
    assert run.returncode != 0
    # the RecursionError's text varies between Python versions
    lines = [re.sub(r"\(RecursionError: [^)]*\)", "(RecursionError: ...)", line)
             for line in re.findall(r"expops-smk: [^\n]*", run.stderr)]
    assert sorted(lines) == sorted(f"expops-smk: node '{process}': {line}" for process, line in [
        ("quit", "the process function called sys.exit(0) (traceback in logs/quit.log)"),
        ("quit_none", "the process function called sys.exit(None) (traceback in logs/quit_none.log)"),
        ("interrupt", "the process function raised KeyboardInterrupt (traceback in logs/interrupt.log)"),
        ("unpicklable", "output 'obj' cannot be saved: Bad is not picklable (ValueError: no reduce for you) "
                        "(log: logs/unpicklable.log)"),
        ("deep", "output 'nested' cannot be saved: list is not picklable (RecursionError: ...) (log: logs/deep.log)"),
        ("exit3", "exited with status 3 without reporting (log: logs/exit3.log)"),
        ("segfault", "killed by SIGSEGV (log: logs/segfault.log)"),
    ]), run.stderr
    assert "MissingOutputException" not in run.stderr
    for process in ("quit", "quit_none", "interrupt", "unpicklable", "deep", "exit3", "segfault"):
        assert not (project.node_dir(process) / "_outputs.json").exists(), process
    assert sorted(run.calls) == ["check", "exit3", "frames", "quit"]  # check asserted on every frame it received
    assert project.value("check", "ok") is True
    stored = project.manifest("frames")
    assert {key: a["format"] for key, a in stored.items()} == {
        "ints": "pickle", "nested": "pickle", "mixed": "pickle", "plain": "parquet"}
    assert isinstance(project.value("frames", "plain"), pd.DataFrame)
