"""End to end: editing a project module or upgrading a library re-runs exactly the processes that
import it, and ``expops-smk status`` names the module or the version change beforehand.

``work`` (src/uses.py) imports ``helpers`` (src/helpers.py), which imports the tiny distribution
``tinylib`` installed into a folder on PYTHONPATH; ``load`` and ``total`` (src/plain.py) import
neither. ``work`` runs once per partition of a built-in 2-way split.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e import CALLS_HELPER, Project, assert_nothing_ran
from projects import write_project
from reliability_projects import stop_warm_processes

pytestmark = pytest.mark.e2e

CONFIG = """\
scripts: {plain: src/plain.py, uses: src/uses.py}
experiment:
  pipeline:
    process_adjlist: |
      load split
      split work
      work total
    processes:
      - {name: load, code: plain.load}
      - {name: split, data_parallelism: {size: 2}}
      - {name: work, code: uses.work}
      - {name: total, code: plain.total, data_aggregation: true}
"""

PLAIN = CALLS_HELPER + '''

def load():
    called("load")
    return {"data": [1, 2, 3, 4]}


def total(data):
    called("total")
    return {"sum": sum(sum(branch) for branch in data.values())}
'''

USES = CALLS_HELPER + '''
import tinylib  # noqa: F401  (top level: the warm server preloads it)
from helpers import bump


def work(data):
    called(f"work {data[0]}")
    return {"data": [bump(row) for row in data]}
'''

HELPERS = '''"""Helpers of the test project."""
import tinylib


def bump(value):
    # add one
    return value + tinylib.ONE
'''

UNUSED = "def nothing():\n    return 0\n"

WORK = {"work P1", "work P2"}


def install_tinylib(site: Path, version: str) -> None:
    """A minimal installed distribution: the package plus the metadata importlib.metadata reads."""
    for old in site.glob("tinylib-*.dist-info"):
        for file in old.iterdir():
            file.unlink()
        old.rmdir()
    if not (site / "tinylib").is_dir():  # the module file stays as it is: only the metadata changes
        (site / "tinylib").mkdir(parents=True)
        (site / "tinylib" / "__init__.py").write_text("ONE = 1\n", encoding="utf-8")
    info = site / f"tinylib-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tinylib\nVersion: {version}\n", encoding="utf-8")
    (info / "top_level.txt").write_text("tinylib\n", encoding="utf-8")


def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra_config: str = "") -> Project:
    site = tmp_path / "site"
    install_tinylib(site, "1.0")
    monkeypatch.setenv("PYTHONPATH", str(site))
    root = write_project(tmp_path / "project", CONFIG + extra_config, PLAIN, script_path="src/plain.py",
                         files={"src/uses.py": USES, "src/helpers.py": HELPERS, "src/unused.py": UNUSED})
    project = Project(root)
    first = project.run()
    assert first.executed == {"load", "split", *WORK, "total"} and len(first.calls) == 4
    return project


def test_editing_a_helper_module_reruns_only_its_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make(tmp_path, monkeypatch)
    project.edit("src/helpers.py", "return value + tinylib.ONE", "return value + 2 * tinylib.ONE")
    before = project.status_by_node()
    assert {label for label, line in before.items() if "code changed: src/helpers.py" in line} == WORK
    assert before["total"].startswith("will run: upstream work P")
    assert all(before[label] == "up to date" for label in ("load", "split"))
    run = project.snakemake()  # plain snakemake: the Snakefile notices the module edit itself
    assert run.executed == {*WORK, "total"}
    assert sorted(run.calls) == ["total", "work 1", "work 3"]
    assert project.value("total", "sum") == 18
    assert all(line == "up to date" for line in project.status_by_node().values())


def test_unused_module_and_comment_edits_run_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make(tmp_path, monkeypatch)
    project.edit("src/unused.py", "return 0", "return 1")
    assert all(line == "up to date" for line in project.status_by_node().values())
    assert_nothing_ran(project.snakemake())
    project.edit("src/helpers.py", "# add one", "# add one (comment edited)")
    project.edit("src/helpers.py", '"""Helpers of the test project."""', '"""Docstring edited."""')
    assert all(line == "up to date" for line in project.status_by_node().values())
    assert_nothing_ran(project.snakemake())


def test_library_upgrade_reruns_only_importing_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make(tmp_path, monkeypatch)
    assert "tinylib==1.0" in (project.root / "workflow/rules/processes.smk").read_text(encoding="utf-8")
    install_tinylib(tmp_path / "site", "1.1")
    before = project.status_by_node()
    assert {label for label, line in before.items() if "tinylib 1.0 → 1.1" in line} == WORK
    run = project.snakemake()
    assert run.executed == WORK and run.restored <= {"total"}  # same outputs: total is not recomputed
    assert sorted(run.calls) == ["work 1", "work 3"]
    assert project.run_record("work", "p1")["payload"]["libraries"] == {"tinylib": "1.1"}
    assert all(line == "up to date" for line in project.status_by_node().values())


def test_warm_server_that_preloaded_the_old_version_is_retired(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The server imported tinylib 1.0 and the module file does not change in the upgrade; the
    regenerated plan (it carries the versions) retires the server, and the node records 1.1."""
    monkeypatch.setenv("EXPOPS_SMK_WARM_IDLE", "60")
    project = make(tmp_path, monkeypatch)
    try:
        assert "forked" in (project.root / ".expops/warm_server.log").read_text(encoding="utf-8")
        install_tinylib(tmp_path / "site", "1.1")
        run = project.snakemake()
        assert run.executed == WORK
        assert "refusing a job: stale" in (project.root / ".expops/warm_server.log").read_text(encoding="utf-8")
        assert project.run_record("work", "p1")["payload"]["libraries"] == {"tinylib": "1.1"}
    finally:
        stop_warm_processes(project.root)


