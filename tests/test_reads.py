"""The run-time read recorder (runtime/reads.py), the read records (store/read_records.py) and the
reads tokens that prepare() hands the rules (codegen/read_tokens.py)."""

from __future__ import annotations

import io
import json
import os
import sysconfig
import time
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from expops_smk.codegen import read_tokens
from expops_smk.store.read_markers import marker_path, marker_token
from expops_smk.runtime.reads import Recorder, recorder_for, recording
from expops_smk.store import pending_reads, read_records
from expops_smk.store.pending_reads import Pending, seal
from expops_smk.store.read_records import (INITIAL_TOKEN, absolute, changed_reads, job_record_path, next_token,
                                           write_job_record)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    for folder in ("data", "results/work", ".expops/objects", "logs"):
        (project / folder).mkdir(parents=True)
    (project / "data" / "a.csv").write_text("x\n1\n", encoding="utf-8")
    (project / "results" / "work" / "out.pkl").write_bytes(b"artifact")
    (project / ".expops" / "objects" / "obj").write_bytes(b"object")
    return project


def sealed(root: Path, recorder: Recorder) -> list[str]:
    """The absolute paths of what the recorder's call read, as the seal keeps them."""
    return [absolute(root, path) for path in seal(root, recorder.pending())]


def record(root: Path, action, own_inputs=()) -> list[str]:
    recorder = recorder_for(root, own_inputs)
    with recording(recorder):
        action()
    return sealed(root, recorder)


def later_call(root: Path, *paths: Path | str, started_ns: int | None = None) -> Pending:
    """The pending reads of a call that read ``paths`` and started a second after now (their ctimes
    are well before its start), unless ``started_ns`` says otherwise."""
    started = time.time_ns() + 10 ** 9 if started_ns is None else started_ns
    absolute_paths = [os.path.abspath(path) for path in paths]
    folders = {}
    for path in absolute_paths:
        st = os.stat(os.path.dirname(path))
        folders[os.path.dirname(path)] = [st.st_dev, st.st_ino, st.st_mtime_ns]
    return Pending(str(root), absolute_paths, [], started, started + 1000, [], [], [], folders)


def reads_of(root: Path, *paths: Path | str) -> dict[str, list]:
    return seal(root, later_call(root, *paths))


def read(path) -> None:
    with open(path, "rb") as handle:
        handle.read()


def test_read_only_opens_are_recorded_with_absolute_paths(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)

    def action() -> None:
        read("data/a.csv")
        os.close(os.open("data/a.csv", os.O_RDONLY))
        Path("data/a.csv").read_text(encoding="utf-8")

    assert record(root, action) == [str(root / "data" / "a.csv")]


def test_relative_paths_resolve_against_the_cwd_of_the_open(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)

    def action() -> None:
        os.chdir(root / "data")
        read("a.csv")

    assert record(root, action) == [str(root / "data" / "a.csv")]


def test_files_opened_for_writing_are_not_recorded(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)

    def action() -> None:
        for mode in ("w", "a", "x", "r+"):
            path = root / f"out-{mode.replace('+', 'plus')}.txt"
            if mode == "r+":
                path.write_text("", encoding="utf-8")
            with open(path, mode, encoding="utf-8"):
                pass
        os.close(os.open("made.txt", os.O_WRONLY | os.O_CREAT))
        with open("data/a.csv", "a", encoding="utf-8"):  # read first, then appended: the node's own output
            pass
        read("data/a.csv")

    assert record(root, action) == []


def test_store_results_interpreter_and_system_files_are_left_out(root: Path) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"]) / "os.py"

    def action() -> None:
        read(root / "results" / "work" / "out.pkl")
        read(root / ".expops" / "objects" / "obj")
        read(stdlib)
        read("/proc/self/status")
        read(Path(io.__file__))
        os.close(os.open("/dev/null", os.O_RDONLY))

    assert record(root, action) == []


def test_own_inputs_bytecode_and_descriptors_are_left_out(root: Path) -> None:
    (root / "mod.pyc").write_bytes(b"")
    (root / "logs" / "job.log").write_text("", encoding="utf-8")

    def action() -> None:
        read(root / "data" / "a.csv")
        read(root / "mod.pyc")
        read(root / "logs" / "job.log")
        with open(os.open(root / "data" / "a.csv", os.O_RDONLY), "rb", closefd=True):
            pass

    assert record(root, action, own_inputs=[root / "data" / "a.csv", "logs/job.log"]) == []


