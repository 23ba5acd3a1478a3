"""The store writes and deletes only where and what it should (issue 14, items 2, 3 and 13).

A node folder or store folder that is a symlink out of its place is refused with one line naming
it; only files the store recorded writing are deleted; files follow the umask (still read-only);
``verify`` and a reading job catch a manifest rewritten to match a replaced artifact.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from e2e import Project
from projects import one_process_project

from expops_smk.errors import ExpopsError
from expops_smk.store.artifact_store import Store
from expops_smk.store.files import write_linked


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mode) for p in sorted(folder.iterdir())}


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.pkl").write_bytes(b"precious")
    (outside / "table.parquet").write_bytes(b"also precious")
    (outside / "_config.json").write_text("{}")
    return outside


# -- item 2: symlinks ------------------------------------------------------------------------------


@pytest.mark.parametrize("link", ["results/load_data", "results/train/p1", ".expops/objects", ".expops/tmp",
                                  ".expops/runs"])
def test_symlinked_folder_below_results_or_store_is_refused(tmp_path: Path, link: str) -> None:
    project = tmp_path / "project"
    outside = _outside(tmp_path)
    before = _snapshot(outside)
    (project / link).parent.mkdir(parents=True)
    (project / link).symlink_to(outside)
    store = Store(project)
    node = project / ("results/load_data" if link.startswith(".expops") else link)
    with pytest.raises(ExpopsError, match="refusing to write through a symlink") as refused:
        artifact = store.write_value(node, "x", {"a": 1})
        store.write_manifest(node, {"x": artifact})
        store.record_run("run1", node)
    assert "\n" not in str(refused.value) and str(project / link) in str(refused.value)
    if link.startswith("results"):
        with pytest.raises(ExpopsError, match="refusing"):
            store.clear_node(node)
    assert _snapshot(outside) == before


def test_a_symlinked_results_or_store_folder_as_a_whole_is_allowed(tmp_path: Path) -> None:
    """Scratch disks on HPC: ``results/`` or ``.expops/`` may live elsewhere, as a whole."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("results", ".expops"):
        (tmp_path / f"scratch-{name}").mkdir()
        (project / name).symlink_to(tmp_path / f"scratch-{name}")
    store = Store(project)
    node = project / "results" / "load_data"
    store.write_manifest(node, {"x": store.write_value(node, "x", [1, 2])})
    store.record_run("run1", node)
    assert (tmp_path / "scratch-results" / "load_data" / "x.pkl").is_file()
    assert store.has_run("run1")


def test_symlinked_node_folder_with_forcerun_leaves_the_outside_untouched(tmp_path: Path) -> None:
    root = one_process_project(tmp_path / "project", "links", "load_data")
    project = Project(root)
    project.run()
    outside = _outside(tmp_path)
    before = _snapshot(outside)
    node = root / "results" / "load_data"
    for child in node.iterdir():
        child.unlink()
    node.rmdir()
    node.symlink_to(outside)
    refused = project.snakemake("--forcerun", "results/load_data/_outputs.json", check=False)
    assert refused.returncode != 0 and refused.calls == []
    lines = [line for line in refused.stderr.splitlines() if line.startswith("expops-smk:")]
    assert len(lines) == 1, refused.stderr
    assert "results/load_data" in lines[0] and "refusing to write through a symlink" in lines[0]
    assert _snapshot(outside) == before


