"""Checking and cleaning the whole store: re-hash every artifact, delete what nothing refers to.

Which run records a project still needs is a question about its current graph, answered by
``expops_smk.results.housekeeping``; this module does the store's part given that answer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from expops_smk.errors import ExpopsError
from expops_smk.store.artifact_store import Store, suffix
from expops_smk.store.artifacts import Artifact
from expops_smk.store.files import STALE_TMP_SECONDS, TMP_PREFIX, files_in, find_manifests
from expops_smk.store.hashing import hash_file
from expops_smk.store.read_records import run_record_path


def verify_artifacts(store: Store, results_dir: Path,
                     record_key: Callable[[Path], str | None] | None = None) -> list[str]:
    """Re-hash every artifact listed by a manifest under ``results_dir``.

    Returns one line per problem (unreadable manifest, missing file, hash mismatch, a manifest that
    disagrees with its folder's run record); an empty list means every artifact is intact. Hard
    links to one object are hashed once. ``record_key`` names a folder's run record (None when it
    has none): a manifest rewritten to match a replaced file still differs from that record.
    """
    problems: list[str] = []
    seen: dict[tuple[int, int, int, int], str] = {}
    for manifest in find_manifests(Path(results_dir)):
        try:
            artifacts = store.read_manifest(manifest.parent)
        except ExpopsError as error:
            problems.append(str(error))
            continue
        key = record_key(manifest.parent) if record_key is not None else None
        if key is not None:
            problems.extend(disagreement(store, manifest, artifacts, key))
        for artifact in artifacts.values():
            path = manifest.parent / artifact.file
            try:
                info = os.stat(path)
                identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
                found = seen.get(identity) or hash_file(path)
            except FileNotFoundError:
                problems.append(f"{path}: missing (listed in {manifest})")
                continue
            except OSError as error:
                problems.append(f"{path}: unreadable: {error.strerror or error}")
                continue
            seen[identity] = found
            if found != artifact.object:
                problems.append(
                    f"{path}: content hash {found} does not match {artifact.object} recorded in {manifest}"
                )
    return problems


def disagreement(store: Store, manifest: Path, artifacts: dict[str, Artifact], record_key: str) -> list[str]:
    """A line when ``manifest`` lists other objects than the run record ``record_key``.

    A record that is gone (removed by ``gc``, or never written) proves nothing either way.
    """
    record = store.load_run(store.runs_dir / f"{record_key}.json")
    if record is None:
        return []
    listed = {key: a.object for key, a in artifacts.items()}
    recorded = {key: a.object for key, a in record[0].items()}
    if listed == recorded:
        return []
    keys = sorted(k for k in listed.keys() | recorded.keys() if listed.get(k) != recorded.get(k))
    return [f"{manifest}: disagrees with the run record {store.runs_dir / (record_key + '.json')} "
            f"(artifacts {', '.join(keys)}): the manifest was changed after the node wrote it; re-run that node"]


def collect_store_garbage(
    store: Store, keep_run_keys: set[str] | None, results_dir: Path, dry_run: bool,
    ignore_dirs: frozenset[Path] = frozenset(),
) -> tuple[list[Path], int]:
    """Delete objects nothing refers to; return (paths removed or to remove, bytes freed).

    Live references are the manifests under ``results_dir`` and the kept run records (all of
    them when ``keep_run_keys`` is None; otherwise records not listed are removed too). Temp
    files abandoned by crashed writers are removed as well. Bytes count only files whose
    last link goes, i.e. disk space really freed. An unreadable manifest aborts the gc: its
    references are unknown, and deleting on a guess would lose data. Run gc while no workflow
    is running: an object written by a live job is unreferenced until its manifest appears.
    Manifests in ``ignore_dirs`` (result folders about to be deleted) protect nothing, so a
    dry run reports what the real run would free.
    """
    referenced: set[str] = set()
    for manifest in find_manifests(Path(results_dir)):
        if manifest.parent in ignore_dirs:
            continue
        for artifact in store.read_manifest(manifest.parent).values():
            referenced.add(artifact.object + suffix(artifact.file))
    cutoff = time.time() - STALE_TMP_SECONDS
    doomed: list[Path] = []
    for record_path in files_in(store.runs_dir):
        if record_path.name.startswith(TMP_PREFIX):  # an interrupted put_json
            if record_path.stat().st_mtime < cutoff:
                doomed.append(record_path)
            continue
        if keep_run_keys is not None and record_path.name.removesuffix(".json") not in keep_run_keys:
            doomed.append(record_path)
            reads = run_record_path(store.project, record_path.name.removesuffix(".json"))
            doomed.extend([reads] if reads.is_file() else [])  # the files that run read go with it
            continue
        record = store.load_run(record_path)
        if record is not None:
            artifacts, extras = record
            referenced.update(a.object + suffix(a.file) for a in artifacts.values())
            referenced.update(h + suffix(name) for name, h in extras.items())
    if store.objects_dir.is_dir():
        for shard in sorted(store.objects_dir.iterdir()):
            doomed.extend(p for p in files_in(shard) if p.name not in referenced)
    doomed.extend(p for p in files_in(store.tmp_dir) if p.stat().st_mtime < cutoff)
    freed = 0
    for path in doomed:
        info = os.lstat(path)
        if info.st_nlink <= 1:
            freed += info.st_size
        if not dry_run:
            path.unlink(missing_ok=True)
    return doomed, freed
