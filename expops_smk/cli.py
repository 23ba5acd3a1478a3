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
    from expops_smk.config import load_project
    from expops_smk.graph import build_graph

    project = load_project(project_dir)
    for warning in project.warnings:
        click.echo(f"warning: {warning}", err=True)
    return project, build_graph(project)


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
    from expops_smk.render import FORMATS

    _, expanded = _load(project)
    click.echo(FORMATS[output_format](expanded))


@main.command()
@PROJECT_ARGUMENT
@reports_errors
def generate(project: Path) -> None:
    """Write PROJECT's Snakemake workflow (workflow/Snakefile, rules, plan); unchanged files are kept."""
    from expops_smk.workflow import generate_project

    _load(project)  # validates and prints warnings before anything is written
    for item in generate_project(project.resolve()):
        state = "written" if item.changed else "unchanged"
        click.echo(f"{state}: {os.path.relpath(item.path, Path.cwd())}")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@PROJECT_ARGUMENT
@click.option("--cores", default="all", show_default=True, help="Passed to snakemake --cores.")
@click.option("--profile", default=None, help="Workflow profile under PROJECT/profiles/ (e.g. slurm).")
@click.argument("snakemake_args", nargs=-1, type=click.UNPROCESSED)
@reports_errors
def run(project: Path, cores: str, profile: str | None, snakemake_args: tuple[str, ...]) -> None:
    """Generate, then run snakemake in PROJECT; extra arguments go to snakemake (e.g. -n)."""
    from expops_smk.workflow import generate_project

    _load(project)
    generate_project(project.resolve())
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    command = [snakemake, "--cores", cores]
    if profile:
        command += ["--workflow-profile", str(Path("profiles") / profile)]
    command += list(snakemake_args)
    click.echo("$ " + " ".join(command), err=True)
    os.chdir(project)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
