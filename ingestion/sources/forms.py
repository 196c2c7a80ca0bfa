"""Web form submissions from the landing zone into ``raw_forms``.

Run it::

    pipeline = dlt.pipeline("lifecycle_forms", destination="duckdb", dataset_name="raw_forms")
    pipeline.run(forms_source(landing_dir="/path/to/.lifecycle/landing"))

The collector and ``lifecycle import-forms`` write ``landing/forms/*.jsonl``; each run loads the lines
added since the last one (see ``ingestion.sources.read_landing``).
"""

from __future__ import annotations

import json
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from ingestion.forms import BOOL_FIELDS, KNOWN_FIELDS, STRING_FIELDS, parse_consent
from ingestion.sources import as_text, landing_resources, parse_timestamp, require_text

SUBMISSION_COLUMNS: dict[str, dict[str, Any]] = {
    "id": {"data_type": "text", "nullable": False},
    "form_id": {"data_type": "text"},
    "submitted_at": {"data_type": "timestamp"},
    "received_at": {"data_type": "timestamp"},
    "origin": {"data_type": "text"},
    **{name: {"data_type": "text"} for name in STRING_FIELDS},
    **{name: {"data_type": "bool"} for name in BOOL_FIELDS},
    "extra": {"data_type": "text"},
    "landing_file": {"data_type": "text"},
    "landing_line": {"data_type": "bigint"},
}
"""Loaded as Arrow (``submission_row`` types every field): ``extra`` is JSON text, which DuckDB's JSON
operators read as it is (``extra->>'gclid'``)."""


def submission_row(record: dict[str, Any]) -> dict[str, Any]:
    """One landing record as a row: the known form fields (docs/interfaces.md#collector) as columns, the rest in ``extra``.

    The collector and the backfill already put unknown fields under ``fields.extra``; any other unknown
    key (an older writer, a hand-made file) joins them there rather than being dropped. Each field gets its
    column's type (the rows go to dlt as Arrow): a consent or a time that cannot be read rejects the line.
    """
    fields = record.get("fields") or {}
    if not isinstance(fields, dict):
        raise TypeError("'fields' must be a JSON object")
    row: dict[str, Any] = {
        "id": require_text(record, "id"),
        "form_id": as_text(record.get("form_id")),
        "submitted_at": parse_timestamp(record.get("submitted_at")),
        "received_at": parse_timestamp(record.get("received_at")),
        "origin": as_text(record.get("origin")),
    }
    for name in STRING_FIELDS:
        row[name] = as_text(fields.get(name))
    for name in BOOL_FIELDS:
        row[name] = parse_consent(fields.get(name))
    extra = {k: v for k, v in fields.items() if k not in KNOWN_FIELDS and k != "extra"}
    nested = fields.get("extra")
    if isinstance(nested, dict):
        extra = {**nested, **extra}
    elif nested is not None:
        extra["extra"] = nested
    row["extra"] = json.dumps(extra) if extra else None
    return row


@dlt.source(name="forms")
def forms_source(landing_dir: str = dlt.config.value) -> list[DltResource]:
    """Form submissions: table ``submissions`` (merge on ``id``) and ``rejected_lines``.

    Merge rather than append because a re-imported backfill carries the same ids.
    """
    return landing_resources(landing_dir, "forms", submission_row, table_name="submissions",
                             columns=SUBMISSION_COLUMNS, as_arrow=True)
