"""``lifecycle import-forms FILE``: backfill form submissions from a previous system.

Rows keep their original ``submitted_at`` (the point of a backfill) and get an id derived from their
content, so importing the same file twice lands the same ids and the warehouse keeps one copy of each.
Nothing is dropped silently: a row is landed, landed and counted as flagged (invalid email: raw data is
kept, dbt flags it), or rejected with its line number and the reason. The good rows of a file with
rejected lines are landed: the usual next step is to fix those lines and import the file again, which
lands only the fixed rows anew.

The reading is strict about structure, because a CSV that is read leniently loses rows without a word: a
stray quote swallows every following line into one cell, a line with a cell too many or too few shifts
values into the wrong columns. A record that breaks the structure is rejected at the line it starts on,
and reading resumes on the next physical line, so the lines a stray quote swallowed are read again as
rows of their own.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import textwrap
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from ingestion.forms import MAX_EXTRA_FIELDS, STRING_FIELDS, FieldError, is_valid_email, parse_fields
from ingestion.landing import LandingZone, utc_now_iso

CHUNK_ROWS = 10_000
REQUIRED_COLUMNS = ("form_id", "email", "submitted_at")
# Bytes that are not UTF-8, as decoded with errors="surrogateescape" (byte 0xNN becomes U+DCNN).
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_JSON_TYPE_NAMES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
                    type(None): "null"}


def format_help() -> str:
    """The columns and formats ``import-forms`` reads, for ``--help``."""
    optional = ", ".join(name for name in STRING_FIELDS if name != "email")
    return f"""\
columns (the CSV header line, or the keys of each JSONL object):
  form_id       required: the form it came from (contact, newsletter, webinar, download, ...)
  email         required: an address that fails the syntax check is landed all the same and
                flagged downstream (marts.dq_flagged_records), never dropped
  submitted_at  required: ISO 8601 with a UTC offset, e.g. 2023-04-01T09:30:00Z or
                2023-04-01T11:30:00+02:00 (a time without an offset is rejected, not guessed)
{textwrap.indent(textwrap.fill(optional, 84), "  ")}
                optional text
  consent       optional: true/false, yes/no, on/off or 1/0
  any other column is kept with the submission as an extra field (at most {MAX_EXTRA_FIELDS} per row)

CSV: UTF-8 with or without a byte-order mark, one header line, cells separated by commas (or by
semicolons when the header line has semicolons and no comma). A cell holding the separator, a quote
or a line break is quoted ("..."), with a quote inside it doubled (""). An empty cell is a value not
given; lines with no value at all are skipped.
JSONL: one JSON object per line, UTF-8; text fields as strings, consent as a boolean or one of the
words above.

Every line that cannot be landed (a cell too many or too few, an unclosed quote, bytes that are not
UTF-8, invalid JSON, a missing form_id, email or submitted_at, a wrong type) is listed with its line
number and the reason; the other rows are landed. Fix those lines and import the file again: a row's
id is derived from its content, so the rows landed the first time are not duplicated.

