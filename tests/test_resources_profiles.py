"""Resources, retries, chain groups, local rules, benchmarks and the generated Snakemake profiles.

The rules carry what each process asks for (any executor sees it); ``profiles/slurm`` adds the
executor, the project-wide defaults and the polling; ExpOps' ``compute_config.yaml`` becomes
defaults. A real Slurm run of the same workflow is in ``test_slurm.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import SNAKEMAKE, Project
from projects import write_project

from expops_smk.config.project import load_project
from expops_smk.errors import ConfigError
from expops_smk.graph.expansion import build_graph
from expops_smk.graph.plan import plan_from_json, plan_to_json
from expops_smk.layout import DEFAULT_PROFILE, RULES_FILE, SLURM_PROFILE
from expops_smk.codegen.groups import chain_groups
from expops_smk.config.compute import memory_mb, walltime_minutes
from expops_smk.codegen.prepare import generate_project

SCRIPT = '''
def load():
    return {"rows": list(range(12))}


def prep(rows, random_seed):
    return {"rows": [r * random_seed for r in rows]}


def fit(rows):
    return {"total": sum(rows)}


def score(rows, total):
    return {"score": total / max(1, len(rows))}


def summary(score):
    return {"scores": score}
'''


def config(execution: dict[str, Any] | None = None, **process_extra: dict[str, Any]) -> dict[str, Any]:
    """load -> split (2 partitions) -> seeds (41, 42) -> prep -> fit -> score (prep, fit) -> summary."""
    processes = [
        {"name": "load"},
        {"name": "split", "data_parallelism": {"size": 2, "data_name": "rows"}},
        {"name": "seeds", "seed_parallelism": {"seeds": [41, 42]}},
        {"name": "prep"},
        {"name": "fit"},
        {"name": "score"},
        {"name": "summary", "data_aggregation": True, "seed_aggregation": True},
    ]
    for process in processes:
        process.update(process_extra.get(process["name"], {}))
    result: dict[str, Any] = {
        "scripts": {"model": "src/model.py"},
        "experiment": {"pipeline": {
            "process_adjlist": "load split\nsplit seeds\nseeds prep\nprep fit score\nfit score\nscore summary\n",
            "processes": processes,
        }},
    }
    if execution is not None:
        result["execution"] = execution
    return result


def make(root: Path, execution: dict[str, Any] | None = None, compute: str | None = None,
         **process_extra: dict[str, Any]) -> Path:
    files = {"configs/compute_config.yaml": compute} if compute is not None else None
    return write_project(root, config(execution, **process_extra), SCRIPT, files=files)


def rules_of(root: Path) -> dict[str, str]:
    text = (root / RULES_FILE).read_text()
    blocks = re.split(r"^(?=(?:rule|checkpoint) )", text, flags=re.MULTILINE)[1:]
    return {re.match(r"(?:rule|checkpoint) (\w+):", block).group(1): block for block in blocks}


def directive(block: str, name: str) -> str | None:
    """The text of one directive of a rule block (its own line plus the indented lines below)."""
    match = re.search(rf"^    {name}:(.*\n(?:        .*\n)*)", block, flags=re.MULTILINE)
    return None if match is None else "\n".join(line.strip() for line in match.group(1).strip().splitlines())


def profile(root: Path, relative: str = SLURM_PROFILE) -> dict[str, Any]:
    return yaml.safe_load((root / relative).read_text())


# -- rule directives -------------------------------------------------------------------------------

def test_process_resources_become_threads_and_resources(tmp_path: Path) -> None:
    root = make(tmp_path / "p", prep={"resources": {"cpus": 4, "mem_mb": 8000, "runtime": 120, "gpus": 1,
                                                    "slurm_partition": "gpu", "slurm_extra": "--gres=gpu:a100:1 --exclusive",
                                                    "constraint": "a100", "qos": "high", "slurm_account": 1234,
                                                    "disk_mb": 500, "tmpdir": "/scratch"}},
                fit={"resources": {"threads": 3}})
    generate_project(root)
    rules = rules_of(root)
    assert directive(rules["prep"], "threads") == "4"
    assert directive(rules["prep"], "resources").splitlines() == [
        "mem_mb=8000,", "runtime=120,", "gpu=1,", "slurm_partition='gpu',",
        "slurm_extra='--gres=gpu:a100:1 --exclusive',", "constraint='a100',", "qos='high',",
        "slurm_account='1234',", "disk_mb=500,", "tmpdir='/scratch',"]
    assert directive(rules["fit"], "threads") == "3" and directive(rules["fit"], "resources") is None
    for plain in ("load", "split", "score", "summary"):
        block = rules[plain]
        assert all(directive(block, name) is None for name in ("threads", "resources", "retries", "group",
                                                              "localrule", "benchmark")), block


def test_retries_scale_memory_with_the_attempt(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"resources": {"mem_mb": 2000}},
                prep={"retries": 2, "resources": {"mem_mb": 8000}}, fit={"retries": 1}, score={"resources": {"mem_mb": 3000}})
    generate_project(root)
    rules = rules_of(root)
    assert directive(rules["prep"], "retries") == "2"
    assert directive(rules["prep"], "resources") == "mem_mb=lambda wildcards, attempt: 8000 * attempt,"
    # the project default memory scales too, or a retried job would get the same memory again
    assert directive(rules["fit"], "resources") == "mem_mb=lambda wildcards, attempt: 2000 * attempt,"
    assert directive(rules["score"], "resources") == "mem_mb=3000,"  # no retries: a plain number
    assert directive(rules["load"], "resources") is None  # the default itself lives in the profile


def test_default_cpus_become_every_rules_threads(tmp_path: Path) -> None:
    """Snakemake has no default for threads (default-resources rejects them), so it is in the rules."""
    root = make(tmp_path / "p", {"resources": {"cpus": 2}}, fit={"resources": {"cpus": 1}})
    generate_project(root)
    rules = rules_of(root)
    assert {name: directive(block, "threads") for name, block in rules.items()} == {
        "load": "2", "split": "2", "seeds": "2", "prep": "2", "fit": "1", "score": "2", "summary": "2"}


def test_benchmark_files_mirror_the_log_layout(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"benchmark": True})
    generate_project(root)
    rules = rules_of(root)
    assert directive(rules["load"], "benchmark") == '"benchmarks/load.tsv",'
    assert directive(rules["seeds"], "benchmark") == '"benchmarks/seeds/{partition}.tsv",'
    assert directive(rules["prep"], "benchmark") == '"benchmarks/prep/{partition}/s{seed}.tsv",'
    assert directive(rules["summary"], "benchmark") == '"benchmarks/summary.tsv",'


@pytest.mark.parametrize("execution, cold", [
    (None, False),
    ({"warm_start": False}, True),
    # Snakemake's benchmark measures the job's process tree, which a node forked by the warm server is not in.
    ({"benchmark": True}, True),
])
def test_warm_start_decides_how_jobs_start_not_what_the_rules_run(tmp_path: Path, execution: dict[str, Any] | None,
                                                                   cold: bool) -> None:
    root = make(tmp_path / "p", execution)
    generate_project(root)
    commands = {name: block.split("shell:", 1)[1] for name, block in rules_of(root).items()}
    # The same command whatever the settings: Snakemake re-runs a job whose command text changed.
    assert len(commands) == 7 and all(f" -S .expops/bin/job.py runtime {name} " in command
                                      for name, command in commands.items()), commands
    snakefile = (root / "workflow" / "Snakefile").read_text(encoding="utf-8")
    assert ('os.environ.update(EXPOPS_SMK_WARM="0")' in snakefile) == cold


def test_local_processes_splits_means_builtin_splits_and_aggregations(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"local_processes": "splits"})
    generate_project(root)
    local = {name for name, block in rules_of(root).items() if directive(block, "localrule") == "True"}
    assert local == {"split", "seeds", "summary"}
    make(root, {"local_processes": ["load", "fit"]})
    generate_project(root)
    local = {name for name, block in rules_of(root).items() if directive(block, "localrule") == "True"}
    assert local == {"load", "fit"}


def test_chain_groups_one_group_per_partition_seed_segment(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"group_chains": True, "local_processes": "splits"})
    generate_project(root)
    groups = {name: directive(block, "group") for name, block in rules_of(root).items()}
    # prep, fit and score repeat over partition x seed and are joined by edges: one segment;
    # seeds repeats over partitions only (local anyway); load and summary are single nodes.
    assert groups == {"load": None, "split": None, "seeds": None, "prep": '"chain_prep"', "fit": '"chain_prep"',
                      "score": '"chain_prep"', "summary": None}
    assert "group-components" not in profile(root)  # true: one chain per submission, Snakemake's default


def test_a_segment_with_a_detour_outside_is_not_grouped(tmp_path: Path) -> None:
    """fit asks for another partition (a string resource Snakemake requires equal inside a group), so
    prep -> fit -> score leaves the prep/score segment and comes back: Snakemake would reject that
    group, so only fit (alone) is grouped."""
    root = make(tmp_path / "p", {"group_chains": 4}, fit={"resources": {"slurm_partition": "gpu"}})
    project = load_project(root)
    assert chain_groups(project, build_graph(project)) == {"seeds": "chain_seeds", "fit": "chain_fit"}
    generate_project(root)
    assert profile(root)["group-components"] == {"chain_fit": 4, "chain_seeds": 4}


def test_group_chains_off_by_default(tmp_path: Path) -> None:
    project = load_project(make(tmp_path / "p", {}))
    assert project.execution.group_chains == 0 and chain_groups(project, build_graph(project)) == {}


# -- config ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("execution, field, message", [
    ({"group_chains": "yes"}, "execution.group_chains", "must be true, false or the number of chains"),
    ({"group_chains": -1}, "execution.group_chains", "must be true, false or the number of chains"),
    ({"benchmark": "yes"}, "execution.benchmark", "must be true or false"),
    ({"warm_start": "no"}, "execution.warm_start", "must be true or false"),
    ({"local_processes": ["load", "nope"]}, "execution.local_processes", "unknown process(es) 'nope'"),
    ({"local_processes": 3}, "execution.local_processes", 'must be "splits" or a list of process names'),
    ({"jobs": 0}, "execution.jobs", "must be a positive integer"),
    ({"resources": {"mem_mb": "lots"}}, "execution.resources.mem_mb", "must be a non-negative integer"),
    ({"resources": {"cpus": 2, "threads": 3}}, "execution.resources.threads", "conflicts with 'cpus: 2'"),
    ({"resources": {"cpus": 0}}, "execution.resources.cpus", "must be at least 1"),
    ("fast", "execution", "must be a mapping"),
])
def test_bad_execution_settings_are_one_line_errors(tmp_path: Path, execution: Any, field: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_project(make(tmp_path / "p", execution))
    assert info.value.field == field and message in info.value.message, str(info.value)


def test_conflicting_process_resources_name_the_process(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_project(make(tmp_path / "p", None, fit={"resources": {"gpus": 1, "gpu": 2}}))
    assert str(info.value).endswith("process 'fit': field 'resources.gpu': conflicts with 'gpus: 1'; give one of them")


def test_unknown_execution_key_is_a_warning(tmp_path: Path) -> None:
    project = load_project(make(tmp_path / "p", {"benchmarks": True}))
    assert any("execution: unknown key 'benchmarks' ignored" in warning for warning in project.warnings)


def test_execution_survives_the_plan_round_trip(tmp_path: Path) -> None:
    project = load_project(make(tmp_path / "p", {"resources": {"mem_mb": 100, "slurm_partition": "x"},
                                                 "group_chains": 3, "local_processes": "splits",
                                                 "benchmark": True, "jobs": 7}))
    assert plan_from_json(plan_to_json(project, {}), project.root).project.execution == project.execution


# -- ExpOps compute_config.yaml ---------------------------------------------------------------------

COMPUTE = """\
provider: slurm
num_workers: 12
options:
  worker_cores: 4
  worker_memory: 16GB
  walltime: '02:30:00'
  queue: long
  account: lab
  job_extra_directives: ['--constraint=skylake', '--exclusive']
  interface: ib0
