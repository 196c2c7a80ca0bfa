"""dlt sources, one per system (forms, Calendly, Stripe, HubSpot, Brevo), and the landing-zone reader they share.

The landing reader keeps, in the resource's dlt state, how far each landing file has been read (byte
offset and line count). Each run reads only the complete lines past that point, so appended lines and new
files are picked up, a line still being written waits for the next run, and nothing is read twice. A line
that is not valid JSON or lacks what the table needs is not dropped: it goes to the ``rejected_lines``
table (file, byte offset, line number, raw text, error) so that it is visible downstream.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.time import ensure_pendulum_datetime
from dlt.common.typing import TDataItems
from dlt.extract.resource import DltResource

from ingestion.landing import landing_files

BATCH_SIZE = 2000

REJECTED_COLUMNS: dict[str, dict[str, Any]] = {
    "landing_file": {"data_type": "text", "nullable": False},
    "offset": {"data_type": "bigint", "nullable": False},
    "landing_line": {"data_type": "bigint"},
    "raw": {"data_type": "text"},
    "error": {"data_type": "text"},
}


@dataclass
class LandingBatch:
    """Rows built from landing lines and the lines that could not be built, from one read."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


def landing_resources(
    landing_dir: str | Path,
    stream: str,
    to_row: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    table_name: str,
    columns: dict[str, dict[str, Any]],
    max_table_nesting: int | None = None,
    primary_key: str = "id",
    as_arrow: bool = False,
) -> list[DltResource]:
    """The resources of one landing stream: a reader (not loaded itself) and the two tables it feeds.

    ``table_name`` is merged on ``primary_key`` (the landing record ``id`` unless the rows carry a key of
    their own, such as a content key that makes a vendor's redelivery one row); ``rejected_lines`` is merged
    on ``(landing_file, offset)``, so a replayed read changes nothing. ``as_arrow``: the rows go to dlt as
    Arrow tables typed by ``columns`` (``arrow_schema``), several times faster than dicts; only for flat rows
    whose ``to_row`` already gives each column its type (or rejects the line).
    """
    schema = arrow_schema(columns, primary_key) if as_arrow else None

    @dlt.resource(name=f"{stream}_landing", selected=False)
    def landing() -> Iterator[LandingBatch]:
        yield from read_landing(landing_dir, stream, to_row)

    @dlt.transformer(data_from=landing, name=table_name, primary_key=primary_key, write_disposition="merge",
                     columns=columns, max_table_nesting=max_table_nesting)
    def rows(batch: LandingBatch) -> Iterator[TDataItems]:
        if batch.rows:
            yield batch.rows if schema is None else pa.Table.from_pylist(batch.rows, schema=schema)

    @dlt.transformer(data_from=landing, name="rejected_lines", primary_key=["landing_file", "offset"],
                     write_disposition="merge", columns=REJECTED_COLUMNS)
    def rejected_lines(batch: LandingBatch) -> Iterator[TDataItems]:
        if batch.rejected:
            yield batch.rejected

    return [landing, rows, rejected_lines]


def read_landing(
    landing_dir: str | Path,
    stream: str,
    to_row: Callable[[dict[str, Any]], dict[str, Any]],
    batch_size: int = BATCH_SIZE,
) -> Iterator[LandingBatch]:
    """Batches of rows built by ``to_row`` from the new complete lines of every file of ``stream``.

    ``to_row`` receives a parsed record and may raise ``KeyError``, ``TypeError`` or ``ValueError`` to
    reject it. Rows get ``landing_file`` (path relative to the landing root) and ``landing_line`` (1-based).
    Must run inside a dlt resource: the read positions live in ``dlt.current.resource_state()``.
    """
    root = Path(landing_dir)
    positions: dict[str, dict[str, int]] = dlt.current.resource_state().setdefault("files", {})
    for path in landing_files(root, stream):
        name = path.relative_to(root).as_posix()
        position = positions.get(name, {"offset": 0, "line": 0})
        if path.stat().st_size <= position["offset"]:
            continue
        batch = LandingBatch()
        offset, line = position["offset"], position["line"]
        with open(path, "rb") as handle:
            handle.seek(offset)
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break
                line += 1
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if text.strip():
                    try:
                        record = json.loads(text)
                        if not isinstance(record, dict):
                            raise TypeError(f"expected a JSON object, got {type(record).__name__}")
                        row = to_row(record)
                    except (KeyError, TypeError, ValueError) as exc:
                        batch.rejected.append({"landing_file": name, "offset": offset, "landing_line": line,
                                               "raw": text, "error": describe(exc)})
                    else:
                        row["landing_file"] = name
                        row["landing_line"] = line
                        batch.rows.append(row)
                offset += len(raw)
                if len(batch.rows) + len(batch.rejected) >= batch_size:
                    yield batch
                    batch = LandingBatch()
        if batch.rows or batch.rejected:
            yield batch
        positions[name] = {"offset": offset, "line": line}


def describe(exc: Exception) -> str:
    """A short reason for ``rejected_lines.error``."""
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} at column {exc.colno}"
    return f"{type(exc).__name__}: {exc}"


def require_text(record: dict[str, Any], key: str) -> str:
    """``record[key]`` as a non-empty string, else a ``KeyError`` that rejects the line."""
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise KeyError(key)
    return value


def as_text(value: Any) -> str | None:
    """A text field as text: a number given for a name or a phone is kept as its digits, not rejected."""
    return None if value is None else str(value)


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 string (any offset) or epoch milliseconds as an aware UTC datetime; None stays None.

    Cursors are compared as datetimes, not strings, so ``...06Z`` and ``...06.000+00:00`` agree.
    """
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        return ensure_pendulum_datetime(int(value) / 1000)
    if isinstance(value, str):
        try:  # the common forms, ten times faster than pendulum's parser (which reads the rest)
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return ensure_pendulum_datetime(value)


ARROW_TYPES = {"text": pa.string(), "bigint": pa.int64(), "bool": pa.bool_(),
               "timestamp": pa.timestamp("us", tz="UTC")}


def arrow_schema(columns: dict[str, dict[str, Any]], primary_key: str) -> pa.Schema:
    """The Arrow schema of rows typed by ``columns`` (text, bigint, bool, timestamp), the key never null, as
    dlt's hints have it: a schema that differs from the hints makes dlt warn on every batch."""
    return pa.schema([pa.field(name, ARROW_TYPES[column["data_type"]], nullable=name != primary_key)
                      for name, column in columns.items()])


def typed_columns(**names_by_type: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Column hints from ``data_type=(names...)``, e.g. ``typed_columns(text=("email",), json=("tags",))``.

    Declared columns exist in the warehouse even while every value is null, so downstream models can
    select a field (``old_invitee``, ``cancellation__reason``) before the first row that sets it arrives.
    """
    return {name: {"data_type": data_type} for data_type, names in names_by_type.items() for name in names}
