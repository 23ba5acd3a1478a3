"""M1: peak RSS of the built-in data split node against the size of the data it splits.

A project loads a table of N rows x 8 float64 columns (10M rows, 610 MiB; 200k with --quick) and
splits it into 20 partitions. ``load_data`` runs through Snakemake; the split job then runs on its
own (``python -m expops_smk.runtime partition``, no warm server), so ``wait4`` reports the peak RSS
of that one process. Baselines measured in the same run: the same interpreter importing what the
job imports (its floor), and a plain pyarrow split (read the Parquet file, slice, write each slice).
The issue's figure, 3.3x at 20M rows, is peak RSS / data size with the floor included.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from common import EXPOPS_SMK, PYTHON, SNAKEMAKE, Row, Section, Settings, child_env, format_bytes, fresh_dir, median, run_timed
from expops_smk.layout import NO_CACHE_VARIABLE

COLUMNS = 8
PARTITIONS = 20
TARGET = 2.5

SCRIPT = '''
    import pandas as pd


    def load_data(data_path):
        return {"data": pd.read_parquet(data_path)}
'''

PLAIN_SPLIT = '''
import sys
import pyarrow.parquet as pq

table = pq.read_table(sys.argv[1])
count, parts = table.num_rows, int(sys.argv[3])
for index in range(parts):
    start, stop = index * count // parts, (index + 1) * count // parts
    pq.write_table(table.slice(start, stop - start), f"{sys.argv[2]}/p{index + 1}.parquet")
'''

FLOOR = "import pandas, pyarrow.parquet, expops_smk.runtime.node_run"


def write_project(root: Path, rows: int) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    config = {
        "scripts": {"model": "src/model.py"},
        "data": {"path": "data/table.parquet"},
        "experiment": {
            "parameters": {"data_path": "data/table.parquet"},
            "pipeline": {"process_adjlist": "load_data partition\n",
                         "processes": [{"name": "load_data"},
                                       {"name": "partition", "data_parallelism": {"size": PARTITIONS}}]},
        },
    }
    for folder in ("configs", "src", "data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "configs" / "project_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "src" / "model.py").write_text(textwrap.dedent(SCRIPT))
    rng = np.random.default_rng(3)
    table = pa.table({f"c{i}": rng.standard_normal(rows) for i in range(COLUMNS)})
    pq.write_table(table, root / "data" / "table.parquet", compression="none")
    return root


def run(settings: Settings, selected: set[str]) -> Section:
    rows = 200_000 if settings.quick else 10_000_000
    data_bytes = rows * COLUMNS * 8
    root = write_project(fresh_dir(settings.workdir / "project"), rows)
    run_timed([EXPOPS_SMK, "generate", "."], root)
    run_timed([SNAKEMAKE, "--cores", "1", "results/load_data/_outputs.json"], root)
    (root / "plain").mkdir()
    (root / "plain_split.py").write_text(PLAIN_SPLIT)
    ours, plain, floor = [], [], []
    for _ in range(settings.runs()):
        ours.append(run_timed([PYTHON, "-m", "expops_smk.runtime", "partition", "--log", "logs/m1.log"], root,
                              env=child_env({NO_CACHE_VARIABLE: "1"})).max_rss_kb)  # execute, never restore
        plain.append(run_timed([PYTHON, "plain_split.py", "results/load_data/data.parquet", "plain",
                                str(PARTITIONS)], root).max_rss_kb)
        floor.append(run_timed([PYTHON, "-c", FLOOR], root).max_rss_kb)
    peak, plain_peak, floor_peak = (median(values) * 1024 for values in (ours, plain, floor))
    section = Section()
    section.rows.append(Row(
        "M1", f"peak RSS of the data split ({rows:,} rows × {COLUMNS} float64 into {PARTITIONS}) vs its data",
        format_bytes(peak), format_bytes(data_bytes), peak / data_bytes, TARGET,
        note=f"plain pyarrow split {plain_peak / data_bytes:.2f}×; above the import floor "
             f"({format_bytes(floor_peak)}): {(peak - floor_peak) / data_bytes:.2f}×",
    ))
    section.details.append(
        f"**M1** the split job alone (`python -m expops_smk.runtime partition`, no warm server) on "
        f"{format_bytes(data_bytes)} of float64 ({rows:,} rows × {COLUMNS}), {PARTITIONS} partitions, "
        f"medians of {settings.runs()}: expops-smk {format_bytes(peak)}, plain pyarrow split (read, slice, "
        f"write each slice) {format_bytes(plain_peak)}, import floor {format_bytes(floor_peak)}.")
    return section
