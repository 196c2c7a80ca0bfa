"""The portable fallbacks of the macros that build email params (URL encoding, JSON string escaping) give
what DuckDB's own functions give, so another adapter that uses them sends the same links and JSON."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from orchestration.resources import DBT_EXECUTABLE, DBT_PROJECT_DIR

PRINTABLE_ASCII = "".join(chr(code) for code in range(32, 127))
CONTROL = "line one\nline two\ttabbed \\ done"
OBJECT = '{"a":1,"b":"}"}'


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def dbt_show(inline: str, tmp_path: Path) -> list[dict]:
    home = tmp_path / "home"
    home.mkdir()
    completed = subprocess.run(
        [DBT_EXECUTABLE, "show", "--quiet", "--output", "json", "--inline", inline,
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        check=False, capture_output=True, text=True, timeout=120,
        env={**os.environ, "LIFECYCLE_HOME": str(home), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads(completed.stdout[completed.stdout.index("{"):])["show"]


def test_portable_url_encoding_and_json_escaping_match_duckdb(tmp_path: Path) -> None:
    inline = f"""
        select
            value,
            {{{{ lifecycle.default__url_encode('value') }}}} as portable_url,
            {{{{ lifecycle.duckdb__url_encode('value') }}}} as duckdb_url,
            {{{{ lifecycle.default__json_string_text('value') }}}} as portable_json,
            {{{{ lifecycle.duckdb__json_string_text('value') }}}} as duckdb_json,
            {{{{ lifecycle.default__json_string_text('cast(null as varchar)') }}}} as null_json,
            {{{{ lifecycle.default__json_object_members('object_text') }}}} as members
        from (select {sql_literal(PRINTABLE_ASCII)} as value union all select {sql_literal(CONTROL)}) as texts
        cross join (select {sql_literal(OBJECT)} as object_text) as objects
        order by value
    """
    rows = dbt_show(inline, tmp_path)

    assert [row["value"] for row in rows] == sorted([PRINTABLE_ASCII, CONTROL])
    for row in rows:
        assert row["portable_url"] == row["duckdb_url"]
        assert "%" in row["portable_url"] and " " not in row["portable_url"]
        assert json.loads(row["portable_json"]) == row["value"]
        assert json.loads(row["duckdb_json"]) == row["value"]
        assert row["null_json"] == "null"
        assert row["members"] == '"a":1,"b":"}"'
