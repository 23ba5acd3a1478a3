"""The API user code imports: ``process``, ``step``, ``log_metric`` (and ExpOps' type names), and for
charts ``chart`` and ``ChartContext``, and ``NodeContext``, what a process taking ``context`` receives;
``expops.core`` and ``expops.reporting`` are aliases of these.

The decorators only mark functions: expops-smk finds a process's function through the config and
calls it itself, so decorating changes nothing about how the function behaves when called directly
(in a notebook or a unit test). ``log_metric`` records into the metrics of the node being run; the
runtime writes them to ``_metrics.json`` beside the node's artifacts.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from numbers import Number
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# ExpOps exports these names for annotations; user code imports them, so they must exist.
SerializableData = Any
ModelData = Any


@dataclass(frozen=True)
class NodeContext:
    """What a process may ask for with a ``context`` parameter."""

    process: str
    label: str
    id: str
    partition: str
    seed: str
    random_seed: int
    parameters: Mapping[str, Any]
    results_dir: Path
    project_dir: Path


@dataclass
class MetricsRecorder:
    """Metrics of one node: numeric series per step, and the latest value of non-numeric ones."""

    series: list[dict[str, Any]] = field(default_factory=list)
    snapshots: dict[str, Any] = field(default_factory=dict)
    _next_step: dict[str, int] = field(default_factory=dict)
    current_step: str | None = None

    def record(self, key: str, value: Any, step: int | None) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f"log_metric: key must be a non-empty string, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, Number):
            self.snapshots[key] = _plain(value)
            return
        if step is None:
            step = self._next_step.get(key, 1)
        self._next_step[key] = int(step) + 1
        number = float(value) if not isinstance(value, int) else int(value)
        self.series.append({"metric": key, "step": int(step), "value": number, "step_name": self.current_step})

    def to_json(self) -> dict[str, Any]:
        return {"series": self.series, "snapshots": self.snapshots}


def _plain(value: Any) -> Any:
    """Snapshots are stored as JSON: keep JSON-able values, describe the rest."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Number):
        return float(value)
    return repr(value)


_recorder = MetricsRecorder()


def current_recorder() -> MetricsRecorder:
    return _recorder


def reset_recorder() -> MetricsRecorder:
    """Start a fresh recorder (the runtime calls this once per node)."""
    global _recorder
    _recorder = MetricsRecorder()
    return _recorder


def log_metric(key: str, value: Any, step: int | None = None) -> None:
    """Record ``value`` for ``key``; numbers form a series over ``step`` (1, 2, ... when omitted)."""
    _recorder.record(key, value, step)


def process(*decorator_args: Any, **options: Any) -> Any:
    """Mark a process function; usable as ``@process`` or ``@process()`` (options are accepted for ExpOps compatibility)."""
    if len(decorator_args) == 1 and callable(decorator_args[0]) and not options:
        return _mark(decorator_args[0], "process")
    return lambda fn: _mark(fn, "process")


def step(*decorator_args: Any, **options: Any) -> Any:
    """Mark a sub-step of a process: metrics logged inside it carry its name.

    Steps are part of their process's code hash; they are not cached separately (the process is
    the unit Snakemake schedules).
    """
    def wrap(fn: F) -> F:
        name = options.get("name", fn.__name__)

        @functools.wraps(fn)
        def run_step(*args: Any, **kwargs: Any) -> Any:
            previous = _recorder.current_step
            _recorder.current_step = name
            try:
                return fn(*args, **kwargs)
            finally:
                _recorder.current_step = previous

        return _mark(run_step, "step")  # type: ignore[return-value]

    if len(decorator_args) == 1 and callable(decorator_args[0]) and not options:
        return wrap(decorator_args[0])
    return wrap


def _mark(fn: F, kind: str) -> F:
    setattr(fn, "__expops_kind__", kind)
    return fn


# -- charts ------------------------------------------------------------------------------------

def chart(name: Any = None) -> Any:
    """Mark a chart function: ``@chart``, ``@chart()`` or ``@chart("name")``, as ExpOps accepts.

    expops-smk finds a chart's function through the config (``code``), so the mark changes nothing
    about how the function behaves when called directly.
    """
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        setattr(fn, "__expops_kind__", "chart")
        return fn

    return mark(name) if callable(name) else mark


@dataclass
class ChartContext:
    """What a chart function receives as ``ctx``.

    The first fields are ExpOps' (same names and order, so code that builds one for a unit test
    still works); ``probe_paths`` maps each key of ``metrics`` (aliases aside) to the canonical id
    it was read from, and ``project_dir`` is the project folder.
    """

    output_dir: Path
    project_id: str
    run_id: str
    theme: str
    chart_name: str
    metrics: dict[str, Any] = field(default_factory=dict)
    chart_type: str = "static"  # dynamic (JavaScript) charts are skipped at validation
    probe_paths: dict[str, str] = field(default_factory=dict)
    project_dir: Path | None = None

    def get_run_status(self) -> str:
        """A chart job starts only after every node it probes finished."""
        return "completed"

    def is_run_finished(self) -> bool:
        return True
