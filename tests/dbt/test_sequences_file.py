"""Sequences are data: the file holds the shipped sequences and the targeted YMCA follow-up,
and a new campaign is new rows in it (entering on a trigger the stream already has, restricted or not by
the entry_* lists) that produce their messages with no change to any SQL."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from orchestration.resources import DBT_EXECUTABLE, DBT_PROJECT_DIR
from tests.dbt.conftest import UNKNOWN_PRODUCT_ID, BuiltWorld

SEQUENCES_CSV = DBT_PROJECT_DIR / "seeds" / "sequences.csv"

# What a one-step-per-row sequence leaves at its default: not expiring, no exit/pause/resume, no merge,
# entered once per contact ever, no list, no entry filter. Columns the rows do not name stay empty.
DEFAULTS = {"kind": "marketing", "offset_from": "entry", "offset_hours": "0", "expires_at_anchor": "false",
            "exit_scope": "contact", "resume_delay_days": "0", "merge_policy": "ignore",
            "reentry_policy": "never", "reentry_after_days": "0"}
DOWNLOAD_FOLLOW_UP = [
    {**DEFAULTS, "sequence": "download_follow_up", "step": str(step), "template_id": str(950 + step),
     "entry_trigger": "form_download", "offset_days": str(days), "description": text}
    for step, days, text in ((1, 1, "Day 1: how was the guide"), (2, 6, "Day 6: a related webinar"))
]
UPSELL_PRODUCTS = ("prod_course_basics", "prod_dementia_course")
COURSE_UPSELL = [
    {**DEFAULTS, "sequence": "course_upsell", "step": str(step), "template_id": str(960 + step),
     "entry_trigger": "purchase", "entry_products": "|".join(UPSELL_PRODUCTS), "offset_days": str(days),
     "description": text}
    for step, days, text in ((1, 2, "Day 2 after a course: the membership"), (2, 9, "Day 9: a 1:1 consultation"))
]


def read_sequences(path: Path = SEQUENCES_CSV) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def append_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """Rows appended in the file's own column order (whatever it is): what marketing ops would type."""
    with path.open(newline="") as handle:
        columns = next(csv.reader(handle))
    with path.open("a", newline="") as handle:
        csv.DictWriter(handle, fieldnames=columns, restval="", lineterminator="\n").writerows(rows)


def dbt(project: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DBT_EXECUTABLE, *args, "--project-dir", str(project), "--profiles-dir", str(project)],
        check=False, capture_output=True, text=True, timeout=300,
        env={**os.environ, "LIFECYCLE_HOME": str(home), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )


def project_copy_with(rows: list[dict[str, str]], root: Path) -> Path:
    """A copy of the dbt project whose sequences.csv, and nothing else, has ``rows`` appended."""
    project = root / "project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    append_rows(project / "seeds" / "sequences.csv", rows)
    return project


