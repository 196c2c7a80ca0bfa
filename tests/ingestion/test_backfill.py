"""``lifecycle import-forms``: history from a previous system, with its original timestamps (SPEC §2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingestion.backfill import import_forms
from ingestion.landing import LandingZone, landing_files


def landed(root: Path) -> list[dict]:
    return [json.loads(line) for path in landing_files(root, "forms") for line in path.read_text().splitlines()]


CSV_TEXT = (
    "form_id,email,submitted_at,first_name,org_type,consent,utm_source,legacy_id\n"   # line 1
    "contact,ada@example.com,2023-04-01T09:30:00Z,Ada,YMCA,yes,google,L-1\n"           # line 2
    "newsletter,not-an-email,2023-04-02T10:00:00+02:00,Bo,,,,L-2\n"                    # line 3
    ",cy@example.com,2023-04-03T10:00:00Z,Cy,,,,L-3\n"                                  # line 4: no form_id
    "webinar,di@example.com,yesterday,Di,,,,L-4\n"                                      # line 5: bad time
    'download,ed@example.com,2023-04-05T10:00:00Z,"Ed\nthe second",,no,,L-5\n'           # lines 6-7
    "contact,fay@example.com,,Fay,,,,L-6\n"                                              # line 8: no time
    "contact,gus@example.com,2023-04-06T10:00:00,Gus,,,,L-7\n"                           # line 9: no offset
    "contact,hal@example.com,2023-04-07T10:00:00Z,Hal,,perhaps,,L-8\n"                   # line 10: consent
    "contact,,2023-04-07T10:00:00Z,Ivy,,,,L-9\n"                                         # line 11: no email
    "contact,jo@example.com,2023-04-08T10:00:00Z,Jo,,,,L-10,surplus\n"                   # line 12: extra cell
)


def test_csv_import_keeps_original_timestamps_flags_and_reports(tmp_path: Path) -> None:
    source = tmp_path / "old_crm.csv"
    source.write_text(CSV_TEXT, encoding="utf-8")
    root = tmp_path / "landing"
    report = import_forms(source, LandingZone(root, "import-1"))

    assert (report.landed, report.flagged) == (3, 1)
    assert [line for line, _ in report.rejected] == [4, 5, 8, 9, 10, 11, 12]
    reasons = dict(report.rejected)
    assert "form_id" in reasons[4] and "submitted_at" in reasons[5] and "submitted_at" in reasons[8]
    assert "offset" in reasons[9] and "consent" in reasons[10] and "email" in reasons[11]
    assert "cells" in reasons[12]

    records = {r["fields"]["extra"]["legacy_id"]: r for r in landed(root)}
    assert sorted(records) == ["L-1", "L-2", "L-5"]
    ada, bo, ed = records["L-1"], records["L-2"], records["L-5"]
    assert ada["submitted_at"] == "2023-04-01T09:30:00.000000Z"
    assert bo["submitted_at"] == "2023-04-02T08:00:00.000000Z"  # normalized to UTC
    assert ada["origin"] == "import" and ada["form_id"] == "contact" and ada["id"].startswith("imp_")
    assert ada["fields"]["consent"] is True and ada["fields"]["org_type"] == "YMCA"
    assert ada["fields"]["utm_source"] == "google" and ada["fields"]["last_name"] is None
    assert bo["fields"]["email"] == "not-an-email"  # landed as is; flagged downstream
    assert bo["fields"]["consent"] is None and bo["fields"]["org_type"] is None
    assert ed["fields"]["first_name"] == "Ed\nthe second" and ed["fields"]["consent"] is False

    summary = report.summary()
    assert "3 rows landed" in summary and "1 flagged" in summary and "7 rejected" in summary
    assert "line 4: missing form_id" in summary


def test_jsonl_import_and_line_numbers(tmp_path: Path) -> None:
    rows = [
        json.dumps({"form_id": "webinar", "email": "ada@example.com", "submitted_at": "2022-12-31T23:00:00-05:00",
                    "webinar_code": "WB003", "consent": False, "tags": ["a", "b"]}),
        "{this is not json",
        "",
        json.dumps(["a", "list"]),
        json.dumps({"form_id": "contact", "email": "bad@", "submitted_at": "2023-01-02T00:00:00Z"}),
        json.dumps({"form_id": "contact", "email": "x@example.com", "submitted_at": 1672617600}),
        json.dumps({"form_id": "contact", "email": "x@example.com", "submitted_at": "2023-01-02T00:00:00Z",
                    "first_name": {"not": "a string"}}),
    ]
    source = tmp_path / "history.jsonl"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    root = tmp_path / "landing"
    report = import_forms(source, LandingZone(root, "import-1"))

    assert (report.landed, report.flagged) == (2, 1)
    assert report.rejected == [(2, "not valid JSON"), (4, "not a JSON object"),
                               (6, "submitted_at must be an ISO 8601 string"), (7, "first_name must be a string")]
    first, second = landed(root)
    assert first["submitted_at"] == "2023-01-01T04:00:00.000000Z"
    assert first["fields"]["webinar_code"] == "WB003" and first["fields"]["consent"] is False
    assert first["fields"]["extra"] == {"tags": ["a", "b"]}
    assert second["fields"]["email"] == "bad@"


def test_reimport_lands_identical_ids(tmp_path: Path) -> None:
    source = tmp_path / "old_crm.csv"
    source.write_text(CSV_TEXT, encoding="utf-8")
    first_root, second_root = tmp_path / "first", tmp_path / "second"
    import_forms(source, LandingZone(first_root, "import-1"))
    import_forms(source, LandingZone(second_root, "import-2"))
    first_ids = [r["id"] for r in landed(first_root)]
    assert len(set(first_ids)) == 3
    assert first_ids == [r["id"] for r in landed(second_root)]


def test_ids_differ_when_any_field_differs(tmp_path: Path) -> None:
    source = tmp_path / "pair.jsonl"
    base = {"form_id": "contact", "email": "ada@example.com", "submitted_at": "2023-01-01T00:00:00Z"}
    source.write_text(json.dumps(base) + "\n" + json.dumps({**base, "utm_source": "google"}) + "\n")
    root = tmp_path / "landing"
    import_forms(source, LandingZone(root, "import-1"))
    first, second = landed(root)
    assert first["id"] != second["id"]


def test_rows_are_landed_in_chunks(tmp_path: Path) -> None:
    source = tmp_path / "many.csv"
    lines = ["form_id,email,submitted_at"]
    lines += [f"newsletter,lead{i}@example.com,2023-01-01T00:00:{i % 60:02d}Z" for i in range(25)]
    source.write_text("\n".join(lines) + "\n")
    calls: list[int] = []

    class CountingZone(LandingZone):
        def append_many(self, stream: str, records) -> int:
            records = list(records)
            calls.append(len(records))
            return super().append_many(stream, records)

    root = tmp_path / "landing"
    report = import_forms(source, CountingZone(root, "import-1"), chunk_rows=10)
    assert report.landed == 25 and report.rejected == []
    assert calls == [10, 10, 5]
    assert len(landed(root)) == 25


def test_an_unreadable_csv_row_is_reported_and_the_rest_imported(tmp_path: Path) -> None:
    source = tmp_path / "huge_cell.csv"
    source.write_text("form_id,email,submitted_at,notes\n"
                      f'contact,a@example.com,2023-01-01T00:00:00Z,"{"x" * 200_000}"\n'
                      "contact,b@example.com,2023-01-02T00:00:00Z,short\n")
    root = tmp_path / "landing"
    report = import_forms(source, LandingZone(root, "import-1"))
    assert report.landed == 1
    assert [(line, "unreadable CSV row" in reason) for line, reason in report.rejected] == [(2, True)]
    assert [r["fields"]["email"] for r in landed(root)] == ["b@example.com"]


def test_unsupported_file_type_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "export.xlsx"
    source.write_bytes(b"PK")
    with pytest.raises(ValueError, match="xlsx"):
        import_forms(source, LandingZone(tmp_path / "landing", "import-1"))
    assert landing_files(tmp_path / "landing", "forms") == []
