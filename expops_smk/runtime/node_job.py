"""The command of a node job: ``python -m expops_smk.runtime PROCESS [--partition P] [--seed S] --log L``.

It runs one ``NodeRun`` and turns every way it can fail into one line on stderr naming the node
(the traceback, where there is one, goes to the job's log): a project fault exits 2, an exception in
the user's function 1, a failing disk or results folder 2.
"""

from __future__ import annotations

import argparse
import contextlib
import traceback
from pathlib import Path

from expops_smk.errors import ExpopsError
from expops_smk.runtime.launch import report
from expops_smk.runtime.node_run import NodeRun, UserCodeError
from expops_smk.store.files import confined_in_project


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m expops_smk.runtime", description="Run one expops-smk node.")
    parser.add_argument("process")
    parser.add_argument("--partition", default="")
    parser.add_argument("--seed", default="")
    parser.add_argument("--log", required=True, type=Path)
    return parser


PARSER = _parser()
"""Built once, when the warm server preloads this module: building it compiles argparse's regular
expressions, a few milliseconds of every forked job (a restore is 10-20)."""


def main(argv: list[str] | None = None) -> int:
    args = PARSER.parse_args(argv)
    try:  # a log that is (or lies in) a symlink out of logs/ would be written through
        confined_in_project(Path.cwd() / args.log, Path.cwd()).parent.mkdir(parents=True, exist_ok=True)
    except ExpopsError as exc:
        report(f"expops-smk: node '{args.process}': {exc}")
        return 2
    label = args.process
    try:
        with open(args.log, "w", encoding="utf-8") as log:
            try:
                run = NodeRun(Path.cwd(), args.process, args.partition, args.seed, log)
                label = run.node.label
                run.run()
            except ExpopsError as exc:
                log.write(f"error: {exc}\n")
                report(f"expops-smk: {exc} (log: {args.log})")
                return 2
            except UserCodeError as exc:
                report(f"expops-smk: node '{exc.label}': {exc.what} {exc} (traceback in {args.log})")
                return 1
            except OSError:
                # The store or the results folder failed (disk full, read-only, permissions); the
                # user's own OSErrors are UserCodeErrors by now. The log may be on the full disk too.
                with contextlib.suppress(OSError):
                    traceback.print_exc(file=log)
                    log.flush()
                raise
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        report(f"expops-smk: node '{label}': {exc.strerror or exc}{where} (log: {args.log})")
        return 2
    return 0
