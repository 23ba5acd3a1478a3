"""The chart job: ``python -m expops_smk.runtime.chart_job CHART --log L`` draws one chart.

A chart returns nothing and no process consumes it; it draws the metrics of the nodes its probes
picked (resolved when the project was validated, read here from the plan; inside growing-data
splits, resolved here over the partitions that exist), once they exist, and
writes PNGs into ``results/charts/<name>/``. Chart code written for ExpOps runs unchanged: it gets
``metrics`` keyed as ExpOps keys them (see ``expops_smk.graph.probes``) and a ``ChartContext``, and
each entry's value is ``{metric: {"<step>": float, ...}}`` for numbers and the latest value for
non-numeric metrics.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from expops_smk.errors import ExpopsError
from expops_smk.graph.expansion import Graph
from expops_smk.graph.plan import read_plan
from expops_smk.graph.probes import ProbeError, current_probes, probe_location, with_process_aliases
from expops_smk.layout import CHART_RECORD, METRICS_FILE, PLAN_FILE, chart_dir
from expops_smk.runtime.reads import recorder_for, recording
from expops_smk.runtime.seeding import seed_rngs
from expops_smk.runtime.user_api import ChartContext
from expops_smk.store.files import confined_in_project
from expops_smk.store.hashing import hash_bytes
from expops_smk.store.read_markers import marker_token
from expops_smk.store.read_records import chart_key, write_pending_reads


class ChartError(ExpopsError):
    """A chart that cannot run, named in one line."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"chart '{name}': {' '.join(message.split())}")


class ChartCodeError(Exception):
    """The chart function (or its import) raised; the traceback is in the job log."""


def node_metrics(record: Mapping[str, Any], step: str | None) -> dict[str, Any]:
    """One probe's metrics from a node's ``_metrics.json``: ``{metric: {"<step>": float}}`` for the
    numbers logged in ``step`` (None: outside any step), plus, for a node, its latest snapshots."""
    result: dict[str, Any] = {}
    for point in record.get("series", []):
        if point.get("step_name") == step:
            result.setdefault(point["metric"], {})[str(point["step"])] = float(point["value"])
    if step is None:
        result.update(record.get("snapshots", {}))
    return result