def test_the_file_holds_the_sequences_of_spec_5_4_and_the_ymca_follow_up() -> None:
    rows = read_sequences()
    steps: dict[str, list[int]] = {}
    for row in rows:
        steps.setdefault(row["sequence"], []).append(int(row["step"]))
    assert steps == {
        "demo_nurture": [1, 2, 3, 4, 5, 6, 7], "demo_confirmation": [1], "post_purchase": [1, 2, 3],
        "webinar_confirmation": [1], "webinar_reminder": [1, 2], "reengagement": [1, 2], "winback": [1, 2, 3],
        "ymca_webinar_followup": [1, 2],
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
    assert [offsets[("ymca_webinar_followup", step)] for step in (1, 2)] == [("entry", 3, 0), ("entry", 30, 0)]
    assert len({row["template_id"] for row in rows}) == len(rows)

    filters = ("entry_audiences", "entry_segments", "entry_products", "entry_webinar_codes", "entry_forms")
    targeted = {row["sequence"]: {name: row[name] for name in filters if row[name]} for row in rows
                if any(row[name] for name in filters)}
    assert targeted == {"ymca_webinar_followup": {"entry_audiences": "YMCA"}}
    ymca = [row for row in rows if row["sequence"] == "ymca_webinar_followup"]
    assert {(row["kind"], row["entry_trigger"]) for row in ymca} == {("marketing", "webinar_registration")}
    assert all(row["description"] for row in ymca)


@dataclass(frozen=True)
class ExtendedWorld:
    """The world's warehouse rebuilt (``sequences+``) from a project copy with two more sequences."""

    home: Path

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def extended_world(dbt_world: BuiltWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExtendedWorld]:
    root = tmp_path_factory.mktemp("sequences-file")
    project = project_copy_with([*DOWNLOAD_FOLLOW_UP, *COURSE_UPSELL], root)
    home = root / "home"
    home.mkdir()
    for name in ("warehouse.duckdb", "warehouse.duckdb.wal"):
        if (dbt_world.home / name).exists():
            shutil.copy(dbt_world.home / name, home / name)
    completed = dbt(project, home, "build", "--select", "sequences+", "--exclude-resource-type", "unit_test")
    assert completed.returncode == 0, completed.stdout[-3000:]
    yield ExtendedWorld(home)


def messages_of(world: ExtendedWorld, sequence: str) -> list[tuple]:
    return world.query(f"""
        select email, step, template_id, due_at, params from marts.fct_messages where sequence = '{sequence}'
    """)


def test_a_new_sequence_needs_only_rows_in_the_file(extended_world: ExtendedWorld, dbt_world: BuiltWorld) -> None:
    first_downloads = dict(extended_world.query("""
        select email, min(occurred_at) from intermediate.int_sequence_triggers
        where trigger = 'form_download' group by email
    """))
    assert first_downloads, "the world has download-form submissions"
    new = messages_of(extended_world, "download_follow_up")
    assert {(email, step) for email, step, *_ in new} == {
        (email, step) for email in first_downloads for step in (1, 2)}
    for email, step, template_id, due_at, params in new:
        assert template_id == 950 + step
        assert due_at == first_downloads[email] + timedelta(days=1 if step == 1 else 6)
        assert json.loads(params)["sequence"] == "download_follow_up" and json.loads(params)["step"] == step
    others = {row[0] for row in extended_world.query("""
        select message_key from marts.fct_messages where sequence not in ('download_follow_up', 'course_upsell')
    """)}
    assert others == {row[0] for row in dbt_world.query("select message_key from marts.fct_messages")}


def test_a_targeted_sequence_needs_only_rows_in_the_file(extended_world: ExtendedWorld) -> None:
    """An upsell restricted to purchases of either course (entry_products, two values): every buyer of a
    course enters once, at the first purchase with a course in it; the other buyers (the toolkit, the
    consultation, a product no seed knows) get none of it."""
    purchases = extended_world.query("""
        select email, session_id, purchased_at, product_id from intermediate.int_purchase_line_items
    """)
    first_course: dict[str, datetime] = {}
    for email, _, purchased_at, product_id in purchases:
        if product_id in UPSELL_PRODUCTS:
            first_course[email] = min(purchased_at, first_course.get(email, purchased_at))
    buyers = {email for email, *_ in purchases}
    outside = buyers - set(first_course)
    assert first_course and outside, "the world has buyers of a course and buyers of other products only"
    assert any(product_id == UNKNOWN_PRODUCT_ID for *_, product_id in purchases)

    upsell = messages_of(extended_world, "course_upsell")
    assert {(email, step) for email, step, *_ in upsell} == {
        (email, step) for email in first_course for step in (1, 2)}
    assert not {email for email, *_ in upsell} & outside
    for email, step, template_id, due_at, params in upsell:
        assert template_id == 960 + step
        assert due_at == first_course[email] + timedelta(days=2 if step == 1 else 9)
        assert set(json.loads(params)["product_ids"].split(", ")) & set(UPSELL_PRODUCTS)
    assert extended_world.query("""
        select is_valid, problems from intermediate.int_sequence_definitions where sequence = 'course_upsell'
    """) == [(True, None)]


def test_a_targeted_sequence_that_can_never_match_fails_the_build_and_says_why(tmp_path: Path) -> None:
    """Seeds and definitions only (no raw table needed): a webinar follow-up restricted to a product (a
    registration has none) and to a webinar code the catalogue does not hold is a failing data test and a
    flagged row naming both problems, not a sequence that silently never sends."""
    broken = [{**DEFAULTS, "sequence": "broken_followup", "step": "1", "template_id": "990",
               "entry_trigger": "webinar_registration", "entry_products": "prod_toolkit",
               "entry_webinar_codes": "WB999", "offset_days": "1", "description": "never sent"}]
    project = project_copy_with(broken, tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    completed = dbt(project, home, "build", "--select", "+int_sequence_definitions",
                    "--exclude-resource-type", "unit_test")
    assert completed.returncode != 0
    assert "accepted_values_int_sequence_definitions_is_valid" in completed.stdout
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        flagged = con.execute("""
            select sequence, problems from intermediate.int_sequence_definitions where not is_valid
        """).fetchall()
    problems = ("entry_products does not apply to entry trigger webinar_registration; "
                "entry_webinar_codes holds a value no seed knows (or one twice): WB999")
    assert flagged == [("broken_followup", problems)]
