"""Sequences are data (SPEC §3.9.1): the file holds SPEC §5.4's sequences, and a new campaign is new rows
in it (entering on a trigger the stream already has) that produce their messages with no change to any SQL."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import duckdb

from orchestration.resources import DBT_EXECUTABLE, DBT_PROJECT_DIR
from tests.dbt.conftest import BuiltWorld

SEQUENCES_CSV = DBT_PROJECT_DIR / "seeds" / "sequences.csv"

# sequence, step, kind, template_id, entry_trigger, offset_from, offset_days, offset_hours; then the rest:
# not expiring, no exit/pause/resume, no merge, entered once per contact ever, no list
SETTINGS = "false,,contact,,,0,ignore,,never,0,"
NEW_SEQUENCE_ROWS = [
    f"download_follow_up,{step},marketing,{950 + step},form_download,entry,{days},0,{SETTINGS},{text}"
    for step, days, text in ((1, 1, "Day 1: how was the guide"), (2, 6, "Day 6: a related webinar"))
]


def read_sequences() -> list[dict[str, str]]:
    with SEQUENCES_CSV.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_file_holds_the_sequences_of_spec_5_4() -> None:
    rows = read_sequences()
    steps: dict[str, list[int]] = {}
    for row in rows:
        steps.setdefault(row["sequence"], []).append(int(row["step"]))
    assert steps == {
        "demo_nurture": [1, 2, 3, 4, 5, 6, 7], "demo_confirmation": [1], "post_purchase": [1, 2, 3],
        "webinar_confirmation": [1], "webinar_reminder": [1, 2], "reengagement": [1, 2], "winback": [1, 2, 3],
    }
    kinds = {row["sequence"]: row["kind"] for row in rows}
    assert {name for name, kind in kinds.items() if kind == "transactional"} == {
        "demo_confirmation", "webinar_confirmation", "webinar_reminder"}
    offsets = {
        (row["sequence"], int(row["step"])):
            (row["offset_from"], int(row["offset_days"]), int(row["offset_hours"]))
        for row in rows
    }
    assert offsets[("webinar_reminder", 1)] == ("anchor", 0, -24)
    assert offsets[("webinar_reminder", 2)] == ("anchor", 0, -1)
    assert [offsets[("winback", step)][1] for step in (1, 2, 3)] == [0, 14, 45]
    assert len({row["template_id"] for row in rows}) == len(rows)


def test_a_new_sequence_needs_only_rows_in_the_file(dbt_world: BuiltWorld, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    with (project / "seeds" / "sequences.csv").open("a") as handle:
        handle.write("\n".join(NEW_SEQUENCE_ROWS) + "\n")
    home = tmp_path / "home"
    home.mkdir()
    for name in ("warehouse.duckdb", "warehouse.duckdb.wal"):
        if (dbt_world.home / name).exists():
            shutil.copy(dbt_world.home / name, home / name)

    completed = subprocess.run(
        [DBT_EXECUTABLE, "build", "--select", "sequences+", "--exclude-resource-type", "unit_test",
         "--project-dir", str(project), "--profiles-dir", str(project)],
        check=False, capture_output=True, text=True, timeout=300,
        env={**os.environ, "LIFECYCLE_HOME": str(home), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )
    assert completed.returncode == 0, completed.stdout[-3000:]

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        first_downloads = dict(con.execute("""
            select email, min(occurred_at) from intermediate.int_sequence_triggers
            where trigger = 'form_download' group by email
        """).fetchall())
        messages = con.execute("""
            select email, step, template_id, due_at, params, message_key, sequence from marts.fct_messages
        """).fetchall()
    assert first_downloads, "the world has download-form submissions"
    new = [row for row in messages if row[6] == "download_follow_up"]
    assert {(email, step) for email, step, *_ in new} == {
        (email, step) for email in first_downloads for step in (1, 2)}
    for email, step, template_id, due_at, params, *_ in new:
        assert template_id == 950 + step
        assert due_at == first_downloads[email] + timedelta(days=1 if step == 1 else 6)
        assert json.loads(params)["sequence"] == "download_follow_up" and json.loads(params)["step"] == step
    others = {row[5] for row in messages if row[6] != "download_follow_up"}
    assert others == {row[0] for row in dbt_world.query("select message_key from marts.fct_messages")}