# -- item 3: file modes ----------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o077, 0o022])
def test_artifacts_objects_and_json_follow_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        store = Store(tmp_path)
        node = tmp_path / "results" / "n"
        artifacts = {"x": store.write_value(node, "x", {"a": 1})}
        store.write_manifest(node, artifacts)
        store.record_run("run1", node)
        restored = tmp_path / "results" / "m"
        assert store.restore_run("run1", restored)
    finally:
        os.umask(previous)
    obj = store.object_path(artifacts["x"].object, ".pkl")
    for path in (node / "x.pkl", obj, restored / "x.pkl"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o444 & ~umask, path
    for path in (node / "_outputs.json", restored / "_outputs.json", store.runs_dir / "run1.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    assert not any(p.stat().st_mode & 0o007 for p in tmp_path.rglob("*") if p.is_file()) or umask == 0o022


@pytest.mark.parametrize("umask", [0o077, 0o002])
def test_read_records_written_once_and_linked_follow_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        names = [tmp_path / "jobs" / "a.reads", tmp_path / "runs" / "b.reads"]
        write_linked(names, [b"header", b"\n", b"paths"])
    finally:
        os.umask(previous)
    for path in names:
        assert path.read_bytes() == b"header\npaths"
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


# -- item 13: a manifest rewritten to match a replaced artifact ------------------------------------


def _rewrite_manifest_to_match(root: Path, folder: str, key: str, replacement: object) -> None:
    """What an attacker (or a careless script) does: replace the artifact, then fix up its hash."""
    import json
    import pickle

    from expops_smk.store.hashing import hash_bytes

    node = root / folder
    data = pickle.dumps(replacement)
    manifest = json.loads((node / "_outputs.json").read_text())
    entry = manifest["artifacts"][key]
    (node / entry["file"]).unlink()
    (node / entry["file"]).write_bytes(data)
    entry.update(object=hash_bytes(data), digest=hash_bytes(data), size=len(data))
    (node / "_outputs.json").write_text(json.dumps(manifest))


def test_verify_reports_a_manifest_that_disagrees_with_its_run_record(tmp_path: Path) -> None:
    from expops_smk.results.housekeeping import verify

    root = one_process_project(tmp_path / "project", "records", "load_data")
    Project(root).run()
    assert verify(root) == []
    _rewrite_manifest_to_match(root, "results/load_data", "rows", [6, 6, 6])
    problems = verify(root)
    assert len(problems) == 1, problems
    assert "results/load_data/_outputs.json: disagrees with the run record" in problems[0]
    assert "(artifacts rows)" in problems[0]


def test_the_read_records_lock_is_not_created_through_a_symlink_and_follows_the_umask(tmp_path: Path) -> None:
    from expops_smk.store.pending_reads import Pending
    from expops_smk.store.read_records import write_pending_reads

    root, outside = tmp_path / "project", _outside(tmp_path)
    lock = root / ".expops" / "reads" / ".lock"
    lock.parent.mkdir(parents=True)
    lock.symlink_to(outside / "lock")
    pending = Pending(str(root), ["/data/a.csv"], [], 1, 2, [], [], [], {})
    with pytest.raises(ExpopsError, match="refusing to write through a symlink"):
        write_pending_reads(root, "work/p1", "files-read:x", ["key-1"], pending)
    assert not (outside / "lock").exists()
    lock.unlink()
    previous = os.umask(0o002)
    try:
        write_pending_reads(root, "work/p1", "files-read:x", ["key-1"], pending)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(lock.stat().st_mode) == 0o664


@pytest.mark.parametrize("link", [".expops/reads/runs", ".expops/reads/jobs/work"])
def test_read_records_are_not_written_or_unlinked_through_a_symlinked_folder(tmp_path: Path, link: str) -> None:
    from expops_smk.codegen.read_tokens import refresh_tokens
    from expops_smk.store.pending_reads import Pending
    from expops_smk.store.read_records import INITIAL_TOKEN, job_record_path, write_job_record, write_pending_reads

    root, outside = tmp_path / "project", _outside(tmp_path)
    (outside / "p1.json").write_text("precious")  # the name the job record of work/p1 would unlink
    (outside / "key-1.json").write_text("precious")  # and its run record
    (root / link).parent.mkdir(parents=True)
    (root / link).symlink_to(outside)
    before = _snapshot(outside)
    pending = Pending(str(root), [], [], 1, 2, [], [], [], {})
    with pytest.raises(ExpopsError, match="refusing to write through a symlink"):
        write_pending_reads(root, "work/p1", INITIAL_TOKEN, ["key-1"], pending)
    if link.endswith("runs"):  # the runs folder moved out after a job wrote its pending record there: sealed here only
        (root / link).unlink()
        write_pending_reads(root, "work/p1", "files-read:x", ["key-1"], pending)  # a token: the job record is kept
        (root / link).rename(outside / "runs")
        (root / link).symlink_to(outside / "runs")
        moved = _snapshot(outside / "runs")
        refresh_tokens(root)
        assert "pending" not in job_record_path(root, "work/p1").read_text(encoding="utf-8").partition("\n")[0]
        assert _snapshot(outside / "runs") == moved
        (outside / "runs" / "key-1.json").unlink()
        (outside / "runs").rmdir()
    else:
        with pytest.raises(ExpopsError, match="refusing to write through a symlink"):
            write_job_record(root, "work/p1", "files-read:x", {"data/a.csv": [1, 2, "d"]})
    assert _snapshot(outside) == before
