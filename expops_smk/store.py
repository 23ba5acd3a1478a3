"""Content-addressed artifact store: write, hash, link, verify and garbage-collect node outputs.

Every value a node returns becomes one file in its node directory (``<key>.parquet`` or
``<key>.pkl``) that is a hard link to an immutable object in ``<project>/.expops/objects``. Two
hashes describe each artifact:

* ``object`` – xxh3-128 of the file bytes. It names the object in the store and is checked before
  every read, so a results file that was replaced or edited is caught instead of silently feeding
  wrong data downstream.
* ``digest`` – xxh3-128 of the *logical* content. For tables it ignores how the Parquet writer laid
  the bytes out (its version string, row groups, chunking), so upgrading pyarrow or re-writing
  identical data does not trigger re-runs downstream; for pickles it equals ``object``.

This module is imported inside every Snakemake job, so only the standard library and xxhash are
imported at module level; pandas and pyarrow are imported inside the functions that handle tables
(a node that only returns dicts never pays for them).
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from expops_smk.errors import ExpopsError

if TYPE_CHECKING:
    import pyarrow

HASH_ALGORITHM = "xxh3_128"

MANIFEST_NAME = "_outputs.json"
"""The node's manifest: the only file Snakemake declares, written last so its presence means done."""

FORMAT_PARQUET = "parquet"  # pandas DataFrame stored as Parquet, read back as a DataFrame
FORMAT_ARROW = "arrow"  # pyarrow Table stored as Parquet, read back as a Table
FORMAT_PICKLE = "pickle"  # anything else, pickle protocol 5
_EXTENSIONS = {FORMAT_PARQUET: ".parquet", FORMAT_ARROW: ".parquet", FORMAT_PICKLE: ".pkl"}
_ARTIFACT_SUFFIXES = (".parquet", ".pkl")

_RECORD_FORMAT = 1
"""Version of the manifest and run-record layout, so a future change can be detected, not misread."""

_CHUNK_BYTES = 4 * 1024 * 1024
"""Read size for streaming hashes: large enough to amortise syscalls, small enough for any job."""

PARQUET_WRITE_OPTIONS: Mapping[str, Any] = {"dictionary_pagesize_limit": 64 * 1024}
"""pyarrow's defaults except the dictionary size at which the writer gives up dictionary-encoding a
column chunk.

pyarrow's default (1 MiB) lets a 100k-row chunk of unique ids or floats be dictionary-encoded in
full: slow to build and larger than plain encoding. Data partitions are exactly such chunks, so a
split into 100 files cost 2-3x one write of the same table. At 64 KiB, low-cardinality columns
(labels, categories, small-int codes) still get dictionaries, and high-cardinality ones fall back
to plain after a few thousand values; files come out no larger."""

_DIGEST_BATCH_ROWS = 64 * 1024
"""Rows per record batch hashed by ``table_digest``. Fixed, so the batch boundaries depend only on
the row count and never on how the table happens to be chunked in memory."""

_DIGEST_PREFIX = b"expops-table-digest/1\0"
"""Versions the digest scheme: changing the canonical form must change every digest."""

_TMP_PREFIX = ".tmp-"
_READ_ONLY = 0o444
_STALE_TMP_SECONDS = 3600
"""A temp file untouched this long belongs to a crashed writer (live writers keep touching theirs)."""

_MAX_NAME_BYTES = 255 - len(".parquet")
"""Artifact and run-record names must fit one path segment (ext4 and most filesystems: 255 bytes)."""


class TamperedArtifactError(ExpopsError):
    """An artifact file no longer holds the bytes its manifest recorded (edited, replaced or lost)."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True)
class Artifact:
    """One stored output of a node, as listed in its manifest and in run records."""

    key: str  # the key of the dict the node returned
    file: str  # basename inside the node dir: "<key>.parquet" or "<key>.pkl"
    format: str  # "parquet" (DataFrame) | "arrow" (pyarrow Table) | "pickle"
    digest: str  # logical content hash: decides whether downstream nodes re-run
    object: str  # hash of the file bytes: names the stored object, checked before every read
    size: int  # file size in bytes

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the manifest; field names are the JSON keys."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Artifact:
        """Parse and validate a manifest entry; ``ValueError`` says which field is wrong.

        Validation matters because ``file`` is joined to the node directory: a hand-edited
        manifest must not make the store read or link files outside it.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"artifact entry is not an object: {d!r}")
        fields = {"key": str, "file": str, "format": str, "digest": str, "object": str, "size": int}
        for name, kind in fields.items():
            value = d.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"artifact field '{name}' missing or not a {kind.__name__}: {d!r}")
        if d["format"] not in _EXTENSIONS:
            raise ValueError(f"artifact format must be one of {sorted(_EXTENSIONS)}: {d['format']!r}")
        if d["file"] != d["key"] + _EXTENSIONS[d["format"]]:
            raise ValueError(f"artifact file {d['file']!r} does not match key {d['key']!r}")
        _check_name(d["key"], "artifact key")
        return cls(**{name: d[name] for name in fields})


