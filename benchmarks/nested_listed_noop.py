"""No-op `snakemake -n` of a growing split inside a by-buckets (8) split (242 chunks): a baseline
checkout against this worktree, interleaved, medians and ranges.

Before running: `git archive <baseline> | tar -x -C /tmp/h19_base` and copy its workflow_templates/
to /tmp/h19_base/expops_smk/templates (the editable install would otherwise lend it this
worktree's templates). Measured by hand (issue: nested splits below a checkpoint, holes19).
"""
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from projects import write_project
from test_e2e_datums_nested import BUCKETS_CONFIG, BUCKETS_MAIN

VENV = str(Path(sys.executable).parent)
CODE = {"base": "/tmp/h19_base", "holes19": str(Path(__file__).resolve().parents[1])}
rows = "".join(f"{i},k{i % 37},{i}\n" for i in range(1, 2401))
config = BUCKETS_CONFIG.replace("buckets: 2", "buckets: 8").replace("rows_per_partition: 3", "rows_per_partition: 10")
roots = {}
for name, code in CODE.items():
    root = Path(f"/tmp/h19_bench_{name}")
    shutil.rmtree(root, ignore_errors=True)
    write_project(root, config, BUCKETS_MAIN, script_path="src/main.py", files={"data/raw.csv": "id,g,x\n" + rows})
    env = dict(os.environ, PYTHONPATH=code)
    subprocess.run([f"{VENV}/expops-smk", "generate", "."], cwd=root, env=env, check=True, capture_output=True)
    subprocess.run([f"{VENV}/snakemake", "--cores", "2"], cwd=root, env=env, check=True, capture_output=True)
    roots[name] = (root, env)
times = {name: [] for name in CODE}
for _ in range(9):
    for name, (root, env) in roots.items():
        start = time.perf_counter()
        done = subprocess.run([f"{VENV}/snakemake", "--cores", "2", "-n"], cwd=root, env=env, capture_output=True, text=True)
        times[name].append(time.perf_counter() - start)
        assert "Nothing to be done" in done.stdout + done.stderr, (name, done.stdout[-2000:], done.stderr[-2000:])
jobs = len(list(Path(roots["holes19"][0], "results/work").rglob("_outputs.json")))
print("work nodes", jobs, "load", os.getloadavg())
for name, values in times.items():
    print(name, "median %.2fs range %.2f-%.2f" % (statistics.median(values), min(values), max(values)))
print("ratio holes19/base %.2f" % (statistics.median(times["holes19"]) / statistics.median(times["base"])))
