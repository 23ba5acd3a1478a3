"""Write small ExpOps projects into a temporary folder for tests (import as ``from projects import ...``).

A project is ``configs/project_config.yaml`` plus one script; tests describe the config as a dict
(dumped with its key order kept, so layouts read as the user would write them) or as raw YAML
text when the exact spelling matters (comments, tags, aliases, bytes).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from e2e import CALLS_HELPER

SCRIPT = "src/model.py"


def write_project(
    root: Path,
    config: Mapping[str, Any] | str | bytes,
    script: str = "",
    *,
    script_path: str = SCRIPT,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Write the project into ``root`` (created if needed) and return ``root``.

    ``script`` goes to ``script_path`` (dedented); ``files`` maps further relative paths to text.
    """
    root = Path(root)
    config_file = root / "configs" / "project_config.yaml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(config, bytes):
        config_file.write_bytes(config)
    elif isinstance(config, str):
        config_file.write_text(textwrap.dedent(config), encoding="utf-8")
    else:
        config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    for relative, text in {script_path: script, **(files or {})}.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def functions(names: Iterable[str]) -> str:
    """Script source defining one trivial process function per name."""
    return "".join(f"def {name}(**kwargs):\n    return {{}}\n\n\n" for name in names)


def pipeline(processes: list[dict[str, Any]], adjlist: str | list[str] | None = None,
             **sections: Any) -> dict[str, Any]:
    """A config in the ExpOps 0.1.27 layout (``experiment.pipeline``) with ``scripts.model``."""
    config: dict[str, Any] = {"scripts": {"model": SCRIPT}}
    config.update(sections)
    body: dict[str, Any] = {}
    if adjlist is not None:
        body["process_adjlist"] = adjlist
    body["processes"] = processes
    experiment = dict(config.get("experiment", {}))
    experiment["pipeline"] = body
    config["experiment"] = experiment
    return config


def one_process_project(root: Path, name: str, process: str) -> Path:
    """The smallest real project: ``metadata.name`` ``name``, one process ``process`` (src/main.py)
    returning the artifact ``rows`` = [1, 2, 3]."""
    config = f"""\
metadata: {{name: {name}}}
scripts: {{main: src/main.py}}
experiment:
  pipeline:
    process_adjlist: |
      {process}
    processes:
      - name: {process}
"""
    return write_project(root, config, f'def {process}():\n    return {{"rows": [1, 2, 3]}}\n', script_path="src/main.py")


# -- growing-data projects: the e2e tests of growing splits, their nesting and their charts --------
# Their functions call ``called`` (e2e.CALLS_HELPER), so a test counts the user code each run executed.

ROWS_CONFIG = """\
scripts: {main: src/main.py}
data: {path: data/raw.csv}
experiment:
  pipeline:
    process_adjlist: |
      load split
      split train
      train agg
    processes:
      - name: load
      - {name: split, data_parallelism: {rows_per_partition: 10}}
      - name: train
      - {name: agg, data_aggregation: true}
"""
"""A growing split of data/raw.csv (``id,x`` rows, see ``csv_rows``) into chunks of 10 rows."""

BUCKETS_CONFIG = """\
scripts: {main: src/main.py}
data: {path: data/raw.csv}
experiment:
  pipeline:
    process_adjlist: |
      load part
      part split
      split work
      work agg
      agg total
    processes:
      - name: load
      - {name: part, data_parallelism: {by: g, buckets: 2}}
      - {name: split, data_parallelism: {rows_per_partition: 3}}
      - name: work
      - {name: agg, data_aggregation: true}
      - {name: total, data_aggregation: true}
"""
"""A growing split (chunks of 3 rows) inside each of 2 ``by`` buckets (``id,g,x`` rows, see ``bucket_rows``)."""

BUCKETS_MAIN = CALLS_HELPER + '''
import random

import pandas as pd

from expops_smk import log_metric


def load():
    called("load")
    return {"data": pd.read_csv("data/raw.csv")}


def work(data):
    called(f"work {data['id'].iloc[0]}")
    log_metric("rows", len(data))
    return {"s": int(data["x"].sum()), "noise": random.random()}


def agg(s):
    called("agg")
    return {"t": sum(s.values()), "branches": sorted(s)}


def total(t):
    called("total")
    return {"all": sum(t.values())}
'''

BUCKET_ONE, BUCKET_TWO = "g", "a"
"""Keys of the two buckets: stable_bucket(key, 2) is 1 and 2, a fixed hash, so they never move."""


def with_charts(config: str, charts: str) -> str:
    """``config`` (one of the above) with ``reporting: src/charts.py`` and the chart processes
    ``charts`` (YAML list items) after its processes: the same pipeline, with charts drawn over it."""
    scripts = "scripts: {main: src/main.py}\n"
    assert config.startswith(scripts)
    return "scripts: {main: src/main.py, reporting: src/charts.py}\n" + config[len(scripts):] + charts


def csv_rows(first: int, last: int, decimals: str = "") -> str:
    """Rows ``id,x`` with ids first..last, x the id followed by ``decimals`` (such as ".5")."""
    return "".join(f"{i},{i}{decimals}\n" for i in range(first, last + 1))


def bucket_rows(first: int, last: int) -> str:
    """Rows ``id,g,x`` with ids first..last; ids 5k and 5k+2 go to bucket 2, the others to bucket 1.
    (Not alternating: pandas would give a bucket of every other row a RangeIndex, which the next
    irregular row turns into a plain index, a change of every chunk's content.)"""
    return "".join(f"{i},{BUCKET_TWO if i % 5 in (0, 2) else BUCKET_ONE},{i}\n" for i in range(first, last + 1))
