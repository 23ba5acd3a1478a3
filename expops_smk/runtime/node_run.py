"""What one Snakemake job runs: ``python -m expops_smk.runtime PROCESS [--partition P] [--seed S] --log L``
(the rules start it through ``expops_smk.runtime.launch``, which forks it from a warm interpreter when it can).

A job (1) resolves its node and inputs from the plan, (2) computes a *run key* from everything
that determines its outputs (code hash, parameters, seed, the content digests of its inputs, the raw
data digest for source processes), (3) if that key was executed before, its artifacts are still in
the store and the files its function read then are unchanged, restores them by hard links and stops
without running user code (early cutoff and the run cache), else (4) loads its inputs, builds the function's keyword arguments as ExpOps does, seeds
the RNGs, calls the function and writes one artifact per returned key plus the manifest.

Failures caused by the project print one line naming the node (exit 2); an exception raised by the
user's function prints one line pointing at the job log, which keeps the full traceback (exit 1).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from expops_smk.config.model import ProcessSpec, ProjectConfig, effective_parameters
from expops_smk.config.names import is_safe_key, rule_name
from expops_smk.config.overrides import Overrides, apply_overrides
from expops_smk.errors import ExpopsError, NodeError
from expops_smk.graph.expansion import Graph, ProcessLayout
from expops_smk.graph.nodes import Node, NodeInput
from expops_smk.graph.plan import read_plan
from expops_smk.layout import DATA_DIGEST, MANIFEST, METRICS_FILE, OVERRIDES_VARIABLE, PLAN_FILE, RUN_FILE
from expops_smk.runtime import user_api
from expops_smk.runtime.datums import GrowingSplit
from expops_smk.runtime.launch import SERVER_PID_VARIABLE, report
from expops_smk.runtime.node_inputs import InputReader, upstream_values
from expops_smk.runtime.forcing import cache_bypass_reason
from expops_smk.runtime.run_key import hash_payload, location_key, recorded_folder_key, run_payload
from expops_smk.runtime.reads import recorder_for, recording
from expops_smk.runtime.seeding import derive_task_seed, seed_rngs
from expops_smk.runtime.source_data import SourceDataError, source_values
from expops_smk.store.artifact_store import Store
from expops_smk.store.artifacts import Artifact
from expops_smk.store.pending_reads import Pending, Reads
from expops_smk.store.read_markers import marker_token
from expops_smk.store.read_records import changed_reads, job_key, read_run_reads, write_job_record, write_pending_reads


class UserCodeError(Exception):
    """The user's function raised; the traceback goes to the job log."""

    def __init__(self, label: str, message: str, what: str = "the process function") -> None:
        self.label = label
        self.what = what  # "the process function" or "importing main.py"
        super().__init__(message)


@dataclass(frozen=True)
class CacheCheck:
    """What the run cache says about a job, found before anything is written."""

    manifests: list[tuple[NodeInput, dict[str, Artifact]]]
    payload: dict[str, Any]
    run_key: str
    locations: list[Node]
    job: str  # its name among the read records
    reads_token: str
    recorded: Reads | None  # what the recorded run read; None when bypassed or never recorded
    restorable: bool  # not bypassed, and the files the recorded run read are unchanged


