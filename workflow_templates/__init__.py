"""Templates the generated Snakemake workflow is made from (installed as ``expops_smk.templates``)."""