"""


def test_compute_config_becomes_the_defaults(tmp_path: Path) -> None:
    project = load_project(make(tmp_path / "p", None, compute=COMPUTE))
    assert project.execution.resources == {"cpus": 4, "mem_mb": 16000, "runtime": 150, "slurm_partition": "long",
                                           "slurm_account": "lab", "slurm_extra": "--constraint=skylake --exclusive"}
    assert project.execution.jobs == 12
    generate_project(project.root)
    slurm = profile(project.root)
    assert slurm["jobs"] == 12 and slurm["cores"] == 4
    assert slurm["default-resources"] == {"mem_mb": 16000, "runtime": 150, "slurm_partition": "'long'",
                                          "slurm_account": "'lab'",
                                          "slurm_extra": "'--constraint=skylake --exclusive'"}
    assert directive(rules_of(project.root)["load"], "threads") == "4"


def test_a_key_given_twice_in_compute_config_warns_and_the_last_wins(tmp_path: Path) -> None:
    """ExpOps' own premier-league template gives ``queue`` twice (``"normal"``, then ``null``): it must
    run unchanged, as in ExpOps (the last value wins), and the user is told."""
    compute = COMPUTE.replace("  queue: long\n", "  queue: long\n  worker_cores: 2\n")
    project = load_project(make(tmp_path / "p", None, compute=compute))
    assert project.execution.resources["cpus"] == 2
    assert [w for w in project.warnings if "duplicate" in w] == [
        "p/configs/compute_config.yaml: line 8: duplicate key 'worker_cores' (first given at line 4); "
        "the last value is used, as in ExpOps"]


def test_explicit_execution_settings_win_over_compute_config(tmp_path: Path) -> None:
    project = load_project(make(tmp_path / "p", {"resources": {"mem_mb": 2000, "threads": 1}, "jobs": 3},
                                compute=COMPUTE))
    assert project.execution.resources["mem_mb"] == 2000 and project.execution.resources["cpus"] == 1
    assert project.execution.resources["runtime"] == 150 and project.execution.jobs == 3


def test_compute_config_of_other_providers_is_ignored(tmp_path: Path) -> None:
    project = load_project(make(tmp_path / "p", None, compute="provider: local\noptions: {worker_cores: 8}\n"))
    assert project.execution.resources == {} and project.execution.jobs is None


@pytest.mark.parametrize("options, field, message", [
    ("{worker_memory: 4000}", "options.worker_memory", "with a unit"),
    ("{walltime: soon}", "options.walltime", "Slurm time"),
    ("{worker_cores: 0}", "options.worker_cores", "positive integer"),
    ("[1, 2]", "options", "must be a mapping"),
])
def test_bad_compute_config_names_file_and_field(tmp_path: Path, options: str, field: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_project(make(tmp_path / "p", None, compute=f"provider: slurm\noptions: {options}\n"))
    assert info.value.file.endswith("configs/compute_config.yaml") and info.value.field == field
    assert message in info.value.message


@pytest.mark.parametrize("text, megabytes", [
    ("4GB", 4000), ("4000MB", 4000), ("4 GiB", 4096), ("1.5G", 1500), ("512mb", 512), ("2TB", 2_000_000),
    ("100KB", 1), ("3MiB", 3),
])
def test_memory_strings(text: str, megabytes: int) -> None:
    assert memory_mb(text) == megabytes


@pytest.mark.parametrize("text, minutes", [
    ("01:00:00", 60), ("00:30:01", 31), ("45", 45), ("90:30", 91), ("2-00:00:00", 2880), ("1-12", 2160),
    ("1-00:30", 1470), (15, 15),
])
def test_walltime_strings(text: Any, minutes: int) -> None:
    assert walltime_minutes(text) == minutes


# -- profiles --------------------------------------------------------------------------------------

def test_profiles_are_written_and_kept_when_unchanged(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"resources": {"mem_mb": 1000, "runtime": 10, "slurm_partition": "debug"},
                                 "group_chains": 5, "local_processes": "splits", "jobs": 20},
                fit={"resources": {"cpus": 2}})
    written = {path.relative_to(root).as_posix(): changed for path, changed in
               ((item.path, item.changed) for item in generate_project(root))}
    assert written[DEFAULT_PROFILE] and written[SLURM_PROFILE]
    local = profile(root, DEFAULT_PROFILE)
    assert local == {"cores": "all", "rerun-incomplete": True}  # never an executor: laptops need no plugin
    slurm = profile(root)
    assert slurm == {
        "executor": "slurm", "jobs": 20, "cores": 2,
        "default-resources": {"mem_mb": 1000, "runtime": 10, "slurm_partition": "'debug'"},
        "group-components": {"chain_prep": 5},
        "slurm-status-command": "squeue", "slurm-init-seconds-before-status-checks": 5,
        "seconds-between-status-checks": 5, "rerun-incomplete": True, "show-failed-logs": True,
    }
    before = {rel: (root / rel).stat().st_mtime_ns for rel in (DEFAULT_PROFILE, SLURM_PROFILE)}
    again = {item.path.relative_to(root).as_posix(): item.changed for item in generate_project(root)}
    assert not again[DEFAULT_PROFILE] and not again[SLURM_PROFILE]
    assert before == {rel: (root / rel).stat().st_mtime_ns for rel in (DEFAULT_PROFILE, SLURM_PROFILE)}


def test_quoted_default_resources_evaluate_to_the_strings(tmp_path: Path) -> None:
    """Snakemake evaluates profile resource values as Python: unquoted, a partition called ``max``
    would be the builtin and ``1-2`` would be -1."""
    from snakemake.profiles import ProfileConfigFileParser
    from snakemake.resources import Resources

    root = make(tmp_path / "p", {"resources": {"slurm_partition": "max", "slurm_extra": "1-2", "mem_mb": 10}})
    generate_project(root)
    with open(root / SLURM_PROFILE, encoding="utf-8") as stream:
        arguments = ProfileConfigFileParser().parse(stream)["default-resources"]
    parsed = Resources.parse(arguments, allow_expressions=True)
    values = {name: parsed[name].evaluate(wildcards={}, input=[], attempt=1, threads=1, rulename="r",
                                          async_run=None).value
              for name in ("slurm_partition", "slurm_extra", "mem_mb")}
    assert values == {"slurm_partition": "max", "slurm_extra": "1-2", "mem_mb": 10}


# -- real snakemake on the generated workflow ------------------------------------------------------

FULL = {"resources": {"mem_mb": 500, "runtime": 5}, "group_chains": 2, "local_processes": "splits",
        "benchmark": True}
PROCESS_RESOURCES = {"prep": {"resources": {"cpus": 2, "mem_mb": 800}, "retries": 1},
                     "fit": {"resources": {"slurm_extra": "--comment=fit"}}}


@pytest.mark.e2e
def test_lint_accepts_the_directives(tmp_path: Path) -> None:
    project = Project(make(tmp_path / "p", FULL, **PROCESS_RESOURCES))
    project.generate()
    lint = project.command([SNAKEMAKE, "--lint"], check=False)
    assert lint.returncode == 0 and "Lints for rule" not in lint.output, lint.output


@pytest.mark.e2e
def test_a_local_run_with_every_option_equals_a_plain_run(tmp_path: Path) -> None:
    """Groups and Slurm resources mean nothing locally: same results, plus one benchmark per job.

    The bare ``snakemake`` (no --cores) relies on the default profile."""
    plain = Project(make(tmp_path / "plain"))
    plain.run()
    full = Project(make(tmp_path / "full", FULL, **PROCESS_RESOURCES))
    full.generate()
    run = full.command([SNAKEMAKE])
    assert "localcheckpoint split:" in run.output and "localrule summary:" in run.output  # a split is a checkpoint
    assert full.digests() == plain.digests() and len(plain.digests()) > 10
    benchmarks = sorted(path.relative_to(full.root).as_posix() for path in (full.root / "benchmarks").rglob("*.tsv"))
    assert len(benchmarks) == 1 + 1 + 2 + 3 * 4 + 1 and "benchmarks/prep/p2/s42.tsv" in benchmarks
    header = (full.root / "benchmarks/prep/p2/s42.tsv").read_text().splitlines()[0].split("\t")
    assert header[:3] == ["s", "h:m:s", "max_rss"]


@pytest.mark.e2e
def test_snakemake_bundles_two_chains_per_group_job(tmp_path: Path) -> None:
    """What a cluster executor would submit, from Snakemake's own dry run: the 4 partition x seed
    chains (prep, fit, score) as 2 group jobs of 2 whole chains each; the splits stay outside."""
    project = Project(make(tmp_path / "p", FULL))
    project.generate()
    dry = project.snakemake("-n", "--group-components", "chain_prep=2")
    blocks = dry.output.split("Group job chain_prep (jobs in lexicogr. order):")[1:]
    assert len(blocks) == 2, dry.output
    chains = []
    for block in blocks:
        jobs = re.findall(r"^    rule (\w+):\n(?:        .*\n)*?        wildcards: partition=(p\d), seed=(\d+)",
                          block.split("\n[", 1)[0] + "\n", flags=re.MULTILINE)
        assert sorted(name for name, _, _ in jobs) == ["fit", "fit", "prep", "prep", "score", "score"], block
        chains.append({(partition, seed) for _, partition, seed in jobs})
    assert all(len(members) == 2 for members in chains)
    assert chains[0] | chains[1] == {("p1", "41"), ("p1", "42"), ("p2", "41"), ("p2", "42")}


def large_project(root: Path) -> Path:
    return write_project(root, {
        "scripts": {"model": "src/model.py"},
        "experiment": {"pipeline": {"process_adjlist": "split work", "processes": [
            {"name": "split", "data_parallelism": {"size": 1200}}, {"name": "work"}]}}},
        "def split():\n    return {'data': list(range(1200))}\n\n\ndef work(data):\n    return {}\n")


def test_large_projects_choose_the_greedy_scheduler_and_snakemake_accepts_it(tmp_path: Path) -> None:
    large = large_project(tmp_path / "large")
    generate_project(large)
    for relative in (DEFAULT_PROFILE, SLURM_PROFILE):
        assert profile(large, relative)["scheduler"] == "greedy", relative
        assert profile(large, relative)["notemp"] is True, relative  # generated rules have no temp() outputs
        assert profile(large, relative)["scheduler-subsample"] == 100, relative  # a pass stats 100 jobs' inputs
    small = make(tmp_path / "small")
    generate_project(small)
    assert "scheduler" not in profile(small, DEFAULT_PROFILE) and "scheduler" not in profile(small)
    assert "notemp" not in profile(small, DEFAULT_PROFILE) and "notemp" not in profile(small)
    assert "scheduler-subsample" not in profile(small, DEFAULT_PROFILE) and "scheduler-subsample" not in profile(small)
    dry = Project(large).dry_run()
    assert re.search(r"^work\s+1200$", dry.output, flags=re.MULTILINE), dry.describe()


def test_a_user_rule_with_a_priority_keeps_the_scheduler_looking_at_every_ready_job(tmp_path: Path) -> None:
    from expops_smk.codegen.prepare import prepare

    large = large_project(tmp_path / "large")
    generate_project(large)
    rules = large / "workflow/rules/extra.smk"
    rules.write_text('rule urgent:\n    output: "urgent.txt"\n    priority: 50\n    shell: "touch {output}"\n', encoding="utf-8")
    prepare(large / "workflow")  # a random sample of the ready jobs would not honour the priority
    for relative in (DEFAULT_PROFILE, SLURM_PROFILE):
        assert "scheduler-subsample" not in profile(large, relative) and profile(large, relative)["scheduler"] == "greedy"
    rules.unlink()
    prepare(large / "workflow")
    assert profile(large, DEFAULT_PROFILE)["scheduler-subsample"] == 100


def test_a_user_rule_file_with_temp_outputs_keeps_snakemakes_temp_handling(tmp_path: Path) -> None:
    from expops_smk.codegen.prepare import prepare

    large = large_project(tmp_path / "large")
    generate_project(large)
    assert profile(large, DEFAULT_PROFILE)["notemp"] is True
    rules = large / "workflow/rules/extra.smk"
    rules.write_text('rule scratch:\n    output: temp("scratch.txt")\n    shell: "touch {output}"\n', encoding="utf-8")
    prepare(large / "workflow")  # the parse of the next `snakemake`: a new rule file regenerates the profiles
    assert "notemp" not in profile(large, DEFAULT_PROFILE) and "notemp" not in profile(large)
    rules.write_text('rule scratch:\n    output: "scratch.txt"\n    shell: "touch {output}"\n', encoding="utf-8")
    prepare(large / "workflow")
    assert profile(large, DEFAULT_PROFILE)["notemp"] is True
