"""Seed-reference probe: seed fan-out first, then a custom-code data fan-out
inside it. Processes draw random.random() and numpy.random.rand() WITHOUT
seeding. No RNG use at import time."""
import hashlib
import json
import os
import random

import numpy
import pandas as pd

from expops.core import log_metric, process


def _draw(tag):
    r = random.random()
    n = float(numpy.random.rand())
    try:
        log_metric(f"{tag}_random", r)
        log_metric(f"{tag}_numpy", n)
    except Exception:
        pass
    return {f"{tag}_random": r, f"{tag}_numpy": n}


def _done(out):
    """Optionally dump this node's JSON-able outputs (after all draws; uses no RNG).
    Enabled only when SEEDREF_DUMP_DIR is set."""
    d = os.environ.get("SEEDREF_DUMP_DIR")
    if not d:
        return out
    try:
        from expops.core import get_current_process_context
        nid = get_current_process_context()
    except Exception:
        nid = None
    rec = {"node_id": nid, "outputs": {}}
    for k, v in out.items():
        try:
            json.dumps(v)
            rec["outputs"][k] = v
        except Exception:
            rec["outputs"][k] = repr(type(v))
    fn = hashlib.sha1(str(nid).encode()).hexdigest()[:16] + ".json"
    with open(os.path.join(d, fn), "w") as fh:
        json.dump(rec, fh, sort_keys=True)
    return out


@process()
def gen():
    out = _draw("gen")
    out["df"] = pd.DataFrame({"x": list(range(12))})
    return _done(out)


@process()
def data_split(df):
    # custom-code data fan-out opener (runs once per seed); ExpOps splits out["df"]
    out = _draw("data_split")
    out["df"] = df
    return _done(out)


@process()
def work(df):
    out = _draw("work")
    out["work_rows"] = [int(v) for v in df["x"].tolist()]
    return _done(out)


@process()
def agg_data(work_random):
    out = _draw("agg_data")
    out["agg_data_seen"] = {str(k): v for k, v in dict(work_random).items()}
    return _done(out)


@process()
def agg_seed(agg_data_random):
    out = _draw("agg_seed")
    out["agg_seed_seen"] = {str(k): v for k, v in dict(agg_data_random).items()}
    return _done(out)
