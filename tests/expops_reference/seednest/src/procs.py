"""Seed-reference probe: nested seed fan-outs. Processes draw random.random()
and numpy.random.rand() WITHOUT seeding. No RNG use at import time."""
import hashlib
import json
import os
import random

import numpy

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
def prep():
    out = _draw("prep")
    out["payload"] = [1, 2, 3]
    return _done(out)


@process()
def inner_work():
    return _done(_draw("inner_work"))


@process()
def inner_seeds():
    # custom-code seed fan-out opener (runs once per OUTER seed)
    return _done(_draw("inner_seeds"))


@process()
def nested_work():
    return _done(_draw("nested_work"))


@process()
def nested_seeded(random_seed):
    out = _draw("nested_seeded")
    out["nested_seeded_received_seed"] = random_seed
    return _done(out)


@process()
def inner_agg(nested_work_random):
    out = _draw("inner_agg")
    out["inner_agg_seen"] = {str(k): v for k, v in dict(nested_work_random).items()}
    return _done(out)


@process()
def outer_agg(inner_agg_random, inner_agg_seen):
    out = _draw("outer_agg")
    out["outer_agg_seen"] = {str(k): v for k, v in dict(inner_agg_random).items()}
    out["outer_agg_seen_nested"] = {str(k): v for k, v in dict(inner_agg_seen).items()}
    return _done(out)
