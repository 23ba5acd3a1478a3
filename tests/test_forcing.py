"""Which jobs bypass the run cache: forced rules/files, --forceall, EXPOPS_SMK_NO_CACHE, benchmark."""

from __future__ import annotations

import json

from expops_smk.layout import FORCED_VARIABLE, NO_CACHE_VARIABLE
from expops_smk.runtime.forcing import cache_bypass_reason

OUT = ["results/train/p1/s1/_outputs.json"]


def forced(**spec: object) -> dict[str, str]:
    return {FORCED_VARIABLE: json.dumps({"all": False, "rules": [], "files": [], **spec})}


def test_nothing_forced_may_restore() -> None:
    assert cache_bypass_reason({}, "train", OUT, benchmark=False) is None
    assert cache_bypass_reason(forced(), "train", OUT, benchmark=False) is None
    assert cache_bypass_reason({NO_CACHE_VARIABLE: "0"}, "train", OUT, benchmark=False) is None


def test_forced_rule_only_that_rule() -> None:
    assert cache_bypass_reason(forced(rules=["train"]), "train", OUT, benchmark=False)
    assert cache_bypass_reason(forced(rules=["prep"]), "train", OUT, benchmark=False) is None


def test_forced_file_matches_normalised_paths() -> None:
    assert cache_bypass_reason(forced(files=["./results/train/p1/s1/_outputs.json"]), "train", OUT, benchmark=False)
    assert cache_bypass_reason(forced(files=["results/train/p2/s1/_outputs.json"]), "train", OUT,
                               benchmark=False) is None


def test_forceall_no_cache_and_benchmark_bypass_everything() -> None:
    assert cache_bypass_reason(forced(all=True), "x", OUT, benchmark=False)
    assert cache_bypass_reason({NO_CACHE_VARIABLE: "1"}, "x", OUT, benchmark=False)
    assert cache_bypass_reason({}, "x", OUT, benchmark=True)


def test_malformed_variable_is_ignored() -> None:
    assert cache_bypass_reason({FORCED_VARIABLE: "not json"}, "x", OUT, benchmark=False) is None
    assert cache_bypass_reason({FORCED_VARIABLE: "[1]"}, "x", OUT, benchmark=False) is None
