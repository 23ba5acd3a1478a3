"""Unit tests of ``codegen.user_files``: the user's profile keys, rule files and hand-edit detection."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from expops_smk.codegen.user_files import (check_not_edited, record_generated, user_rule_files,
                                           with_user_profile)
from expops_smk.errors import ExpopsError
from expops_smk.layout import DEFAULT_PROFILE, SNAKEFILE

GENERATED = "# header\ncores: all\ndefault-resources:\n  mem_mb: 100\n# jobs\njobs: 3\n"


def test_user_keys_replace_generated_ones_and_the_rest_stays(tmp_path: Path) -> None:
    user = tmp_path / "workflow/profiles/default/user.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("default-resources: {mem_mb: 5}\nkeep-going: true\n", encoding="utf-8")
    merged = with_user_profile(tmp_path, DEFAULT_PROFILE, GENERATED)
    assert yaml.safe_load(merged) == {"cores": "all", "jobs": 3, "default-resources": {"mem_mb": 5}, "keep-going": True}
    assert merged.startswith("# header\ncores: all\n")


def test_no_user_file_leaves_the_profile_as_generated(tmp_path: Path) -> None:
    assert with_user_profile(tmp_path, DEFAULT_PROFILE, GENERATED) == GENERATED


@pytest.mark.parametrize("text", ["- a list\n", "a: [unclosed\n"])
def test_a_bad_user_profile_is_one_line_naming_it(tmp_path: Path, text: str) -> None:
    user = tmp_path / "workflow/profiles/default/user.yaml"
    user.parent.mkdir(parents=True)
    user.write_text(text, encoding="utf-8")
    with pytest.raises(ExpopsError, match=r"^workflow/profiles/default/user.yaml: ") as info:
        with_user_profile(tmp_path, DEFAULT_PROFILE, GENERATED)
    assert "\n" not in str(info.value)


def test_user_rule_files_are_every_smk_but_the_generated_ones_sorted(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for name in ("processes.smk", "charts.smk", "z.smk", "a.smk", "notes.txt"):
        (rules / name).write_text("", encoding="utf-8")
    assert user_rule_files(tmp_path) == ["rules/a.smk", "rules/z.smk"]


def test_only_a_file_that_differs_from_what_was_generated_counts_as_edited(tmp_path: Path) -> None:
    snakefile = tmp_path / SNAKEFILE
    snakefile.parent.mkdir(parents=True)
    (tmp_path / ".expops").mkdir()
    snakefile.write_text("old\n", encoding="utf-8")
    check_not_edited(tmp_path, {SNAKEFILE: "new\n"})  # no record (an older expops-smk wrote it): ours
    record_generated(tmp_path, {SNAKEFILE: "old\n"})
    check_not_edited(tmp_path, {SNAKEFILE: "new\n"})  # as generated: may be rewritten
    snakefile.write_text("old\nmine\n", encoding="utf-8")
    check_not_edited(tmp_path, {SNAKEFILE: "old\nmine\n"})  # edited into exactly what is generated now
    with pytest.raises(ExpopsError, match="^workflow/Snakefile was edited by hand; move your changes"):
        check_not_edited(tmp_path, {SNAKEFILE: "new\n"})
