"""End to end: one invocation leaves nothing stale around growing splits nested below a checkpoint.

A growing split below another checkpoint (a ``by``/``size:``/growing split around it) is a
checkpoint job that can drop out of the run once the checkpoint above came back unchanged. The
aggregations and ``rule all`` above its partitions must still list the chains due to run for
another reason (a code change) in that same invocation; and nodes below an inner growing split
must wait for their own split job when it runs (else they run on its old rows). Each test
changes code and data in one run, counts the user functions executed, and checks the next run
has nothing to do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e import Project
from projects import BUCKETS_CONFIG, BUCKETS_MAIN, bucket_rows, write_project

pytestmark = pytest.mark.e2e

# A final process inside the inner layer: `rule all` lists its nodes (branch_expand).
NOTED_CONFIG = BUCKETS_CONFIG.replace("      work agg\n", "      work agg\n      work note\n").replace(
    "      - name: work\n", "      - name: work\n      - name: note\n")
NOTED_MAIN = BUCKETS_MAIN + '''

def note(s):
    called("note")
    return {"line": f"s={s}"}
'''

WORK_LINE = '"s": int(data["x"].sum()),'
WORK_EDITED = '"s": int(data["x"].sum()) * 2,'


def edit_work(project: Project) -> None:
    project.edit("src/main.py", WORK_LINE, WORK_EDITED)


def test_code_change_and_one_bucket_growing_run_every_chain_in_one_invocation(tmp_path: Path) -> None:
    """by-buckets around rows chunks: bucket 1's split job drops out (its rows did not change), yet
    its `work` nodes (code changed) run in the same invocation, and `total` runs once, on them."""
    assert "      work note\n" in NOTED_CONFIG and "- name: note" in NOTED_CONFIG
    project = Project(write_project(tmp_path / "p", NOTED_CONFIG, NOTED_MAIN, script_path="src/main.py",
                                    files={"data/raw.csv": "id,g,x\n" + bucket_rows(1, 20)}))
    assert project.run().calls.count("note") == 7
    edit_work(project)
    project.append("data/raw.csv", bucket_rows(22, 22))  # bucket 2: completes its chunk 3 (17 20 22)
    grown = project.run()
    assert grown.calls_to("work") == sorted(f"work {i}" for i in (1, 6, 11, 16, 2, 10, 17))
    assert grown.calls.count("total") == 1 and grown.calls.count("agg") == 2
    assert grown.calls.count("note") == 7  # every `s` doubled: `rule all` listed bucket 1's notes too
    assert project.value("note", "line", "p1-p1") == f"s={2 * (1 + 3 + 4)}"
    ids = [i for i in range(1, 23) if i != 21]
    assert project.value("total", "all") == 2 * sum(ids)
    assert project.snakemake().nothing_to_do


SIZE_CONFIG = BUCKETS_CONFIG.replace("{by: g, buckets: 2}", "{size: 2}")


def test_code_change_and_one_size_slice_edited_run_every_chain_in_one_invocation(tmp_path: Path) -> None:
    """The same inside a `size:` fan-out: a row of slice 2 edited leaves slice 1's split job out."""
    project = Project(write_project(tmp_path / "p", SIZE_CONFIG, BUCKETS_MAIN, script_path="src/main.py",
                                    files={"data/raw.csv": "id,g,x\n" + bucket_rows(1, 20)}))
    project.run()
    edit_work(project)
    project.edit("data/raw.csv", "\n20,a,20\n", "\n20,a,200\n")  # slice 2 (rows 11-20), its chunk 4 (ids 20)
    grown = project.run()
    # Slices of 10 rows, chunks of 3: slice 1 ids 1 4 7 10, slice 2 ids 11 14 17 20.
    assert grown.calls_to("work") == sorted(f"work {i}" for i in (1, 4, 7, 10, 11, 14, 17, 20))
    assert grown.calls.count("total") == 1 and grown.calls.count("agg") == 2
    assert project.value("total", "all") == 2 * (sum(range(1, 20)) + 200)
    assert project.snakemake().nothing_to_do


