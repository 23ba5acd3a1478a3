"""The user's places in a generated workflow, and the generated files a user edited by hand.

expops-smk rewrites the files it generates whenever the project changes, so hand edits there would
vanish. Users get places of their own instead, which the generator reads and never writes:

    workflow/rules/*.smk (any but processes.smk and charts.smk)   included by the Snakefile, sorted
    workflow/profiles/default/user.yaml, profiles/slurm/user.yaml  merged into the profile beside it

A digest of every generated file's content is recorded when it is written
(``.expops/generated.json``). A file whose content no longer matches it was edited by hand: it is
never overwritten; generation stops with one line saying where the change belongs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from expops_smk.errors import ExpopsError
from expops_smk.layout import (CHARTS_RULES_FILE, DEFAULT_PROFILE, GENERATED_RECORD, RULES_FILE, SLURM_PROFILE,
                               SNAKEFILE, WORKFLOW_DIR)
from expops_smk.store.hashing import hash_bytes

USER_PROFILE_NAME = "user.yaml"
USER_PROFILES = {profile: str(Path(profile).with_name(USER_PROFILE_NAME)) for profile in (DEFAULT_PROFILE, SLURM_PROFILE)}
"""Generated profile -> the user's file whose keys are merged into it."""


def user_rule_files(workflow_dir: str | Path) -> list[str]:
    """The user's ``rules/*.smk`` (relative to the Snakefile's folder, sorted): the Snakefile includes them."""
    generated = {Path(RULES_FILE).name, Path(CHARTS_RULES_FILE).name}
    folder = Path(workflow_dir) / "rules"
    return [f"rules/{path.name}" for path in sorted(folder.glob("*.smk")) if path.name not in generated]


def with_user_profile(root: Path, profile: str, text: str) -> str:
    """The generated profile ``text`` with the keys of the user's file beside it (theirs win)."""
    user = _user_profile(root, USER_PROFILES[profile])
    if not user:
        return text
    import yaml

    kept = _without_keys(text, set(user))
    return (kept + f"# From {Path(USER_PROFILES[profile]).name} beside this file (yours: expops-smk only reads it):\n"
            + yaml.safe_dump(user, sort_keys=False, default_flow_style=False))


def check_not_edited(root: Path, files: Mapping[str, str]) -> None:
    """Stop, in one line, if a generated file about to change was edited since it was generated."""
    recorded = _read_record(root)
    for rel, content in files.items():
        try:
            current = (root / rel).read_bytes()
        except FileNotFoundError:
            continue
        if rel in recorded and current != content.encode() and hash_bytes(current) != recorded[rel]:
            raise ExpopsError(f"{rel} was edited by hand; {_where_edits_go(rel)}, or delete {rel} to regenerate it")


def record_generated(root: Path, files: Mapping[str, str]) -> None:
    """Remember the digest of what was generated, to recognise hand edits next time."""
    from expops_smk.codegen.files import write_if_changed
    from expops_smk.store.files import confined_in_project

    record = {**_read_record(root), **{rel: hash_bytes(content.encode()) for rel, content in files.items()}}
    write_if_changed(confined_in_project(root / GENERATED_RECORD, root),
                     json.dumps(record, indent=1, sort_keys=True) + "\n")


def _where_edits_go(rel: str) -> str:
    if rel in USER_PROFILES:
        return f"put your settings in {USER_PROFILES[rel]} (merged into it)"
    if rel in (SNAKEFILE, RULES_FILE, CHARTS_RULES_FILE):
        return f"move your changes to a file of your own in {WORKFLOW_DIR}/rules/ (every *.smk there is included)"
    return "change the project config instead"


def _read_record(root: Path) -> dict[str, str]:
    try:
        record = json.loads((root / GENERATED_RECORD).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _user_profile(root: Path, rel: str) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.safe_load((root / rel).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ExpopsError(f"{rel}: not readable as YAML ({str(exc).splitlines()[0]})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ExpopsError(f"{rel}: expected a mapping of Snakemake options (e.g. keep-going: true)")
    return loaded


def _without_keys(text: str, keys: set[str]) -> str:
    """``text`` (a generated profile: top-level ``key: value`` lines, nested ones indented)
    without the top-level entries named in ``keys``."""
    lines: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        if line[:1] not in (" ", "#", "\n", ""):
            skipping = line.split(":", 1)[0].strip() in keys
        elif line[:1] == "#":
            skipping = False
        if not skipping:
            lines.append(line)
    return "".join(lines)
