"""Tests for expops_smk.codehash: function lookup without import, and selective code hashes."""

from __future__ import annotations

import os
import textwrap
import threading
from pathlib import Path

import pytest

from expops_smk.config.codehash import FunctionInfo, ScriptError, find_function, module_functions
from expops_smk.errors import ExpopsError


def write(path: Path, source: str) -> Path:
    """Write ``source`` and give the file a fresh mtime, so the cache cannot mask the edit."""
    previous = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(textwrap.dedent(source))
    stamp = max(path.stat().st_mtime_ns, previous + 1_000_000)
    os.utime(path, ns=(stamp, stamp))
    return path


def hashes(path: Path, source: str) -> dict[str, str]:
    write(path, source)
    return {name: info.code_hash for name, info in module_functions(path).items()}


def code_hash(path: Path, source: str, name: str) -> str:
    return hashes(path, source)[name]


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return tmp_path / "model.py"


# --- signatures ---------------------------------------------------------------------------------


def test_signature_required_defaults_keyword_only_and_var_kwargs(script: Path) -> None:
    write(
        script,
        """
        import torch  # never imported by the analysis

        def train(data, lr=0.1, *args, epochs, seed=0, **kwargs):
            return {}

        async def fetch(url, *, timeout=5):
            return {}

        def split(a, b, /, c, d=1):
            return {}
        """,
    )
    train = find_function(script, "train")
    assert train is not None
    assert train == FunctionInfo(
        name="train",
        script=script.resolve(),
        lineno=4,
        params=("data", "lr", "epochs", "seed"),
        required=("data", "epochs"),
        has_var_kwargs=True,
        code_hash=train.code_hash,
    )
    fetch = find_function(script, "fetch")
    assert fetch is not None
    assert (fetch.params, fetch.required, fetch.has_var_kwargs) == (("url", "timeout"), ("url",), False)
    split = find_function(script, "split")
    assert split is not None
    # Defaults align with the tail of all positional parameters, positional-only ones included.
    assert (split.params, split.required, split.positional_only) == (("c", "d"), ("c",), ("a", "b"))


def test_lineno_is_the_def_line_of_a_decorated_function(script: Path) -> None:
    write(
        script,
        """
        from expops_smk import process

        @process()
        def train(data):
            return {}
        """,
    )
    info = find_function(script, "train")
    assert info is not None and info.lineno == 5


def test_missing_function_is_none_and_nested_or_method_names_are_not_top_level(script: Path) -> None:
    write(
        script,
        """
        def outer():
            def inner():
                return 1
            return inner()

        class Model:
            def fit(self):
                return 2
        """,
    )
    assert find_function(script, "nope") is None
    assert find_function(script, "inner") is None
    assert find_function(script, "fit") is None
    assert find_function(script, "Model") is None
    assert set(module_functions(script)) == {"outer"}


def test_conditional_top_level_definition_is_found(script: Path) -> None:
    write(
        script,
        """
        try:
            from fastlib import featurize
        except ImportError:
            def featurize(data, *, scale=1.0):
                return {}
        """,
    )
    info = find_function(script, "featurize")
    assert info is not None and info.required == ("data",) and info.lineno == 5


# --- hash stability -----------------------------------------------------------------------------


BASE = """
import numpy as np

THRESHOLD = 0.5

def helper(x):
    return x * 2

def train(data, lr=0.1):
    total = helper(data)
    return {"model": total > THRESHOLD}
"""


def test_comments_whitespace_and_docstrings_keep_the_hash(script: Path) -> None:
    before = code_hash(script, BASE, "train")
    reformatted = '''
    """Module docstring that is new."""
    import numpy   as np  # comment

    THRESHOLD = (
        0.5
    )


    def helper( x ):
        """Doubles."""
        # explain
        return x*2

    def train(data,
              lr = 0.1):
        """Train a model.

        Long documentation.
        """
        total = helper( data )   # trailing comment

        return {"model": total>THRESHOLD}
    '''
    assert code_hash(script, reformatted, "train") == before


def test_body_edit_and_local_rename_change_the_hash(script: Path) -> None:
    before = code_hash(script, BASE, "train")
    assert code_hash(script, BASE.replace("total > THRESHOLD", "total >= THRESHOLD"), "train") != before
    assert code_hash(script, BASE.replace("total", "value"), "train") != before
    assert code_hash(script, BASE.replace("lr=0.1", "lr=0.2"), "train") != before


