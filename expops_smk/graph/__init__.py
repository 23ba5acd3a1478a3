"""Expand the validated project into nodes, name them, and resolve chart probes over them.

Second layer of the pipeline (config -> graph -> codegen -> runtime -> store): ``expansion``
builds the per-process layouts and each node's inputs, ``nodes`` names nodes, ``probes`` resolves
XPath selectors, ``plan`` freezes the result as JSON for jobs, ``render`` draws it for people.
"""
