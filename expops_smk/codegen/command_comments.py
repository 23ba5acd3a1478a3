"""The comment lines a rule's ``shell:`` command starts with: what the job's result depends on.

Snakemake re-runs a job whose rule's command text differs from the one recorded when the job last
ran ("Code has changed since last execution"), comparing two strings. So each rule names its
process's code hash, parameters, project modules, library versions, fan-out and seed in comment
lines of its command (``# code: ...``), where a user reading the rule sees them. They used to be
``params:``; Snakemake compares params for every up-to-date job of every run, and serializing them
imports pandas into the Snakemake process (0.3 s and 70 MB of a no-op run, issue 18).

Braces are doubled (Snakemake formats the command: ``{name}`` would be a wildcard) and control
characters escaped (a newline would end the comment), so no value becomes part of what bash runs.
"""

from __future__ import annotations

INDENT = " " * 8


def comment(name: str, value: str) -> str:
    """``# name: value`` and a newline, as Snakemake formats and bash reads it."""
    return f"# {name}: {_escaped(value)}\n"


def shell_block(lines: list[str], command: str) -> str:
    """The body of a ``shell:`` directive: Python expressions (comment literals, calls), then
    ``command`` (a literal), concatenated with ``+`` one per line."""
    parts = [*lines, command]
    return "\n".join(f"{INDENT}{'+ ' if index else ''}{part}" for index, part in enumerate(parts))


def comment_literal(name: str, value: str) -> str:
    """``comment(name, value)`` as a Python literal for a generated rule file."""
    return repr(comment(name, value))


def _escaped(value: str) -> str:
    return value.encode("unicode_escape").decode("ascii").replace("{", "{{").replace("}", "}}")
