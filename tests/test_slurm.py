"""The example project through a real Slurm controller and node (``scripts/slurm-local.sh start``).

Runs only where Slurm answers and the executor plugin was installed *outside* the project's
environment (``EXPOPS_SLURM_PLUGIN_PATH``, put on PYTHONPATH for these runs only: importing the
plugin costs every snakemake start ~10 s when no controller runs). `.ci/run` sets all of this up.

To stay within a few minutes the example is copied with 2 partitions x 1 seed instead of 3 x 3
(12 nodes instead of 43), and with an ``execution:`` section that exercises what a cluster run adds:
per-process and default resources, memory scaled by retries, chain groups (both partition x seed
chains in one submission), local splits and aggregations, benchmarks, and a venv environment. The only difference between the two runs compared is
``--workflow-profile profiles/slurm``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import REPO, SNAKEMAKE, Project
from test_environments import requirements, write_wheel

pytestmark = pytest.mark.slurm

PLUGIN_PATH_VARIABLE = "EXPOPS_SLURM_PLUGIN_PATH"
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)")
CLUSTER_TIMEOUT = 480


def _skip_reason() -> str | None:
    if shutil.which("sinfo") is None or shutil.which("scontrol") is None:
        return "Slurm is not installed (no sinfo/scontrol): run `bash scripts/slurm-local.sh start`"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return "scontrol ping timed out: the Slurm controller is not running (scripts/slurm-local.sh start)"
    if "is UP" not in ping.stdout:
        return "the Slurm controller is not running: `bash scripts/slurm-local.sh start`"
    plugin = os.environ.get(PLUGIN_PATH_VARIABLE)
    if not plugin or not (Path(plugin) / "snakemake_executor_plugin_slurm").is_dir():
        return (f"{PLUGIN_PATH_VARIABLE} does not name a folder holding snakemake-executor-plugin-slurm "
                "(pip install --target DIR snakemake-executor-plugin-slurm ...; see .ci/run)")
    return None


_REASON = _skip_reason()
if _REASON is not None:
    pytestmark = [pytest.mark.slurm, pytest.mark.skip(reason=_REASON)]


def cluster_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env[PLUGIN_PATH_VARIABLE], env.get("PYTHONPATH")]))
    return env


def run_on_slurm(root: Path, *args: str, timeout: int = CLUSTER_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``snakemake --workflow-profile profiles/slurm`` in ``root``; killed by ``timeout`` if it hangs
    (e.g. polling a job that Slurm forgot)."""
    command = ["timeout", "-k", "10", str(timeout), SNAKEMAKE, "--workflow-profile", "profiles/slurm", *args]
    return subprocess.run(command, cwd=root, env=cluster_env(), capture_output=True, text=True,
                          timeout=timeout + 30)


def scontrol_job(job_id: str) -> dict[str, str]:
    """``scontrol show job`` as a dict (finished jobs stay listed for MinJobAge, 600 s here)."""
    text = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=10,
                          check=True).stdout
    return dict(re.findall(r"(\w[\w/:]*)=(\S*)", text))


def example_copy(root: Path) -> Path:
    shutil.copytree(REPO / "example_project", root,
                    ignore=shutil.ignore_patterns(".snakemake", ".expops", "results", "logs", "workflow",
                                                  "benchmarks", "profiles", "report.html"))
    config_file = root / "configs" / "project_config.yaml"
    config = yaml.safe_load(config_file.read_text())
    processes = {process["name"]: process for process in config["experiment"]["pipeline"]["processes"]}
    processes["partition"]["data_parallelism"]["size"] = 2
    processes["seeds"]["seed_parallelism"]["seeds"] = [41]
    processes["feature_engineering"]["resources"] = {"cpus": 2, "mem_mb": 1500, "runtime": 7}
    processes["evaluate"]["retries"] = 1
    config["execution"] = {"resources": {"mem_mb": 1000, "runtime": 10, "slurm_partition": "debug"},
                           "group_chains": 2, "local_processes": "splits", "benchmark": True}
    # A venv environment (the first entry is every process's default, as in ExpOps): created on the
    # submit host before the first job, used by the cluster jobs through the shared project folder.
    write_wheel(root / "wheels", "envpkg_alpha", "1.0")
    (root / "requirements-cluster.txt").write_text(requirements("envpkg_alpha==1.0"), encoding="utf-8")
    config["environment"] = {"cluster-env": {"venv": ["requirements-cluster.txt"]}}
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("slurm")
    local = Project(example_copy(base / "local"))
    local.run()
    cluster = Project(example_copy(base / "cluster"))
    cluster.generate()
    done = run_on_slurm(cluster.root)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    submissions = {job_id: log for job_id, log in SUBMITTED.findall(output)}
    return {"local": local, "cluster": cluster, "output": output, "submissions": submissions}


def test_cluster_results_equal_local_results(runs: dict[str, Any]) -> None:
    local, cluster = runs["local"], runs["cluster"]
    assert len(local.digests()) > 10
    assert cluster.digests() == local.digests()
    for record in (cluster.root / "results").rglob("_run.json"):
        assert '"outcome": "executed"' in record.read_text()


