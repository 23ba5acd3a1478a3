"""Content-addressed artifact store: write, hash, link and restore node outputs.

Every value a node returns becomes one file in its node directory (``<key>.parquet`` or
``<key>.pkl``) that is a hard link to an immutable object in ``<project>/.expops/objects``. Two
hashes describe each artifact:

* ``object`` – xxh3-128 of the file bytes. It names the object in the store and is checked before
  every read, so a results file that was replaced or edited is caught instead of silently feeding
  wrong data downstream.
* ``digest`` – xxh3-128 of the *logical* content. For tables it ignores how the Parquet writer laid
  the bytes out (its version string, row groups, chunking), so upgrading pyarrow or re-writing
  identical data does not trigger re-runs downstream; for pickles it equals ``object``.

The run cache lives here too: a finished execution is recorded under its run key, and a later job
with the same key replays it by hard links instead of running user code (``restore_run``).
Checking and cleaning the whole store is ``expops_smk.store.maintenance``.

This module is imported inside every Snakemake job, so only the standard library and xxhash are
imported at module level; pandas and pyarrow are imported inside the functions that handle tables
(a node that only returns dicts never pays for them).
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from expops_smk.errors import ExpopsError
from expops_smk.layout import MANIFEST, STORE_DIR
from expops_smk.store.artifacts import (ARTIFACT_SUFFIXES, EXTENSIONS, FORMAT_ARROW, FORMAT_PARQUET, FORMAT_PICKLE,
                                        RECORD_FORMAT, Artifact, TamperedArtifactError, check_key, check_name,
                                        parse_artifacts)
from expops_smk.store.files import (atomic_write, confined_in_project, copy_file, hash_or_none, link_into,
                                    read_only_mode, remove_recorded, tmp_name)
from expops_smk.store.hashing import HASH_ALGORITHM, HashingWriter, hash_bytes, hash_file, hash_handle
from expops_smk.store.table_reading import read_table
from expops_smk.store.table_digest import table_digest
from expops_smk.store.value_digest import stored_table

PARQUET_WRITE_OPTIONS: Mapping[str, Any] = {"dictionary_pagesize_limit": 64 * 1024}
"""pyarrow's defaults except the dictionary size at which the writer gives up dictionary-encoding a
column chunk.

