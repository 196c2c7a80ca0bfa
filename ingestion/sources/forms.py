"""Web form submissions from the landing zone into ``raw_forms``.

Run it::

    pipeline = dlt.pipeline("lifecycle_forms", destination="duckdb", dataset_name="raw_forms")
    pipeline.run(forms_source(landing_dir="/path/to/.lifecycle/landing"))

The collector and ``lifecycle import-forms`` write ``landing/forms/*.jsonl``; each run loads the lines
added since the last one (see ``ingestion.sources.read_landing``).
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.extract.resource import DltResource

from ingestion.forms import BOOL_FIELDS, KNOWN_FIELDS, STRING_FIELDS
from ingestion.sources import landing_resources, require_text

SUBMISSION_COLUMNS: dict[str, dict[str, Any]] = {
    "id": {"data_type": "text", "nullable": False},
    "form_id": {"data_type": "text"},
    "submitted_at": {"data_type": "timestamp"},
    "received_at": {"data_type": "timestamp"},
    "origin": {"data_type": "text"},
    **{name: {"data_type": "text"} for name in STRING_FIELDS},
    **{name: {"data_type": "bool"} for name in BOOL_FIELDS},
    "extra": {"data_type": "json"},
    "landing_file": {"data_type": "text"},
    "landing_line": {"data_type": "bigint"},
}


def submission_row(record: dict[str, Any]) -> dict[str, Any]:
    """One landing record as a row: the known form fields (docs/interfaces.md#collector) as columns, the rest in ``extra``.

    The collector and the backfill already put unknown fields under ``fields.extra``; any other unknown
    key (an older writer, a hand-made file) joins them there rather than being dropped.
    """
    fields = record.get("fields") or {}
    if not isinstance(fields, dict):
        raise TypeError("'fields' must be a JSON object")
    row: dict[str, Any] = {
        "id": require_text(record, "id"),
        "form_id": record.get("form_id"),
        "submitted_at": record.get("submitted_at"),
        "received_at": record.get("received_at"),
        "origin": record.get("origin"),
    }
    for name in (*STRING_FIELDS, *BOOL_FIELDS):
        row[name] = fields.get(name)
    extra = {k: v for k, v in fields.items() if k not in KNOWN_FIELDS and k != "extra"}
    nested = fields.get("extra")
    if isinstance(nested, dict):
        extra = {**nested, **extra}
    elif nested is not None:
        extra["extra"] = nested
    row["extra"] = extra or None
    return row


@dlt.source(name="forms")
def forms_source(landing_dir: str = dlt.config.value) -> list[DltResource]:
    """Form submissions: table ``submissions`` (merge on ``id``) and ``rejected_lines``.

    Merge rather than append because a re-imported backfill carries the same ids.
    """
    return landing_resources(landing_dir, "forms", submission_row, table_name="submissions",
                             columns=SUBMISSION_COLUMNS)