def hash_bytes(data: bytes | memoryview) -> str:
    """xxh3-128 hex digest of an in-memory buffer."""
    return xxhash.xxh3_128_hexdigest(data)


def hash_file(path: Path) -> str:
    """xxh3-128 hex digest of a file, read in fixed chunks so memory stays flat for any size."""
    hasher = xxhash.xxh3_128()
    buffer = memoryview(bytearray(_CHUNK_BYTES))
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            hasher.update(buffer[:count])
    return hasher.hexdigest()


def table_digest(table: pyarrow.Table) -> str:
    """Hash of a table's logical content, independent of file layout and writer version.

    The table is canonicalised, then its Arrow IPC stream is hashed in batches of a fixed row
    count. Canonical form:

    * schema metadata without the entries that carry library versions (pandas metadata's
      ``pandas_version`` and ``creator``); index and column info still count;
    * the type spellings a Parquet round trip changes (list element and map entry field names,
      ``large_string`` dictionary values) are normalised;
    * batch boundaries are at multiples of a fixed row count whatever the in-memory chunking;
    * for fixed-width and dictionary columns the slots under nulls are zeroed and the null mask is
      hashed as its own column. This matters: ``Table.from_pandas`` leaves NaN bits (and -1
      category codes) under the null slots while a table read from Parquet has zeros there.

    Caveat: slots under nulls inside nested values (struct children, list items) and
    variable-length columns are hashed as they are; pandas and Parquet both leave those empty, so
    tables from either source still agree, but a hand-built array with data under a null struct
    slot hashes differently from its Parquet copy. Dictionary columns are hashed with their
    dictionary as laid out per batch.
    """
    import pyarrow as pa
    import pyarrow.ipc

    plans = [_ColumnPlan.for_field(field) for field in table.schema]
    schema = pa.schema(
        [field for plan in plans for field in plan.stream_fields()],
        metadata=_strip_version_metadata(table.schema.metadata),
    )
    hasher = xxhash.xxh3_128()
    hasher.update(_DIGEST_PREFIX)
    hasher.update(table.num_rows.to_bytes(8, "little"))
    with pyarrow.ipc.new_stream(_HashSink(hasher), schema) as writer:
        if table.num_columns:
            for start in range(0, table.num_rows, _DIGEST_BATCH_ROWS):
                piece = table.slice(start, _DIGEST_BATCH_ROWS).combine_chunks()
                arrays = []
                for plan, column in zip(plans, piece.columns):
                    chunk = column.chunk(0) if column.num_chunks == 1 else pa.concat_arrays(column.chunks)
                    arrays.extend(plan.stream_arrays(chunk))
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return hasher.hexdigest()


class _HashSink:
    """Write-only file object that feeds an IPC stream into a hasher instead of memory.

    pyarrow passes its buffers here without copying, so hashing a table costs one pass over its
    memory and no extra allocation.
    """

    closed = False

    def __init__(self, hasher: Any) -> None:
        self._hasher = hasher

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._hasher.update(view)
        return view.nbytes

    def flush(self) -> None:
        """Nothing is buffered; present because pyarrow calls it."""


