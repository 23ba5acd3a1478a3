"""The ``expops-smk`` command: a thin layer over config, graph, codegen and store.

Every project fault is printed as one line (file, process, field) with exit status 2; nothing is
written before the project validated.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

import click

from expops_smk.errors import ExpopsError

PROJECT_ARGUMENT = click.argument(
    "project", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ``ExpopsError`` into one line on stderr and exit status 2 (no traceback)."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ExpopsError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
    return wrapper


def _load(project_dir: Path):
    from expops_smk.config.project import load_project
    from expops_smk.graph.expansion import build_graph
    from expops_smk.graph.probes import resolve_charts

    project = load_project(project_dir)
    for warning in project.warnings:
        click.echo(f"warning: {warning}", err=True)
    graph = build_graph(project)
    resolve_charts(graph)  # a chart selector that matches nothing is a config error
    return project, graph


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="expops-smk")
def main() -> None:
    """Turn an ExpOps project into a Snakemake workflow and inspect its expanded graph."""


@main.command()
@PROJECT_ARGUMENT
@reports_errors
def validate(project: Path) -> None:
    """Check PROJECT's configs/project_config.yaml and scripts (default: the current folder)."""
    config, graph = _load(project)
    click.echo(f"{config.config_file}: ok: {len(config.processes)} processes, {graph.node_count()} nodes")


@main.command()
@PROJECT_ARGUMENT
@click.option("--format", "output_format", type=click.Choice(["tree", "json", "dot", "mermaid"]),
              default="tree", show_default=True, help="Indented tree of labels, or a machine/diagram format.")
@reports_errors
def graph(project: Path, output_format: str) -> None:
    """Print PROJECT's expanded graph: every node with its label, grouped by partition and seed."""
    from expops_smk.graph.render import FORMATS

    _, expanded = _load(project)
    click.echo(FORMATS[output_format](expanded))


@main.command()
@PROJECT_ARGUMENT
@reports_errors
def generate(project: Path) -> None:
    """Write PROJECT's Snakemake workflow (workflow/Snakefile, rules, plan); unchanged files are kept."""
    from expops_smk.codegen.prepare import generate_project

    _load(project)  # validates and prints warnings before anything is written
    for item in generate_project(project.resolve()):
        state = "written" if item.changed else "unchanged"
        click.echo(f"{state}: {os.path.relpath(item.path, Path.cwd())}")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--cores", default=None,
              help="Passed to snakemake --cores (default: all local cores; with --profile, the profile's).")
@click.option("--profile", default=None, help="Workflow profile under PROJECT/profiles/ (e.g. slurm).")
@click.option("--no-cache", is_flag=True,
              help="Jobs that run execute user code instead of restoring from the run cache (add -F to run all).")
@click.option("--snakemake-output", is_flag=True,
              help="Show Snakemake's own output instead of the progress view (the full log is always in .snakemake/log/).")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@reports_errors
def run(cores: str | None, profile: str | None, no_cache: bool, snakemake_output: bool, args: tuple[str, ...]) -> None:
    """Generate, then run snakemake: `expops-smk run [PROJECT] [SNAKEMAKE ARGS]` (e.g. -n, --keep-going).

    PROJECT (default: the current folder) is the first argument when it names a folder; every
    other argument goes to snakemake unchanged. A run shows a progress bar (done/total jobs,
    what is running, failures as they happen, elapsed time and an estimate); previews and
    listings (-n, --dag, --summary, ...) show Snakemake's output.
    """
    from expops_smk.progress import run_with_view, wants_view

    from expops_smk.codegen.prepare import generate_project

    project = Path(".")
    if args and not args[0].startswith("-") and Path(args[0]).is_dir():
        project, args = Path(args[0]), args[1:]
    _load(project)
    generate_project(project.resolve())
    sibling = Path(sys.executable).with_name("snakemake")  # the snakemake of this environment first
    snakemake = str(sibling) if sibling.exists() else shutil.which("snakemake")
    if snakemake is None:
        raise ExpopsError("snakemake not found: install it in this environment (pip install 'snakemake>=9')")
    command = [snakemake]
    if cores is not None or profile is None:
        # A cluster profile sizes jobs itself; the submit host's core count must not cap them.
        command += ["--cores", cores or "all"]
    if profile:
        _check_executor_plugin(project / "profiles" / profile)
        command += ["--workflow-profile", str(Path("profiles") / profile)]
    command += list(args)
    click.echo("$ " + " ".join(command), err=True)
    if no_cache:
        from expops_smk.layout import NO_CACHE_VARIABLE

        os.environ[NO_CACHE_VARIABLE] = "1"  # inherited by snakemake and every job it starts
    os.chdir(project)
    if snakemake_output or not wants_view(args):
        os.execv(command[0], command)
    sys.exit(run_with_view(command))


