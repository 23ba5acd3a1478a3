"""Issue 16: the CLI and Python API accept what users type and help when they mistype.

Partitions and seeds are accepted in every spelling the tool prints (``3``, ``p3``, ``3-2``,
``p3-p2``; ``41``, ``41-7``), ``show`` takes PROJECT positionally like every other command,
``gc --dry-run`` lists each path, and the documented API names are visible to ``dir``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import expops_smk
from e2e import CALLS_HELPER, Project
from expops_smk.config.project import load_project
from expops_smk.errors import ConfigError, ExpopsError
from expops_smk.results.load import partition_tuple, seed_tuple
from projects import write_project

CONFIG = """\
scripts: {main: src/main.py}
experiment:
  pipeline:
    process_adjlist: |
      load split
      split seeds
      seeds train
    processes:
      - name: load
      - {name: split, data_parallelism: {size: 2}}
      - {name: seeds, seed_parallelism: {seeds: [41, 42]}}
      - name: train
"""

MAIN = CALLS_HELPER + '''
from expops_smk import log_metric


def load():
    called("load")
    return {"data": [1, 2, 3, 4]}


def train(data, random_seed):
    called(f"train {data[0]} {random_seed}")
    log_metric("score", data[0] + random_seed)
    return {"score": data[0] + random_seed}
'''


@given(st.lists(st.integers(min_value=1, max_value=999), min_size=1, max_size=4), st.booleans())
def test_partition_text_in_every_spelling(parts: list[int], prefixed: bool) -> None:
    text = "-".join(f"p{p}" if prefixed else str(p) for p in parts)
    assert partition_tuple(text) == tuple(parts)


@given(st.lists(st.integers(min_value=-10**6, max_value=10**6), min_size=1, max_size=4))
def test_seed_text_nested(seeds: list[int]) -> None:
    assert seed_tuple("-".join(str(s) for s in seeds)) == tuple(seeds)


@pytest.mark.parametrize("bad", ["3-x", "p", "q3", "3--2"])
def test_bad_partition_text_is_one_line_error(bad: str) -> None:
    with pytest.raises(ExpopsError, match="forms: 3, p3, 3-2, p3-p2"):
        partition_tuple(bad)


def test_dir_lists_the_documented_api() -> None:
    names = dir(expops_smk)
    assert {"load", "load_all", "metrics", "process", "log_metric", "__version__"} <= set(names)
    assert callable(expops_smk.load_all) and callable(expops_smk.metrics)


def test_typos_get_did_you_mean(tmp_path: Path) -> None:
    root = write_project(tmp_path / "a", CONFIG.replace("seeds train", "seeds trian"), MAIN,
                         script_path="src/main.py")
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        load_project(root)
    root = write_project(tmp_path / "b", CONFIG.replace("- name: load", "- {name: load, code: lod}"), MAIN,
                         script_path="src/main.py")
    with pytest.raises(ConfigError, match="did you mean 'load'"):
        load_project(root)


def test_split_ignoring_a_function_named_like_it_warns(tmp_path: Path) -> None:
    root = write_project(tmp_path, CONFIG, MAIN + "\n\ndef split(data):\n    return {}\n", script_path="src/main.py")
    warnings = load_project(root).warnings
    assert [w.split(": ", 1)[1] for w in warnings if "built-in split" in w] == [
        f"process 'split' has no code: it is a built-in split; function 'split' in {tmp_path.name}/src/main.py "
        "is ignored (set code: split to use it)"], warnings
    clean = write_project(tmp_path / "clean", CONFIG, MAIN, script_path="src/main.py")
    assert not any("built-in split" in w for w in load_project(clean).warnings)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "expops_smk.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.e2e
def test_locations_show_load_all_metrics_and_gc_listing(tmp_path: Path) -> None:
    root = write_project(tmp_path / "my project", CONFIG, MAIN, script_path="src/main.py")
    project = Project(root)
    project.run()
    assert sorted(project.calls()) == ["load", "train 1 41", "train 1 42", "train 3 41", "train 3 42"]

    for partition in (2, "2", "p2", (2,)):
        assert expops_smk.load(root, "train", partition=partition, seed="42") == {"score": 45}
    with pytest.raises(ExpopsError, match="'train P3-P2 S41' is not a node"):
        expops_smk.load(root, "train", partition="3-2", seed=41)
    with pytest.raises(ExpopsError, match="did you mean 'train'"):
        expops_smk.load(root, "trian")

    everything = expops_smk.load_all(root, "train")
    assert everything == {((p,), (s,)): {"score": first + s} for p, first in ((1, 1), (2, 3)) for s in (41, 42)}
    table = expops_smk.metrics(root)
    assert sorted(table.loc[table["metric"] == "score", "value"]) == [42, 43, 44, 45]

    # show: PROJECT positional (like every other command) and --project both work, from anywhere.
    positional = cli("show", str(root), "train", "--partition", "p2", "--seed", "41", cwd=tmp_path)
    assert positional.returncode == 0 and "44" in positional.stdout, positional.stderr
    option = cli("show", "train", "--project", str(root), "--partition", "2", "--seed", "41", cwd=tmp_path)
    assert option.stdout == positional.stdout
    both = cli("show", str(root), "train", "--project", str(root), cwd=tmp_path)
    assert both.returncode == 2 and "give PROJECT once" in both.stderr

    # gc --dry-run names every store file it would remove, and removes nothing.
    (root / "configs" / "project_config.yaml").write_text(CONFIG.replace("[41, 42]", "[41]"), encoding="utf-8")
    before = sorted(p for p in root.rglob("*") if p.is_file())
    dry = cli("gc", ".", "--dry-run", cwd=root)
    assert dry.returncode == 0, dry.stderr
    listed = [line for line in dry.stdout.splitlines() if line.startswith("would remove .expops")]
    assert listed and all((root / line.split()[2]).is_file() for line in listed)
    assert sorted(p for p in root.rglob("*") if p.is_file()) == before

    # gc for real deletes only what the stale nodes' executions wrote: a user's file and a symlink
    # in a stale folder stay (and are named), and the symlink's target is never touched.
    stale = sorted(folder for folder in (root / "results").rglob("s42") if (folder / "_outputs.json").is_file())
    assert stale
    (stale[0] / "notes.txt").write_text("mine\n", encoding="utf-8")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n", encoding="utf-8")
    (stale[0] / "link.txt").symlink_to(outside)
    done = cli("gc", ".", cwd=root)
    assert done.returncode == 0, done.stderr
    rel = stale[0].relative_to(root).as_posix()
    assert f"kept {rel}/notes.txt (not written by expops-smk)" in done.stdout.splitlines()
    assert f"kept {rel}/link.txt (not written by expops-smk)" in done.stdout.splitlines()
    assert sorted(path.name for path in stale[0].iterdir()) == ["link.txt", "notes.txt"]
    assert outside.read_text(encoding="utf-8") == "keep\n"
    assert all(not folder.exists() for folder in stale[1:])


def test_profile_executor_without_its_plugin_says_how_to_install(tmp_path: Path) -> None:
    root = write_project(tmp_path, CONFIG, MAIN, script_path="src/main.py",
                         files={"profiles/farm/config.yaml": "executor: nosuchfarm\njobs: 2\n"})
    done = cli("run", "--profile", "farm", "-n", cwd=root)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].endswith(
        "executor 'nosuchfarm' needs snakemake-executor-plugin-nosuchfarm: "
        "pip install snakemake-executor-plugin-nosuchfarm (in the environment that runs snakemake)")
    assert "Traceback" not in done.stderr


def test_syntax_error_names_the_script_and_every_process_using_it(tmp_path: Path) -> None:
    root = write_project(tmp_path, CONFIG, MAIN + "\n\ndef broken(:\n    pass\n", script_path="src/main.py")
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    message = str(caught.value)
    assert "src/main.py" in message and "syntax error" in message and "\n" not in message
    assert message.endswith("(used by processes: load, train)"), message
