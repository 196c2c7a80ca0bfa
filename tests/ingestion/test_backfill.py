"""``lifecycle import-forms``: history from a previous system, with its original timestamps, and no row
lost without a word: every line is landed, landed and flagged, or reported with its line number.

``LIFECYCLE_TEST_BACKFILL_ROWS`` (default 2000) sets the size of the generated file in which random lines
are broken (stray quotes, a cell too many or too few, bytes that are not UTF-8) among well-quoted ones.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from ingestion.backfill import ImportFileError, ImportReport, import_forms
from ingestion.landing import LandingZone, landing_files

LIFECYCLE = Path(sys.executable).parent / "lifecycle"


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
    assert report.rejected == [(2, "not valid JSON: Expecting property name enclosed in double quotes at column 2"),
                               (4, "not a JSON object (an array)"),
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
    assert [(line, "field larger than field limit" in reason) for line, reason in report.rejected] == [(2, True)]
    assert [r["fields"]["email"] for r in landed(root)] == ["b@example.com"]


HEADER = "form_id,email,submitted_at,first_name,legacy_id\n"


def good_row(n: int) -> str:
    return f"contact,lead{n}@example.com,2023-01-{n % 28 + 1:02d}T10:00:00Z,Name {n},L-{n}\n"


def import_text(tmp_path: Path, text: str | bytes, name: str = "export.csv") -> tuple[ImportReport, list[dict]]:
    source = tmp_path / name
    if isinstance(text, str):
        source.write_text(text, encoding="utf-8", newline="")
    else:
        source.write_bytes(text)
    root = tmp_path / "landing"
    report = import_forms(source, LandingZone(root, "import-1"))
    return report, landed(root)


def legacy_ids(records: list[dict]) -> list[str]:
    return [r["fields"]["extra"]["legacy_id"] for r in records]


def test_a_stray_quote_that_never_closes_loses_only_its_own_line(tmp_path: Path) -> None:
    text = (HEADER + good_row(1)                                                        # lines 1-2
            + 'contact,"lead2@example.com,2023-01-02T10:00:00Z,Name 2,L-2\n'           # line 3
            + good_row(3) + good_row(4) + good_row(5))                                  # lines 4-6
    report, records = import_text(tmp_path, text)
    assert [line for line, _ in report.rejected] == [3]
    assert "unclosed quote" in report.rejected[0][1]
    assert legacy_ids(records) == ["L-1", "L-3", "L-4", "L-5"] and report.landed == 4


def test_a_stray_quote_closed_by_another_is_reported_and_the_rows_between_land(tmp_path: Path) -> None:
    text = (HEADER + good_row(1)
            + 'contact,"lead2@example.com,2023-01-02T10:00:00Z,Name 2,L-2\n'           # line 3: opens
            + good_row(3) + good_row(4)                                                 # lines 4-5
            + 'contact,lead5@example.com,2023-01-05T10:00:00Z,"Name 5,L-5\n'           # line 6: closes, opens
            + good_row(6))                                                              # line 7
    report, records = import_text(tmp_path, text)
    assert [line for line, _ in report.rejected] == [3, 6]
    assert "line 6" in report.rejected[0][1] and "stray quote" in report.rejected[0][1]
    assert "unclosed quote" in report.rejected[1][1]
    assert legacy_ids(records) == ["L-1", "L-3", "L-4", "L-6"]


def test_a_line_with_a_cell_too_many_or_too_few_is_rejected(tmp_path: Path) -> None:
    text = (HEADER + good_row(1)
            + "contact,lead2@example.com,2023-01-02T10:00:00Z,Name 2\n"                # line 3: 4 cells
            + "contact,lead3@example.com,2023-01-03T10:00:00Z,Name 3,L-3,surplus\n"    # line 4: 6 cells
            + "contact,Ann,lead4@example.com,2023-01-04T10:00:00Z,Name 4,L-4\n"        # line 5: shifted
            + good_row(5))
    report, records = import_text(tmp_path, text)
    assert report.rejected == [(3, "4 cells but the header has 5 columns"),
                               (4, "6 cells but the header has 5 columns"),
                               (5, "6 cells but the header has 5 columns")]
    assert legacy_ids(records) == ["L-1", "L-5"] and report.landed == 2


def test_excel_csv_utf8_with_bom_and_crlf(tmp_path: Path) -> None:
    text = (HEADER + good_row(1) + 'contact,lead2@example.com,2023-01-02T10:00:00Z,"Zoë\r\nLee",L-2\n'
            + good_row(3)).replace("\n", "\r\n").replace("\r\r\n", "\r\n")
    report, records = import_text(tmp_path, b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert (report.landed, report.rejected) == (3, [])
    assert legacy_ids(records) == ["L-1", "L-2", "L-3"]
    assert records[1]["fields"]["first_name"] == "Zoë\r\nLee" and records[0]["form_id"] == "contact"


def test_a_semicolon_separated_export_is_read_with_its_separator(tmp_path: Path) -> None:
    text = ("form_id;email;submitted_at;organization;legacy_id\n"
            "contact;ada@example.com;2023-01-01T10:00:00Z;Smith, Jones & Co;L-1\n"
            'contact;bo@example.com;2023-01-02T10:00:00Z;"Semi; Colon Ltd";L-2\n'
            "contact,cy@example.com,2023-01-03T10:00:00Z,Comma Inc,L-3\n")            # line 4: commas
    report, records = import_text(tmp_path, text)
    assert report.rejected == [(4, "1 cells but the header has 5 columns")]
    assert [r["fields"]["organization"] for r in records] == ["Smith, Jones & Co", "Semi; Colon Ltd"]


def test_bytes_that_are_not_utf8_reject_their_line_only(tmp_path: Path) -> None:
    latin1 = "contact,lead2@example.com,2023-01-02T10:00:00Z,Zoë,L-2\n"
    text = (HEADER + good_row(1)).encode() + latin1.encode("latin-1") + (
        good_row(3) + 'contact,lead4@example.com,2023-01-04T10:00:00Z,"Ann\nZo').encode() + (
        b"\xeb\",L-4\n") + good_row(5).encode()
    report, records = import_text(tmp_path, text)
    assert latin1.index("ë") == 49
    assert report.rejected == [(3, "not UTF-8 (byte 0xEB at column 50): save the file as UTF-8"),
                               (5, "not UTF-8 (byte 0xEB at column 3 of line 6): save the file as UTF-8")]
    assert legacy_ids(records) == ["L-1", "L-3", "L-5"]


def test_lines_without_any_value_are_skipped_not_rejected(tmp_path: Path) -> None:
    report, records = import_text(tmp_path, HEADER + good_row(1) + "\n,,,,\n , ,,,\n" + good_row(2))
    assert (report.landed, report.rejected) == (2, [])
    assert legacy_ids(records) == ["L-1", "L-2"]


@pytest.mark.parametrize(("header", "problem"), [
    ("form_id,mail,submitted_at,first_name",
     "no email column (the columns are: form_id, mail, submitted_at, first_name)"),
    ("email,first_name", "no form_id, submitted_at columns (the columns are: email, first_name)"),
    ("form_id,email,submitted_at,email", "column 'email' appears twice"),
    ("form_id,email,,submitted_at", "column 3 has no name"),
    ('form_id,email,"submitted_at', "malformed CSV (unexpected end of data)"),
])
def test_a_header_no_row_can_be_read_with_imports_nothing(tmp_path: Path, header: str, problem: str) -> None:
    report, records = import_text(tmp_path, header + "\n" + good_row(1) + good_row(2))
    assert (report.header_problem, report.landed, records) == (problem, 0, [])
    assert not report.complete
    assert report.summary() == f"export.csv line 1 (header): {problem}; nothing imported"


def test_header_names_are_trimmed(tmp_path: Path) -> None:
    report, records = import_text(tmp_path, " form_id , email,submitted_at ,first_name,legacy_id\n" + good_row(1))
    assert (report.landed, report.header_problem) == (1, None)
    assert records[0]["fields"]["email"] == "lead1@example.com"


@pytest.mark.parametrize("text", ["", "\n" + HEADER + good_row(1)])
def test_a_file_without_a_header_on_its_first_line_imports_nothing(tmp_path: Path, text: str) -> None:
    report, records = import_text(tmp_path, text)
    assert report.header_problem == "no header: the first line must name the columns (at least form_id, email, " \
                                    "submitted_at)"
    assert (report.landed, records) == (0, [])


def test_invalid_emails_are_landed_as_typed_and_counted_as_flagged(tmp_path: Path) -> None:
    text = (HEADER + good_row(1)
            + 'contact,"ada,bo@example.com",2023-01-02T10:00:00Z,Ada,L-2\n'
            + "contact,Ada Lovelace <ada@example.com>,2023-01-03T10:00:00Z,Ada,L-3\n"
            + "contact,ada..lovelace@example.com,2023-01-04T10:00:00Z,Ada,L-4\n"
            + "contact, Lead5@Example.COM ,2023-01-05T10:00:00Z,Ada,L-5\n")
    report, records = import_text(tmp_path, text)
    assert (report.landed, report.flagged, report.rejected) == (5, 3, [])
    assert [r["fields"]["email"] for r in records] == [
        "lead1@example.com", "ada,bo@example.com", "Ada Lovelace <ada@example.com>", "ada..lovelace@example.com",
        " Lead5@Example.COM "]


def test_bad_jsonl_lines_are_reported_with_their_numbers(tmp_path: Path) -> None:
    good = {"form_id": "contact", "email": "ada@example.com", "submitted_at": "2023-01-01T00:00:00Z"}
    latin1 = json.dumps({**good, "n": 2, "first_name": "Zo\u00eb"}, ensure_ascii=False)
    lines = [
        b"\xef\xbb\xbf" + json.dumps({**good, "n": 1}).encode() + b"\r",                   # 1: BOM, CRLF
        latin1.encode("latin-1"),                                                               # 2
        b'{"form_id": "contact", "email": "a@example.com", "email": "b@example.com", "n": 3}',   # 3
        json.dumps({**good, "n": 4})[:-1].encode() + b', "score": NaN}',                        # 4
        json.dumps({**good, "n": 5, "first_name": "\ud800"}).encode(),                          # 5
        json.dumps({**good, "n": 6, "form_id": 7}).encode(),                                     # 6
        b'"just a string"',                                                                      # 7
        b"",                                                                                     # 8
        json.dumps({**good, "n": 9, "consent": "sure"}).encode(),                               # 9
        json.dumps({**good, "n": 10, "utm_source": ["a"]}).encode(),                             # 10
        json.dumps({**good, "n": 11}).encode(),                                                  # 11
    ]
    report, records = import_text(tmp_path, b"\n".join(lines) + b"\n", "history.jsonl")
    assert report.rejected == [
        (2, f"not UTF-8 (byte 0xEB at column {latin1.index('ë') + 1}): save the file as UTF-8"),
        (3, "key 'email' appears twice"),
        (4, "not valid JSON: NaN is not a JSON value"),
        (5, "text that is not valid Unicode (an unpaired surrogate escape such as \\ud800)"),
        (6, "form_id must be a string"),
        (7, "not a JSON object (a string)"),
        (9, "consent must be a boolean (true/false, on/off, yes/no, 1/0)"),
        (10, "utm_source must be a string"),
    ]
    assert [r["fields"]["extra"]["n"] for r in records] == [1, 11] and report.landed == 2


def unusable_file(tmp: Path, kind: str) -> Path:
    """A path that ``import-forms`` cannot read as a form export (a symlink loop stands for an unreadable
    file: permissions do not stop the root user the tests may run as)."""
    if kind == "missing":
        return tmp / "missing.csv"
    if kind == "directory":
        (tmp / "folder.csv").mkdir()
        return tmp / "folder.csv"
    if kind == "unreadable":
        (tmp / "loop.csv").symlink_to(tmp / "loop.csv")
        return tmp / "loop.csv"
    source = tmp / ("export.xlsx" if kind == "xlsx" else "forms")
    source.write_text(HEADER + good_row(1))
    return source


@pytest.mark.parametrize("kind", ["missing", "directory", "unreadable", "xlsx", "no-extension"])
def test_a_file_that_cannot_be_read_is_refused_with_one_clear_error(tmp_path: Path, kind: str) -> None:
    source = unusable_file(tmp_path, kind)
    with pytest.raises(ImportFileError) as refused:
        import_forms(source, LandingZone(tmp_path / "landing", "import-1"))
    assert str(source) in str(refused.value) and "\n" not in str(refused.value)
    assert landing_files(tmp_path / "landing", "forms") == []


def test_randomly_broken_lines_among_good_ones_lose_nothing_else(tmp_path: Path) -> None:
    """Every good row lands, once, whatever the mix of broken rows around it (stray quotes swallowing the
    lines after them, cells too many or too few, Latin-1 bytes), and every broken row is reported at the
    line it starts on. The other lines of a broken row that spans lines are read again as rows of their
    own (that is what saves the rows a stray quote swallowed), so they may be reported too, but no line
    of a good row is."""
    rows = int(os.environ.get("LIFECYCLE_TEST_BACKFILL_ROWS", "2000"))
    rng = random.Random(7)
    chunks, broken_starts, broken_lines, expected_landed, line = [HEADER.encode()], [], set(), [], 2
    for n in range(rows):
        ts = f"2023-01-{n % 28 + 1:02d}T10:{n % 60:02d}:00Z"
        name = rng.choice(["Ann", '"Smith, Ann"', '"Ann ""Bee"" Lee"', '"Ann\nLee"', '"Ann\r\nLee"'])
        broken = rng.random() < 0.06
        kind = rng.randrange(4) if broken else None
        cells = ["contact", f"lead{n}@example.com", ts, name, f"L-{n}"]
        if kind == 0:
            cells[1] = '"' + cells[1]
        elif kind == 1:
            cells.append("surplus")
        elif kind == 2:
            cells.pop(3)
        text = ",".join(cells) + rng.choice(["\n", "\r\n"])
        data = text.encode("utf-8")
        if kind == 3:
            data = data.replace(b"@example", b"@ex\xe9mple")
        chunks.append(data)
        spans = text.count("\n") + text.replace("\r\n", "").count("\r")
        if broken:
            broken_starts.append(line)
            broken_lines.update(range(line, line + spans))
        else:
            expected_landed.append(f"L-{n}")
        line += spans
    report, records = import_text(tmp_path, b"".join(chunks))
    rejected = [line for line, _ in report.rejected]
    assert rejected == sorted(set(rejected))
    assert set(broken_starts) <= set(rejected) <= broken_lines
    assert legacy_ids(records) == expected_landed and report.landed == len(expected_landed)


def run_lifecycle(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LIFECYCLE_HOME": str(tmp_path / "home")}
    return subprocess.run([str(LIFECYCLE), "import-forms", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_command_exit_codes_and_messages(tmp_path: Path) -> None:
    (tmp_path / "clean.csv").write_text(HEADER + good_row(1) + good_row(2))
    (tmp_path / "broken.csv").write_text(HEADER + good_row(1) + 'contact,"x@example.com,2023-01-02T10:00:00Z,X,X\n'
                                         + "contact,lead3@example.com\n" + good_row(4))
    (tmp_path / "nameless.csv").write_text("form_id,mail,submitted_at\n" + good_row(1))
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "export.xlsx").write_bytes(b"PK\x03\x04")
    landing = tmp_path / "home" / "landing"

    clean = run_lifecycle(tmp_path, "clean.csv")
    assert (clean.returncode, clean.stdout, clean.stderr) == (
        0, "clean.csv: 2 rows landed (0 flagged: invalid email), 0 rejected\n", "")

    broken = run_lifecycle(tmp_path, "broken.csv")
    assert broken.returncode == 1 and broken.stderr == ""
    assert broken.stdout.splitlines() == [
        "broken.csv line 3: unclosed quote: the quoted cell opened on this line runs to the end of the file",
        "broken.csv line 4: 2 cells but the header has 5 columns",
        "broken.csv: 2 rows landed (0 flagged: invalid email), 2 rejected",
    ]
    assert len(landed(landing)) == 4

    nameless = run_lifecycle(tmp_path, "nameless.csv")
    assert (nameless.returncode, nameless.stdout, nameless.stderr) == (
        1, ("nameless.csv line 1 (header): no email column (the columns are: form_id, mail, submitted_at); "
            "nothing imported\n"), "")

    for args, message in [(["missing.csv"], "cannot read missing.csv: No such file or directory"),
                          (["folder.csv"], "cannot read folder.csv: Is a directory"),
                          (["export.xlsx"], "export.xlsx: not a .csv or .jsonl file")]:
        refused = run_lifecycle(tmp_path, *args)
        assert (refused.returncode, refused.stdout, refused.stderr) == (
            2, "", f"lifecycle import-forms: {message}\n"), args
    assert len(landed(landing)) == 4


def test_help_documents_the_columns_formats_and_exit_codes(tmp_path: Path) -> None:
    shown = run_lifecycle(tmp_path, "--help")
    assert shown.returncode == 0
    for word in ("form_id", "email", "submitted_at", "first_name", "last_name", "organization", "org_type",
                 "phone", "webinar_code", "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term",
                 "referrer", "page_url", "consent", "byte-order mark", "semicolons", "JSONL", "exit status"):
        assert word in shown.stdout, word
