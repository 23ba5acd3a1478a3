"""Minimal reproduction (ExpOps 0.1.27 defect): a process output list of strings with missing values (float NaN / None)
that is large enough to be spilled (np.asarray gives a '<U' array) comes back with NaN replaced by the literal string 'nan'.
Run with Python in a virtualenv holding expops==0.1.27: python docs/expops-defects/spill_nan_repro.py"""
import math, os, tempfile
from pathlib import Path
from typing import Optional
import numpy as np
from expops.core.runtime.payload_spill import spill_large_payloads, hydrate_payload_refs
from expops.core.cache_probe.cache_layout import DEFAULT_VERSION_HASH
from expops.storage.path_utils import encode_probe_path

class SM:  # the same stand-in state manager as payload_spill's own self-test
    def __init__(self, root):
        self.cache_dir = root / "steps"; self.cache_dir.mkdir(parents=True); self._cache_root = root
        self.object_store = None; self._version_hash = DEFAULT_VERSION_HASH
    def _get_encoded_probe_path(self, process_name: Optional[str], step_name: Optional[str] = None) -> str:
        return encode_probe_path(f"//process[@name='{process_name}']")
    def _get_probe_scoped_relative_path(self, encoded_probe, kind, *segments):
        return "/".join([self._version_hash, encoded_probe, kind] + [s.strip("/").replace(" ", "_") for s in segments if s])

sm = SM(Path(tempfile.mkdtemp()))
n = 50_000                                              # 50_000 x '<U8' = 1.6 MB, above the 256 kB spill threshold
out = {"df": {"Referee": ["M Oliver"] * (n - 1) + [float("nan")], "Goals": [1.0] * (n - 1) + [float("nan")]}}
manifest = spill_large_payloads(out, sm, run_id="r", process_name="p")
print("spilled:", {k: isinstance(v, dict) and "__mlops_payload_ref__" in v for k, v in manifest["df"].items()})
back = hydrate_payload_refs(manifest, sm)["df"]
print("Referee before:", out["df"]["Referee"][-1:], " after:", back["Referee"][-1:])
print("Goals   before:", out["df"]["Goals"][-1:], " after:", back["Goals"][-1:])
assert back["Referee"][-1:] == ["nan"]          # missing values became ordinary strings
assert math.isnan(back["Goals"][-1])                    # numeric NaN survives
import pandas as pd
print("pandas sees missing before:", int(pd.Series(out["df"]["Referee"]).isna().sum()), " after:", int(pd.Series(back["Referee"]).isna().sum()))
# the same coercion hits any list whose np.asarray is a fixed-width string array, e.g. strings mixed with numbers
mixed = {"code": ["A"] * (n - 1) + [7]}
print("mixed   before:", mixed["code"][-1:], " after:", hydrate_payload_refs(spill_large_payloads(mixed, sm, run_id="r", process_name="q"), sm)["code"][-1:])