def test_library_upgrade_runs_nothing_when_tracking_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make(tmp_path, monkeypatch, "execution: {track_library_versions: false}\n")
    install_tinylib(tmp_path / "site", "1.1")
    assert all(line == "up to date" for line in project.status_by_node().values())
    assert_nothing_ran(project.snakemake())


CHART = """\
      - name: draw
        code: drawing.draw
        probe_paths: {summed: "//*[@name='total']"}
"""

DRAWING = '''
from pathlib import Path

import tinylib  # noqa: F401
from helpers import bump


def draw(metrics):
    # Chart code runs in the chart's folder: the calls log is the project's, found from this file.
    with open(Path(__file__).resolve().parents[1] / "calls.log", "a", encoding="utf-8") as handle:
        handle.write(f"draw {bump(0)}\\n")
'''


def test_charts_follow_their_modules_and_libraries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chart whose script imports the helper module is re-drawn when the module is edited or the
    library is upgraded, like the processes that import them; an unused module's edit draws nothing."""
    site = tmp_path / "site"
    install_tinylib(site, "1.0")
    monkeypatch.setenv("PYTHONPATH", str(site))
    config = CONFIG.replace("{plain: src/plain.py, uses: src/uses.py}",
                            "{plain: src/plain.py, uses: src/uses.py, drawing: src/drawing.py}") + CHART
    root = write_project(tmp_path / "project", config, PLAIN, script_path="src/plain.py", files={
        "src/uses.py": USES, "src/helpers.py": HELPERS, "src/unused.py": UNUSED, "src/drawing.py": DRAWING})
    project = Project(root)
    assert sorted(project.run().calls) == ["draw 1", "load", "total", "work 1", "work 3"]
    chart_rule = (root / "workflow/rules/charts.smk").read_text(encoding="utf-8")
    assert "src/helpers.py=" in chart_rule and "tinylib==1.0" in chart_rule

    project.edit("src/unused.py", "return 0", "return 1")
    assert_nothing_ran(project.snakemake())

    project.edit("src/helpers.py", "return value + tinylib.ONE", "return value + 2 * tinylib.ONE")
    assert sorted(project.snakemake().calls) == ["draw 2", "total", "work 1", "work 3"]

    install_tinylib(site, "1.1")
    assert sorted(project.snakemake().calls) == ["draw 2", "work 1", "work 3"]  # total's inputs are unchanged
    assert_nothing_ran(project.snakemake())
