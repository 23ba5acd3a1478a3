"""Pending reads and their seal (store/pending_reads.py): digests taken after the job, soundly.

A node records only the paths its function opened and when the call ran; the files are checked
later. Each test reads files in a recorded call and then changes something before or after the
seal, and checks that what the node read is trusted only when the file cannot have changed since.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from expops_smk.codegen import read_tokens
from expops_smk.runtime.reads import recorder_for, recording
from expops_smk.store.pending_reads import (CHANGED_SINCE, CHANGED_WHILE_RUNNING, COARSE_GRANULARITY_NS,
                                            FINE_GRANULARITY_NS, hash_path, margin_ns, seal)
from expops_smk.store.read_records import (INITIAL_TOKEN, changed_reads, job_record_path, read_run_reads,
                                           run_record_path, write_pending_reads)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project whose data files were written well before any call of a test (their ctimes are
    older than a call's start by more than the file system's granularity)."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "a.csv").write_text("a\n", encoding="utf-8")
    (project / "data" / "b.csv").write_text("b\n", encoding="utf-8")
    time.sleep(2 * FINE_GRANULARITY_NS / 1e9)
    return project


def read(path: Path) -> None:
    with open(path, "rb") as handle:
        handle.read()


def behind_the_nodes_back(action) -> None:
    """Do ``action`` as another process would: not recorded by the call around it."""
    with recording(recorder_for(Path("/nonexistent"))):
        action()


def call(root: Path, action):
    recorder = recorder_for(root)
    with recording(recorder):
        action()
    return recorder.pending()


def test_a_file_unchanged_since_before_the_call_is_sealed_with_its_digest(root: Path) -> None:
    pending = call(root, lambda: read(root / "data" / "a.csv"))
    reads = seal(root, pending)
    st = os.stat(root / "data" / "a.csv")
    assert reads == {"data/a.csv": [st.st_size, st.st_mtime_ns, hash_path(root / "data" / "a.csv", st.st_size)]}
    assert changed_reads(root, reads) == []
    (root / "data" / "a.csv").write_text("a2\n", encoding="utf-8")
    assert changed_reads(root, reads) == ["data/a.csv"]


def test_a_file_changed_while_the_call_ran_counts_as_changed_whatever_it_holds(root: Path) -> None:
    def action() -> None:
        read(root / "data" / "a.csv")
        behind_the_nodes_back(lambda: (root / "data" / "a.csv").write_text("a\n", encoding="utf-8"))  # same bytes

    reads = seal(root, call(root, action))
    assert reads["data/a.csv"][2] == CHANGED_WHILE_RUNNING
    assert changed_reads(root, reads) == ["data/a.csv"]  # what the node read is unknown: it re-executes


def test_a_file_changed_after_the_call_but_before_the_seal_counts_as_changed(root: Path) -> None:
    pending = call(root, lambda: read(root / "data" / "a.csv"))
    time.sleep(2 * FINE_GRANULARITY_NS / 1e9)
    (root / "data" / "a.csv").write_text("a\n", encoding="utf-8")  # same bytes: but what did the node read?
    reads = seal(root, pending)
    assert reads["data/a.csv"][2] == CHANGED_SINCE and changed_reads(root, reads) == ["data/a.csv"]


def test_a_folder_renamed_into_place_after_the_call_counts_as_changed(root: Path) -> None:
    (root / "data.new").mkdir()
    (root / "data.new" / "a.csv").write_text("other\n", encoding="utf-8")
    os.utime(root / "data.new" / "a.csv", ns=(1, 1))
    time.sleep(2 * FINE_GRANULARITY_NS / 1e9)  # the new file's ctime is older than the call
    pending = call(root, lambda: read(root / "data" / "a.csv"))
    (root / "data").rename(root / "data.old")
    (root / "data.new").rename(root / "data")
    assert seal(root, pending)["data/a.csv"][2] == CHANGED_SINCE


def test_removed_files_count_as_changed_unless_gone_when_the_call_returned(root: Path) -> None:
    (root / "data" / "tmp.csv").write_text("t\n", encoding="utf-8")

    def action() -> None:
        read(root / "data" / "a.csv")
        read(root / "data" / "b.csv")
        read(root / "data" / "tmp.csv")
        os.remove(root / "data" / "tmp.csv")  # the call's own temporary file
        with pytest.raises(FileNotFoundError):
            read(root / "data" / "probe.csv")  # an open that failed

    pending = call(root, action)
    assert seal(root, pending) == seal(root, pending) and set(seal(root, pending)) == {"data/a.csv", "data/b.csv"}
    (root / "data" / "b.csv").unlink()  # after the call: the node read it, now it is gone
    reads = seal(root, pending)
    assert reads["data/b.csv"][2] == CHANGED_SINCE and "data/tmp.csv" not in reads
    # Once the folder's listing changed, an open that failed cannot be told from a file removed
    # since: it counts as changed too (a re-run too many, never one too few).
    assert reads["data/probe.csv"][2] == CHANGED_SINCE


def test_a_job_whose_file_changed_while_it_ran_gets_a_new_token_and_sealed_records(root: Path) -> None:
    def action() -> None:
        read(root / "data" / "a.csv")
        read(root / "data" / "b.csv")
        behind_the_nodes_back(lambda: (root / "data" / "b.csv").write_text("b2\n", encoding="utf-8"))

    write_pending_reads(root, "work/p1", INITIAL_TOKEN, ["run-key"], call(root, action))
    tokens = read_tokens.refresh_tokens(root)
    assert tokens["work/p1"] != INITIAL_TOKEN  # Snakemake re-runs the job
    job = json.loads(job_record_path(root, "work/p1").read_text(encoding="utf-8"))
    assert job["token"] == INITIAL_TOKEN and job["reads"]["data/b.csv"][2] == CHANGED_WHILE_RUNNING  # sealed
    run = json.loads(run_record_path(root, "run-key").read_text(encoding="utf-8"))
    assert run["reads"] == job["reads"]  # and so is the run record: a restore re-executes too
    assert read_tokens.refresh_tokens(root) == tokens  # stable until the job runs again


def test_the_first_record_of_unchanged_files_keeps_the_token(root: Path) -> None:
    write_pending_reads(root, "work/p1", INITIAL_TOKEN, ["run-key"], call(root, lambda: read(root / "data" / "a.csv")))
    assert read_tokens.refresh_tokens(root) == {"work/p1": INITIAL_TOKEN}


def test_records_of_format_1_are_not_trusted(root: Path) -> None:
    path = job_record_path(root, "work/p1")
    path.parent.mkdir(parents=True)
    st = os.stat(root / "data" / "a.csv")
    reads = {"data/a.csv": [st.st_size, st.st_mtime_ns, hash_path(root / "data" / "a.csv", st.st_size)]}
    path.write_text(json.dumps({"token": "files-read:old", "reads": reads}), encoding="utf-8")
    assert read_tokens.refresh_tokens(root)["work/p1"] not in ("files-read:old", INITIAL_TOKEN)
    run_record_path(root, "old").parent.mkdir(parents=True)
    run_record_path(root, "old").write_text(json.dumps(reads), encoding="utf-8")
    run_record_path(root, "none").write_text("{}", encoding="utf-8")
    assert read_run_reads(root, "old") is None and read_run_reads(root, "none") == {}


def test_coarse_timestamps_widen_the_margin() -> None:
    assert margin_ns(1_700_000_000_123_456_789) == margin_ns(1_700_000_000_123_456_000) == FINE_GRANULARITY_NS
    assert margin_ns(1_700_000_000_000_000_000) == margin_ns(1_700_000_000_120_000_000) == COARSE_GRANULARITY_NS


def test_records_of_format_2_are_not_trusted_even_with_their_stat_cache(root: Path) -> None:
    """Format 2 wrote the pending reads twice, their paths inside the JSON; a parse by that version
    left its stat cache (format 2) beside them."""
    st = os.stat(root / "data" / "a.csv")
    pending = {"root": str(root), "paths": str(root / "data" / "a.csv"), "written": [], "started_ns": st.st_ctime_ns + 10**9,
               "ended_ns": st.st_ctime_ns + 2 * 10**9, "removed": [], "excluded_dirs": [], "excluded_files": [],
               "folders": {str(root / "data"): [0, 0, 0]}}
    job, run = job_record_path(root, "work/p1"), run_record_path(root, "run-key")
    for path, record in ((job, {"format": 2, "pending": pending, "runs": ["run-key"], "token": "files-read:old"}),
                         (run, {"format": 2, "pending": pending})):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    st_job = os.stat(job)
    sha = hash_path(root / "data" / "a.csv", st.st_size)
    (root / ".expops" / "reads_index.json").write_text(json.dumps({"format": 2, "records": {
        "work/p1": [st_job.st_size, st_job.st_mtime_ns, "files-read:old", {"data/a.csv": sha}]},
        "files": {"data/a.csv": [st.st_size, st.st_mtime_ns, sha]}}), encoding="utf-8")
    assert read_tokens.refresh_tokens(root)["work/p1"] not in ("files-read:old", INITIAL_TOKEN)  # re-run
    assert read_run_reads(root, "run-key") is None  # a restore re-executes


def test_a_job_writes_its_record_once_linked_as_its_run_records_and_the_seal_keeps_them_one(root: Path) -> None:
    write_pending_reads(root, "work/p1", INITIAL_TOKEN, ["key-1", "key-2"], call(root, lambda: read(root / "data" / "a.csv")))
    names = [job_record_path(root, "work/p1"), run_record_path(root, "key-1"), run_record_path(root, "key-2")]
    assert len({os.stat(path).st_ino for path in names}) == 1 and os.stat(names[0]).st_nlink == 3
    assert read_run_reads(root, "key-2") == read_run_reads(root, "key-1") != {}
    # Another run wrote key-2 since (its own reads): the seal leaves that record alone.
    write_pending_reads(root, "work/p2", INITIAL_TOKEN, ["key-2"], call(root, lambda: read(root / "data" / "b.csv")))
    read_tokens.refresh_tokens(root)
    sealed = [json.loads(path.read_text(encoding="utf-8")) for path in names]
    assert sealed[0] == sealed[1] and list(sealed[0]["reads"]) == ["data/a.csv"] and "pending" not in sealed[0]
    assert os.stat(names[0]).st_ino == os.stat(names[1]).st_ino  # sealed: written once, still one file
    assert list(sealed[2]["reads"]) == ["data/b.csv"]  # work/p2's record, sealed as its own


def test_a_recorded_path_with_any_byte_comes_back_as_it_was_opened(root: Path) -> None:
    odd = root / "data" / "odd\nname \udcff.csv"
    odd.write_bytes(b"odd\n")
    time.sleep(2 * FINE_GRANULARITY_NS / 1e9)
    write_pending_reads(root, "work/p1", INITIAL_TOKEN, ["run-key"], call(root, lambda: read(odd)))
    assert list(read_run_reads(root, "run-key")) == ["data/odd\nname \udcff.csv"]


def test_without_hard_links_each_name_is_written_and_the_seal_seals_every_copy(root: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*_: object, **__: object) -> None:
        raise OSError(1, "no hard links on this file system")

    monkeypatch.setattr(os, "link", no_links)
    write_pending_reads(root, "work/p1", INITIAL_TOKEN, ["key-1", "key-2"], call(root, lambda: read(root / "data" / "a.csv")))
    names = [job_record_path(root, "work/p1"), run_record_path(root, "key-1"), run_record_path(root, "key-2")]
    assert len({os.stat(path).st_ino for path in names}) == 3  # three copies
    # Another run wrote key-2 since (its own reads): the seal leaves that copy alone.
    write_pending_reads(root, "work/p2", INITIAL_TOKEN, ["key-2"], call(root, lambda: read(root / "data" / "b.csv")))
    read_tokens.refresh_tokens(root)
    headers = [json.loads(path.read_bytes().partition(b"\n")[0]) for path in names]
    assert "pending" not in headers[0] and headers[1] == headers[0]  # sealed too, not left to every restore
    assert list(headers[2]["reads"]) == ["data/b.csv"]  # work/p2's record, sealed as its own