def test_cluster_jobs_ran_in_the_project_environment(runs: dict[str, Any]) -> None:
    """Every rule runs the environment's interpreter (a relative path: the project folder is shared),
    which exists once, made on the submit host; the cluster's results equal the local run's."""
    root = runs["cluster"].root
    created = [folder.name for folder in (root / ".expops/envs").iterdir() if (folder / "bin/python").is_file()]
    assert len(created) == 1
    rules = (root / "workflow/rules/processes.smk").read_text(encoding="utf-8")
    commands = re.findall(r"PYTHONHASHSEED=0 (\S+) -S \.expops/bin/job\.py runtime ", rules)
    assert commands and set(commands) == {f".expops/envs/{created[0]}/bin/python"}


def test_jobs_really_went_through_slurm(runs: dict[str, Any]) -> None:
    """load_data and feature_engineering alone, the 2 chains as one group job; splits and the
    aggregation ran on the submit host."""
    submissions, output = runs["submissions"], runs["output"]
    kinds = sorted(Path(log).parent.name for log in submissions.values())
    assert kinds == ["group_chain_preprocess_evaluate_preprocess_train_forest_train_logreg",
                     "rule_feature_engineering", "rule_load_data"], output[-5000:]
    for process, kind in (("partition", "localcheckpoint"), ("seeds", "localrule"), ("aggregate_results", "localrule")):
        assert f"{kind} {process}:" in output  # a data split is a checkpoint
    listed = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T", "-j", ",".join(submissions)],
                            capture_output=True, text=True, timeout=10, check=True).stdout
    assert dict(line.split() for line in listed.splitlines()) == dict.fromkeys(submissions, "COMPLETED")
    for job_id in submissions:
        job = scontrol_job(job_id)
        assert job["JobState"] == "COMPLETED" and job["WorkDir"] == str(runs["cluster"].root)


def test_resources_from_the_config_reached_sbatch(runs: dict[str, Any]) -> None:
    by_kind = {Path(log).parent.name: job_id for job_id, log in runs["submissions"].items()}
    feature = scontrol_job(by_kind["rule_feature_engineering"])  # its own resources
    assert (feature["NumCPUs"], feature["MinMemoryNode"], feature["TimeLimit"]) == ("2", "1500M", "00:07:00")
    load = scontrol_job(by_kind["rule_load_data"])  # the project defaults, through profiles/slurm
    assert (load["NumCPUs"], load["MinMemoryNode"], load["TimeLimit"]) == ("1", "1000M", "00:10:00")
    assert feature["Partition"] == load["Partition"] == "debug"


def test_benchmarks_of_cluster_jobs(runs: dict[str, Any]) -> None:
    root = runs["cluster"].root
    assert (root / "benchmarks/feature_engineering.tsv").is_file()
    for process in ("preprocess", "train_logreg", "train_forest", "evaluate"):
        for partition in ("p1", "p2"):
            for seed in (41,):
                table = (root / f"benchmarks/{process}/{partition}/s{seed}.tsv").read_text().splitlines()
                assert table[0].split("\t")[:3] == ["s", "h:m:s", "max_rss"] and len(table) == 2


FAILING_CONFIG = """\
metadata: {name: failing}
scripts: {model: src/model.py}
experiment:
  pipeline:
    process_adjlist: seeds work
    processes:
      - {name: seeds, seed_parallelism: {seeds: [1, 2]}}
      - {name: work}
execution:
  resources: {mem_mb: 500, runtime: 5}
  local_processes: splits
"""

FAILING_SCRIPT = '''
def work(random_seed):
    if random_seed == 2:
        raise ValueError("bad seed 2")
    return {"seed": random_seed}
'''


def test_a_failing_cluster_job_names_the_node_and_its_log(tmp_path: Path) -> None:
    root = tmp_path / "failing"
    (root / "configs").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "configs/project_config.yaml").write_text(FAILING_CONFIG)
    (root / "src/model.py").write_text(FAILING_SCRIPT)
    generated = subprocess.run([sys.executable, "-m", "expops_smk.cli", "generate", "."], cwd=root,
                               env=cluster_env(), capture_output=True, text=True, timeout=120)
    assert generated.returncode == 0, generated.stderr
    done = run_on_slurm(root, timeout=240)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-5000:]
    assert SUBMITTED.search(output), output[-5000:]
    # the job's own one-line error, from its Slurm log (show-failed-logs in profiles/slurm) ...
    assert re.search(r"^expops-smk: node 'work S2': .*ValueError: bad seed 2.*logs/work/s2\.log", output,
                     flags=re.MULTILINE), output[-5000:]
    # ... Snakemake's summary naming the rule's log, and that log's traceback printed below it
    assert re.search(r"Error in rule work:[\s\S]*log: logs/work/s2\.log", output), output[-5000:]
    assert 'raise ValueError("bad seed 2")' in output
    assert (root / "results/work/s1/_outputs.json").is_file()
