"""The landing zone: durable appends, one file per writer, and readers that only take complete lines."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

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
