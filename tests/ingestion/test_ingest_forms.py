"""Forms: the landing zone into raw_forms, incrementally by byte offset, with bad lines kept visible."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from ingestion.landing import LandingZone
from ingestion.pipelines import make_pipeline, run_ingestion
from settings import Settings

UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture()
def config(tmp_path: Path) -> Settings:
    return Settings.from_env({
        "LIFECYCLE_HOME": str(tmp_path), "HUBSPOT_BASE_URL": UNREACHABLE, "BREVO_BASE_URL": UNREACHABLE,
        "CALENDLY_BASE_URL": UNREACHABLE, "STRIPE_BASE_URL": UNREACHABLE,
    })


def submission(n: int, origin: str = "collector", **fields: object) -> dict:
    """A record in the landing format the collector and the backfill write (ingestion/landing.py)."""
    return {
        "id": f"frm_{n}", "form_id": "contact", "submitted_at": f"2025-03-0{n % 9 + 1}T10:00:00.000000Z",
        "received_at": "2025-03-10T10:00:00.000000Z", "origin": origin,
        "fields": {"email": f"lead{n}@example.com", "first_name": "Ada", "consent": True, "extra": {}, **fields},
    }


def ingest(config: Settings) -> dict[str, int]:
    return run_ingestion(config, only=["forms"])["forms"]


def query(config: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        return con.sql(sql).fetchall()


def line(record: dict) -> bytes:
    return (json.dumps(record) + "\n").encode()


def test_submissions_land_with_typed_columns_and_extra_as_json(config: Settings) -> None:
    LandingZone(config.landing_dir, "collector").append_many("forms", [
        submission(1, utm_source="google", extra={"gclid": "abc"}),
        submission(2, consent=False, org_type="YMCA"),
        submission(3, webinar_code="WB003"),
    ])

    assert ingest(config) == {"raw_forms.submissions": 3}

    rows = query(config, """
        select id, email, utm_source, org_type, webinar_code, consent, extra->>'gclid', origin,
               landing_line, landing_file, typeof(submitted_at)
        from raw_forms.submissions order by id""")
    file_name = rows[0][9]
    assert file_name.startswith("forms/") and file_name.endswith(".collector.jsonl")
    assert [r[:9] for r in rows] == [
        ("frm_1", "lead1@example.com", "google", None, None, True, "abc", "collector", 1),
        ("frm_2", "lead2@example.com", None, "YMCA", None, False, None, "collector", 2),
        ("frm_3", "lead3@example.com", None, None, "WB003", True, None, "collector", 3),
    ]
    assert rows[0][10] == "TIMESTAMP WITH TIME ZONE"


def test_nothing_new_loads_zero_rows(config: Settings) -> None:
    LandingZone(config.landing_dir, "collector").append_many("forms", [submission(1), submission(2)])
    assert ingest(config) == {"raw_forms.submissions": 2}

    second = ingest(config)

    assert sum(second.values()) == 0
    assert query(config, "select count(*) from raw_forms.submissions") == [(2,)]


def test_appended_lines_and_a_new_file_load_only_the_new_rows(config: Settings) -> None:
    collector = LandingZone(config.landing_dir, "collector")
    collector.append_many("forms", [submission(1), submission(2)])
    ingest(config)

    collector.append("forms", submission(3))
    LandingZone(config.landing_dir, "import").append_many("forms", [submission(4, "import"), submission(5, "import")])

    assert ingest(config) == {"raw_forms.submissions": 3}
    assert query(config, "select id, landing_line, origin from raw_forms.submissions order by id") == [
        ("frm_1", 1, "collector"), ("frm_2", 2, "collector"), ("frm_3", 3, "collector"),
        ("frm_4", 1, "import"), ("frm_5", 2, "import"),
    ]


def test_a_partially_written_last_line_waits_until_it_is_complete(config: Settings) -> None:
    path = config.landing_dir / "forms" / "2025-03-10.collector.jsonl"
    path.parent.mkdir(parents=True)
    third = line(submission(3))
    path.write_bytes(line(submission(1)) + line(submission(2)) + third[:25])

    assert ingest(config) == {"raw_forms.submissions": 2}
    assert sum(ingest(config).values()) == 0

    with open(path, "ab") as handle:
        handle.write(third[25:])

    assert ingest(config) == {"raw_forms.submissions": 1}
    assert query(config, "select id, landing_line from raw_forms.submissions where id = 'frm_3'") == [("frm_3", 3)]


def test_corrupt_lines_go_to_rejected_lines_and_good_ones_still_load(config: Settings) -> None:
    path = config.landing_dir / "forms" / "2025-03-10.collector.jsonl"
    path.parent.mkdir(parents=True)
    bad = [b"{not json\n", b'{"form_id": "contact", "fields": {}}\n', b"[1, 2]\n",
           b'{"id": "frm_9", "fields": "oops"}\n']
    content = line(submission(1)) + b"".join(bad) + line(submission(2))
    path.write_bytes(content)

    assert ingest(config) == {"raw_forms.submissions": 2, "raw_forms.rejected_lines": 4}

    rejected = query(config, 'select landing_file, "offset", landing_line, raw, error '
                             "from raw_forms.rejected_lines order by landing_line")
    assert [r[2] for r in rejected] == [2, 3, 4, 5]
    for (landing_file, offset, _, raw, _), original in zip(rejected, bad, strict=True):
        assert landing_file == "forms/2025-03-10.collector.jsonl"
        assert content[offset:offset + len(original)] == original
        assert raw == original.decode().rstrip("\n")
    assert "invalid JSON" in rejected[0][4]
    assert "'id'" in rejected[1][4]
    assert "JSON object" in rejected[2][4]
    assert "fields" in rejected[3][4]
    assert query(config, "select id from raw_forms.submissions order by id") == [("frm_1",), ("frm_2",)]
    assert sum(ingest(config).values()) == 0


def test_a_hand_made_line_is_typed_as_its_columns_or_rejected(config: Settings) -> None:
    """Submissions go to dlt as Arrow, typed as they are read: a number given for a text field lands as its
    digits, a consent or a time that cannot be read rejects its line (with the reason), the rest still load."""
    path = config.landing_dir / "forms" / "2025-03-10.backfill.jsonl"
    path.parent.mkdir(parents=True)
    rows = [submission(1, phone=5551234), submission(2, consent="maybe"),
            {**submission(3), "submitted_at": "last tuesday"}, submission(4)]
    path.write_bytes(b"".join(line(row) for row in rows))

    assert ingest(config) == {"raw_forms.submissions": 2, "raw_forms.rejected_lines": 2}
    assert query(config, "select id, phone from raw_forms.submissions order by id") == [
        ("frm_1", "5551234"), ("frm_4", None)]
    errors = [error for (error,) in query(config, "select error from raw_forms.rejected_lines order by landing_line")]
    assert errors[0] == "FieldError: consent must be a boolean (true/false, on/off, yes/no, 1/0)"
    assert errors[1] == "ParserError: Invalid datetime string"


def test_a_reimported_backfill_merges_on_the_submission_id(config: Settings) -> None:
    LandingZone(config.landing_dir, "import-1").append_many("forms", [submission(1, "import"), submission(2, "import")])
    ingest(config)

    LandingZone(config.landing_dir, "import-2").append_many(
        "forms", [submission(1, "import", first_name="Ada Corrected"), submission(2, "import")])

    assert ingest(config) == {"raw_forms.submissions": 2}
    assert query(config, "select id, first_name from raw_forms.submissions order by id") == [
        ("frm_1", "Ada Corrected"), ("frm_2", "Ada")]


def test_the_loads_connection_keeps_the_configured_memory_limit(config: Settings) -> None:
    """dlt's own DuckDB connection, where a load merges whole tables, gets the limit (DuckDB's default is 80 %
    of the machine's memory)."""
    pipeline = make_pipeline("forms", replace(config, duckdb_memory_limit="123MB"))
    with pipeline.sql_client() as client:
        [(limit,)] = client.execute_sql("select current_setting('memory_limit')")
    with duckdb.connect(config={"memory_limit": "123MB"}) as limited, duckdb.connect() as default:
        assert limit == limited.execute("select current_setting('memory_limit')").fetchone()[0]
        assert limit != default.execute("select current_setting('memory_limit')").fetchone()[0]
