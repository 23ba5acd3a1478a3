"""End to end: files that functions open at run time decide what re-runs.

``work`` runs once per partition of a built-in 2-way split and opens the file its partition names in
the ``lookup`` parameter (data/a.txt for P1, data/b.txt for P2); ``total`` aggregates and also reads
a file outside the project (``outside``, in a temporary folder) and writes notes/total.txt, a file
it opens for writing only, with new content every time. Each scenario counts the user-function
executions (calls.log) and checks that ``expops-smk status`` said beforehand what then ran.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from expops_smk.layout import READS_DIR
from expops_smk.runtime.run_key import folder_key
from expops_smk.store.read_records import read_job_record, read_run_reads

from e2e import CALLS_HELPER, Project, assert_nothing_ran
from projects import write_project

pytestmark = pytest.mark.e2e

CONFIG = """\
scripts: {main: src/main.py}
experiment:
  parameters:
    lookup: {p1: data/a.txt, p2: data/b.txt}
    outside: OUTSIDE
  pipeline:
    process_adjlist: |
      load split
      split work
      work total
    processes:
      - {name: load, code: main.load}
      - {name: split, data_parallelism: {size: 2}}
      - {name: work, code: main.work}
      - {name: total, code: main.total, data_aggregation: true}
"""

MAIN = CALLS_HELPER + '''
import os
import time


def load():
    called("load")
    return {"data": [1, 2, 3, 4]}


def work(data, lookup, context):
    called(f"work {context.partition}")
    with open(lookup[context.partition], encoding="utf-8") as handle:
        factor = int(handle.read())
    return {"data": [row * factor for row in data]}


def total(data, outside):
    called("total")
    os.makedirs("notes", exist_ok=True)
    with open("notes/total.txt", "w", encoding="utf-8") as handle:
        handle.write(str(time.time_ns()))
    fd = os.open(outside, os.O_RDONLY)
    try:
        offset = int(os.read(fd, 100))
    finally:
        os.close(fd)
    return {"sum": offset + sum(sum(branch) for branch in data.values())}
'''

EVERY = {"load", "split", "work P1", "work P2", "total"}


def rewrite(path: Path, text: str) -> None:
    """Write ``text`` and move the mtime on, so only content can tell whether the file changed."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """One project for the scenarios, run in order (each starts from the previous one's state)."""
    base = tmp_path_factory.mktemp("reads")
    outside = base / "scratch" / "offset.txt"
    outside.parent.mkdir()
    outside.write_text("100", encoding="utf-8")
    root = write_project(base / "project", CONFIG.replace("OUTSIDE", str(outside)), MAIN, script_path="src/main.py",
                         files={"data/a.txt": "2", "data/b.txt": "3"})
    project = Project(root)
    first = project.run()
    assert first.executed == EVERY and sorted(first.calls) == ["load", "total", "work p1", "work p2"]
    assert project.value("total", "sum") == 100 + 2 * (1 + 2) + 3 * (3 + 4)
    return project


def recorded_reads(project: Project, process: str, partition: str = "") -> dict[str, list]:
    """The files the node's last run read, from the run record its ``_run.json`` names."""
    key = folder_key(project.run_record(process, partition)["run_key"], project.node_dir(process, partition)
                     .relative_to(project.root).as_posix())
    reads = read_run_reads(project.root, key)
    assert reads is not None
    return reads


def markers(project: Project) -> dict[str, str]:
    """Job key -> content of its reads marker (``.expops/reads/changed/<job>.token``)."""
    folder = project.root / READS_DIR / "changed"
    return {path.relative_to(folder).as_posix()[:-len(".token")]: path.read_text(encoding="utf-8")
            for path in sorted(folder.rglob("*.token"))}


def recorded_token(project: Project, key: str) -> str:
    record = read_job_record(project.root, key)
    assert record is not None
    return record[0]


def test_recorded_reads_change_nothing_by_themselves(project: Project) -> None:
    """The second run is a no-op although the first one recorded what every function read."""
    assert list(recorded_reads(project, "work", "p1")) == ["data/a.txt"]
    assert list(recorded_reads(project, "work", "p2")) == ["data/b.txt"]
    assert list(recorded_reads(project, "total")) == [str(project.root.parent / "scratch" / "offset.txt")]
    assert recorded_reads(project, "load") == {}  # calls.log and notes/total.txt were opened for writing
    assert all(line == "up to date" for line in project.status_by_node().values())
    assert_nothing_ran(project.snakemake())
    assert markers(project) == {}  # no job's token moved: no marker input anywhere


def test_editing_a_file_read_by_one_partition_reruns_that_node(project: Project) -> None:
    rewrite(project.root / "data/a.txt", "5")
    before = project.status_by_node()
    assert before["work P1"] == "will run: file changed: data/a.txt"
    assert before["total"] == "will run: upstream work P1 will re-run"
    assert all(before[label] == "up to date" for label in ("load", "split", "work P2"))
    dry = project.dry_run()
    # The job's marker appears (a new input, newer than the output): Snakemake's mtime and input triggers.
    assert "Updated input files: .expops/reads/changed/work/p1.token" in dry.output
    run = project.snakemake()
    assert run.outcomes == {"work P1": "executed", "total": "executed"}  # scheduled: exactly these
    assert sorted(run.calls) == ["total", "work p1"]
    assert project.value("total", "sum") == 100 + 5 * (1 + 2) + 3 * (3 + 4)
    # The job took its token from its marker and recorded it: the next parse hands it the same one.
    assert markers(project) == {"work/p1": recorded_token(project, "work/p1")}
    assert all(line == "up to date" for line in project.status_by_node().values())
    assert_nothing_ran(project.snakemake())


def test_a_second_edit_of_the_same_file_reruns_its_reader_again(project: Project) -> None:
    """The marker is an input already: its new content (newer, other checksum) schedules the job."""
    first = markers(project)["work/p1"]
    rewrite(project.root / "data/a.txt", "6")
    assert project.status_by_node()["work P1"] == "will run: file changed: data/a.txt"
    run = project.snakemake()
    assert run.outcomes == {"work P1": "executed", "total": "executed"} and sorted(run.calls) == ["total", "work p1"]
    assert markers(project)["work/p1"] not in (first, "files-read:none")
    assert markers(project)["work/p1"] == recorded_token(project, "work/p1")
    assert_nothing_ran(project.snakemake())
    rewrite(project.root / "data/a.txt", "5")  # back to the value the earlier tests expect
    # The run record of work P1's key holds the reads of its last run ("6"): it executes again.
    assert project.snakemake().outcomes == {"work P1": "executed", "total": "restored"}
    assert_nothing_ran(project.snakemake())


def test_a_marker_rewritten_with_its_content_runs_nothing(project: Project) -> None:
    """Snakemake's checksum rule holds for markers: newer but with the recorded checksum is no reason."""
    marker = project.root / READS_DIR / "changed" / "work" / "p1.token"
    rewrite(marker, marker.read_text(encoding="utf-8"))
    assert_nothing_ran(project.snakemake())


def test_a_job_with_a_marker_below_an_unchanged_partition_is_not_started(project: Project) -> None:
    """Early cutoff inside one run: load's new data leaves partition 1 as it was, so the split (a
    checkpoint) drops work P1, marker input and all."""
    project.edit("src/main.py", '"data": [1, 2, 3, 4]', '"data": [1, 2, 3, 7]')
    run = project.snakemake()
    assert run.executed == {"load", "split", "work P2", "total"}
    assert sorted(run.calls) == ["load", "total", "work p2"]
    assert project.value("total", "sum") == 100 + 5 * (1 + 2) + 3 * (3 + 7)
    assert_nothing_ran(project.snakemake())


def test_identical_content_runs_nothing(project: Project) -> None:
    rewrite(project.root / "data/a.txt", (project.root / "data/a.txt").read_text(encoding="utf-8"))
    rewrite(project.root / "data/b.txt", (project.root / "data/b.txt").read_text(encoding="utf-8"))
    assert all(line == "up to date" for line in project.status_by_node().values())
    assert_nothing_ran(project.snakemake())


def test_editing_a_file_outside_the_project_reruns_its_reader(project: Project) -> None:
    outside = project.root.parent / "scratch" / "offset.txt"
    rewrite(outside, "1000")
    before = project.status_by_node()
    assert before["total"] == f"will run: file changed: {outside}"
    assert sum(line != "up to date" for line in before.values()) == 1
    run = project.snakemake()
    assert run.outcomes == {"total": "executed"} and run.calls == ["total"]
    assert project.value("total", "sum") == 1000 + 5 * (1 + 2) + 3 * (3 + 7)
    assert_nothing_ran(project.snakemake())


def test_a_no_op_after_a_real_run_leaves_pandas_out_of_snakemake(project: Project) -> None:
    """No rule has ``params:``: Snakemake imports pandas to compare params (0.3 s, 70 MB of a no-op)."""
    probe = project.root / "workflow/rules/zz_probe.smk"
    probe.write_text('import atexit, sys\n'
                     'atexit.register(lambda: open("modules.txt", "w").write(str(sorted(\n'
                     '    name for name in ("pandas",) if name in sys.modules))))\n', encoding="utf-8")
    try:
        assert_nothing_ran(project.snakemake())
        assert (project.root / "modules.txt").read_text(encoding="utf-8") == "[]"
    finally:
        probe.unlink()


def test_a_file_rewritten_with_the_same_bytes_right_after_a_run_changes_nothing(project: Project) -> None:
    """The run seals its records when it ends (onsuccess), before the rewrite: only content counts."""
    rewrite(project.root / "data/b.txt", "4")
    run = project.snakemake()
    assert run.outcomes == {"work P2": "executed", "total": "executed"}
    rewrite(project.root / "data/b.txt", "4")
    assert all(line == "up to date" for line in project.status_by_node().values())
    assert_nothing_ran(project.snakemake())


TOUCHING = """\
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      touch
    processes:
      - {name: touch, code: main.touch}
"""

TOUCHING_MAIN = CALLS_HELPER + '''
import os
import subprocess


def touch():
    called("touch")
    with open("data/x.txt", encoding="utf-8") as handle:
        value = handle.read().strip()
    if not os.path.exists("notes/touched"):  # first run only: another process changes what was read
        os.makedirs("notes", exist_ok=True)
        open("notes/touched", "w").close()
        subprocess.run(["sh", "-c", "echo 2 > data/x.txt"], check=True)
    return {"value": value}
'''


def test_a_file_changed_while_the_node_ran_re_executes_it(tmp_path: Path) -> None:
    """What the node read is not what the file holds once it returned: the next run executes it."""
    root = write_project(tmp_path / "project", TOUCHING, TOUCHING_MAIN, script_path="src/main.py",
                         files={"data/x.txt": "1\n"})
    project = Project(root)
    first = project.run()
    assert first.calls == ["touch"] and project.value("touch", "value") == "1"
    assert project.status_by_node() == {"touch": "will run: file changed while the node ran: data/x.txt"}
    second = project.snakemake()
    assert second.outcomes == {"touch": "executed"} and second.calls == ["touch"]
    assert project.value("touch", "value") == "2"
    assert project.status_by_node() == {"touch": "up to date"}
    assert_nothing_ran(project.snakemake())


CHARTED = """\
scripts: {main: src/main.py}
experiment:
  pipeline:
    processes:
      - {name: load, code: main.load}
      - name: plot
        code: main.plot
        probe_paths: {loaded: "//*[@name='load']"}
"""

CHARTED_MAIN = '''
import os


def load(metrics=None):
    return {"value": 1}


def plot(metrics, ctx):
    with open(os.path.join(ctx.project_dir, "calls.log"), "a", encoding="utf-8") as handle:
        handle.write("plot\\n")
    with open(os.path.join(ctx.project_dir, "data", "style.txt"), encoding="utf-8") as handle:
        handle.read()
'''


def test_a_chart_is_redrawn_when_a_file_its_function_read_changes(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", CHARTED, CHARTED_MAIN, script_path="src/main.py",
                         files={"data/style.txt": "blue\n", "data/other.txt": "x\n"})
    project = Project(root)
    assert project.run().calls == ["plot"]
    assert_nothing_ran(project.snakemake())  # recording what it read changes nothing by itself
    rewrite(root / "data/style.txt", "blue\n")  # same bytes
    assert_nothing_ran(project.snakemake())
    rewrite(root / "data/style.txt", "red\n")
    assert project.snakemake().calls == ["plot"]
    assert_nothing_ran(project.snakemake())
