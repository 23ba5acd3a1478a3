"""What the generated Snakefile calls while Snakemake parses it.

``prepare`` keeps the generated rules in step with the project without the user having to run
``expops-smk generate`` after every edit: if the config, a script or expops-smk itself changed
since the last generation, it regenerates (rewriting only files whose content changes). The
project modules the scripts import count as sources, and the metadata folders of the libraries
they import are fingerprinted too, so an upgrade refreshes the versions in the rules. It also
turns the raw data file into a small content digest file that rules depend on, because Snakemake
compares files over 1 MB by modification time only. Both checks are a handful of ``stat`` calls when
nothing changed: every cluster job re-parses the Snakefile. Last, it checks the files that user
functions read at run time and gives each job whose files changed its ``reads`` marker (``read_tokens``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from expops_smk import __version__
from expops_smk.codegen.read_tokens import chart_reads_marker, reads_marker, refresh_tokens, seal_reads

from expops_smk.codegen.checkpoint_markers import forget_markers
from expops_smk.layout import (COMPUTE_CONFIG_FILE, DATA_DIGEST, FORCED_VARIABLE, JOB_CLIENT, PLAN_FILE,
                               PYTHON_LAUNCHER, RESULTS_DIR, STAMP_FILE, WORKFLOW_DIR)

if TYPE_CHECKING:
    from expops_smk.codegen.files import GeneratedFile


def prepare(workflow_dir: str | Path, config: Mapping[str, Any] | None = None) -> None:
    """Regenerate when sources changed, refresh the raw data digest and take up Snakemake's
    ``config`` as parameter overrides (see ``overriding``); exit 2 on a bad project."""
    from expops_smk.codegen.overriding import activate_overrides
    from expops_smk.errors import ExpopsError

    root = Path(workflow_dir).resolve().parent
    try:
        stamp = _read_stamp(root)
        if (stamp.get("version") != __version__ or "processes" not in stamp
                or _fingerprints(root, stamp.get("sources", {})) != stamp.get("sources")
                or _fingerprints(root, stamp.get("libraries", {})) != stamp.get("libraries")):
            generate_project(root)
            stamp = _read_stamp(root)
        _refresh_data_digest(root, stamp)
        refresh_tokens(root)
        _check_results_folders(root, stamp.get("processes", []))
        forget_markers(root)
        activate_overrides(root, config or {})
        write_python_launcher(root)
    except ExpopsError as exc:
        print(f"expops-smk: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


__all__ = ["chart_reads_marker", "export_forced", "outer", "prepare", "reads_marker", "seal_reads"]


def export_forced(workflow: Any) -> None:
    """Tell this invocation's jobs what Snakemake forces, so forced jobs execute instead of restoring.

    Snakemake never tells a job it was forced, and ``workflow.dag_settings`` is only set after the
    Snakefile is parsed, so the Snakefile calls this from ``onstart`` (main process, real runs only;
    spawned cluster jobs get ``--no-hooks`` and inherit the variable through ``--export=ALL``).
    Mirrors Snakemake's own split of ``--forcerun`` items into rules and files, and ``--force``
    (forcetargets) forcing the targets, or the default target when none is given.
    """
    settings = workflow.dag_settings
    items = set(settings.forcerun or ())
    if settings.forcetargets:
        items |= set(settings.targets or ()) or ({workflow.default_target} if workflow.default_target else set())
    rules = sorted(item for item in items if workflow.is_rule(item))
    files = sorted(os.path.relpath(item) for item in items if not workflow.is_rule(item))
    os.environ[FORCED_VARIABLE] = json.dumps({"all": bool(settings.forceall), "rules": rules, "files": files})


def create_environments(workflow_dir: str | Path) -> None:
    """Create the virtualenvs the rules' commands run, before any job starts (``onstart``).

    ``onstart`` runs once, in the main Snakemake process and only when jobs will run (not for
    ``-n``): locally that is before the first job; on a cluster it is the submitting host, which
    has the network access pip needs and shares the project folder with the compute nodes, so no
    job ever installs anything, and a failing requirement stops the run before anything is queued.
    """
    from expops_smk.errors import ExpopsError
    from expops_smk.store.environments import ensure_venv

    root = Path(workflow_dir).resolve().parent
    plan = json.loads((root / PLAN_FILE).read_text(encoding="utf-8"))
    used = {item.get("environment") for item in [*plan["processes"], *plan["charts"]]}
    for env in plan.get("environments", []):
        if env["kind"] != "venv" or env["name"] not in used:
            continue
        try:
            if ensure_venv(root, env["name"], env["digest"], [root / rel for rel in env["files"]]):
                print(f"expops-smk: created environment '{env['name']}' in .expops/envs/{env['digest']}",
                      file=sys.stderr)
        except ExpopsError as exc:
            print(f"expops-smk: {exc}", file=sys.stderr)
            raise SystemExit(1) from None


def write_python_launcher(root: Path) -> None:
    """``.expops/bin/python``: the interpreter of jobs without an environment of their own.

    A rule calling it by this relative path prints (``snakemake -p``) a command that runs as is from
    the project folder and reads the same at every parse, unlike the absolute path of an
    interpreter (which may hold spaces, and differs on a cluster node). Inside a run the Snakefile
    exports ``EXPOPS_PYTHON``, the interpreter of the Snakemake process the job belongs to;
    outside one, the interpreter of the last parse is used. Under ``--software-deployment-method
    conda`` Snakemake activates the rule's environment (in ``.snakemake/conda/``): its Python then.
    Rewritten only when its content changes (a few bytes read per parse), atomically and already
    executable: cluster jobs re-parse while others run it. The job client the rules run with it
    (``.expops/bin/job.py``) is written beside it the same way.
    """
    from expops_smk.store.files import confined_in_project

    python = sys.executable.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    script = ("#!/bin/sh\n"
              "# The Python of this project's jobs (written by expops-smk at each parse of the Snakefile).\n"
              'case "${CONDA_PREFIX:-}" in\n'
              '    */.snakemake/conda/*) exec "$CONDA_PREFIX/bin/python" "$@" ;;\n'
              "esac\n"
              f'exec "${{EXPOPS_PYTHON:-{python}}}" "$@"\n')
    path = confined_in_project(root / PYTHON_LAUNCHER, root)
    write_job_client(root)
    try:
        if path.read_text(encoding="utf-8") == script and os.access(path, os.X_OK):
            return
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o777)  # the umask applies
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(script)
    os.replace(tmp, path)


JOB_SCRIPT = '''"""Every job of this project starts here (written by expops-smk at each parse of the Snakefile).

