"""A node restored by the warm server in its own process, before it would fork a child for the job.

A restored node runs no user code: it reads the plan, its inputs' manifests and the run cache,
hard-links recorded objects into its folders and writes the manifest, ``_run.json`` and its job
record. Forking a child for that, and the child's exit, cost as much as the restore itself, so the
server decides first (``NodeRun.restore_only``) and forks only for a job that must execute:
a cache miss, changed files the recorded run read, a forced run (``runtime.forcing``), a growing
split. Nothing here touches the server's own state: the job's environment and folder are passed
explicitly (never ``os.environ`` or ``chdir``), the node's log is kept in memory and written only
once the restore is done, and any failure leaves the job to a forked child, which restores or
executes as a cold job would and reports what went wrong in its one line.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
import time
from pathlib import Path
from typing import Mapping

from expops_smk.runtime.launch import job_label
from expops_smk.runtime.node_job import PARSER
from expops_smk.runtime.node_run import NodeRun
from expops_smk.runtime.preload import Freshness
from expops_smk.runtime.warm_client import encode
from expops_smk.store.files import confined_in_project


def serve_restore(connection: socket.socket, args: list[str], cwd: str, environ: Mapping[str, str],
                  descriptors: list[int], freshness: Freshness) -> float | None:
    """Restore a node job in the server's process if the run cache serves it, and answer its client
    as for a child that exited 0; returns the seconds it took, or None when the server must fork a
    child for the job.

    Done in the server's one thread, between accepts (fork and threads do not mix): a restore is a
    few milliseconds of file work. Modules it imports for the first time are watched from now on,
    as the preloaded ones are, so an edit of one still makes the server refuse jobs.
    """
    loaded = set(sys.modules)
    started = time.perf_counter()
    restored = restore_in_server(args, cwd, environ)
    freshness.watch(_module_files(set(sys.modules) - loaded))
    if not restored:
        return None
    for descriptor in descriptors:  # the job's standard streams: a restore writes nothing to them
        os.close(descriptor)
    with contextlib.suppress(OSError):  # a client that went away has nothing to be told
        connection.send(encode(["started", str(os.getpid()), job_label("runtime", args)]))
        connection.send(encode(["status", "0", "1"]))
    connection.close()
    return time.perf_counter() - started


def restore_in_server(args: list[str], cwd: str, environ: Mapping[str, str]) -> bool:
    """True when the node job ``args`` (``node_job``'s arguments) was restored here, its log written;
    False when a child must run it (nothing was written then, except in the rare restore that failed
    part-way: the child redoes it from the start)."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # argparse's usage message: the child prints it
            parsed = PARSER.parse_args(args)
    except SystemExit:
        return False
    root = Path(cwd)
    log = io.StringIO()
    try:
        log_path = confined_in_project(root / parsed.log, root)
        run = NodeRun(root, parsed.process, parsed.partition, parsed.seed, log, environ=environ)
        if not run.restore_only(f"restored by the warm interpreter, pid {os.getpid()}, without forking"):
            return False
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(log.getvalue(), encoding="utf-8")
    except Exception:  # a project fault, a failing disk: the child meets it again and reports it
        return False
    return True


def _module_files(names: set[str]) -> list[str]:
    files = (getattr(sys.modules.get(name), "__file__", None) for name in names)
    return sorted(file for file in files if file)
