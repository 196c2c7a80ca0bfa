"""The landing zone: append-only JSON-lines files that the collector and the backfill write and dlt reads.

Layout: ``<landing>/<stream>/<YYYY-MM-DD>.<writer>.jsonl`` with ``stream`` one of ``forms``,
``calendly``, ``stripe``, ``brevo``. Each writer (the collector, one import run) has files of its own, so two
processes never append to the same file. A record is one line; a reader only consumes complete lines
(up to the last newline), so a line being written while dlt reads is picked up on the next run.

Record envelopes:
- forms: ``{"id", "form_id", "submitted_at", "received_at", "origin": "collector"|"import", "fields": {...}}``
- calendly / stripe webhooks: ``{"id", "received_at", "signed_at", "signature_sha256", "event": <the verified
  webhook body>}``; ``signed_at`` (the signature's unix timestamp) and ``signature_sha256`` (a digest of the
  signature, not the signature) let a restarted collector keep refusing replays.
- brevo marketing webhooks: ``{"id", "received_at", "event": <one event of the delivery>}``; Brevo signs
  nothing (the collector checks its bearer token), so there is no replay mark.

Durability: ``append`` returns only once the record and the directory entries leading to its file are on
disk, so a record that was acknowledged survives a power loss. A crash in the middle of an append can leave
a torn last line (never acknowledged, since the acknowledgment waits for the whole line); the next append
to that file cuts it off, so it cannot fuse with the next record.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

STREAMS = ("forms", "calendly", "stripe", "brevo")
_BLOCK = 64 * 1024

logger = logging.getLogger("ingestion.landing")


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class LandingZone:
    """Durable appends: a record is written, flushed and fsynced before ``append`` returns."""

    def __init__(self, root: Path, writer: str) -> None:
        self.root = Path(root)
        self.writer = writer
        self._lock = threading.Lock()
        # Files whose directory entries this process has made durable (a crashed predecessor may not have).
        self._durable_files: set[Path] = set()

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
        payload = "".join(lines).encode("utf-8")
        path = self.path_for(stream, datetime.now(UTC).strftime("%Y-%m-%d"))
        with self._lock:
            _make_directories(path.parent)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                # Another process appending to the same file (two collectors on one landing zone) waits, so a
                # write of its in progress is never taken for a torn line.
                fcntl.flock(fd, fcntl.LOCK_EX)
                size_before = _cut_torn_tail(fd, path)
                try:
                    written = 0
                    while written < len(payload):
                        written += os.write(fd, payload[written:])
                    os.fsync(fd)
                except BaseException:
                    # A half-written line would fuse with the next append: back to the last record.
                    os.ftruncate(fd, size_before)
                    raise
            finally:
                os.close(fd)
            if path not in self._durable_files:
                _fsync_directory(path.parent)
                _fsync_directory(self.root)
                self._durable_files.add(path)
        return len(lines)

    def records_since(self, stream: str, since: datetime) -> Iterator[dict]:
        """This writer's records of ``stream`` received at or after ``since``, newest first.

        Reads each day's file from its end and stops at the first record received before ``since``, so the
        cost is that of the recent records only. Appends follow the order of ``received_at`` to within the
        time an append waits for the lock; callers pass a ``since`` with a margin for that.
        """
        day = datetime.now(UTC).date()
        while day >= since.date():
            path = self.path_for(stream, day.isoformat())
            if path.exists():
                for line in _complete_lines_backwards(path):
                    try:
                        record = json.loads(line)
                        too_old = datetime.fromisoformat(record["received_at"]) < since
                    except (ValueError, KeyError, TypeError):
                        continue  # not a record of ours; dlt's reader flags it
                    if too_old:
                        return
                    yield record
            day -= timedelta(days=1)


def _fsync_directory(directory: Path) -> None:
    """Make the entries of ``directory`` (a new file, a new subdirectory) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_directories(directory: Path) -> None:
    """``mkdir -p`` whose new directories survive a power loss: each one's parent is fsynced."""
    missing: list[Path] = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        _fsync_directory(new.parent)


def _cut_torn_tail(fd: int, path: Path) -> int:
    """The file's size once a torn last line (from a crash mid-append) is cut back to the last newline."""
    size = os.fstat(fd).st_size
    keep = _end_of_complete_lines(fd, size)
    if keep < size:
        os.ftruncate(fd, keep)
        logger.warning("cut a torn last line of %d bytes from %s (a crash during an append; it was never "
                       "acknowledged)", size - keep, path)
    return keep


def _end_of_complete_lines(fd: int, size: int) -> int:
    """The offset just past the last newline of the file's first ``size`` bytes (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - _BLOCK)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def _complete_lines_backwards(path: Path) -> Iterator[bytes]:
    """The newline-terminated lines of ``path``, last first (a torn last line is skipped)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        end = _end_of_complete_lines(fd, os.fstat(fd).st_size)
        head = b""  # the end of a line whose start is in an earlier block
        while end > 0:
            start = max(0, end - _BLOCK)
            lines = (os.pread(fd, end - start, start) + head).split(b"\n")
            head = lines.pop(0) if start > 0 else b""
            end = start
            yield from (line for line in reversed(lines) if line.strip())
    finally:
        os.close(fd)


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