class ChartRun:
    """One execution of one chart, from the project folder."""

    def __init__(self, root: Path, name: str, log: TextIO) -> None:
        self.root = root
        self.name = name
        self.log = log
        try:
            plan = read_plan(root / PLAN_FILE, root)
        except FileNotFoundError:
            raise ChartError(name, f"{PLAN_FILE} is missing; run `expops-smk generate`") from None
        if name not in plan.charts:
            raise ChartError(name, f"not a chart of the plan {PLAN_FILE}; run `expops-smk generate`")
        self.project = plan.project
        self.spec = plan.charts[name].spec
        self.graph = Graph(self.project)
        try:  # inside growing-data splits: over the partitions their last run produced
            self.probes = current_probes(self.graph, plan.charts[name])
        except ProbeError as exc:
            raise ChartError(name, f"probe '{exc.key}': {exc} in the partitions of "
                             + ", ".join(f"'{split}'" for split in plan.charts[name].growing)) from None
        self.output_dir = root / chart_dir(name)

    def say(self, message: str) -> None:
        self.log.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {message}\n")
        self.log.flush()

    def load_metrics(self) -> tuple[dict[str, Any], str]:
        """``metrics`` (with process aliases) and a digest of the numbers drawn (the ``run_id``)."""
        records: dict[Path, dict[str, Any]] = {}
        by_id: dict[str, dict[str, Any]] = {}
        for probe in self.probes:
            folder = self.root / probe_location(self.graph, probe).results_dir
            path = folder / METRICS_FILE
            if folder not in records:
                try:
                    records[folder] = json.loads(path.read_text(encoding="utf-8"))
                except FileNotFoundError:
                    raise ChartError(self.name, f"probe '{probe.source}': '{probe.node.label}' has no "
                                     f"{path.relative_to(self.root)}; run its node first") from None
                except (OSError, ValueError) as exc:
                    raise ChartError(self.name, f"probe '{probe.source}': unreadable "
                                     f"{path.relative_to(self.root)} ({exc})") from None
            by_id[probe.id] = metrics = node_metrics(records[folder], probe.step)
            self.say(f"{probe.key}: {probe.label} ({len(metrics)} metrics)")
        metrics = {key: by_id[probe_id] for key, probe_id in with_process_aliases(self.probes).items()}
        return metrics, hash_bytes(json.dumps(by_id, sort_keys=True, default=str).encode())

    def code_error(self, what: str, exc: BaseException) -> ChartCodeError:
        """Log the traceback; ``sys.exit()`` in chart code fails the chart instead of ending the job."""
        traceback.print_exception(exc, file=self.log)
        if isinstance(exc, SystemExit):
            return ChartCodeError(f"{what} called sys.exit({exc.code!r})")
        return ChartCodeError(f"{what} raised {type(exc).__name__}: {exc}")

    def load_function(self) -> Callable[..., Any]:
        from expops_smk.runtime.user_scripts import install_user_scripts

        modules = install_user_scripts(self.root, self.project.all_scripts())
        script = self.spec.script
        with contextlib.redirect_stdout(self.log), contextlib.redirect_stderr(self.log):
            try:
                module = importlib.import_module(modules[script.resolve()])
            except (Exception, SystemExit, KeyboardInterrupt) as exc:
                raise self.code_error(f"importing {script.name}", exc) from exc
        function = getattr(module, self.spec.function.name, None)
        if not callable(function):
            raise ChartError(self.name, f"{script.name} defines no function '{self.spec.function.name}' when imported")
        return function

    def arguments(self, function: Callable[..., Any], metrics: dict[str, Any], ctx: ChartContext) -> tuple[Any, ...]:
        """ExpOps' calling convention: two or more parameters get (metrics, ctx); one gets metrics
        when it is named ``metrics``, else ctx."""
        names = list(inspect.signature(function).parameters)
        if len(names) >= 2:
            return metrics, ctx
        if names:
            return (metrics,) if names[0] == "metrics" else (ctx,)
        raise ChartError(self.name, f"function '{self.spec.function.name}' must take (metrics), (metrics, ctx) or (ctx)")

    def run(self) -> list[str]:
        """Draw the chart; return the PNGs written, relative to its folder."""
        self.say(f"chart {self.name}: {self.spec.function.name} in {self.spec.script.relative_to(self.root)}")
        metrics, run_id = self.load_metrics()
        # Chart code often uses pyplot; jobs have no display, and a GUI backend would fail or hang.
        os.environ.setdefault("MPLBACKEND", "Agg")
        function = self.load_function()
        confined_in_project(self.output_dir, self.root).mkdir(parents=True, exist_ok=True)
        ctx = ChartContext(
            output_dir=self.output_dir, project_id=self.project.name, run_id=run_id, theme="light",
            chart_name=self.name, metrics=metrics, probe_paths={p.key: p.id for p in self.probes},
            project_dir=self.root)
        arguments = self.arguments(function, metrics, ctx)
        seed_rngs(self.project.random_seed, self.spec.script.read_text(encoding="utf-8"))
        previous = os.getcwd()
        os.chdir(self.output_dir)  # ExpOps chart code writes its PNGs into the current folder
        recorder = recorder_for(self.root, [self.log])  # what it reads counts as for a node (runtime.reads)
        try:
            with contextlib.redirect_stdout(self.log), contextlib.redirect_stderr(self.log), recording(recorder):
                function(*arguments)
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            raise self.code_error("the chart function", exc) from exc
        finally:
            os.chdir(previous)
        key = chart_key(self.name)  # recorded with the token that scheduled it, as a node does (read_markers)
        write_pending_reads(self.root, key, marker_token(self.root, key), [], recorder.pending())
        pngs = sorted(path.relative_to(self.output_dir).as_posix() for path in self.output_dir.rglob("*.png"))
        (self.output_dir / CHART_RECORD).write_text(json.dumps({
            "chart": self.name, "probes": ctx.probe_paths, "run_id": run_id, "pngs": pngs,
        }, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        self.say("wrote " + (", ".join(pngs) if pngs else "no PNG"))
        return pngs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m expops_smk.runtime.chart_job", description="Draw one expops-smk chart.")
    parser.add_argument("chart")
    parser.add_argument("--log", required=True, type=Path)
    args = parser.parse_args(argv)
    try:  # a log that is (or lies in) a symlink out of logs/ would be written through
        confined_in_project(Path.cwd() / args.log, Path.cwd()).parent.mkdir(parents=True, exist_ok=True)
    except ExpopsError as exc:
        print(f"expops-smk: chart '{args.chart}': {exc}", file=sys.stderr)
        return 2
    with open(args.log, "w", encoding="utf-8") as log:
        try:
            ChartRun(Path.cwd(), args.chart, log).run()
        except ExpopsError as exc:
            log.write(f"error: {exc}\n")
            print(f"expops-smk: {exc} (log: {args.log})", file=sys.stderr)
            return 2
        except ChartCodeError as exc:
            print(f"expops-smk: chart '{args.chart}': {' '.join(str(exc).split())} (traceback in {args.log})",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