`python -S .expops/bin/job.py runtime|charts ARGS`: hands the job to the project's warm server, else
runs it cold (`python -m expops_smk.runtime.launch`); warm_client.py beside it is a copy of
expops_smk/runtime/warm_client.py.
"""
import sys

sys.path.insert(0, __file__.rpartition("/")[0] or ".")
from warm_client import main  # noqa: E402

sys.exit(main())
'''
CLIENT_SOURCE = Path(__file__).resolve().parents[1] / "runtime" / "warm_client.py"
"""Read as a file, not imported: codegen does not depend on the runtime, it ships its client."""


def write_job_client(root: Path) -> None:
    """``.expops/bin/job.py`` and the copy of ``warm_client`` it imports (so its bytecode is cached,
    unlike a script's): the job's start costs no import of expops-smk, and the copy is the
    installed expops-smk's, refreshed at each parse."""
    import importlib.util
    import py_compile

    from expops_smk.store.files import confined_in_project, write_if_changed

    script = confined_in_project(root / JOB_CLIENT, root)
    write_if_changed(script, JOB_SCRIPT.encode())
    client = confined_in_project(script.with_name("warm_client.py"), root)
    bytecode = confined_in_project(Path(importlib.util.cache_from_source(str(client))), root)
    if write_if_changed(client, CLIENT_SOURCE.read_bytes()) or not bytecode.exists():
        # Compiled here, not left to the first job: with PYTHONDONTWRITEBYTECODE set (as in some
        # environments) every job would compile it again (5 ms). Checked by hash, not by mtime.
        py_compile.compile(str(client), cfile=str(bytecode), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)


def outer(value: str, count: int) -> str:
    """The first ``count`` components of a {partition} or {seed} wildcard value (input functions)."""
    from expops_smk.graph.nodes import Node, parse_partition, parse_seed

    if value.startswith("p"):
        return Node("", parse_partition(value)[:count]).partition_value
    return Node("", (), parse_seed(value)[:count]).seed_value


def generate_project(root: Path) -> list[GeneratedFile]:
    """Validate, expand and write the workflow of the project in ``root``; record what it read."""
    from expops_smk.codegen.user_files import USER_PROFILES, user_rule_files
    from expops_smk.codegen.generate import generate
    from expops_smk.config.libraries import metadata_folders
    from expops_smk.config.project import load_project
    from expops_smk.graph.expansion import build_graph
    from expops_smk.graph.probes import resolve_charts

    project = load_project(root)
    graph = build_graph(project)
    written = generate(project, graph, resolve_charts(graph))
    sources = [project.config_file, root / COMPUTE_CONFIG_FILE, *project.all_scripts()]
    rel = {path.relative_to(root).as_posix() for path in sources}
    specs = [*project.processes.values(), *project.charts.values()]
    rel.update(module for spec in specs for module in spec.modules)
    rel.update(USER_PROFILES.values())  # the user's profile keys are merged into the generated profiles
    # The user's rule files and their folder (a file added or removed): the profiles look for temp( there.
    rel.update([f"{WORKFLOW_DIR}/rules", *(f"{WORKFLOW_DIR}/{name}" for name in user_rule_files(root / WORKFLOW_DIR))])
    rel.update(path.relative_to(root).as_posix() for env in project.environments.values() for path in env.files)
    distributions = {dist for spec in specs for dist in spec.libraries}
    stamp = {
        "version": __version__,
        "sources": _fingerprints(root, dict.fromkeys(sorted(rel))),
        # Absolute *.dist-info folders: an upgrade replaces them, so the rules' versions refresh.
        "libraries": _fingerprints(root, dict.fromkeys(metadata_folders(distributions))),
        "data_path": None if project.data_path is None else project.data_path.relative_to(root).as_posix(),
        "data": _read_stamp(root).get("data"),  # the raw data digest survives regeneration
        "processes": list(project.processes),
    }
    _write_stamp(root, stamp)
    write_python_launcher(root)
    return written


def _read_stamp(root: Path) -> dict:
    try:
        return json.loads((root / STAMP_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def _write_stamp(root: Path, stamp: dict) -> None:
    from expops_smk.codegen.files import write_if_changed
    from expops_smk.store.files import confined_in_project

    write_if_changed(confined_in_project(root / STAMP_FILE, root), json.dumps(stamp, indent=1, sort_keys=True) + "\n")


def _fingerprints(root: Path, sources: dict) -> dict:
    """(mtime_ns, size) of each source, or None when it does not exist."""
    result = {}
    for rel in sources:
        try:
            st = os.stat(root / rel)
            result[rel] = [st.st_mtime_ns, st.st_size]
        except FileNotFoundError:
            result[rel] = None
    return result


def _check_results_folders(root: Path, processes: list[str]) -> None:
    """One line instead of Snakemake's traceback when a process's results folder is unusable.

    Snakemake lists results/<process>/ while building the DAG and deletes and creates outputs
    before each job: a file in the folder's place, or a read-only folder, makes it crash with a
    Python traceback. One stat per process, so jobs re-parsing the Snakefile pay next to nothing.
    """
    from expops_smk.errors import ExpopsError

    for name in processes:
        folder = root / RESULTS_DIR / name
        if not os.path.lexists(folder):
            continue
        if not folder.is_dir():
            raise ExpopsError(f"results/{name} is not a folder; expops-smk keeps the results of process "
                              f"'{name}' there: move it away")
        if not os.access(folder, os.W_OK):
            raise ExpopsError(f"results/{name} is not writable (read-only file system or permissions)")


def _refresh_data_digest(root: Path, stamp: dict) -> None:
    """Write the raw data file's content digest to the file the source rules depend on.

    The file is rewritten only when the digest changes, so touching or copying the data keeps
    Snakemake quiet, while new content re-runs exactly the rules that read it. Hashing happens
    only when the data file's (mtime, size) changed since the last digest.
    """
    from expops_smk.codegen.files import write_if_changed
    from expops_smk.store.files import confined_in_project

    rel = stamp.get("data_path")
    if rel is None:
        return
    fingerprint = _fingerprints(root, {rel: None})[rel]
    digest_file = root / DATA_DIGEST
    recorded = stamp.get("data") or {}
    if fingerprint is not None and recorded.get("fingerprint") == fingerprint and digest_file.exists():
        return
    if fingerprint is None:
        return  # Snakemake reports the missing input itself, naming the file.
    from expops_smk.store.hashing import hash_file

    digest = hash_file(root / rel)
    write_if_changed(confined_in_project(digest_file, root), digest + "\n")
    stamp["data"] = {"fingerprint": fingerprint, "digest": digest}
    _write_stamp(root, stamp)
