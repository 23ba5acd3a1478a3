"""Seed-reference probe processes: every process draws random.random() and
numpy.random.rand() WITHOUT seeding, and returns/logs the values.
No RNG use at import time."""
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
def load_data():
    out = _draw("load_data")
    out["df"] = pd.DataFrame({"x": list(range(12)), "y": [i * 2 for i in range(12)]})
    return _done(out)


@process()
def top_seeded(random_seed=None):
    # NOTE: with a required `random_seed` (no default) ExpOps 0.1.27 fails this
    # node outside seed fan-outs: "missing required inputs: random_seed".
    out = _draw("top_seeded")
    out["top_seeded_received_seed"] = random_seed
    return _done(out)


@process()
def part_work(df):
    out = _draw("part_work")
    out["part_work_rows"] = [int(v) for v in df["x"].tolist()]
    return _done(out)


@process()
def fit():
    return _done(_draw("fit"))


@process()
def fit_seeded(random_seed):
    out = _draw("fit_seeded")
    out["fit_seeded_received_seed"] = random_seed
    return _done(out)


@process()
def seed_agg(fit_random, fit_numpy):
    out = _draw("seed_agg")
    out["seed_agg_seen_random"] = {str(k): v for k, v in dict(fit_random).items()}
    out["seed_agg_seen_numpy"] = {str(k): v for k, v in dict(fit_numpy).items()}
    return _done(out)


@process()
def data_agg(seed_agg_random, seed_agg_seen_random):
    out = _draw("data_agg")
    out["data_agg_seen_random"] = {str(k): v for k, v in dict(seed_agg_random).items()}
    out["data_agg_seen_nested"] = {str(k): v for k, v in dict(seed_agg_seen_random).items()}
    return _done(out)
