"""P6 hashing an artifact vs writing it; P7 splitting into 100 Parquet partitions vs one raw write.

Both run in this process on synthetic tables (ids, two float columns, a small-int group and a
string label with 100 distinct values), written under the scratch folder (a real disk, not tmpfs).

P6 "hashing" is exactly what ``Store.write_value`` adds for a table: ``table_digest`` (the logical
content hash that decides re-runs) plus ``hash_file`` of the written Parquet (the object name).
P7 "ours" is the split node's path: ``splitting.split_rows`` then ``Store.write_value`` per partition
(Parquet write, both hashes, publish into the object store, hard link into the node folder);
the baseline is one ``pyarrow.parquet.write_table`` of the whole table.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from common import Row, Section, Settings, format_bytes, format_seconds, interleave, median, spread

P6_TARGET = 0.10
P7_TARGET = 0.8
P7_PARTITIONS = 100


def make_table(rows: int):
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(7)
    labels = np.array([f"label-{i:03d}" for i in range(100)], dtype=object)
    return pa.table({
        "id": np.arange(rows, dtype=np.int64),
        "x": rng.standard_normal(rows),
        "y": rng.random(rows),
        "group": rng.integers(0, 100, rows, dtype=np.int32),
        "label": pa.array(labels[rng.integers(0, 100, rows)], type=pa.string()),
    })


def p6(settings: Settings) -> Section:
    import pyarrow.parquet as pq

    from expops_smk.store.artifact_store import PARQUET_WRITE_OPTIONS
    from expops_smk.store.hashing import hash_file
    from expops_smk.store.table_digest import table_digest

    rows = 20_000 if settings.quick else 6_000_000
    table = make_table(rows)
    path = settings.workdir / "p6.parquet"
    timings: dict[str, list[float]] = {"digest": [], "file": []}

    def write() -> float:
        path.unlink(missing_ok=True)
        start = time.perf_counter()
        pq.write_table(table, path, **PARQUET_WRITE_OPTIONS)
        return time.perf_counter() - start

    def hashing() -> float:
        start = time.perf_counter()
        table_digest(table)
        middle = time.perf_counter()
        hash_file(path)
        end = time.perf_counter()
        timings["digest"].append(middle - start)
        timings["file"].append(end - middle)
        return end - start

    samples = interleave({"write": write, "hash": hashing}, settings.runs(3))
    write_s, hash_s = median(samples["write"]), median(samples["hash"])
    memory, on_disk = table.nbytes, path.stat().st_size
    section = Section()
    section.rows.append(Row(
        "P6", f"hashing an artifact (table_digest + hash_file) vs writing it (Parquet, {format_bytes(memory)} table)",
        format_seconds(hash_s), format_seconds(write_s), hash_s / write_s, P6_TARGET,
    ))
    mib = 1024 * 1024
    section.rows.append(Row(
        "P6", "throughput: hashing (in-memory bytes / hash time) vs Parquet write (same bytes / write time)",
        f"{memory / hash_s / mib:.0f} MiB/s", f"{memory / write_s / mib:.0f} MiB/s", (memory / hash_s) / (memory / write_s),
        None, higher_is_better=True,
    ))
    section.details.append(
        f"**P6** {rows:,} rows, {format_bytes(memory)} in memory, {format_bytes(on_disk)} as Parquet "
        f"(as the store writes: pyarrow's defaults with a 64 KiB dictionary page limit):\n\n"
        f"- Parquet write {spread(samples['write'])}\n"
        f"- table_digest {spread(timings['digest'])} = {memory / median(timings['digest']) / mib:.0f} MiB/s of table; "
        f"hash_file {spread(timings['file'])} = {on_disk / median(timings['file']) / mib:.0f} MiB/s of file"
    )
    return section


def p7(settings: Settings) -> Section:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from expops_smk.runtime.splitting import split_rows
    from expops_smk.store.artifact_store import Store

    rows = 100_000 if settings.quick else 10_000_000
    table = make_table(rows)
    frame = table.to_pandas()
    base = settings.workdir / "p7"
    memory = table.nbytes

    def clean() -> Path:
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        return base

    def ours(value) -> float:
        project = clean()
        store = Store(project)
        start = time.perf_counter()
        for index, part in enumerate(split_rows(value, P7_PARTITIONS), start=1):
            store.write_value(project / "results" / "partition" / f"p{index}", "data", part)
        return time.perf_counter() - start

    def raw_table() -> float:
        folder = clean()
        start = time.perf_counter()
        pq.write_table(table, folder / "all.parquet")
        return time.perf_counter() - start

    def raw_frame() -> float:
        folder = clean()
        start = time.perf_counter()
        pq.write_table(pa.Table.from_pandas(frame), folder / "all.parquet")
        return time.perf_counter() - start

    def raw_parts() -> float:
        folder = clean()
        start = time.perf_counter()
        for index, part in enumerate(split_rows(table, P7_PARTITIONS), start=1):
            pq.write_table(part, folder / f"p{index}.parquet")
        return time.perf_counter() - start

    samples = interleave({
        "ours_table": lambda: ours(table), "raw_table": raw_table,
        "ours_frame": lambda: ours(frame), "raw_frame": raw_frame,
        "raw_parts": raw_parts,
    }, settings.runs(3))
    shutil.rmtree(base, ignore_errors=True)
    m = {name: median(values) for name, values in samples.items()}
    mib = 1024 * 1024
    section = Section()
    section.rows.append(Row(
        "P7", f"split {rows:,} rows into {P7_PARTITIONS} Parquet partitions (Arrow table), throughput",
        f"{memory / m['ours_table'] / mib:.0f} MiB/s", f"{memory / m['raw_table'] / mib:.0f} MiB/s",
        m["raw_table"] / m["ours_table"], P7_TARGET, higher_is_better=True,
    ))
    section.rows.append(Row(
        "P7", "same from a pandas DataFrame (the runtime's usual value) vs from_pandas + one write",
        f"{memory / m['ours_frame'] / mib:.0f} MiB/s", f"{memory / m['raw_frame'] / mib:.0f} MiB/s",
        m["raw_frame"] / m["ours_frame"], P7_TARGET, higher_is_better=True,
    ))
    section.details.append(
        f"**P7** {rows:,} rows ({format_bytes(memory)} as Arrow), {P7_PARTITIONS} partitions; throughput = "
        "table bytes / time:\n\n"
        f"- expops-smk split_rows + Store.write_value ×{P7_PARTITIONS}, Arrow table {spread(samples['ours_table'])}; "
        f"pandas DataFrame {spread(samples['ours_frame'])}\n"
        f"- raw `pq.write_table` of the whole table {spread(samples['raw_table'])}; "
        f"`from_pandas` + write {spread(samples['raw_frame'])}\n"
        f"- raw `pq.write_table` of the {P7_PARTITIONS} slices with pyarrow's defaults (no hashing, no store) "
        f"{spread(samples['raw_parts'])}: with 1 MiB dictionary pages (the default, and the store's setting "
        "before issue 7; now 64 KiB) the writer dictionary-encodes every 100k-row chunk of unique ids and floats"
    )
    return section


def run(settings: Settings, selected: set[str]) -> Section:
    section = Section()
    for name, bench in (("P6", p6), ("P7", p7)):
        if name in selected:
            part = bench(settings)
            section.rows.extend(part.rows)
            section.details.extend(part.details)
    return section