@dataclass(frozen=True)
class _ColumnPlan:
    """How one column enters the digest: its canonical field and whether nulls are normalised."""

    field: Any  # pyarrow.Field with the canonical type
    cast: bool  # the column must be cast to field.type first
    zero: Any  # pyarrow scalar written under null slots, or None when not normalised

    @classmethod
    def for_field(cls, field: pyarrow.Field) -> _ColumnPlan:
        """Decide per type (never per data) so every batch shares one stream schema."""
        import pyarrow as pa

        canonical = _canonical_type(field.type)
        cast = canonical != field.type
        if cast:
            try:
                pa.array([], type=field.type).cast(canonical)
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
                canonical, cast = field.type, False
        zero = _zero_scalar(canonical.index_type if pa.types.is_dictionary(canonical) else canonical)
        return cls(field.with_type(canonical), cast, zero)

    def stream_fields(self) -> list[Any]:
        """The column's field, plus a non-null boolean null-mask field when nulls are normalised."""
        import pyarrow as pa

        if self.zero is None:
            return [self.field]
        return [self.field, pa.field(self.field.name + "\0null", pa.bool_(), nullable=False)]

    def stream_arrays(self, array: pyarrow.Array) -> list[Any]:
        """The column's arrays matching ``stream_fields``: nulls zero-filled and mask split off."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.cast:
            array = array.cast(self.field.type)
        if self.zero is None:
            return [array]
        mask = pc.is_null(array)
        if array.null_count == 0:  # nothing under a null to zero: skip copying the column
            return [array, mask]
        if pa.types.is_dictionary(array.type):
            filled = pa.DictionaryArray.from_arrays(
                pc.fill_null(array.indices, self.zero), array.dictionary, ordered=array.type.ordered
            )
        else:
            filled = pc.fill_null(array, self.zero)
        return [filled, mask]


def _canonical_type(data_type: pyarrow.DataType) -> pyarrow.DataType:
    """The type a Parquet round trip would give back, so both sides hash alike.

    Parquet renames list element fields (``item`` -> ``element``) and map entry fields, and reads
    dictionary values as ``string``/``binary`` even when they were ``large_*``.
    """
    import pyarrow as pa

    types = pa.types
    if types.is_dictionary(data_type):
        values = _canonical_type(data_type.value_type)
        if types.is_large_string(values):
            values = pa.string()
        elif types.is_large_binary(values):
            values = pa.binary()
        return pa.dictionary(data_type.index_type, values, data_type.ordered)
    if types.is_map(data_type):
        return pa.map_(
            _canonical_field(data_type.key_field, "key"),
            _canonical_field(data_type.item_field, "value"),
            data_type.keys_sorted,
        )
    if types.is_large_list(data_type):
        return pa.large_list(_canonical_field(data_type.value_field, "item"))
    if types.is_fixed_size_list(data_type):
        return pa.list_(_canonical_field(data_type.value_field, "item"), data_type.list_size)
    if types.is_list(data_type):
        return pa.list_(_canonical_field(data_type.value_field, "item"))
    if types.is_struct(data_type):
        return pa.struct([_canonical_field(data_type.field(i)) for i in range(data_type.num_fields)])
    return data_type


def _canonical_field(field: pyarrow.Field, name: str | None = None) -> pyarrow.Field:
    """A child field with a canonical type (and, for list/map children, a canonical name)."""
    field = field.with_type(_canonical_type(field.type))
    return field if name is None else field.with_name(name)


def _zero_scalar(data_type: pyarrow.DataType) -> Any:
    """An all-zero-bytes scalar of a fixed-width type, or None for types not normalised.

    Built from a zeroed buffer so one code path covers ints, floats, bools, temporal types,
    decimals and fixed-size binary alike.
    """
    import pyarrow as pa

    types = pa.types
    fixed_width = (
        types.is_integer(data_type)
        or types.is_floating(data_type)
        or types.is_boolean(data_type)
        or types.is_temporal(data_type)
        or types.is_decimal(data_type)
        or types.is_fixed_size_binary(data_type)
    )
    if not fixed_width:
        return None
    width = max(1, data_type.bit_width // 8)
    return pa.Array.from_buffers(data_type, 1, [None, pa.py_buffer(bytes(width))])[0]


def _strip_version_metadata(metadata: Mapping[bytes, bytes] | None) -> dict[bytes, bytes] | None:
    """Schema metadata without the library version strings, re-encoded deterministically."""
    if not metadata:
        return None
    cleaned = dict(metadata)
    if b"pandas" in cleaned:
        pandas_meta = json.loads(cleaned[b"pandas"])
        pandas_meta.pop("pandas_version", None)
        pandas_meta.pop("creator", None)
        cleaned[b"pandas"] = json.dumps(pandas_meta, sort_keys=True, separators=(",", ":")).encode()
    return cleaned


class Store:
    """The artifact store of one project: ``<project>/.expops`` plus the node dirs it links into."""

    def __init__(self, project_root: Path) -> None:
        self.root = Path(project_root) / ".expops"
        self.objects_dir = self.root / "objects"
        self.runs_dir = self.root / "runs"
        self.tmp_dir = self.root / "tmp"

    # -- writing -------------------------------------------------------------------------------

    def write_value(self, node_dir: Path, key: str, value: Any) -> Artifact:
        """Store one returned value and link it into ``node_dir`` as ``<key>.<ext>``.

        Tables go to Parquet (DataFrames keep their index); a DataFrame Arrow cannot represent
        faithfully, and everything else, is pickled. The bytes are written to a temp file, hashed,
        moved into the object store and hard-linked into place, so no half-written file ever
        appears under a final name.
        """
        _check_key(key)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        stored = self._write_table(value)
        if stored is None:
            stored = self._write_pickle(key, value)
        tmp, fmt, digest, object_hash = stored
        try:
            size = os.stat(tmp).st_size
            ext = _EXTENSIONS[fmt]
            obj = self._publish(tmp, object_hash, ext)
        finally:
            tmp.unlink(missing_ok=True)
        Path(node_dir).mkdir(parents=True, exist_ok=True)
        _link_into(obj, Path(node_dir) / (key + ext))
        return Artifact(key, key + ext, fmt, digest, object_hash, size)

    def _write_table(self, value: Any) -> tuple[Path, str, str, str] | None:
        """Write a DataFrame/Table as Parquet; None when the value is not one or Arrow refuses it.

        pandas/pyarrow are looked up in ``sys.modules``: a value can only be a DataFrame if pandas
        is already imported, so pickle-only nodes never import them.
        """
        pandas = sys.modules.get("pandas")
        arrow = sys.modules.get("pyarrow")
        if pandas is not None and isinstance(value, pandas.DataFrame):
            # Arrow stringifies non-string column names; pickling keeps them exactly.
            if not all(isinstance(name, str) for name in value.columns):
                return None
            import pyarrow as pa

            try:
                # Serial: pyarrow would start a thread pool per call, which costs more than the
                # (mostly zero-copy) conversion of a partition, and a job gets one core by default.
                table = pa.Table.from_pandas(value, preserve_index=None, nthreads=1)
            except (pa.ArrowException, ValueError, TypeError):
                return None
            fmt = FORMAT_PARQUET
        elif arrow is not None and isinstance(value, arrow.Table):
            table, fmt = value, FORMAT_ARROW
        else:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        tmp = self._new_tmp()
        try:
            pq.write_table(table, tmp, **PARQUET_WRITE_OPTIONS)
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
                writer = _HashingWriter(handle)
                pickle.dump(value, writer, protocol=5)
        except BaseException as error:
            tmp.unlink(missing_ok=True)
            if isinstance(error, (pickle.PicklingError, TypeError, AttributeError)):
                raise ExpopsError(
                    f"output '{key}' cannot be saved: {type(value).__name__} is not picklable ({error})"
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
        obj = self._object_path(object_hash, ext)
        obj.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, _READ_ONLY)
        try:
            os.link(tmp, obj)
        except FileExistsError:
            if _hash_or_none(obj) != object_hash:
                os.replace(tmp, obj)
        except OSError:  # a filesystem without hard links: fall back to an atomic rename
            if not obj.exists() or _hash_or_none(obj) != object_hash:
                os.replace(tmp, obj)
        return obj

    def _ingest(self, src: Path, expected: str | None = None) -> tuple[str, int]:
        """Copy a node-dir file into the store (hashing as it copies); returns (hash, size).

        Copying, not linking, keeps the store's object independent of a file the runtime may
        still rewrite; ``expected`` refuses to store a file that was changed after it was written.
        """
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._new_tmp()
        try:
            object_hash = _copy_file(src, tmp)
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

        The file is read once into memory, hashed and decoded from that same buffer, so a file
        swapped between the check and the read cannot slip through.
        """
        path = Path(node_dir) / artifact.file
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise TamperedArtifactError(path, "artifact file is missing; re-run the node that wrote it") from None
        found = hash_bytes(data)
        if found != artifact.object:
            raise TamperedArtifactError(
                path,
                f"content hash {found} does not match the manifest ({artifact.object}): the file was "
                "changed after the node wrote it; re-run that node",
            )
        if artifact.format == FORMAT_PICKLE:
            return pickle.loads(data)
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(pa.BufferReader(data))
        return table.to_pandas() if artifact.format == FORMAT_PARQUET else table

    # -- manifests and JSON --------------------------------------------------------------------

    def write_manifest(self, node_dir: Path, artifacts: Mapping[str, Artifact]) -> None:
        """Write ``_outputs.json``: same outputs give the same bytes, so checksums see no change."""
        for key, artifact in artifacts.items():
            if key != artifact.key:
                raise ValueError(f"manifest key {key!r} does not match artifact key {artifact.key!r}")
        payload = {
            "format": _RECORD_FORMAT,
            "hash": HASH_ALGORITHM,
            "artifacts": {key: artifact.to_json() for key, artifact in artifacts.items()},
        }
        self.put_json(Path(node_dir) / MANIFEST_NAME, payload)

    def read_manifest(self, node_dir: Path) -> dict[str, Artifact]:
        """Parse ``_outputs.json``; any problem is one ``ExpopsError`` line naming the file."""
        path = Path(node_dir) / MANIFEST_NAME
        try:
            return _parse_artifacts(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ExpopsError(f"{path}: manifest is missing") from None
        except (OSError, ValueError) as error:
            raise ExpopsError(f"{path}: not a valid manifest: {error}") from None

    def put_json(self, path: Path, payload: Any) -> None:
        """Write JSON atomically with deterministic bytes (sorted keys, indent 1, trailing newline)."""
        text = json.dumps(payload, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
        _atomic_write(Path(path), text.encode("utf-8"))

    # -- run cache -----------------------------------------------------------------------------

    def record_run(self, run_key: str, node_dir: Path, extra_files: Sequence[str] = ()) -> None:
        """Remember a finished execution under ``run_key`` so ``restore_run`` can replay it.

        Stores the manifest's artifacts (re-ingesting any whose object disappeared, e.g. removed
        by a concurrent gc) and the listed extra files that exist, such as ``_metrics.json``.
        """
        _check_name(run_key, "run key")
        node_dir = Path(node_dir)
        artifacts = self.read_manifest(node_dir)
        for artifact in artifacts.values():
            if not self._object_path(artifact.object, _suffix(artifact.file)).is_file():
                self._ingest(node_dir / artifact.file, expected=artifact.object)
        extras: dict[str, dict[str, Any]] = {}
        for name in extra_files:
            _check_name(name, "extra file")
            if name == MANIFEST_NAME or name.endswith(_ARTIFACT_SUFFIXES):
                raise ValueError(f"extra file {name!r} would clash with the manifest or an artifact")
            if (node_dir / name).is_file():
                object_hash, size = self._ingest(node_dir / name)
                extras[name] = {"object": object_hash, "size": size}
        payload = {
            "format": _RECORD_FORMAT,
            "hash": HASH_ALGORITHM,
            "artifacts": {key: artifact.to_json() for key, artifact in artifacts.items()},
            "extra_files": extras,
        }
        self.put_json(self._run_path(run_key), payload)

    def has_run(self, run_key: str) -> bool:
        """Whether a record for ``run_key`` exists with all its objects present (not re-hashed)."""
        record = self._load_run(self._run_path(run_key))
        if record is None:
            return False
        artifacts, extras = record
        hashes = {a.file: a.object for a in artifacts.values()} | extras
        return all(self._object_path(h, _suffix(name)).is_file() for name, h in hashes.items())

    def restore_run(self, run_key: str, node_dir: Path) -> bool:
        """Replay a recorded execution into ``node_dir`` by hard-linking its stored objects.

        Returns False (touching nothing) unless the record exists and every object exists and
        hashes to its name. Values are never re-serialised: the restored bytes are exactly the
        recorded ones. Files of a previous execution that the record does not list are removed;
        the manifest is written last.
        """
        _check_name(run_key, "run key")
        record = self._load_run(self._run_path(run_key))
        if record is None:
            return False
        artifacts, extras = record
        hashes = {a.file: a.object for a in artifacts.values()} | extras
        wanted = {name: self._object_path(h, _suffix(name)) for name, h in hashes.items()}
        intact = {obj: _hash_or_none(obj) for obj in set(wanted.values())}  # shared objects once
        if any(intact[wanted[name]] != h for name, h in hashes.items()):
            return False
        node_dir = Path(node_dir)
        node_dir.mkdir(parents=True, exist_ok=True)
        try:
            for name, obj in wanted.items():
                _link_into(obj, node_dir / name)
        except FileNotFoundError:  # an object vanished meanwhile (concurrent gc): run instead
            self.clear_node(node_dir)
            return False
        _remove_generated(node_dir, keep=set(wanted) | {MANIFEST_NAME})
        self.write_manifest(node_dir, artifacts)
        return True

    def clear_node(self, node_dir: Path) -> None:
        """Remove what a previous execution generated so keys it returned do not linger.

        Removes the manifest, artifacts (``*.parquet``, ``*.pkl``), extra files (``_*.json``) and
        leftover temp files; anything else, such as the job's log, stays.
        """
        if Path(node_dir).is_dir():
            _remove_generated(Path(node_dir), keep=set())

    # -- checking and cleaning -----------------------------------------------------------------

    def verify(self, results_dir: Path) -> list[str]:
        """Re-hash every artifact listed by a manifest under ``results_dir``.

        Returns one line per problem (unreadable manifest, missing file, hash mismatch); an empty
        list means every artifact is intact. Hard links to one object are hashed once.
        """
        problems: list[str] = []
        seen: dict[tuple[int, int, int, int], str] = {}
        for manifest in _find_manifests(Path(results_dir)):
            try:
                artifacts = self.read_manifest(manifest.parent)
            except ExpopsError as error:
                problems.append(str(error))
                continue
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

    def gc(
        self, keep_run_keys: set[str] | None, results_dir: Path, dry_run: bool,
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
        for manifest in _find_manifests(Path(results_dir)):
            if manifest.parent in ignore_dirs:
                continue
            for artifact in self.read_manifest(manifest.parent).values():
                referenced.add(artifact.object + _suffix(artifact.file))
        cutoff = time.time() - _STALE_TMP_SECONDS
        doomed: list[Path] = []
        for record_path in _files_in(self.runs_dir):
            if record_path.name.startswith(_TMP_PREFIX):  # an interrupted put_json
                if record_path.stat().st_mtime < cutoff:
                    doomed.append(record_path)
                continue
            if keep_run_keys is not None and record_path.name.removesuffix(".json") not in keep_run_keys:
                doomed.append(record_path)
                continue
            record = self._load_run(record_path)
            if record is not None:
                artifacts, extras = record
                referenced.update(a.object + _suffix(a.file) for a in artifacts.values())
                referenced.update(h + _suffix(name) for name, h in extras.items())
        if self.objects_dir.is_dir():
            for shard in sorted(self.objects_dir.iterdir()):
                doomed.extend(p for p in _files_in(shard) if p.name not in referenced)
        doomed.extend(p for p in _files_in(self.tmp_dir) if p.stat().st_mtime < cutoff)
        freed = 0
        for path in doomed:
            info = os.lstat(path)
            if info.st_nlink <= 1:
                freed += info.st_size
            if not dry_run:
                path.unlink(missing_ok=True)
        return doomed, freed

    # -- paths and records ---------------------------------------------------------------------

    def _object_path(self, object_hash: str, ext: str) -> Path:
        """Objects are sharded by their first two hex digits to keep directories small."""
        return self.objects_dir / object_hash[:2] / f"{object_hash}{ext}"

    def _run_path(self, run_key: str) -> Path:
        return self.runs_dir / f"{run_key}.json"

    def _new_tmp(self) -> Path:
        """A fresh temp path on the store's filesystem, so publishing is a rename or link."""
        return self.tmp_dir / _tmp_name()

    @staticmethod
    def _load_run(path: Path) -> tuple[dict[str, Artifact], dict[str, str]] | None:
        """Parse a run record into (artifacts, extra file -> object hash); None if unusable.

        An unreadable record is treated as absent: the node then simply runs again.
        """
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            artifacts = _parse_artifacts(payload)
            extras = {}
            for name, entry in payload.get("extra_files", {}).items():
                _check_name(name, "extra file")
                if not isinstance(entry.get("object"), str):
                    raise ValueError(f"extra file {name!r} has no object hash")
                extras[name] = entry["object"]
        except (OSError, ValueError, AttributeError, TypeError):
            return None
        return artifacts, extras


class _HashingWriter:
    """File wrapper that hashes everything pickle writes through it, in the same pass."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self._hasher = xxhash.xxh3_128()

    def write(self, data: Any) -> int:
        self._hasher.update(data)
        return self._target.write(data)

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()


def _parse_artifacts(payload: Any) -> dict[str, Artifact]:
    """The ``artifacts`` section shared by manifests and run records, validated."""
    if not isinstance(payload, dict) or not isinstance(payload.get("artifacts"), dict):
        raise ValueError("expected an object with an 'artifacts' object")
    if payload.get("hash") != HASH_ALGORITHM:
        raise ValueError(f"hash algorithm {payload.get('hash')!r} is not {HASH_ALGORITHM!r}")
    artifacts = {}
    for key, entry in payload["artifacts"].items():
        artifact = Artifact.from_json(entry)
        if artifact.key != key:
            raise ValueError(f"entry {key!r} describes artifact {artifact.key!r}")
        artifacts[key] = artifact
    return artifacts


def _check_key(key: Any) -> None:
    """A returned key becomes a file name: reject what would escape or break the node dir."""
    if not isinstance(key, str):
        raise ExpopsError(f"output key {key!r} must be a string, not {type(key).__name__}")
    try:
        _check_name(key, "output key")
    except ValueError as error:
        raise ExpopsError(str(error)) from None


def _check_name(name: str, what: str) -> None:
    """One safe path segment: not empty, no separators or NUL, not hidden, short enough."""
    if (
        not name
        or name.startswith(".")
        or any(bad in name for bad in ("/", "\\", "\0"))
        or len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES
    ):
        raise ValueError(
            f"{what} {name!r} cannot be used as a file name (must be non-empty, not start with '.', "
            f"contain no '/', '\\' or NUL, at most {_MAX_NAME_BYTES} bytes)"
        )


def _suffix(name: str) -> str:
    """Objects keep their file's extension so a stored object can be opened by type."""
    return Path(name).suffix


def _tmp_name() -> str:
    """Unique per process and call, so concurrent writers (threads or jobs) never share a temp."""
    return f"{_TMP_PREFIX}{os.getpid()}-{os.urandom(8).hex()}"


def _copy_file(src: Path, dst: Path) -> str:
    """Copy a file in fixed chunks and return the hash of the bytes copied.

    Hand-rolled rather than ``shutil`` so the copy is hashed in the same pass and the module does
    not import shutil (and through it bz2/lzma) in every job for a rarely taken path.
    """
    hasher = xxhash.xxh3_128()
    buffer = memoryview(bytearray(_CHUNK_BYTES))
    with open(src, "rb", buffering=0) as source, open(dst, "xb") as target:
        while count := source.readinto(buffer):
            hasher.update(buffer[:count])
            target.write(buffer[:count])
    return hasher.hexdigest()


def _hash_or_none(path: Path) -> str | None:
    """Hash of a file, or None if it cannot be read (missing, permission, not a file)."""
    try:
        return hash_file(path)
    except OSError:
        return None


def _link_into(obj: Path, dest: Path) -> None:
    """Make ``dest`` a hard link to ``obj`` (a read-only copy when linking fails), atomically.

    The link is made under a temp name and renamed over ``dest``. When ``dest`` already is a link
    to the same object, POSIX rename does nothing and leaves the temp name behind, hence the
    final unlink.
    """
    tmp = dest.parent / _tmp_name()
    try:
        try:
            os.link(obj, tmp)
        except OSError:  # cross-device store, no hard-link support, or protected_hardlinks
            _copy_file(obj, tmp)
            os.chmod(tmp, _READ_ONLY)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write bytes to a temp file beside ``path`` and rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / _tmp_name()
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _is_generated(name: str) -> bool:
    """Files a node execution creates in its dir (as opposed to e.g. the job's log)."""
    return (
        name == MANIFEST_NAME
        or name.endswith(_ARTIFACT_SUFFIXES)
        or (name.startswith("_") and name.endswith(".json"))
        or name.startswith(_TMP_PREFIX)
    )


def _remove_generated(node_dir: Path, keep: set[str]) -> None:
    """Delete generated files in ``node_dir`` (not below it) except those named in ``keep``."""
    with os.scandir(node_dir) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and _is_generated(entry.name) and entry.name not in keep:
                os.unlink(entry.path)


def _find_manifests(results_dir: Path) -> Iterator[Path]:
    """Every manifest below ``results_dir`` in a stable (sorted) order."""
    for directory, subdirs, files in os.walk(results_dir):
        subdirs.sort()
        if MANIFEST_NAME in files:
            yield Path(directory) / MANIFEST_NAME


def _files_in(directory: Path) -> list[Path]:
    """Sorted regular files directly in ``directory``; empty when it does not exist."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file())
