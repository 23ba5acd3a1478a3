"""What a node's manifest lists: one ``Artifact`` per returned key, validated when read back.

A manifest is a file anyone can edit, and its ``file`` entries are joined to the node's folder, so
every entry is checked (known format, file named after its key, one safe path segment) before the
store reads or links anything it names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from expops_smk.errors import ExpopsError
from expops_smk.store.hashing import HASH_ALGORITHM

FORMAT_PARQUET = "parquet"  # pandas DataFrame stored as Parquet, read back as a DataFrame
FORMAT_ARROW = "arrow"  # pyarrow Table stored as Parquet, read back as a Table
FORMAT_PICKLE = "pickle"  # anything else, pickle protocol 5
EXTENSIONS = {FORMAT_PARQUET: ".parquet", FORMAT_ARROW: ".parquet", FORMAT_PICKLE: ".pkl"}
ARTIFACT_SUFFIXES = (".parquet", ".pkl")

RECORD_FORMAT = 1
"""Version of the manifest and run-record layout, so a future change can be detected, not misread."""

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
        if d["format"] not in EXTENSIONS:
            raise ValueError(f"artifact format must be one of {sorted(EXTENSIONS)}: {d['format']!r}")
        if d["file"] != d["key"] + EXTENSIONS[d["format"]]:
            raise ValueError(f"artifact file {d['file']!r} does not match key {d['key']!r}")
        check_name(d["key"], "artifact key")
        return cls(**{name: d[name] for name in fields})


def parse_artifacts(payload: Any) -> dict[str, Artifact]:
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


def check_key(key: Any) -> None:
    """A returned key becomes a file name: reject what would escape or break the node dir."""
    if not isinstance(key, str):
        raise ExpopsError(f"output key {key!r} must be a string, not {type(key).__name__}")
    try:
        check_name(key, "output key")
    except ValueError as error:
        raise ExpopsError(str(error)) from None


def check_name(name: str, what: str) -> None:
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