pyarrow's default (1 MiB) lets a 100k-row chunk of unique ids or floats be dictionary-encoded in
full: slow to build and larger than plain encoding. Data partitions are exactly such chunks, so a
split into 100 files cost 2-3x one write of the same table. At 64 KiB, low-cardinality columns
(labels, categories, small-int codes) still get dictionaries, and high-cardinality ones fall back
to plain after a few thousand values; files come out no larger."""



class Store:
    """The artifact store of one project: ``<project>/.expops`` plus the node dirs it links into."""

    def __init__(self, project_root: Path) -> None:
        self.root = Path(project_root) / STORE_DIR
        self.project = Path(project_root)
        self.objects_dir = self.root / "objects"
        self.runs_dir = self.root / "runs"
        self.tmp_dir = self.root / "tmp"

    # -- writing -------------------------------------------------------------------------------

    def write_value(self, node_dir: Path, key: str, value: Any) -> Artifact:
        """Store one returned value and link it into ``node_dir`` as ``<key>.<ext>``.

        Tables go to Parquet (DataFrames keep their index) when reading them back gives exactly the
        same value (``parquet_exact``); any other table, and everything else, is pickled. The bytes are written to a temp file, hashed,
        moved into the object store and hard-linked into place, so no half-written file ever
        appears under a final name.
        """
        check_key(key)
        node_dir = self.checked_dir(node_dir)
        self.checked_dir(self.tmp_dir).mkdir(parents=True, exist_ok=True)
        stored = self._write_table(value)
        if stored is None:
            stored = self._write_pickle(key, value)
        tmp, fmt, digest, object_hash = stored
        try:
            size = os.stat(tmp).st_size
            ext = EXTENSIONS[fmt]
            obj = self._publish(tmp, object_hash, ext)
        finally:
            tmp.unlink(missing_ok=True)
        Path(node_dir).mkdir(parents=True, exist_ok=True)
        link_into(obj, Path(node_dir) / (key + ext))
        return Artifact(key, key + ext, fmt, digest, object_hash, size)

    def _write_table(self, value: Any) -> tuple[Path, str, str, str] | None:
        """Write a DataFrame/Table as Parquet; None when the value is not one or Arrow refuses it
        (``value_digest.stored_table`` decides)."""
        stored = stored_table(value)
        if stored is None:
            return None
        table, fmt = stored
        import pyarrow as pa
        import pyarrow.parquet as pq

        tmp = self._new_tmp()
        try:
            pq.write_table(table, tmp, **PARQUET_WRITE_OPTIONS)
            if fmt == FORMAT_ARROW and not pq.read_schema(tmp).equals(table.schema, check_metadata=True):
                tmp.unlink()
                return None  # Parquet would change a type (date64, a dictionary's index type...): pickle it
            return tmp, fmt, table_digest(table), hash_file(tmp)
        except BaseException as error:
            tmp.unlink(missing_ok=True)
            if isinstance(error, (pa.ArrowException, ValueError, TypeError)):
                return None  # a type Parquet cannot store: the caller pickles the value instead
            raise

    def _write_pickle(self, key: str, value: Any) -> tuple[Path, str, str, str]:
        """Pickle straight to a temp file while hashing, so a large value is never held twice."""
        tmp = self._new_tmp()
        try:
            with open(tmp, "wb") as handle:
                writer = HashingWriter(handle)
                pickle.dump(value, writer, protocol=5)
        except BaseException as error:
            tmp.unlink(missing_ok=True)
            # Any exception pickling raised (a __reduce__ that raises, RecursionError on a deep
            # value) is the value's fault, except the file system's own errors.
            if isinstance(error, Exception) and not isinstance(error, OSError):
                raise ExpopsError(
                    f"output '{key}' cannot be saved: {type(value).__name__} is not picklable "
                    f"({type(error).__name__}: {error})"
                ) from error
            raise
        object_hash = writer.hexdigest()
        return tmp, FORMAT_PICKLE, object_hash, object_hash

    def _publish(self, tmp: Path, object_hash: str, ext: str) -> Path:
        """Move a finished temp file into the object store; keep an intact existing object.

        ``os.link`` creates the object only if absent, atomically, so concurrent writers of the same
        content never overwrite each other. An existing object that no longer matches its name
        (damaged through a hard link) is replaced by the fresh bytes.
        """
        obj = self.object_path(object_hash, ext)
        self.checked_dir(obj.parent).mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, read_only_mode())
        try:
            os.link(tmp, obj)
        except FileExistsError:
            if hash_or_none(obj) != object_hash:
                os.replace(tmp, obj)
        except OSError:  # a filesystem without hard links: fall back to an atomic rename
            if not obj.exists() or hash_or_none(obj) != object_hash:
                os.replace(tmp, obj)
        return obj

    def _ingest(self, src: Path, expected: str | None = None) -> tuple[str, int]:
        """Copy a node-dir file into the store (hashing as it copies); returns (hash, size).

        Copying, not linking, keeps the store's object independent of a file the runtime may
        still rewrite; ``expected`` refuses to store a file that was changed after it was written.
        """
        self.checked_dir(self.tmp_dir).mkdir(parents=True, exist_ok=True)
        tmp = self._new_tmp()
        try:
            object_hash = copy_file(src, tmp)
            if expected is not None and object_hash != expected:
                raise TamperedArtifactError(src, f"content hash {object_hash} does not match the manifest ({expected})")
            size = os.stat(tmp).st_size
            self._publish(tmp, object_hash, Path(src).suffix)
        finally:
            tmp.unlink(missing_ok=True)
        return object_hash, size

    # -- reading -------------------------------------------------------------------------------

    def read_value(self, node_dir: Path, artifact: Artifact) -> Any:
        """Load an artifact after checking its bytes against the manifest's object hash.

        Hash and decoding read one open file, so a file swapped in between cannot slip through; a
        table is decoded from the file, never held as bytes beside its columns (``read_table``).
        """
        path = Path(node_dir) / artifact.file
        try:
            handle = open(path, "rb", buffering=0)
        except FileNotFoundError:
            raise TamperedArtifactError(path, "artifact file is missing; re-run the node that wrote it") from None
        with handle:
            data = handle.read() if artifact.format == FORMAT_PICKLE else None
            found = hash_handle(handle) if data is None else hash_bytes(data)
            if found != artifact.object:
                raise TamperedArtifactError(
                    path,
                    f"content hash {found} does not match the manifest ({artifact.object}): the file was "
                    "changed after the node wrote it; re-run that node",
                )
            if data is not None:
                return pickle.loads(data)
            handle.seek(0)
            return read_table(handle, as_frame=artifact.format == FORMAT_PARQUET)

    # -- manifests and JSON --------------------------------------------------------------------

    def write_manifest(self, node_dir: Path, artifacts: Mapping[str, Artifact]) -> None:
        """Write ``_outputs.json``: same outputs give the same bytes, so checksums see no change."""
        for key, artifact in artifacts.items():
            if key != artifact.key:
                raise ValueError(f"manifest key {key!r} does not match artifact key {artifact.key!r}")
        payload = {
            "format": RECORD_FORMAT,
            "hash": HASH_ALGORITHM,
            "artifacts": {key: artifact.to_json() for key, artifact in artifacts.items()},
        }
        self.put_json(Path(node_dir) / MANIFEST, payload)

    def read_manifest(self, node_dir: Path) -> dict[str, Artifact]:
        """Parse ``_outputs.json``; any problem is one ``ExpopsError`` line naming the file."""
        path = Path(node_dir) / MANIFEST
        try:
            return parse_artifacts(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ExpopsError(f"{path}: manifest is missing") from None
        except (OSError, ValueError) as error:
            raise ExpopsError(f"{path}: not a valid manifest: {error}") from None

    def put_json(self, path: Path, payload: Any) -> None:
        """Write JSON atomically with deterministic bytes (sorted keys, indent 1, trailing newline)."""
        text = json.dumps(payload, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
        self.checked_dir(Path(path).parent)
        atomic_write(Path(path), text.encode("utf-8"))

    # -- run cache -----------------------------------------------------------------------------

    def record_run(self, run_key: str, node_dir: Path, extra_files: Sequence[str] = (),
                   seconds: float | None = None) -> None:
        """Remember a finished execution under ``run_key`` so ``restore_run`` can replay it.

        Stores the manifest's artifacts (re-ingesting any whose object disappeared, e.g. removed
        by a concurrent gc), the listed extra files that exist, such as ``_metrics.json``, and how
        long the execution took, so that a later restore can still report the compute time.
        """
        check_name(run_key, "run key")
        node_dir = Path(node_dir)
        artifacts = self.read_manifest(node_dir)
        for artifact in artifacts.values():
            if not self.object_path(artifact.object, suffix(artifact.file)).is_file():
                self._ingest(node_dir / artifact.file, expected=artifact.object)
        extras: dict[str, dict[str, Any]] = {}
        for name in extra_files:
            check_name(name, "extra file")
            if name == MANIFEST or name.endswith(ARTIFACT_SUFFIXES):
                raise ValueError(f"extra file {name!r} would clash with the manifest or an artifact")
            if (node_dir / name).is_file():
                object_hash, size = self._ingest(node_dir / name)
                extras[name] = {"object": object_hash, "size": size}
        payload = {
            "format": RECORD_FORMAT,
            "hash": HASH_ALGORITHM,
            "artifacts": {key: artifact.to_json() for key, artifact in artifacts.items()},
            "extra_files": extras,
        }
        if seconds is not None:
            payload["seconds"] = round(seconds, 3)
        self.put_json(self._run_path(run_key), payload)

    def recorded_seconds(self, run_key: str) -> float | None:
        """How long the execution recorded under ``run_key`` took (None for older records)."""
        check_name(run_key, "run key")
        try:
            seconds = json.loads(self._run_path(run_key).read_text(encoding="utf-8")).get("seconds")
        except (OSError, ValueError, AttributeError):
            return None
        return float(seconds) if isinstance(seconds, (int, float)) else None

    def has_run(self, run_key: str) -> bool:
        """Whether a record for ``run_key`` exists with all its objects present (not re-hashed)."""
        record = self.load_run(self._run_path(run_key))
        if record is None:
            return False
        artifacts, extras = record
        hashes = {a.file: a.object for a in artifacts.values()} | extras
        return all(self.object_path(h, suffix(name)).is_file() for name, h in hashes.items())

    def restore_run(self, run_key: str, node_dir: Path, previous_key: str | None = None) -> bool:
        """Replay a recorded execution into ``node_dir`` by hard-linking its stored objects.

        Returns False (touching nothing) unless the record exists and every object exists and
        hashes to its name. Values are never re-serialised: the restored bytes are exactly the
        recorded ones. Files of a previous execution that the record does not list are removed;
        the manifest is written last. ``previous_key`` names the record of the folder's previous
        execution, whose files (and the current manifest's) are the only ones removed.
        """
        check_name(run_key, "run key")
        record = self.load_run(self._run_path(run_key))
        if record is None:
            return False
        artifacts, extras = record
        hashes = {a.file: a.object for a in artifacts.values()} | extras
        wanted = {name: self.object_path(h, suffix(name)) for name, h in hashes.items()}
        intact = {obj: hash_or_none(obj) for obj in set(wanted.values())}  # shared objects once
        if any(intact[wanted[name]] != h for name, h in hashes.items()):
            return False
        node_dir = self.checked_dir(Path(node_dir))
        node_dir.mkdir(parents=True, exist_ok=True)
        previous = self.recorded_files(node_dir, previous_key)
        try:
            for name, obj in wanted.items():
                link_into(obj, node_dir / name)
        except FileNotFoundError:  # an object vanished meanwhile (concurrent gc): run instead
            self.clear_node(node_dir, run_key)
            return False
        remove_recorded(node_dir, previous, keep=set(wanted) | {MANIFEST})
        self.write_manifest(node_dir, artifacts)
        return True

    def clear_node(self, node_dir: Path, previous_key: str | None = None) -> None:
        """Remove what a previous execution wrote so keys it returned do not linger.

        Removes only files the store recorded writing: the manifest and the artifacts it lists, and
        the artifacts and extra files of the run record ``previous_key`` (Snakemake deletes the
        manifest before a job runs, so the record is what still knows them). A file that merely
        looks generated (a user's ``*.pkl``) stays, and so does anything behind a symlink.
        """
        node_dir = self.checked_dir(Path(node_dir))
        if node_dir.is_dir():
            remove_recorded(node_dir, self.recorded_files(node_dir, previous_key))

    def recorded_files(self, node_dir: Path, record_key: str | None) -> set[str]:
        """Names in ``node_dir`` the store wrote: its manifest, what it lists, what ``record_key`` lists."""
        names = {MANIFEST}
        try:
            names.update(a.file for a in self.read_manifest(node_dir).values())
        except ExpopsError:
            pass  # no readable manifest: it lists nothing
        if record_key is not None:
            check_name(record_key, "run key")
            record = self.load_run(self._run_path(record_key))
            if record is not None:
                artifacts, extras = record
                names.update(a.file for a in artifacts.values())
                names.update(extras)
        return names

    def checked_dir(self, directory: Path) -> Path:
        """``directory`` if writing there stays where it claims to be (``files.confined_in_project``)."""
        return confined_in_project(Path(directory), self.project)

    # -- paths and records ---------------------------------------------------------------------

    def object_path(self, object_hash: str, ext: str) -> Path:
        """Objects are sharded by their first two hex digits to keep directories small."""
        return self.objects_dir / object_hash[:2] / f"{object_hash}{ext}"

    def _run_path(self, run_key: str) -> Path:
        return self.runs_dir / f"{run_key}.json"

    def _new_tmp(self) -> Path:
        """A fresh temp path on the store's filesystem, so publishing is a rename or link."""
        return self.tmp_dir / tmp_name()

    @staticmethod
    def load_run(path: Path) -> tuple[dict[str, Artifact], dict[str, str]] | None:
        """Parse a run record into (artifacts, extra file -> object hash); None if unusable.

        An unreadable record is treated as absent: the node then simply runs again.
        """
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            artifacts = parse_artifacts(payload)
            extras = {}
            for name, entry in payload.get("extra_files", {}).items():
                check_name(name, "extra file")
                if not isinstance(entry.get("object"), str):
                    raise ValueError(f"extra file {name!r} has no object hash")
                extras[name] = entry["object"]
        except (OSError, ValueError, AttributeError, TypeError):
            return None
        return artifacts, extras


def suffix(name: str) -> str:
    """Objects keep their file's extension so a stored object can be opened by type."""
    return Path(name).suffix
