"""A forked warm child leaves through ``warm_server.leave``, skipping the interpreter's finalization:
what an exit must do (threads, atexit, buffered files, standard streams) still happens."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from expops_smk.runtime.warm_server import leave


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("code", [0, 1, 2, 256])
def test_leave_does_what_an_exit_does(tmp_path: Path, code: int) -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read)
        import atexit

        handle = open(tmp_path / "unclosed.txt", "w", encoding="utf-8")  # noqa: SIM115 - left open on purpose
        handle.write("buffered")
        atexit.register(lambda: (tmp_path / "atexit.txt").write_text("ran"))
        threading.Thread(target=lambda: (time.sleep(0.2), (tmp_path / "thread.txt").write_text("done"))).start()
        sys.stdout = open(write, "w", encoding="utf-8")  # noqa: SIM115 - buffered, as a job's stdout
        sys.stdout.write("stdout buffered")
        leave(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    output = os.read(read, 100)
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == code & 0xFF
    assert (tmp_path / "unclosed.txt").read_text() == "buffered"
    assert (tmp_path / "atexit.txt").read_text() == "ran"
    assert (tmp_path / "thread.txt").read_text() == "done"
    assert output == b"stdout buffered"
