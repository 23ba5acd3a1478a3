"""Which names a project may use: process names become rule names and folders, keys become files.

A process name is a Snakemake rule name and a path segment under ``results/``; a returned key is
an artifact's file name. Checking both here, before anything is generated, is what keeps a name
from escaping its folder (``../x``) or breaking the generated Snakefile.
"""

from __future__ import annotations

import difflib
import keyword
import re
from typing import Iterable

# Names become rule names and path segments under results/: letters, digits, '_' and '-' only.
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
# Keys of returned dicts become file names: also allow '.' inside, never a leading dot.
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# Rule names the generated workflow defines itself.
_RESERVED_NAMES = {"all"}


def is_safe_name(name: object) -> bool:
    """True when ``name`` can be a rule name and a single path segment (no '/', '..', spaces)."""
    return isinstance(name, str) and bool(_SAFE_NAME.match(name))


def reserved_reason(name: str) -> str | None:
    """Why a safe-looking name still cannot be a Snakemake rule (a Python keyword, ``all``)."""
    rule = rule_name(name)
    if keyword.iskeyword(rule):
        return f"'{name}' is a Python keyword and cannot name a Snakemake rule"
    if rule in _RESERVED_NAMES:
        return f"'{name}' is the name of the workflow's own target rule"
    return None


def rule_name(process: str) -> str:
    """The Snakemake rule of a process: '-' is not allowed in rule names."""
    return process.replace("-", "_")


def is_safe_key(key: object) -> bool:
    """True when ``key`` can name an artifact file inside a node's results folder."""
    return isinstance(key, str) and bool(_SAFE_KEY.match(key)) and ".." not in key


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'train'?)"`` for the closest choice, or "": a typo costs one glance to fix."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
