"""Generate the Snakemake workflow of a validated, expanded project, and keep it current.

Third layer of the pipeline (config -> graph -> codegen; runtime and store beside it): ``generate``
writes the Snakefile, ``rules``/``chart_rules``/``patterns``/``directives``/``groups`` render its
rules, ``profiles`` the Snakemake profiles, and ``prepare`` is what the Snakefile calls at parse
time to regenerate after an edit. Templates live in ``workflow_templates/``.
"""