def test_moving_definitions_around_keeps_the_hash(script: Path) -> None:
    before = code_hash(script, BASE, "train")
    moved = """
    def train(data, lr=0.1):
        total = helper(data)
        return {"model": total > THRESHOLD}

    def helper(x):
        return x * 2

    THRESHOLD = 0.5
    import numpy as np
    """
    assert code_hash(script, moved, "train") == before


def test_decorator_is_part_of_the_hash(script: Path) -> None:
    source = """
    from expops_smk import process

    @process()
    def train(data):
        return {}
    """
    before = code_hash(script, source, "train")
    assert code_hash(script, source.replace("@process()", "@process(name='t')"), "train") != before


# --- selective invalidation ---------------------------------------------------------------------


TWO_PROCESSES = """
def clean(x):
    return x.strip()

def shared(x):
    return x

def a(data):
    return {"out": clean(shared(data))}

def b(data):
    return {"out": shared(data)}
"""


def test_helper_edit_changes_only_the_processes_using_it(script: Path) -> None:
    before = hashes(script, TWO_PROCESSES)
    after = hashes(script, TWO_PROCESSES.replace("x.strip()", "x.lower()"))
    assert after["a"] != before["a"]
    assert after["b"] == before["b"]
    assert after["clean"] != before["clean"]
    assert after["shared"] == before["shared"]


def test_transitive_helper_edit_changes_the_caller(script: Path) -> None:
    source = """
    def h2(x):
        return x + 1

    def h1(x):
        return h2(x) * 3

    def a(data):
        return {"out": h1(data)}

    def unrelated(data):
        return {"out": data}
    """
    before = hashes(script, source)
    after = hashes(script, source.replace("x + 1", "x + 2"))
    assert after["a"] != before["a"]
    assert after["h1"] != before["h1"]
    assert after["unrelated"] == before["unrelated"]


def test_unreferenced_helper_edit_keeps_the_hash(script: Path) -> None:
    source = """
    def unused(x):
        return x

    def a(data):
        return {"out": data}
    """
    before = code_hash(script, source, "a")
    assert code_hash(script, source.replace("return x", "return -x"), "a") == before


def test_referenced_constant_edit_changes_the_hash(script: Path) -> None:
    source = """
    FEATURES = ["age", "income"]
    OTHER = 3

    def a(data):
        return {"x": data[FEATURES]}
    """
    before = code_hash(script, source, "a")
    assert code_hash(script, source.replace('"income"', '"height"'), "a") != before
    assert code_hash(script, source.replace("OTHER = 3", "OTHER = 4"), "a") == before


def test_module_level_mutation_of_a_constant_changes_the_hash(script: Path) -> None:
    source = """
    FEATURES = ["age"]
    FEATURES.append("income")
    CONFIG = {}
    CONFIG["lr"] = 0.1

    def a(data):
        return {"x": data[FEATURES], "lr": CONFIG["lr"]}
    """
    before = code_hash(script, source, "a")
    assert code_hash(script, source.replace('append("income")', 'append("height")'), "a") != before
    assert code_hash(script, source.replace('CONFIG["lr"] = 0.1', 'CONFIG["lr"] = 0.2'), "a") != before


def test_callback_passed_but_not_called_is_covered(script: Path) -> None:
    source = """
    def score(y):
        return y.mean()

    def a(data):
        return {"out": data.apply(score)}
    """
    before = code_hash(script, source, "a")
    assert code_hash(script, source.replace("y.mean()", "y.median()"), "a") != before


def test_step_function_and_class_edits_change_the_hash(script: Path) -> None:
    source = """
    from expops_smk import step

    class Scaler:
        def fit(self, x):
            return x / 10

    @step()
    def prepare(data):
        return Scaler().fit(data)

    def a(data):
        return {"out": prepare(data)}
    """
    before = code_hash(script, source, "a")
    assert code_hash(script, source.replace("x / 10", "x / 100"), "a") != before
    assert code_hash(script, source.replace("@step()", "@step(cache=False)"), "a") != before


def test_import_binding_a_referenced_name_is_covered_alias_by_alias(script: Path) -> None:
    source = """
    import numpy as np
    from expops_smk import step

    def a(data):
        return {"out": np.mean(data)}
    """
    before = code_hash(script, source, "a")
    assert code_hash(script, source.replace("import numpy as np", "import cupy as np"), "a") != before
    # Adding an unrelated name to another import does not touch a function that never uses it.
    assert code_hash(script, source.replace("import step", "import step, log_metric"), "a") == before
    assert code_hash(script, source.replace("import numpy as np", "import numpy as np, json"), "a") == before


def test_guarded_import_is_covered(script: Path) -> None:
    source = """
    try:
        import torch
    except ImportError:
        torch = None

    def a(data):
        return {"gpu": torch is not None}
    """
    before = code_hash(script, source, "a")
    assert code_hash(script, source.replace("torch = None", "torch = False"), "a") != before


