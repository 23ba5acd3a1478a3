"""What reads a finished run: ``load`` values, ``metrics`` tables, ``status``, the ``report`` and its
``plots``, and ``housekeeping`` (gc and verify of a project).

The top layer below the CLI: it may use every layer beneath it, and nothing imports it except
``expops_smk.cli`` and the public ``expops_smk.load``.
"""