exit status: 0 every row landed; 1 some lines, or the header, rejected; 2 the file cannot be read
(missing, a directory, unreadable) or is neither .csv nor .jsonl.
"""


class ImportFileError(ValueError):
    """The file cannot be read at all (missing, a directory, unreadable, an unsupported type)."""


class RowError(ValueError):
    """A row that cannot be landed; the message is the reason shown in the report."""


class _UnusableHeader(ValueError):
    """A CSV header that no row can be read with (no email column, a column named twice, ...)."""


@dataclass
class ImportReport:
    path: Path
    landed: int = 0
    flagged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    header_problem: str | None = None

    @property
    def complete(self) -> bool:
        """Every row of the file was landed (flagged rows included: they are kept)."""
        return self.header_problem is None and not self.rejected

    def summary(self) -> str:
        """Every rejected line, then the totals (last, so that they stay in view after a long list)."""
        if self.header_problem is not None:
            return f"{self.path.name} line 1 (header): {self.header_problem}; nothing imported"
        lines = [f"{self.path.name} line {line}: {reason}" for line, reason in self.rejected]
        lines.append(f"{self.path.name}: {self.landed} rows landed ({self.flagged} flagged: invalid email), "
                     f"{len(self.rejected)} rejected")
        return "\n".join(lines)


def import_forms(path: Path, landing: LandingZone, *, chunk_rows: int = CHUNK_ROWS) -> ImportReport:
    """Land every good row of a ``.csv`` (header row) or ``.jsonl`` file as a ``forms`` record.

    Raises ``ImportFileError`` when the file cannot be opened or has another extension.
    """
    path = Path(path)
    report = ImportReport(path)
    received_at = utc_now_iso()
    chunk: list[dict] = []
    with _open_text(path) as handle:
        read_rows = _READERS.get(path.suffix.lower())
        if read_rows is None:
            raise ImportFileError(f"{path}: not a .csv or .jsonl file")
        try:
            for line, row in read_rows(handle):
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
        except _UnusableHeader as exc:
            report.header_problem = str(exc)
    report.landed += landing.append_many("forms", chunk)
    return report


def _open_text(path: Path) -> TextIO:
    """The file as text, bytes that are not UTF-8 kept as escapes (U+DC80..U+DCFF) so that the line they
    are on is rejected rather than the whole file; a byte-order mark is dropped; line ends are kept for
    the CSV parser."""
    try:
        return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from None


class _PhysicalLines:
    """The file's lines for the CSV parser, numbered from 1, remembering the lines of the current record
    so that a broken one can be read again from its second line."""

    def __init__(self, handle: TextIO) -> None:
        self._source = enumerate(handle, start=1)
        self._again: deque[tuple[int, str]] = deque()
        self.record: list[tuple[int, str]] = []
        self.ran_out = False

    def __iter__(self) -> _PhysicalLines:
        return self

    def __next__(self) -> str:
        try:
            numbered = self._again.popleft() if self._again else next(self._source)
        except StopIteration:
            self.ran_out = True
            raise
        self.record.append(numbered)
        return numbered[1]

    def start_record(self) -> None:
        self.record, self.ran_out = [], False

    def read_again_after_first(self) -> None:
        self._again.extendleft(reversed(self.record[1:]))


def _csv_rows(handle: TextIO) -> Iterator[tuple[int, dict[str, object] | RowError]]:
    """Rows with the line their record starts on (a quoted cell may span lines; the header is line 1).

    Empty cells are values that were never given (a CSV cannot tell "" from absent).
    """
    lines = _PhysicalLines(handle)
    names, delimiter = _csv_header(next(lines, None))
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    while True:
        lines.start_record()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield lines.record[0][0], RowError(_broken_record_reason(exc, lines))
            lines.read_again_after_first()
            continue
        first, last = lines.record[0][0], lines.record[-1][0]
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(names):
            reason = f"{len(cells)} cells but the header has {len(names)} columns"
            if last > first:
                reason += f" (the record runs on to line {last}: a stray quote?)"
                lines.read_again_after_first()
            yield first, RowError(reason)
            continue
        undecodable = [reason for number, text in lines.record
                       if (reason := _undecodable(text, None if number == first else number))]
        if undecodable:
            yield first, RowError(undecodable[0])
            continue
        yield first, {name: value for name, value in zip(names, cells, strict=True) if value != ""}


def _csv_header(text: str | None) -> tuple[list[str], str]:
    """The column names (trimmed) and the delimiter, from the first line; raises ``_UnusableHeader``."""
    if text is None or not text.strip():
        raise _UnusableHeader(f"no header: the first line must name the columns "
                              f"(at least {', '.join(REQUIRED_COLUMNS)})")
    if undecodable := _undecodable(text):
        raise _UnusableHeader(undecodable)
    delimiter = ";" if ";" in text and "," not in text else ","
    try:
        names = [name.strip() for name in next(csv.reader([text], delimiter=delimiter, strict=True))]
    except csv.Error as exc:
        raise _UnusableHeader(f"malformed CSV ({exc})") from None
    for position, name in enumerate(names, start=1):
        if not name:
            raise _UnusableHeader(f"column {position} has no name")
        if name in names[:position - 1]:
            raise _UnusableHeader(f"column {name!r} appears twice")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise _UnusableHeader(f"no {', '.join(missing)} column{'s' if len(missing) > 1 else ''} "
                              f"(the columns are: {', '.join(names)})")
    return names, delimiter


def _broken_record_reason(exc: csv.Error, lines: _PhysicalLines) -> str:
    first, last = lines.record[0][0], lines.record[-1][0]
    if lines.ran_out:
        return "unclosed quote: the quoted cell opened on this line runs to the end of the file"
    if last > first:
        return f"malformed CSV ({exc}) in a quoted cell running on to line {last}: a stray quote?"
    return f"malformed CSV ({exc})"


def _undecodable(text: str, line: int | None = None) -> str | None:
    """Why a line is not UTF-8 text, or None when it is; ``line`` names it when it is not the line the
    reported record starts on."""
    match = _UNDECODABLE.search(text)
    if match is None:
        return None
    where = f"column {match.start() + 1}" + ("" if line is None else f" of line {line}")
    return f"not UTF-8 (byte 0x{ord(match.group()) - 0xDC00:02X} at {where}): save the file as UTF-8"


def _jsonl_rows(handle: TextIO) -> Iterator[tuple[int, dict[str, object] | RowError]]:
    for number, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        if undecodable := _undecodable(text):
            yield number, RowError(undecodable)
            continue
        try:
            row = json.loads(text, object_pairs_hook=_object_without_duplicate_keys,
                             parse_constant=_refuse_constant)
        except RowError as exc:
            yield number, exc
            continue
        except json.JSONDecodeError as exc:
            yield number, RowError(f"not valid JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(row, dict):
            yield number, RowError(f"not a JSON object ({_JSON_TYPE_NAMES[type(row)]})")
            continue
        yield number, row


def _object_without_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object; a key given twice would silently lose one of its values, so it is refused."""
    row: dict[str, object] = {}
    for key, value in pairs:
        if key in row:
            raise RowError(f"key {key[:40]!r} appears twice")
        row[key] = value
    return row


def _refuse_constant(name: str) -> object:
    raise RowError(f"not valid JSON: {name} is not a JSON value")


_READERS: dict[str, Callable[[TextIO], Iterator[tuple[int, dict[str, object] | RowError]]]] = {
    ".csv": _csv_rows, ".jsonl": _jsonl_rows,
}


def _record(row: dict[str, object] | RowError, received_at: str) -> tuple[dict, bool]:
    """The landing record of one row and whether its email is valid; raises ``RowError`` to reject it
    (the readers hand over a ``RowError`` for a row they could not even parse)."""
    if isinstance(row, RowError):
        raise row
    data = dict(row)
    form_id = data.pop("form_id", None)
    if form_id is not None and not isinstance(form_id, str):
        raise RowError("form_id must be a string")
    if form_id is None or not form_id.strip():
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
    try:
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()
    except UnicodeEncodeError:
        raise RowError("text that is not valid Unicode (an unpaired surrogate escape such as \\ud800)") from None
    record = {
        "id": "imp_" + digest[:24],
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