def _check_executor_plugin(profile_dir: Path) -> None:
    """A profile's ``executor: NAME`` needs snakemake-executor-plugin-NAME: say how to get it, in one line."""
    import importlib.util

    import yaml

    try:
        settings = yaml.safe_load((profile_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return  # snakemake reports a missing or broken profile itself
    executor = settings.get("executor") if isinstance(settings, dict) else None
    if not isinstance(executor, str) or executor in {"local", "dryrun", "touch"}:
        return
    plugin = f"snakemake-executor-plugin-{executor}"
    if importlib.util.find_spec(plugin.replace("-", "_")) is None:
        raise ExpopsError(f"{profile_dir / 'config.yaml'}: executor '{executor}' needs {plugin}: "
                          f"pip install {plugin} (in the environment that runs snakemake)")


@main.command()
@click.argument("where", nargs=-1, required=True, metavar="[PROJECT] PROCESS")
@click.option("--project", "project_option", default=None,
              type=click.Path(file_okay=False, path_type=Path), help="Project folder (default: .).")
@click.option("--partition", default=None, help="Partition: 3, p3, or nested 3-2 / p3-p2.")
@click.option("--seed", default=None, help="Seed of the node: 41, or nested 41-7.")
@reports_errors
def show(where: tuple[str, ...], project_option: Path | None, partition: str | None, seed: str | None) -> None:
    """Print the outputs of one node (tables as text), e.g. `expops-smk show . train --partition 1 --seed 41`."""
    from expops_smk.results.load import load

    if len(where) > 2 or (len(where) == 2 and project_option is not None):
        raise click.UsageError("give PROJECT once: `show [PROJECT] PROCESS` or `show PROCESS --project PROJECT`")
    project = Path(where[0]) if len(where) == 2 else (project_option or Path("."))
    for key, value in load(project, where[-1], partition=partition, seed=seed).items():
        text = value.to_string() if hasattr(value, "to_string") else repr(value)
        click.echo(f"== {key} ({type(value).__name__})\n{text}")


@main.command()
@PROJECT_ARGUMENT
@click.option("--changed-only", is_flag=True, help="List only nodes that would run or be restored.")
@reports_errors
def status(project: Path, changed_only: bool) -> None:
    """Per node: up to date, or why the next run would execute (or restore) it."""
    from expops_smk.config.overrides import recorded_overrides
    from expops_smk.config.project import load_project
    from expops_smk.results.partition_status import growing_split_lines
    from expops_smk.results.status import UP_TO_DATE, project_status

    overrides = recorded_overrides(project)
    if overrides:
        click.echo(f"with the --config overrides of the last snakemake run: {overrides.describe()}", err=True)
    statuses = project_status(project)
    for item in statuses:
        if not (changed_only and item.state == UP_TO_DATE):
            click.echo(item.line())
    for line in growing_split_lines(load_project(project), {item.node: item.state for item in statuses}):
        click.echo(line)
    counts: dict[str, int] = {}
    for item in statuses:
        counts[item.state] = counts.get(item.state, 0) + 1
    click.echo(", ".join(f"{n} {state}" for state, n in counts.items()), err=True)


@main.command()
@PROJECT_ARGUMENT
@click.option("--dry-run", is_flag=True, help="Only print what would be removed and freed.")
@reports_errors
def gc(project: Path, dry_run: bool) -> None:
    """Remove results and cached runs that no current node references."""
    from expops_smk.results.housekeeping import collect_garbage

    report = collect_garbage(project, dry_run)
    verb = "would remove" if dry_run else "removed"
    for folder in report.stale_folders:
        click.echo(f"{verb} {os.path.relpath(folder, Path.cwd())}/ (no longer a node of the project)")
    for path in report.kept_files:
        click.echo(f"kept {os.path.relpath(path, Path.cwd())} (not written by expops-smk)")
    for path in report.environments:
        click.echo(f"{verb} {os.path.relpath(path, Path.cwd())} (an environment no process uses)")
    if dry_run:  # every path, so a user can check each one before deleting for real
        for path in report.store_files:
            click.echo(f"{verb} {os.path.relpath(path, Path.cwd())} (no current node references it)")
    click.echo(f"{verb} {len(report.stale_folders)} result folders and {len(report.store_files)} store files, "
               f"{'freeing' if dry_run else 'freed'} {report.freed_bytes / 1e6:.1f} MB")


@main.command()
@PROJECT_ARGUMENT
@reports_errors
def envs(project: Path) -> None:
    """List PROJECT's environments: kind, state (created/failed/missing), size, folder, processes."""
    from expops_smk.results.environments import environment_rows

    rows = environment_rows(project)
    for row in rows:
        click.echo(row.line())
    if not rows:
        click.echo("no environments: every job runs with the Python that runs Snakemake")


@main.command()
@PROJECT_ARGUMENT
@click.option("--dry-run", is_flag=True, help="Only print what would be removed.")
@reports_errors
def clean(project: Path, dry_run: bool) -> None:
    """Remove every file expops-smk recorded writing: results, artifacts, logs, the .expops store."""
    from expops_smk.results.clean import clean as clean_project

    report = clean_project(project, dry_run)
    verb = "would remove" if dry_run else "removed"
    for path in report.skipped_links:
        click.echo(f"skipped {os.path.relpath(path, Path.cwd())} (a symlink or inside one: not followed)")
    environments = f" and {len(report.environments)} environments" if report.environments else ""
    click.echo(f"{verb} {len(report.removed)} files{environments}, {'freeing' if dry_run else 'freed'} "
               f"{report.freed_bytes / 1e6:.1f} MB; workflow/ is kept (expops-smk generate rewrites it)")


@main.command()
@PROJECT_ARGUMENT
@reports_errors
def verify(project: Path) -> None:
    """Re-hash every artifact under results/ and report those that no longer match (exit 1)."""
    from expops_smk.results.housekeeping import verify as verify_project

    problems = verify_project(project)
    for line in problems:
        click.echo(line)
    if problems:
        click.echo(f"{len(problems)} problem(s) found", err=True)
        sys.exit(1)
    click.echo("all artifacts match their recorded hashes")



# -- metrics and report (issue 6) ------------------------------------------------------------
@main.command()
@PROJECT_ARGUMENT
@click.option("--format", "output_format", type=click.Choice(["text", "csv", "parquet"]), default="text",
              show_default=True, help="Parquet needs --output.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE instead of stdout.")
@click.option("--summary", is_flag=True, help="Per process x metric: n, mean, std, min, max, 95% CI of final values.")
@click.option("--by-partition", is_flag=True, help="With --summary: over seeds within each partition.")
@reports_errors
def metrics(project: Path, output_format: str, output: Path | None, summary: bool, by_partition: bool) -> None:
    """Print the metrics logged under PROJECT/results as a tidy table, or their --summary.

    Only nodes of the current plan count: results of removed seeds or partitions are left out
    (expops-smk gc deletes them)."""
    from expops_smk.results import metrics as metrics_module

    if by_partition and not summary:
        raise click.UsageError("--by-partition applies to --summary")
    table = metrics_module.collect(project, metrics_module.current_node_ids(project))
    if summary:
        table = metrics_module.summary(table, by_partition=by_partition)
    text = metrics_module.write(table, output_format, output)
    if text is not None:
        click.echo(text, nl=False)


@main.command()
@PROJECT_ARGUMENT
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Default: PROJECT/report.html.")
@reports_errors
def report(project: Path, output: Path | None) -> None:
    """Write a self-contained HTML report of PROJECT's last run: summary, plots, DAG, nodes."""
    from expops_smk.results.report import REPORT_FILE, write_report

    target = output or project / REPORT_FILE
    for warning in write_report(project, target).warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"written: {target}")

if __name__ == "__main__":
    main()
