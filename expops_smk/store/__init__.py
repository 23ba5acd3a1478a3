"""Where node outputs live: content-addressed objects, manifests, the run cache, and their upkeep.

The bottom layer: it knows files and hashes, nothing of configs or graphs. ``artifact_store``
writes, reads and restores artifacts; ``artifacts`` validates manifest entries; ``table_digest``
hashes tables by content; ``hashing`` and ``files`` are the primitives; ``maintenance`` verifies and
garbage-collects.
"""