def test_symlinks_count_by_the_path_opened_unless_they_lead_into_the_store(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "scratch" / "big.csv"
    outside.parent.mkdir()
    outside.write_text("1\n", encoding="utf-8")
    (root / "data" / "big.csv").symlink_to(outside)
    (root / "data" / "cached").symlink_to(root / ".expops" / "objects" / "obj")

    def action() -> None:
        read(root / "data" / "big.csv")
        read(root / "data" / "cached")

    assert record(root, action) == [str(root / "data" / "big.csv")]
    reads = reads_of(root, root / "data" / "big.csv")
    assert list(reads) == ["data/big.csv"]  # inside the project: relative, so a copied project keeps it
    outside.write_text("2\n", encoding="utf-8")
    assert changed_reads(root, reads) == ["data/big.csv"]  # the target's content counts


def test_nothing_is_recorded_outside_the_recording_block(root: Path) -> None:
    outer, inner = recorder_for(root), recorder_for(root)
    read(root / "data" / "a.csv")
    with recording(outer):
        with recording(inner):
            read(root / "data" / "a.csv")
        (root / "data" / "b.csv").write_text("b", encoding="utf-8")
        read(root / "data" / "b.csv")
    read(root / "data" / "b.csv")
    assert sealed(root, inner) == [str(root / "data" / "a.csv")]
    assert sealed(root, outer) == []  # b.csv was written in the block: the function's own output


def test_a_forked_child_records_with_the_hook_installed_before_the_fork(root: Path) -> None:
    """The warm server imports this module, then forks one child per job."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            files = record(root, lambda: read(root / "data" / "a.csv"))
            os.write(writer, json.dumps(files).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        child = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert child == [str(root / "data" / "a.csv")]


def test_directories_and_vanished_files_are_not_reads(root: Path) -> None:
    temporary = root / "tmp.txt"
    temporary.write_text("t", encoding="utf-8")

    def action() -> None:
        os.close(os.open(root / "data", os.O_RDONLY))
        read(temporary)
        temporary.unlink()

    recorder = recorder_for(root)
    with recording(recorder):
        action()
    assert sealed(root, recorder) == []


@given(st.sampled_from(["r", "rb", "rt", "br"]), st.sampled_from(["", "w", "a", "x", "+"]))
def test_a_mode_writes_when_it_has_w_a_x_or_plus(base: str, extra: str) -> None:
    recorder = Recorder("/project", (), frozenset())
    recorder.opened_other("/somewhere/f", base + extra, 0)
    pending = recorder.pending()
    assert (pending.paths == ["/somewhere/f"]) == (extra == "")
    assert (pending.written == ["/somewhere/f"]) == (extra != "")


def test_changed_reads_hash_only_files_whose_stat_moved(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = reads_of(root, root / "data" / "a.csv")
    hashed: list[Path] = []
    real = read_records.hash_path
    monkeypatch.setattr(read_records, "hash_path", lambda path, size: hashed.append(path) or real(path, size))
    assert changed_reads(root, reads) == [] and hashed == []
    os.utime(root / "data" / "a.csv", ns=(1, 1))  # same bytes, new mtime: hashed, unchanged
    assert changed_reads(root, reads) == [] and len(hashed) == 1
    (root / "data" / "a.csv").write_text("x\n2\n", encoding="utf-8")
    assert changed_reads(root, reads) == ["data/a.csv"]
    (root / "data" / "a.csv").unlink()
    assert changed_reads(root, reads) == ["data/a.csv"]


def test_a_job_record_is_kept_only_when_it_says_something(root: Path) -> None:
    write_job_record(root, "work/p1", INITIAL_TOKEN, {})
    assert not job_record_path(root, "work/p1").exists()
    write_job_record(root, "work/p1", "files-read:abc", {})  # a token that must survive
    assert json.loads(job_record_path(root, "work/p1").read_text(encoding="utf-8"))["token"] == "files-read:abc"
    write_job_record(root, "work/p1", INITIAL_TOKEN, {})
    assert not job_record_path(root, "work/p1").exists()


def test_next_token_never_repeats_an_earlier_one() -> None:
    first = next_token(INITIAL_TOKEN, {"data/a.csv": "1"})
    second = next_token(first, {"data/a.csv": "1"})
    assert len({INITIAL_TOKEN, first, second, next_token(second, {"data/a.csv": "2"})}) == 4


def test_tokens_follow_the_recorded_files_and_hash_each_file_once(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_tokens.refresh_tokens(root) == {}
    data = str(root / "data" / "a.csv")
    write_job_record(root, "work/p1", INITIAL_TOKEN, reads_of(root, data))
    write_job_record(root, "work/p2", "files-read:t2", reads_of(root, data))
    hashed: list[Path] = []
    real = read_records.hash_path
    monkeypatch.setattr(read_records, "hash_path", lambda path, size: hashed.append(path) or real(path, size))
    assert read_tokens.refresh_tokens(root) == {"work/p1": INITIAL_TOKEN, "work/p2": "files-read:t2"}
    marker = read_tokens.reads_marker("work")
    assert marker(type("W", (), {"partition": "p2"})()) == [marker_path("work/p2")]
    assert marker(type("W", (), {"partition": "p1"})()) == []  # still the initial token: no extra input
    assert marker(type("W", (), {"partition": "p9"})()) == []
    assert read_tokens.reads_marker("train") == []  # no job of it moved: a plain empty input, no function
    assert marker_token(root, "work/p2") == "files-read:t2" and marker_token(root, "work/p1") == INITIAL_TOKEN
    (root / "data" / "a.csv").write_text("x\n" + "9" * 1000 + "\n", encoding="utf-8")
    changed = read_tokens.refresh_tokens(root)
    assert INITIAL_TOKEN != changed["work/p1"] != changed["work/p2"] != "files-read:t2"
    assert {key: marker_token(root, key) for key in changed} == changed
    written = {key: os.stat(root / marker_path(key)).st_mtime_ns for key in changed}
    assert read_tokens.refresh_tokens(root) == changed  # stable while nothing moves
    assert {key: os.stat(root / marker_path(key)).st_mtime_ns for key in changed} == written  # not rewritten
    assert hashed == [str(root / "data" / "a.csv")]  # read by two jobs, hashed once, not again


def test_a_marker_goes_when_its_job_has_no_moved_token(root: Path) -> None:
    write_job_record(root, "work/p2", "files-read:t2", {})
    read_tokens.refresh_tokens(root)
    assert (root / marker_path("work/p2")).is_file()
    job_record_path(root, "work/p2").unlink()  # e.g. removed by hand: the job runs with the initial token
    read_tokens.refresh_tokens(root)
    assert not (root / marker_path("work/p2")).exists() and marker_token(root, "work/p2") == INITIAL_TOKEN



def test_a_seal_hashes_only_files_that_moved_since_they_were_known(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (root / "data" / "b.csv").write_text("b\n", encoding="utf-8")
    previous = reads_of(root, root / "data" / "a.csv", root / "data" / "b.csv")
    hashed: list[str] = []
    real = pending_reads.hash_path
    monkeypatch.setattr(pending_reads, "hash_path", lambda path, size: hashed.append(path) or real(path, size))
    (root / "data" / "b.csv").write_text("b2\n", encoding="utf-8")
    again = seal(root, later_call(root, root / "data" / "a.csv", root / "data" / "b.csv"), previous)
    assert hashed == [str(root / "data" / "b.csv")]
    assert again["data/a.csv"] == previous["data/a.csv"] and again["data/b.csv"][2] != previous["data/b.csv"][2]


def test_a_marker_deleted_or_edited_by_hand_is_written_again(root: Path) -> None:
    write_job_record(root, "work/p2", "files-read:t2", {})
    read_tokens.refresh_tokens(root)
    marker = root / marker_path("work/p2")
    marker.unlink()
    read_tokens.refresh_tokens(root)
    assert marker_token(root, "work/p2") == "files-read:t2"
    marker.write_text("files-read:other", encoding="utf-8")
    read_tokens.refresh_tokens(root)
    assert marker_token(root, "work/p2") == "files-read:t2"
