"""The landing zone: durable appends (the record and the directory entries leading to it), one file per
writer, torn last lines cut, and readers that only take complete lines.

What these tests cannot prove: that the data really reaches the platter on a power loss. They observe the
``os.fsync`` calls (on which descriptor, file or directory, and when); whether the disk honours them is the
kernel's and the hardware's part, which only a real power cut (or a block device that drops unflushed
writes) would show."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingestion import landing
from ingestion.landing import LandingZone, landing_files, read_complete_lines


def test_append_writes_complete_lines_per_writer(tmp_path: Path) -> None:
    LandingZone(tmp_path, "collector").append("forms", {"id": "a"})
    LandingZone(tmp_path, "import-1").append_many("forms", [{"id": "b"}, {"id": "c"}])
    files = landing_files(tmp_path, "forms")
    assert [f.name.split(".", 1)[1] for f in files] == ["collector.jsonl", "import-1.jsonl"]
    ids = [json.loads(line)["id"] for f in files for line in f.read_text().splitlines()]
    assert ids == ["a", "b", "c"]


def test_unknown_stream_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown landing stream"):
        LandingZone(tmp_path, "w").append("hubspot", {"id": "x"})


def test_reader_leaves_a_partial_last_line_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"id":1}\n{"id":2}\n{"id":')
    lines, offset = read_complete_lines(path, 0)
    assert [json.loads(text)["id"] for _, text in lines] == [1, 2]
    assert offset == len(b'{"id":1}\n{"id":2}\n')
    with open(path, "ab") as handle:
        handle.write(b'3}\n')
    lines, offset = read_complete_lines(path, offset)
    assert [json.loads(text)["id"] for _, text in lines] == [3]
    assert offset == path.stat().st_size


def test_a_failed_write_leaves_no_half_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zone = LandingZone(tmp_path, "collector")
    zone.append("forms", {"id": "kept"})
    real_write = os.write

    def write_half_then_fail(fd: int, data: bytes) -> int:
        real_write(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", write_half_then_fail)
    with pytest.raises(OSError):
        zone.append("forms", {"id": "lost-but-reported"})
    monkeypatch.undo()
    zone.append("forms", {"id": "next"})
    (path,) = landing_files(tmp_path, "forms")
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["kept", "next"]


@pytest.fixture()
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Path]]:
    """Every os.fsync call as ("dir" | "file", the path its descriptor points at), observed via /proc."""
    real_fsync = os.fsync
    calls: list[tuple[str, Path]] = []

    def observing_fsync(fd: int) -> None:
        real_fsync(fd)
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        calls.append((kind, Path(os.readlink(f"/proc/self/fd/{fd}"))))

    monkeypatch.setattr(os, "fsync", observing_fsync)
    return calls


def test_a_new_file_and_new_directories_are_fsynced_in_their_parents(tmp_path: Path,
                                                                      fsynced: list[tuple[str, Path]]) -> None:
    root = tmp_path / "home" / "landing"
    LandingZone(root, "collector").append("forms", {"id": "a"})
    (path,) = landing_files(root, "forms")
    assert ("file", path) in fsynced
    directories = {p for kind, p in fsynced if kind == "dir"}
    # The file's entry, the new stream directory's entry, and those of the new landing and home directories.
    assert directories == {root / "forms", root, tmp_path / "home", tmp_path}
    # Every directory fsync of this first append comes before append returns, i.e. before any acknowledgment.
    assert fsynced[-1][0] == "dir"


def test_the_first_append_of_a_process_makes_an_existing_files_entry_durable(
        tmp_path: Path, fsynced: list[tuple[str, Path]]) -> None:
    LandingZone(tmp_path, "collector").append("forms", {"id": "from-a-crashed-process"})
    fsynced.clear()
    restarted = LandingZone(tmp_path, "collector")
    restarted.append("forms", {"id": "first"})
    assert {p for kind, p in fsynced if kind == "dir"} == {tmp_path / "forms", tmp_path}
    fsynced.clear()
    restarted.append("forms", {"id": "second"})
    assert [kind for kind, _ in fsynced] == ["file"]  # one fsync per record from then on


def test_a_torn_last_line_from_a_crash_is_cut_before_the_next_append(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    zone = LandingZone(tmp_path, "collector")
    zone.append("forms", {"id": "kept"})
    (path,) = landing_files(tmp_path, "forms")
    with open(path, "ab") as handle:  # what a power loss in the middle of an append leaves
        handle.write(b'{"id":"never-acknowledged","fie')
    with caplog.at_level(logging.WARNING, logger="ingestion.landing"):
        LandingZone(tmp_path, "collector").append("forms", {"id": "next"})
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["kept", "next"]
    assert "torn last line of 31 bytes" in caplog.text


def test_a_torn_file_without_any_complete_line_is_emptied(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path, "collector")
    path = zone.path_for("forms", datetime.now(UTC).strftime("%Y-%m-%d"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"id":"torn' * 10_000)
    zone.append("forms", {"id": "next"})
    assert path.read_text() == '{"id":"next"}\n'


def _received(seconds_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("block", [7, 64 * 1024])
def test_records_since_reads_newest_first_and_stops_at_an_older_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    monkeypatch.setattr(landing, "_BLOCK", block)  # tiny blocks: lines that straddle every block boundary
    zone = LandingZone(tmp_path, "collector")
    zone.append_many("stripe", [{"id": f"old{i}", "received_at": _received(3600)} for i in range(3)])
    zone.append("stripe", {"id": "recent-but-before-old", "received_at": _received(30)})
    zone.append("stripe", {"id": "too-old", "received_at": _received(1200)})
    zone.append_many("stripe", [{"id": f"new{i}", "received_at": _received(60 - i), "pad": "x" * (i * 50)}
                                for i in range(4)])
    (path,) = landing_files(tmp_path, "stripe")
    with open(path, "ab") as handle:
        handle.write(b"not json\n\n" + b'{"id":"torn","received_at":"')
    since = datetime.now(UTC) - timedelta(seconds=600)
    assert [r["id"] for r in zone.records_since("stripe", since)] == ["new3", "new2", "new1", "new0"]
    assert list(LandingZone(tmp_path, "someone-else").records_since("stripe", since)) == []


def test_records_since_reads_yesterdays_file_when_the_window_reaches_it(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path, "collector")
    now = datetime.now(UTC)
    yesterday = zone.path_for("calendly", (now - timedelta(days=1)).strftime("%Y-%m-%d"))
    yesterday.parent.mkdir(parents=True)
    yesterday.write_text(json.dumps({"id": "late-yesterday", "received_at": _received(86_400 - 60)}) + "\n")
    zone.append("calendly", {"id": "today", "received_at": _received(1)})
    since_two_days = now - timedelta(days=2)
    assert [r["id"] for r in zone.records_since("calendly", since_two_days)] == ["today", "late-yesterday"]
    assert [r["id"] for r in zone.records_since("calendly", now - timedelta(seconds=60))] == ["today"]


WRITER_SCRIPT = """
import sys
from pathlib import Path
from ingestion.landing import LandingZone
zone = LandingZone(Path(sys.argv[1]), "collector")
for i in range(int(sys.argv[3])):
    zone.append("forms", {"id": f"{sys.argv[2]}{i}", "pad": "x" * 50_000})
"""


def test_two_processes_appending_to_one_file_lose_nothing(tmp_path: Path) -> None:
    """Two collectors on one landing zone share its files: an append of one (many pages long, so briefly
    half-visible) must never be taken for a torn line by the other."""
    writers = [subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(tmp_path), tag, "300"])
               for tag in ("a", "b")]
    assert [writer.wait(timeout=240) for writer in writers] == [0, 0]
    (path,) = landing_files(tmp_path, "forms")
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert sorted(ids) == sorted(f"{tag}{i}" for tag in "ab" for i in range(300))