GROWING_CONFIG = BUCKETS_CONFIG.replace("{by: g, buckets: 2}", "{by: g}")


def test_nodes_below_an_inner_growing_split_wait_for_its_re_cut(tmp_path: Path) -> None:
    """by (growing) around rows chunks: a code change of `work` and rows re-cutting key a's last
    chunk in one run: that chunk's `work` runs on the new rows, once, and nothing is left to do."""
    project = Project(write_project(tmp_path / "p", GROWING_CONFIG, BUCKETS_MAIN, script_path="src/main.py",
                                    files={"data/raw.csv": "id,g,x\n" + bucket_rows(1, 20)}))
    project.run()
    edit_work(project)
    project.append("data/raw.csv", bucket_rows(22, 22))  # key a: completes its chunk 3 (17 20 22)
    grown = project.run()
    assert grown.calls_to("work") == sorted(f"work {i}" for i in (1, 6, 11, 16, 2, 10, 17))
    assert grown.calls.count("total") == 1 and grown.calls.count("agg") == 2
    ids = [i for i in range(1, 23) if i != 21]
    assert project.value("total", "all") == 2 * sum(ids)
    assert project.snakemake().nothing_to_do


GATHERED_CONFIG = """\
scripts: {main: src/main.py}
data: {path: data/raw.csv}
experiment:
  pipeline:
    process_adjlist: |
      load part
      part pw
      pw gather
      gather split
      split work
    processes:
      - name: load
      - {name: part, data_parallelism: {size: 2}}
      - name: pw
      - {name: gather, data_aggregation: true}
      - {name: split, data_parallelism: {rows_per_partition: 3}}
      - name: work
"""

GATHERED_MAIN = BUCKETS_MAIN + '''

def pw(data):
    return {"rows": data}


def gather(rows):
    return {"data": pd.concat([rows[key] for key in sorted(rows)])}
'''


def test_rule_all_lists_the_new_partitions_of_a_split_below_an_aggregated_split(tmp_path: Path) -> None:
    """A growing split below an aggregation of a `size:` split (no fan-out around it, still below a
    checkpoint): `rule all` lists its final nodes from disk and waits for it, so the chunk the new rows
    open runs in the invocation that added them."""
    project = Project(write_project(tmp_path / "p", GATHERED_CONFIG, GATHERED_MAIN, script_path="src/main.py",
                                    files={"data/raw.csv": "id,g,x\n" + bucket_rows(1, 6)}))
    assert project.run().calls_to("work") == ["work 1", "work 4"]
    project.append("data/raw.csv", bucket_rows(7, 7))
    assert project.snakemake().calls_to("work") == ["work 7"]
    assert project.snakemake().nothing_to_do


KEYS_CONFIG = BUCKETS_CONFIG.replace("{rows_per_partition: 3}", "{by: k}")


def test_a_key_removed_in_the_run_of_a_code_change_leaves_no_job_behind(tmp_path: Path) -> None:
    """The nodes of an inner `by` split are listed from its list on disk before it runs: one whose key
    the run removes (its `work` due to the code change) leaves the run once the split ran."""
    def data(moved: bool) -> str:  # bucket 1 (g): y 1 | z 3 5; bucket 2 (a): y 2 | z 4 6, moved: y 2 4 6
        key = {i: "y" if i < 3 or (moved and i % 2 == 0) else "z" for i in range(1, 7)}
        return "id,g,x,k\n" + "".join(f"{i},{'g' if i % 2 else 'a'},{i},{key[i]}\n" for i in range(1, 7))

    project = Project(write_project(tmp_path / "p", KEYS_CONFIG, BUCKETS_MAIN, script_path="src/main.py",
                                    files={"data/raw.csv": data(False)}))
    assert project.run().calls_to("work") == ["work 1", "work 2", "work 3", "work 4"]
    edit_work(project)
    (project.root / "data/raw.csv").write_text(data(True), encoding="utf-8")
    grown = project.run()
    assert grown.calls_to("work") == ["work 1", "work 2", "work 3"]
    assert project.value("total", "all") == 2 * sum(range(1, 7))
    assert project.snakemake().nothing_to_do
