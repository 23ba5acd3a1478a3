"""``expops-smk envs``: the project's environments, their state on disk and size, and those no
current environment references any more (left by edited requirements; ``expops-smk gc`` removes them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from expops_smk.config.project import load_project
from expops_smk.layout import ENVS_DIR
from expops_smk.store.environments import environment_states


@dataclass(frozen=True)
class EnvironmentRow:
    name: str  # "" for an unreferenced environment folder
    kind: str
    state: str  # created | failed | missing | "-" (conda: deployed by Snakemake, not here)
    size: int
    folder: str
    processes: tuple[str, ...]  # and charts

    def line(self) -> str:
        name = self.name or "(unreferenced)"
        used = ", ".join(self.processes) or "no process"
        return f"{name:<24} {self.kind:<6} {self.state:<8} {self.size / 1e6:8.1f} MB  {self.folder}  ({used})"


def environment_rows(project_dir: str | Path) -> list[EnvironmentRow]:
    root = Path(project_dir).resolve()
    project = load_project(root)
    users = {name: tuple(p for p, spec in [*project.processes.items(), *project.charts.items()]
                         if spec.environment == name) for name in project.environments}
    rows = []
    venvs = {env.digest: env for env in project.environments.values() if env.kind == "venv"}
    for env in project.environments.values():
        if env.kind == "conda":
            rows.append(EnvironmentRow(env.name, "conda", "-", 0, f"workflow/envs/{env.name}.yaml", users[env.name]))
    for state in environment_states(root, list(venvs)):
        env = venvs.get(state.digest)
        rows.append(EnvironmentRow(env.name if env else "", "venv", state.state, state.size,
                                   f"{ENVS_DIR}/{state.digest}", users[env.name] if env else ()))
    return rows


def referenced_digests(project_dir: str | Path) -> set[str]:
    """The venv environments the current project's processes and charts use (what ``gc`` keeps)."""
    project = load_project(Path(project_dir).resolve())
    used = {spec.environment for spec in [*project.processes.values(), *project.charts.values()]}
    return {env.digest for env in project.environments.values() if env.kind == "venv" and env.name in used}