def test_star_import_is_covered_when_a_name_is_unresolved(script: Path) -> None:
    source = """
    from helpers import *

    def a(data):
        return {"out": featurize(data)}
    """
    before = code_hash(script, source, "a")
    assert code_hash(script, source.replace("from helpers", "from other_helpers"), "a") != before


def test_global_written_by_another_function_is_covered(script: Path) -> None:
    source = """
    CACHE = None

    def setup():
        global CACHE
        CACHE = {"k": 1}

    def a(data):
        return {"out": CACHE}
    """
    before = code_hash(script, source, "a")
    assert code_hash(script, source.replace('{"k": 1}', '{"k": 2}'), "a") != before


def test_local_shadowing_over_approximates(script: Path) -> None:
    # Documented over-approximation: a parameter named like a module function counts as a use.
    source = """
    def data(x):
        return x

    def a(data):
        return {"out": data}
    """
    before = code_hash(script, source, "a")
    assert code_hash(script, source.replace("return x", "return -x"), "a") != before


def test_mutual_and_self_recursion_terminate_and_cover_both(script: Path) -> None:
    source = """
    def even(n):
        return True if n == 0 else odd(n - 1)

    def odd(n):
        return False if n == 0 else even(n - 1)

    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)

    def a(data):
        return {"out": even(data) and fact(3)}
    """
    # Run in a daemon thread so that a cycle the analysis fails to break fails the test, not CI.
    results: list[dict[str, str]] = []
    worker = threading.Thread(target=lambda: results.append(hashes(script, source)), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert results, "hashing mutually recursive functions did not terminate"
    before = results[0]
    after = hashes(script, source.replace("False if n == 0", "True if n == 0"))
    assert after["even"] != before["even"]
    assert after["a"] != before["a"]
    assert after["fact"] == before["fact"]


def test_hash_format_is_xxh3_128_hex(script: Path) -> None:
    value = code_hash(script, BASE, "train")
    assert len(value) == 32 and int(value, 16) >= 0


# --- errors -------------------------------------------------------------------------------------


def test_syntax_error_names_file_and_line(script: Path) -> None:
    write(script, "def ok():\n    return 1\n\ndef broken(:\n    pass\n")
    with pytest.raises(ScriptError) as caught:
        find_function(script, "ok")
    message = str(caught.value)
    assert isinstance(caught.value, ExpopsError)
    assert f"{script}:4:" in message
    assert "model.py" in message and "syntax" in message
    assert "\n" not in message


def test_unreadable_script_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.py"
    with pytest.raises(ScriptError, match="absent.py"):
        module_functions(missing)


def test_undecodable_script_is_a_script_error(script: Path) -> None:
    script.write_bytes(b"def a():\n    return '\xff'\n")
    with pytest.raises(ScriptError, match=r"model\.py:2:"):
        module_functions(script)


# --- cache --------------------------------------------------------------------------------------


def test_repeated_lookups_reuse_the_parsed_module(script: Path) -> None:
    write(script, BASE)
    first = find_function(script, "train")
    assert first is not None
    assert find_function(script, "train") is first
    assert module_functions(script)["helper"] is find_function(script, "helper")
    # Callers may mutate the returned dict without corrupting the cache.
    module_functions(script).clear()
    assert find_function(script, "helper") is not None


def test_cache_sees_a_rewrite_with_the_same_size_but_new_mtime(script: Path) -> None:
    write(script, "def a(x):\n    return 1\n")
    before = find_function(script, "a")
    write(script, "def b(y):\n    return 1\n")  # same size, mtime bumped by write()
    assert find_function(script, "a") is None
    after = find_function(script, "b")
    assert after is not None and after.params == ("y",)
    assert before is not None and after.code_hash != before.code_hash


def test_cache_sees_a_rewrite_with_the_same_mtime_but_new_size(script: Path) -> None:
    write(script, "def a(x):\n    return 1\n")
    stamp = script.stat().st_mtime_ns
    assert find_function(script, "a") is not None
    script.write_text("def a(x, y=2):\n    return 1\n")
    os.utime(script, ns=(stamp, stamp))
    info = find_function(script, "a")
    assert info is not None and info.params == ("x", "y")


def test_same_file_through_another_path_gives_the_resolved_script(script: Path) -> None:
    write(script, BASE)
    alias = script.parent / "sub" / ".." / "model.py"
    (script.parent / "sub").mkdir()
    info = find_function(alias, "train")
    assert info is not None and info.script == script.resolve()
