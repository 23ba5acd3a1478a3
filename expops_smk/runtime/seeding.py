"""Per-task RNG seeding, the way ExpOps does it, so a project gives the same numbers under both.

Every node seeds Python's ``random``, numpy, and torch/TensorFlow when the process uses them,
from a seed derived from its branch's seed and its name, before its function is called.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import random
import sys


def derive_task_seed(base_seed: int, node_id: str) -> int:
    """The per-task RNG seed ExpOps uses, so a project gives the same numbers under both systems.

    ``node_id`` is the node's canonical XPath id (``//*[@partition='p1']/*[@seed='41']/process[@name='fit']``),
    not the bare process name: every partition and every outer seed of a process gets a stream of
    its own, as in ExpOps.
    """
    digest = hashlib.sha256(f"{base_seed}|{node_id}|0".encode()).digest()
    value = int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
    return value or (base_seed & 0x7FFFFFFF) or 1


def seed_rngs(seed: int, script_source: str = "") -> list[str]:
    """Seed Python's and numpy's RNGs, and torch/TensorFlow when the process uses them.

    torch and TensorFlow take seconds to import, so they are seeded only when already imported or
    named in the process's script; numpy is cheap and is seeded whenever installed.
    """
    seeded = ["random"]
    random.seed(seed)
    if importlib.util.find_spec("numpy") is not None:
        import numpy

        numpy.random.seed(seed)
        seeded.append("numpy")
    for name in ("torch", "tensorflow"):
        if name in sys.modules or (name in script_source and importlib.util.find_spec(name) is not None):
            module = importlib.import_module(name)
            if name == "torch":
                module.manual_seed(seed)
                if module.cuda.is_available():
                    module.cuda.manual_seed_all(seed)
            else:
                module.random.set_seed(seed)
            seeded.append(name)
    return seeded
