"""Virtual environments of ExpOps ``environment: {NAME: {venv: [requirements.txt]}}`` entries.

An environment is created once and cached under ``.expops/envs/<digest>/``, where the digest covers
its requirement files' content, the interpreter that creates it and the expops-smk version: editing
a requirements file makes a new environment, and the old one stays until ``expops-smk gc``.

The environment gets its requirements and, through one ``.pth`` file, the site folders of the
interpreter that runs Snakemake, where expops-smk and its dependencies (pandas,
pyarrow) are installed. Reinstalling those into every environment would take a network and a
minute per environment; seen through the ``.pth`` they cost nothing, they are the very versions
that wrote the project's other artifacts, and the environment's own packages still come first on
``sys.path`` (a pinned pandas there wins). A package installed only in one environment is
importable only in its jobs.

Creation is safe: it happens under an exclusive lock (``<digest>.lock``), so of two processes
needing the same new environment one creates it and the other waits and then uses it; it is built
in a temporary folder renamed into place when complete, so a half-created environment is never
seen; a failing requirement raises one line naming the environment and the file, with the
installer's output in ``<digest>.log``. Jobs run ``bin/python -m ...`` only: a renamed venv's
interpreter works, while console scripts in its ``bin/`` keep the temporary path in their shebang.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from expops_smk import __version__
from expops_smk.errors import ExpopsError
from expops_smk.layout import ENVS_DIR
from expops_smk.store.files import confined_in_project
from expops_smk.store.hashing import hash_bytes

RUNTIME_PTH = "_expops_smk_runtime.pth"
_INSTALL_TIMEOUT = 3600  # seconds; a requirement that builds from source can take long, not forever


@dataclass(frozen=True)
class EnvironmentState:
    digest: str
    state: str  # created | failed | missing
    size: int  # bytes on disk (0 unless created)


def environment_digest(kind: str, files: list[tuple[str, bytes]]) -> str:
    """The cache key of an environment: its kind, each file's name and content, the interpreter
    that creates it (path and version: the ``.pth`` points into its site folders) and expops-smk's
    version."""
    parts = [kind, sys.executable, sys.version, __version__]
    for name, content in files:
        parts.append(name)
        parts.append(hash_bytes(content))
    return hash_bytes("\0".join(parts).encode())[:16]


def envs_dir(root: Path) -> Path:
    return root / ENVS_DIR


def ensure_venv(root: Path, name: str, digest: str, requirements: list[Path]) -> bool:
    """Create the environment ``digest`` unless it exists; True when this call created it.

    ``.expops/envs`` must be where it claims (a symlink there out of the project would have the
    builds, and the deletion of half-built ones, happen elsewhere)."""
    folder = confined_in_project(envs_dir(root), root)
    final = folder / digest
    if (final / "bin" / "python").exists():
        return False
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{digest}.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if (final / "bin" / "python").exists():
            return False  # another process created it while this one waited
        building = folder / f".building-{digest}-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        log = folder / f"{digest}.log"
        failed = folder / f"{digest}.failed"
        try:
            _build(root, name, building, requirements, log)
        except ExpopsError:
            shutil.rmtree(building, ignore_errors=True)
            failed.write_text(name + "\n", encoding="utf-8")
            raise
        os.rename(building, final)
        failed.unlink(missing_ok=True)
    return True


def _build(root: Path, name: str, target: Path, requirements: list[Path], log: Path) -> None:
    """A venv at ``target`` that sees the running interpreter's packages (the ``.pth``), with
    ``requirements`` installed one file after the other (so a failure names its file).

    The ``.pth`` comes first, so the installer counts what the running environment already has
    (numpy, pandas, ...) as satisfied, as for a ``--system-site-packages`` venv: only what is
    missing or pinned differently is installed, into the environment (never into the other one).
    """
    with open(log, "w", encoding="utf-8") as out:
        _run([*_venv_command(target)], root, out, name, None, log)
        python = target / "bin" / "python"
        purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                      check=True, capture_output=True, text=True).stdout.strip())
        purelib.mkdir(parents=True, exist_ok=True)
        (purelib / RUNTIME_PTH).write_text(runtime_pth(), encoding="utf-8")
        for requirement in requirements:
            _run([*_pip_command(python), "-r", str(requirement)], root, out, name, requirement, log)


def runtime_pth() -> str:
    """``.pth`` lines that make expops-smk and its dependencies importable after the environment's
    own packages: ``site.addsitedir`` also runs the ``.pth`` files there (editable installs)."""
    folders = [str(Path(__file__).resolve().parents[2])] if _is_source_checkout() else []
    folders += [p for p in dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib"),
                                          *site.getsitepackages()]) if os.path.isdir(p)]
    return "".join(f"import site; site.addsitedir({folder!r})\n" for folder in folders)


def _is_source_checkout() -> bool:
    """expops-smk imported from a source folder (editable install or PYTHONPATH), not site-packages."""
    package = Path(__file__).resolve().parents[1]
    return not any(Path(p).resolve() in package.parents for p in site.getsitepackages() if os.path.isdir(p))


def _uv() -> list[str] | None:
    """uv creates and fills an environment several times faster than venv + pip (resolution and
    installs in parallel, a shared cache): used when installed, as a program or a module."""
    found = shutil.which("uv")
    if found:
        return [found]
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    return None


def _venv_command(target: Path) -> list[str]:
    uv = _uv()
    if uv is not None:
        return [*uv, "venv", "--quiet", "--python", sys.executable, str(target)]
    # Without pip inside: the running interpreter's pip installs into it (pip --python), which
    # saves the seconds ensurepip takes; an interpreter without pip falls back to ensurepip.
    without_pip = ["--without-pip"] if importlib.util.find_spec("pip") is not None else []
    return [sys.executable, "-m", "venv", *without_pip, str(target)]


def _pip_command(python: Path) -> list[str]:
    uv = _uv()
    if uv is not None:
        return [*uv, "pip", "install", "--python", str(python)]
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip", "--python", str(python), "install", "--disable-pip-version-check"]
    return [str(python), "-m", "pip", "install", "--disable-pip-version-check"]


def _run(command: list[str], root: Path, out, name: str, requirement: Path | None, log: Path) -> None:
    out.write(f"$ {' '.join(command)}\n")
    out.flush()
    try:
        done = subprocess.run(command, cwd=root, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=_INSTALL_TIMEOUT, check=False)
        status = done.returncode
    except (OSError, subprocess.TimeoutExpired) as exc:
        out.write(f"{exc}\n")
        status = -1
    if status != 0:
        what = (f"installing {_shown(requirement, root)} failed" if requirement is not None
                else "creating the virtual environment failed")
        raise ExpopsError(f"environment '{name}': {what}; installer output in {_shown(log, root)}")


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def environment_states(root: Path, digests: list[str]) -> list[EnvironmentState]:
    """Each digest's state and size, plus every other environment folder on disk (unreferenced)."""
    folder = envs_dir(root)
    on_disk = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if folder.is_dir() else []
    result = []
    for digest in dict.fromkeys([*digests, *on_disk]):
        path = folder / digest
        if (path / "bin" / "python").exists():
            result.append(EnvironmentState(digest, "created", folder_size(path)))
        else:
            result.append(EnvironmentState(digest, "failed" if (folder / f"{digest}.failed").exists() else "missing", 0))
    return result


