"""Parse and validate an ExpOps project (configs/project_config.yaml) into ``config.model``.

The first layer of the pipeline: config -> graph -> codegen -> runtime -> store. Entry point:
``expops_smk.config.project.load_project``. It imports nothing above it.
"""
