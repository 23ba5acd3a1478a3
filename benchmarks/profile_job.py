"""Profile one trivial expops-smk job next to its hand-written twin (the P1 gap, issue 7).

    /work/venv/bin/python benchmarks/profile_job.py [--runs 5]

Builds P1's projects (make -> partition -> work), runs the upstream jobs once, then times the
``work`` job of partition p1 outside Snakemake, three ways each for expops-smk (executing, with the
run cache emptied) and the hand-written script:

1. wall time, median of ``--runs``;
2. ``python -X importtime``: the slowest imports (cumulative, top level and expops_smk modules);
3. ``cProfile``: the functions with the most cumulative time, after imports.

It prints plain text for RESULTS.md's analysis; nothing is asserted.
"""

from __future__ import annotations

import argparse
import pstats
import shutil
import sys
import tempfile
from io import StringIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_jobs import p1_projects  # noqa: E402
from common import PYTHON, SNAKEMAKE, child_env, median, run_timed  # noqa: E402

OURS = ["-m", "expops_smk.runtime", "work", "--partition=p1", "--log", "logs/profile.log"]
TWIN = ["scripts/steps.py", "work", "results/partition/p1/df.parquet", "profile.parquet"]


def imports(project: Path, args: list[str], env: dict[str, str], reset) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of every import, slowest first."""
    reset()
    result = run_timed([PYTHON, "-X", "importtime", *args], project, env=env)
    rows = []
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            rows.append((int(cumulative), name.rstrip()))
    return sorted(rows, reverse=True)


def _depth(module: str) -> int:
    """importtime indents a module by the depth of the import chain that loaded it."""
    return (len(module) - len(module.lstrip())) // 2 + 1


def profile(project: Path, args: list[str], env: dict[str, str], reset, out: Path) -> str:
    reset()
    run_timed([PYTHON, "-m", "cProfile", "-o", str(out), *args], project, env=env)
    buffer = StringIO()
    stats = pstats.Stats(str(out), stream=buffer)
    stats.sort_stats("cumulative").print_stats(30)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="expops-profile-") as scratch:
        ours, twin = p1_projects(Path(scratch), args.nodes)
        run_timed([SNAKEMAKE, "--cores", "1", "results/partition/p1/_outputs.json"], ours)
        run_timed([SNAKEMAKE, "--cores", "1", "results/partition/p1/df.parquet"], twin)
        env = child_env({"PYTHONHASHSEED": "0"})

        def reset_ours() -> None:
            shutil.rmtree(ours / ".expops" / "runs", ignore_errors=True)

        def reset_twin() -> None:
            (twin / "profile.parquet").unlink(missing_ok=True)

        sides = {"expops-smk": (ours, OURS, reset_ours), "hand-written": (twin, TWIN, reset_twin)}
        for name, (project, command, reset) in sides.items():
            times = []
            for _ in range(args.runs):
                reset()
                times.append(run_timed([PYTHON, *command], project, env=env).seconds)
            print(f"== {name}: wall {median(times) * 1000:.0f} ms (median of {args.runs}; "
                  f"min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})")
            rows = imports(project, command, env, reset)
            total = sum(us for us, module in rows if _depth(module) == 1)
            print(f"-- imports: {total / 1000:.0f} ms in all; slowest (cumulative ms, indented by depth):")
            shown = [row for row in rows if _depth(row[1]) <= 3 or "expops_smk" in row[1]][:25]
            for us, module in shown:
                print(f"   {us / 1000:8.1f}  {module}")
            print("-- cProfile, cumulative (imports included):")
            print(profile(project, command, env, reset, Path(scratch) / f"{name}.prof"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