def folder_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for file in files:
            try:
                total += os.lstat(os.path.join(dirpath, file)).st_size
            except OSError:
                pass
    return total


def remove_environments(root: Path, keep: set[str], dry_run: bool) -> tuple[list[Path], int]:
    """Delete every environment folder (and its log, lock and markers) whose digest is not kept, and
    folders left half-built by a killed creator; return the environment folders and the bytes freed."""
    folder = envs_dir(root)
    if not folder.is_dir() or folder.is_symlink():
        return [], 0
    removed: list[Path] = []
    freed = 0
    for path in sorted(folder.iterdir()):
        digest = path.name.split(".")[0]
        if path.name.startswith(".building-"):  # left by a creator that was killed, unless still running
            if _creator_alive(path):
                continue
        elif path.name.startswith(".") or digest in keep or path.is_symlink():
            continue
        if path.is_dir() and not path.name.startswith("."):
            removed.append(path)  # the environments; their logs, locks and markers go with them
        freed += folder_size(path) if path.is_dir() else path.stat().st_size
        if not dry_run:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return removed, freed


def _creator_alive(building: Path) -> bool:
    """Whether the process that names ``.building-<digest>-<pid>`` still runs (on this host)."""
    try:
        os.kill(int(building.name.rsplit("-", 1)[1]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
