"""``python -m expops_smk.runtime PROCESS [--partition P] [--seed S] --log L``: run one node cold."""

import sys

from expops_smk.runtime.node_job import main

sys.exit(main())
