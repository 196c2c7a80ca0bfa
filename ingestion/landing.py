"""The landing zone: append-only JSON-lines files that the collector and the backfill write and dlt reads.

Layout: ``<landing>/<stream>/<YYYY-MM-DD>.<writer>.jsonl`` with ``stream`` one of ``forms``,
``calendly``, ``stripe``. Each writer (the collector, one import run) has files of its own, so two
processes never append to the same file. A record is one line; a reader only consumes complete lines
(up to the last newline), so a line being written while dlt reads is picked up on the next run.

Record envelopes:
- forms: ``{"id", "form_id", "submitted_at", "received_at", "origin": "collector"|"import", "fields": {...}}``
- calendly / stripe webhooks: ``{"id", "received_at", "event": <the verified webhook body>}``
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

STREAMS = ("forms", "calendly", "stripe")


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class LandingZone:
    """Durable appends: a record is written, flushed and fsynced before ``append`` returns."""

    def __init__(self, root: Path, writer: str) -> None:
        self.root = Path(root)
        self.writer = writer
        self._lock = threading.Lock()

    def path_for(self, stream: str, day: str) -> Path:
        if stream not in STREAMS:
            raise ValueError(f"unknown landing stream {stream!r}; expected one of {STREAMS}")
        return self.root / stream / f"{day}.{self.writer}.jsonl"

    def append(self, stream: str, record: dict) -> None:
        self.append_many(stream, [record])

    def append_many(self, stream: str, records: Iterable[dict]) -> int:
        """Append records as one durable write; returns how many were written."""
        lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False, default=str) + "\n" for r in records]
        if not lines:
            return 0
        path = self.path_for(stream, datetime.now(UTC).strftime("%Y-%m-%d"))
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            size_before = os.fstat(fd).st_size
            try:
                payload = "".join(lines).encode("utf-8")
                written = 0
                while written < len(payload):
                    written += os.write(fd, payload[written:])
                os.fsync(fd)
            except BaseException:
                # A half-written line would fuse with the next append; cut the file back to its last record.
                os.ftruncate(fd, size_before)
                raise
            finally:
                os.close(fd)
        return len(lines)


def landing_files(root: Path, stream: str) -> list[Path]:
    """Every landing file of a stream, oldest day first."""
    directory = Path(root) / stream
    return sorted(directory.glob("*.jsonl")) if directory.is_dir() else []


def read_complete_lines(path: Path, offset: int) -> tuple[Iterator[tuple[int, str]], int]:
    """Lines of ``path`` from byte ``offset`` up to its last newline, with the offset to resume from.

    Yields ``(line_number_in_chunk, text)``; a partially written last line is left for the next read.
    """
    with open(path, "rb") as handle:
        handle.seek(offset)
        chunk = handle.read()
    end = chunk.rfind(b"\n") + 1
    complete = chunk[:end]
    lines = ((i, line.decode("utf-8", errors="replace")) for i, line in enumerate(complete.splitlines()) if line)
    return lines, offset + end
