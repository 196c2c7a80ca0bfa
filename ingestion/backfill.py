"""``lifecycle import-forms FILE``: backfill form submissions from a previous system (SPEC §2).

Rows keep their original ``submitted_at`` (the point of a backfill) and get a deterministic id, so
importing the same file twice lands the same ids and dbt deduplicates them. Nothing is dropped silently:
a row is landed, landed and counted as flagged (invalid email: raw data is kept, dbt flags it), or
rejected with its line number and the reason.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ingestion.forms import FieldError, is_valid_email, parse_fields
from ingestion.landing import LandingZone, utc_now_iso

CHUNK_ROWS = 10_000
SUMMARY_MAX_REJECTS = 20


@dataclass
class ImportReport:
    path: Path
    landed: int = 0
    flagged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [(f"{self.path.name}: {self.landed} rows landed ({self.flagged} flagged: invalid email), "
                  f"{len(self.rejected)} rejected")]
        lines += [f"  line {line}: {reason}" for line, reason in self.rejected[:SUMMARY_MAX_REJECTS]]
        if len(self.rejected) > SUMMARY_MAX_REJECTS:
            lines.append(f"  ... and {len(self.rejected) - SUMMARY_MAX_REJECTS} more rejected rows")
        return "\n".join(lines)


class RowError(ValueError):
    """A row that cannot be landed; the message is the reason shown in the report."""


def import_forms(path: Path, landing: LandingZone, *, chunk_rows: int = CHUNK_ROWS) -> ImportReport:
    """Land every good row of a ``.csv`` (header row) or ``.jsonl`` file as a ``forms`` record."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path)
    elif suffix == ".jsonl":
        rows = _jsonl_rows(path)
    else:
        raise ValueError(f"unsupported file type {suffix!r}: expected .csv or .jsonl")
    report = ImportReport(path)
    received_at = utc_now_iso()
    chunk: list[dict] = []
    for line, row in rows:
        try:
            record, email_ok = _record(row, received_at)
        except RowError as exc:
            report.rejected.append((line, str(exc)))
            continue
        chunk.append(record)
        if not email_ok:
            report.flagged += 1
        if len(chunk) >= chunk_rows:
            report.landed += landing.append_many("forms", chunk)
            chunk = []
    report.landed += landing.append_many("forms", chunk)
    return report


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, object] | RowError]]:
    """Rows with the line their record starts on (a quoted cell may span lines; the header is line 1).

    Empty cells are values that were never given (a CSV cannot tell "" from absent).
    """
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            return
        start = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                line, start = start, reader.line_num + 1
                yield line, RowError(f"unreadable CSV row: {exc}")
                continue
            line, start = start, reader.line_num + 1
            if not cells:
                continue
            if len(cells) > len(header):
                yield line, RowError(f"{len(cells)} cells but the header has {len(header)} columns")
                continue
            yield line, {name: value for name, value in zip(header, cells) if value != ""}


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, object] | RowError]]:
    with open(path, encoding="utf-8-sig") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError:
                yield line, RowError("not valid JSON")
                continue
            yield line, row if isinstance(row, dict) else RowError("not a JSON object")


def _record(row: dict[str, object] | RowError, received_at: str) -> tuple[dict, bool]:
    """The landing record of one row and whether its email is valid; raises ``RowError`` to reject it
    (the readers hand over a ``RowError`` for a row they could not even parse)."""
    if isinstance(row, RowError):
        raise row
    data = dict(row)
    form_id = data.pop("form_id", None)
    if not isinstance(form_id, str) or not form_id.strip():
        raise RowError("missing form_id")
    submitted_at = _utc_timestamp(data.pop("submitted_at", None))
    try:
        fields = parse_fields(data)
    except FieldError as exc:
        raise RowError(exc.message) from None
    email = fields["email"]
    if email is None or not str(email).strip():
        raise RowError("missing email")
    identity = json.dumps([form_id, submitted_at, fields], sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, default=str)
    record = {
        "id": "imp_" + hashlib.sha256(identity.encode("utf-8")).hexdigest()[:24],
        "form_id": form_id,
        "submitted_at": submitted_at,
        "received_at": received_at,
        "origin": "import",
        "fields": fields,
    }
    return record, is_valid_email(str(email))


def _utc_timestamp(value: object) -> str:
    """ISO 8601 with an offset, normalized to UTC ``...Z`` in the collector's format.

    A timestamp without an offset is refused rather than guessed: a previous system's local time read as
    UTC would silently shift every sequence due date built on it.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowError("missing submitted_at")
    if not isinstance(value, str):
        raise RowError("submitted_at must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RowError(f"submitted_at is not ISO 8601: {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise RowError("submitted_at has no UTC offset (add 'Z' or '+hh:mm')")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
