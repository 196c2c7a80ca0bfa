"""The sequences on the world generator's data: message keys, one instance per booking / webinar / buyer,
no marketing email planned for a suppressed contact, the nurture's re-entry gap, and the send ledger loop
(what the activations record is never planned again, and the sequences move on to their next steps)."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import subprocess
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from ingestion.forms import is_valid_email
from orchestration.resources import DBT_EXECUTABLE, DBT_PROJECT_DIR
from tests.dbt.conftest import BuiltWorld

LOOP_START_DAYS = 35
LOOP_GAP_DAYS = 8


def message_key(email: str, sequence: str, instance_key: str, step: int) -> str:
    return hashlib.md5(f"{email}|{sequence}|{instance_key}|{step}".encode()).hexdigest()


def test_message_keys_are_deterministic_and_unique(dbt_world: BuiltWorld) -> None:
    rows = dbt_world.query("select message_key, email, sequence, instance_key, step from marts.fct_messages")
    assert len(rows) > 100
    assert len({row[0] for row in rows}) == len(rows)
    for key, email, sequence, instance_key, step in rows:
        assert key == message_key(email, sequence, instance_key, step)
        assert is_valid_email(email), email


def test_every_sequence_of_the_world_has_its_instances(dbt_world: BuiltWorld) -> None:
    instances = dict(dbt_world.query(
        "select sequence, count(distinct email || '|' || instance_key) from marts.fct_messages group by 1"))
    bookings = dbt_world.query("""
        select count(*) from intermediate.int_demo_events where event_type in ('booked', 'rescheduled')
    """)[0][0]
    registrations = dbt_world.query(
        "select count(*) from intermediate.int_webinar_registrations_deduplicated")[0][0]
    buyers = dbt_world.query("select count(distinct email) from intermediate.int_purchases")[0][0]
    assert bookings and registrations and buyers
    assert instances["demo_confirmation"] == bookings
    assert instances["webinar_confirmation"] == instances["webinar_reminder"] == registrations
    assert instances["post_purchase"] == buyers
    assert instances["demo_nurture"] > 0
    steps = dict(dbt_world.query("select sequence, max(step) from marts.fct_messages group by 1"))
    assert steps["demo_nurture"] == 7 and steps["post_purchase"] == 3 and steps["webinar_reminder"] == 2


def test_no_marketing_email_is_planned_for_a_suppressed_contact(dbt_world: BuiltWorld) -> None:
    suppressed = dbt_world.query("""
        select messages.kind, messages.status, count(*)
        from marts.fct_messages as messages
        where messages.email in (select email from intermediate.int_marketing_suppressions)
            and messages.status in ('planned', 'suppressed')
        group by 1, 2
    """)
    by_kind_status = {(kind, status): count for kind, status, count in suppressed}
    assert by_kind_status.get(("marketing", "suppressed"), 0) > 0, "the world has unsubscribes and refusals"
    assert ("marketing", "planned") not in by_kind_status


def test_a_contact_reenters_the_nurture_only_90_days_after_its_end(dbt_world: BuiltWorld) -> None:
    enrollments = dbt_world.query("""
        select email, entered_at, ended_at from marts.fct_sequence_enrollments
        where sequence = 'demo_nurture' order by email, entered_at
    """)
    by_email: dict[str, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    for email, entered_at, ended_at in enrollments:
        by_email[email].append((entered_at, ended_at))
    assert by_email
    for instances in by_email.values():
        for (_, ended_at), (next_entered_at, _) in itertools.pairwise(instances):
            assert ended_at is not None and next_entered_at >= ended_at + timedelta(days=90)


def run_sequences(home: Path, as_of: datetime) -> None:
    completed = subprocess.run(
        [DBT_EXECUTABLE, "run", "--select", "+messages_due", "+fct_sequence_enrollments",
         "--vars", f"{{as_of: '{as_of.isoformat()}Z'}}", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(home / "target"),
         "--log-path", str(home / "logs")],
        check=False, capture_output=True, text=True, timeout=300,
        env={**os.environ, "LIFECYCLE_HOME": str(home), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )
    assert completed.returncode == 0, completed.stdout[-3000:]


def send_everything_due(home: Path, sent_at: datetime) -> set[str]:
    """What the activations do with messages_due: send each row and record its key in the send ledger."""
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        due = {row[0] for row in con.execute("select message_key from marts.messages_due").fetchall()}
        con.execute("""
            insert into activations.send_ledger (message_key, email, sequence, step, status, sent_at,
                                                 provider_message_id)
            select message_key, email, sequence, step, 'sent', ?, 'msg-' || message_key
            from marts.messages_due
        """, [sent_at])
    return due


def test_the_send_ledger_loop_sends_each_message_once_and_moves_on(
        dbt_world: BuiltWorld, tmp_path: Path) -> None:
    home = tmp_path / "loop"
    home.mkdir()
    for name in ("warehouse.duckdb", "warehouse.duckdb.wal"):
        if (dbt_world.home / name).exists():
            shutil.copy(dbt_world.home / name, home / name)
    start = datetime.fromisoformat(dbt_world.summary["window"]["start"]).replace(tzinfo=None)
    first = start + timedelta(days=LOOP_START_DAYS)
    second = first + timedelta(days=LOOP_GAP_DAYS)

    run_sequences(home, first)
    sent = send_everything_due(home, first)
    assert sent
    run_sequences(home, second)

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        recorded = dict(con.execute("""
            select message_key, status from marts.fct_messages
            where message_key in (select message_key from activations.send_ledger)
        """).fetchall())
        due = con.execute("""
            select message_key, email, sequence, instance_key, step, due_at from marts.messages_due
        """).fetchall()
        sent_steps = con.execute("""
            select email, sequence, instance_key, max(step) from marts.fct_messages
            where status = 'sent' group by all
        """).fetchall()
    assert recorded == dict.fromkeys(sent, "sent")
    assert due, "eight days later, later steps fall due"
    assert not {row[0] for row in due} & sent
    assert all(due_at <= second for *_, due_at in due)
    last_sent = {(email, sequence, instance): step for email, sequence, instance, step in sent_steps}
    followers = [row for row in due if (row[1], row[2], row[3]) in last_sent]
    assert followers, "some instance sent a step on the first day and its next one on the second"
    assert all(step > last_sent[(email, sequence, instance)]
               for _, email, sequence, instance, step, _ in followers)