class NodeRun:
    """One execution of one node."""

    def __init__(self, root: Path, process: str, partition: str, seed: str, log: TextIO,
                 environ: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.log = log
        self.environ = os.environ if environ is None else environ  # the job's, also when the server runs it
        self.pending: Pending | None = None  # what the function read, set when it was called
        # The --config parameter overrides of this Snakemake invocation (see codegen.overriding).
        self.project: ProjectConfig = apply_overrides(read_plan(root / PLAN_FILE, root).project,
                                                      Overrides.from_json(self.environ.get(OVERRIDES_VARIABLE)))
        self.graph = Graph(self.project)
        if process not in self.graph.layouts:
            raise NodeError(process, f"process not in the plan {PLAN_FILE}; run `expops-smk generate`")
        try:
            self.node: Node = self.graph.node(process, partition, seed)
        except (KeyError, ValueError):  # a value outside the graph, or not a partition/seed at all
            raise NodeError(process, f"no node at partition={partition!r} seed={seed!r}") from None
        self.layout: ProcessLayout = self.graph.layouts[process]
        self.spec: ProcessSpec = self.layout.spec
        self.store = Store(root)
        self.inputs: list[NodeInput] = self.graph.inputs(self.node)
        split = self.spec.data_split
        self.growing = GrowingSplit(root, self.project, self.node) if split is not None and split.dynamic else None
        self.user_modules: dict[Path, str] = {}  # script -> module name, set when executing
        self.inputs_reader = InputReader(self.store, log, self.node.label)

    # -- bookkeeping -----------------------------------------------------------------------
    def say(self, message: str) -> None:
        self.log.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {message}\n")
        self.log.flush()

    def warn(self, message: str) -> None:
        """One line naming the node, on stderr (the run's output) and in the node log."""
        line = f"warning: node '{self.node.label}': {message}"
        report(line)
        self.say(line)

    def fail(self, message: str) -> NodeError:
        return NodeError(self.node.label, message)

    def user_error(self, what: str, exc: BaseException) -> UserCodeError:
        """Log the traceback of an exception user code let out, as one line's worth of error.

        ``sys.exit()`` and KeyboardInterrupt in user code fail the node too: exiting 0 without
        outputs would only make Snakemake wait for files that never come.
        """
        traceback.print_exception(exc, file=self.log)
        if isinstance(exc, SystemExit):
            return UserCodeError(self.node.label, f"called sys.exit({exc.code!r})", what)
        detail = f": {exc}" if str(exc) else ""  # KeyboardInterrupt has no message
        return UserCodeError(self.node.label, f"raised {type(exc).__name__}{detail}", what)

    def location_dir(self, location: Node) -> Path:
        return self.root / location.results_dir

    # -- the run key -----------------------------------------------------------------------
    def read_input_manifests(self) -> list[tuple[NodeInput, dict[str, Artifact]]]:
        result = []
        for item in self.inputs:
            folder = self.location_dir(item.location)
            try:
                manifest = self.store.read_manifest(folder)
            except ExpopsError as exc:  # the store reports a missing or unreadable manifest alike
                if (folder / MANIFEST).exists():
                    raise self.fail(f"input from '{item.location.label}' is unreadable: {exc}") from None
                raise self.fail(f"input from '{item.location.label}' is missing ({item.location.results_dir}); "
                                "run the upstream first (snakemake does this for you)") from None
            result.append((item, manifest))
        return result

    def data_digest(self) -> str | None:
        if self.spec.parents or self.project.data_path is None:
            return None
        try:
            return (self.root / DATA_DIGEST).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise self.fail(f"{DATA_DIGEST} is missing; run through snakemake, which writes it") from None

    def run_payload(self, manifests: list[tuple[NodeInput, dict[str, Artifact]]]) -> dict[str, Any]:
        return run_payload(self.project, self.spec, self.node, manifests, self.data_digest())

    # -- main --------------------------------------------------------------------------------
    def run(self) -> str:
        """Restore or execute; returns "restored" or "executed"."""
        started = time.perf_counter()
        warm_server = self.environ.get(SERVER_PID_VARIABLE)
        self.say(f"node {self.node.label}  id {self.node.id}"
                 + (f"  (forked from the warm interpreter, pid {warm_server})" if warm_server else ""))
        check = self.check_cache()
        locations = check.locations
        if check.restorable and self.restore(check):
            outcome = "restored"
            # The report shows what the results cost to compute, not what restoring them cost.
            computed = self.store.recorded_seconds(location_key(check.run_key, locations[0]))
        else:
            outputs = self.execute(check.manifests)
            computed = time.perf_counter() - started
            locations = self.growing.locations() if self.growing is not None else locations
            write_pending_reads(self.root, check.job, check.reads_token,  # before the run records: checked when restoring
                                [location_key(check.run_key, loc) for loc in locations[:len(outputs)]],
                                self.pending or Pending(str(self.root), [], [], 0, 0, [], [], [], {}))
            for location, values in zip(locations, outputs):
                self.write_outputs(location, values, check.run_key, computed)
            if self.growing is not None:
                self.growing.record(self.store)
            outcome = "executed"
        self.finish(check, locations, outcome, started, computed)
        return outcome

    def restore_only(self, how: str) -> bool:
        """Restore the node if the run cache allows it, else write nothing and return False.

        What the warm server runs in its own process before forking (``runtime.served_restore``):
        a hit costs no fork and no child, a miss (or a forced run) is executed by a forked child.
        """
        started = time.perf_counter()
        self.say(f"node {self.node.label}  id {self.node.id}  ({how})")
        check = self.check_cache()
        if not (check.restorable and self.restore(check)):
            return False
        computed = self.store.recorded_seconds(location_key(check.run_key, check.locations[0]))
        self.finish(check, check.locations, "restored", started, computed)
        return True

    def check_cache(self) -> CacheCheck:
        """The run key and whether the run cache may serve it; reads files, writes none."""
        manifests = self.read_input_manifests()
        payload = self.run_payload(manifests)
        run_key = hash_payload(payload)
        locations = self.layout.output_locations(self.node)
        job = job_key(self.node.process, self.node.partition_value, self.node.seed_value)
        reads_token = marker_token(self.root, job)  # what scheduled it: recorded with the reads (read_markers)
        bypass = cache_bypass_reason(self.environ, rule_name(self.spec.name),
                                     [f"{loc.results_dir}/{MANIFEST}" for loc in locations], self.project.execution.benchmark)
        if bypass:
            self.say(f"run cache bypassed ({bypass}): executing user code")
        if self.growing is not None:  # it looks at the new data: see runtime/datums.py
            bypass = bypass or "a growing-data split reads its data each time it is scheduled"
        recorded = None if bypass else read_run_reads(self.root, location_key(run_key, locations[0]))
        stale = None if recorded is None else changed_reads(self.root, recorded)
        if stale:
            self.say(f"files read by the recorded run changed ({', '.join(stale)}): executing user code")
        return CacheCheck(manifests, payload, run_key, locations, job, reads_token, recorded,
                          restorable=not bypass and stale == [])

    def restore(self, check: CacheCheck) -> bool:
        """Replay the recorded run into every output folder; False (run instead) when one cannot be."""
        if not all(self.store.restore_run(location_key(check.run_key, loc), self.location_dir(loc),
                                          recorded_folder_key(self.root, loc.results_dir))
                   for loc in check.locations):
            return False
        write_job_record(self.root, check.job, check.reads_token, check.recorded or {})
        self.say(f"inputs, code and parameters match a recorded run ({check.run_key}): outputs restored, user code not run")
        return True

    def finish(self, check: CacheCheck, locations: list[Node], outcome: str, started: float,
               computed: float | None) -> None:
        elapsed = time.perf_counter() - started
        for location in locations:
            self.store.put_json(self.location_dir(location) / RUN_FILE, {
                "node": self.node.id, "label": self.node.label, "run_key": check.run_key, "outcome": outcome,
                "seconds": round(elapsed, 3), "payload": check.payload,
                "computed_seconds": None if computed is None else round(computed, 3),
            })
        self.say(f"{outcome} in {elapsed:.2f}s")

    def write_outputs(self, location: Node, values: Mapping[str, Any], run_key: str, seconds: float) -> None:
        folder = self.location_dir(location)
        recorded = recorded_folder_key(self.root, location.results_dir)
        self.store.clear_node(folder, recorded)
        artifacts: dict[str, Artifact] = {}
        try:
            for key, value in values.items():
                artifacts[key] = self.store.write_value(folder, key, value)
        except ExpopsError as exc:  # a value that cannot be pickled: its traceback goes to the log
            traceback.print_exception(exc, file=self.log)
            for artifact in artifacts.values():  # written by this execution, listed nowhere yet
                (folder / artifact.file).unlink(missing_ok=True)
            raise self.fail(str(exc)) from None
        recorder = user_api.current_recorder()
        self.store.put_json(folder / METRICS_FILE, {
            "node": self.node.id, "label": self.node.label, "process": self.node.process,
            "partition": self.node.partition_value, "seed": self.node.seed_value, **recorder.to_json(),
        })
        self.store.write_manifest(folder, artifacts)
        self.store.record_run(location_key(run_key, location), folder, extra_files=[METRICS_FILE], seconds=seconds)
        self.say(f"wrote {location.results_dir}: " + ", ".join(f"{k} ({a.format})" for k, a in artifacts.items()))

    # -- execution ---------------------------------------------------------------------------
    def execute(self, manifests: list[tuple[NodeInput, dict[str, Artifact]]]) -> list[dict[str, Any]]:
        """Run the function (or the built-in split) and return the values for each output folder."""
        from expops_smk.runtime.user_scripts import install_user_scripts

        self.user_modules = install_user_scripts(self.root, self.project.all_scripts())
        upstream = upstream_values(self.root, manifests, self.node.label)
        spec = self.spec
        user_api.reset_recorder()
        if spec.function is None:  # a source split without code cuts data.path (runtime/source_data.py)
            try:
                result: dict[str, Any] = self.inputs_reader.materialize(upstream) or source_values(spec, self.project.data_path)
            except SourceDataError as exc:
                raise self.fail(f"data.path: {exc}") from None
        else:
            extra = {"seeds": list(spec.seeds)} if spec.seeds is not None else {}
            result = self.call(upstream, extra)
        if spec.data_split is None:
            return [result]
        return self.split(result)

    def call(self, upstream: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        spec = self.spec
        function_info = spec.function
        assert function_info is not None
        parameters = effective_parameters(self.project, spec)
        for key in upstream:
            if key in parameters:
                raise self.fail(f"input '{key}' from upstream collides with parameter '{key}'; rename one")
        random_seed = self.node.seed[-1] if self.node.seed else parameters.get("random_seed", self.project.random_seed)
        parameters = {**parameters, "random_seed": random_seed}
        candidates: dict[str, Any] = {**parameters, **upstream, **extra}
        wanted = function_info.params
        if "context" in wanted and "context" not in candidates:
            candidates["context"] = user_api.NodeContext(
                process=spec.name, label=self.node.label, id=self.node.id, partition=self.node.partition_value,
                seed=self.node.seed_value, random_seed=random_seed, parameters=parameters,
                results_dir=self.location_dir(self.node), project_dir=self.root)
        if "hyperparameters" in wanted and "hyperparameters" not in candidates:
            candidates["hyperparameters"] = dict(parameters)  # early ExpOps style: fn(data, hyperparameters)
        if "data" in wanted and "data" not in candidates:
            candidates["data"] = dict(upstream)
        if function_info.has_var_kwargs:
            kwargs = {k: v for k, v in candidates.items() if k not in ("context", "hyperparameters") or k in wanted}
        else:
            kwargs = {k: candidates[k] for k in wanted if k in candidates}
        missing = [name for name in function_info.required if name not in kwargs]
        if missing:
            raise self.fail(f"function '{function_info.name}' needs {', '.join(repr(m) for m in missing)} "
                            f"but the available inputs are: {', '.join(sorted(candidates)) or 'none'}")
        function = self.load_function()
        kwargs = {key: self.inputs_reader.materialize(value) for key, value in kwargs.items()}
        seeded = seed_rngs(derive_task_seed(int(random_seed), self.node.id), _read_text(spec.script))
        self.say(f"calling {function_info.name}({', '.join(sorted(kwargs))}); RNGs seeded: {', '.join(seeded)}")
        recorder = recorder_for(self.root, [self.log, None if spec.parents else self.project.data_path])
        with contextlib.redirect_stdout(self.log), contextlib.redirect_stderr(self.log), recording(recorder):
            try:
                result = function(**kwargs)
            except (Exception, SystemExit, KeyboardInterrupt) as exc:
                raise self.user_error("the process function", exc) from exc
        self.pending = recorder.pending()
        if spec.data_split is not None and isinstance(result, (list, tuple)):
            result = {spec.data_split.data_name: result}
        if not isinstance(result, dict):
            expected = "a dict (or a list of rows, for a data splitter)" if spec.data_split else "a dict"
            raise self.fail(f"function '{function_info.name}' returned {type(result).__name__}; it must return {expected}")
        for key in result:
            if not is_safe_key(key):
                raise self.fail(f"returned key {key!r} cannot be a file name "
                                "(letters, digits, '_', '-', '.'; not starting with '.')")
        return result

    def load_function(self) -> Callable[..., Any]:
        script = self.spec.script
        assert script is not None and self.spec.function is not None
        with contextlib.redirect_stdout(self.log):
            try:
                module = importlib.import_module(self.user_modules[script.resolve()])
            except (SystemExit, KeyboardInterrupt) as exc:
                raise self.user_error(f"importing {script.name}", exc) from exc
            except Exception as exc:
                traceback.print_exc(file=self.log)
                raise UserCodeError(self.node.label, f"raised importing {script.name} failed: "
                                    f"{type(exc).__name__}: {exc}") from exc
        function = getattr(module, self.spec.function.name, None)
        if not callable(function):
            raise self.fail(f"{script.name} defines no function '{self.spec.function.name}' when imported")
        return function

    def split(self, result: dict[str, Any]) -> list[dict[str, Any]]:
        from expops_smk.runtime.splitting import SplitError, empty_partitions, split_buckets, split_rows

        split = self.spec.data_split
        assert split is not None
        if split.data_name not in result and split.files is None:
            raise self.fail(f"data_name '{split.data_name}' is not among the values to split "
                            f"(available: {', '.join(sorted(result)) or 'none'})")
        try:
            if self.growing is not None:
                return self.growing.cut(result)
            if split.by is not None and split.buckets is not None:
                parts = split_buckets(result[split.data_name], split.by, split.buckets)
            else:
                parts = split_rows(result[split.data_name], split.count, split.row_counts)
        except SplitError as exc:
            field = "data_parallelism" if split.mode == "size" else f"data_parallelism.{split.mode}"
            raise self.fail(f"{field}: {exc}") from None
        empty = empty_partitions(parts)
        if empty and split.row_counts is None:  # explicit 0 sizes were already warned about at validation
            cause = (f"size {split.count}: the data has fewer rows than partitions" if split.buckets is None
                     else f"buckets {split.buckets}: no key hashes to some buckets")
            self.warn(f"data_parallelism.{cause}; partition(s) p{', p'.join(map(str, empty))} are empty")
        return [{**result, split.data_name: part} for part in parts]


def _read_text(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""
