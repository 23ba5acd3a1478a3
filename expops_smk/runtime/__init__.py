"""What one Snakemake job runs: a node (``node_run``) or a chart (``chart_job``).

Fourth layer: it reads the plan (``expops_smk.graph.plan``) and writes through the store. A job
starts in ``warm_client`` (standard library only), which has a ``warm_server`` fork it, else
becomes ``launch`` (a cold start); ``user_scripts`` imports the project's scripts, ``user_api`` is what they import (``expops.core`` and ``expops.reporting``
included), ``seeding`` and ``run_key`` make a run reproducible and recognisable, ``splitting``
cuts data partitions.
"""
