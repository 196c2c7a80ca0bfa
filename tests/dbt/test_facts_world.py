"""The lifecycle facts (demos, webinars, purchases, churn, engagement, suppressions) on the world generator's
data, checked against what the generator says it made, and replayed at an earlier as_of: a model computed as
of a past moment must equal the later result cut at that moment (no snapshot, nothing that depends on when
runs happen)."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from ingestion.forms import is_valid_email
from orchestration.resources import DBT_EXECUTABLE, DBT_PROJECT_DIR
from sandbox.world import WEBINAR_CODES
from tests.dbt.conftest import BuiltWorld

FACT_MODELS = (
    "int_form_submissions_tagged", "int_demo_events", "fct_demos", "int_purchases", "int_purchase_line_items",
    "int_webinar_registrations_deduplicated", "int_webinar_history", "fct_webinar_registrations",
    "int_customer_status_changes", "fct_customer_status", "int_engagement_events",
    "int_engagement_tier_history", "fct_engagement_tiers", "int_marketing_suppressions",
)
# Replayed this many days before the world ends: late enough for every tier (quiet needs 90 days), early
# enough that later events exist.
REPLAY_DAYS_BEFORE_END = 20


def counts(world: BuiltWorld, sql: str) -> dict[str, int]:
    return {key: count for key, count in world.query(sql)}


def test_demo_events_match_the_bookings_the_world_made(dbt_world: BuiltWorld) -> None:
    """Each reschedule is one 'rescheduled' event whichever webhook came first, never a cancellation."""
    summary = dbt_world.summary
    assert summary["reschedules_reverse_order"] > 0 and summary["reschedules"] > summary["reschedules_reverse_order"]
    by_type = counts(dbt_world, "select event_type, count(*) from intermediate.int_demo_events group by 1")
    assert by_type == {"booked": summary["bookings"], "rescheduled": summary["reschedules"],
                       "canceled": summary["cancellations"]}
    rescheduled_then_canceled = dbt_world.query("""
        select count(*) from intermediate.int_demo_events as canceled
        join intermediate.int_demo_events as successor on successor.previous_invitee_uri = canceled.invitee_uri
        where canceled.event_type = 'canceled'
    """)[0][0]
    assert rescheduled_then_canceled == 0
    demos = dbt_world.query("select count(*), count(distinct email), sum(is_rescheduled::int) from marts.fct_demos")[0]
    assert demos[0] == demos[1] > 0
    assert demos[2] > 0


def test_webinar_history_is_first_registration_order_of_known_codes(dbt_world: BuiltWorld) -> None:
    registrations = dbt_world.query("""
        select email, upper(trim(webinar_code)), coalesce(submitted_at, received_at)
        from raw_forms.submissions where form_id = 'webinar' order by 3, 2
    """)
    expected: dict[str, list[str]] = {}
    repeats = 0
    for email, code, _ in registrations:
        if is_valid_email(email) and code in WEBINAR_CODES:
            codes = expected.setdefault(email.strip().lower(), [])
            if code in codes:
                repeats += 1
            else:
                codes.append(code)
    assert any(len(codes) > 1 for codes in expected.values())
    assert repeats > 0
    history = dict(dbt_world.query("select email, webinar_history from intermediate.int_webinar_history"))
    assert history == {email: ", ".join(codes) for email, codes in expected.items()}
    assert dbt_world.query(
        "select sum(registration_count - 1) from intermediate.int_webinar_registrations_deduplicated")[0][0] == repeats


def test_purchases_refunds_and_churn_match_the_world(dbt_world: BuiltWorld) -> None:
    summary = dbt_world.summary
    purchases = dbt_world.query(
        "select count(*), sum(is_refunded::int), count(product_ids) from intermediate.int_purchases")[0]
    # the conftest adds one purchase of a product the seed does not know
    assert purchases == (summary["purchases"] + 1, summary["refunds"], summary["purchases"] + 1)
    assert dbt_world.query(
        "select count(*) from intermediate.int_purchases where primary_audience = 'Other'")[0][0] == 1
    churns = counts(dbt_world, """
        select reason, count(*) from intermediate.int_customer_status_changes
        where status = 'churned' group by 1
    """)
    assert churns == {"subscription_deleted": summary["churns_by_cancellation"],
                      "renewal_unpaid": summary["churns_by_unpaid_renewal"]}
    renewals = dbt_world.query(
        "select count(*) from intermediate.int_customer_status_changes where reason = 'renewed'")[0][0]
    assert renewals == summary["renewals"]


def test_suppressions_match_the_marketing_events(dbt_world: BuiltWorld) -> None:
    by_reason = counts(dbt_world, "select reason, count(*) from intermediate.int_marketing_suppressions group by 1")
    events = dbt_world.summary["brevo_events_by_type"]
    assert by_reason["unsubscribed"] == events["unsubscribed"] > 0
    assert by_reason["hard_bounce"] == events["hard_bounce"] > 0
    assert by_reason.get("blocklisted", 0) == 0, "every blocklisted Brevo contact is explained by an event"
    assert by_reason["no_consent"] > 0


@pytest.fixture(scope="module")
def replay(dbt_world: BuiltWorld, tmp_path_factory: pytest.TempPathFactory) -> tuple[datetime, Path]:
    """A copy of the world's warehouse with the facts (and what they read) rebuilt as of an earlier moment."""
    home = tmp_path_factory.mktemp("replay")
    for name in ("warehouse.duckdb", "warehouse.duckdb.wal"):
        if (dbt_world.home / name).exists():
            shutil.copy(dbt_world.home / name, home / name)
    end = datetime.fromisoformat(dbt_world.summary["window"]["end"])
    as_of = (end - timedelta(days=REPLAY_DAYS_BEFORE_END)).replace(tzinfo=None)
    completed = subprocess.run(
        [DBT_EXECUTABLE, "run", "--select", *(f"+{model}" for model in FACT_MODELS),
         "--vars", f"{{as_of: '{as_of.isoformat()}Z'}}", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(home / "target"),
         "--log-path", str(home / "logs")],
        check=False, capture_output=True, text=True, timeout=300,
        env={**os.environ, "LIFECYCLE_HOME": str(home), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )
    assert completed.returncode == 0, completed.stdout[-3000:]
    return as_of, home / "warehouse.duckdb"


def replayed(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return sorted(con.execute(sql).fetchall(), key=repr)


def cut(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=repr)


# (model, columns, the time that cuts it, rows whose later result is a cut of the earlier one)
REPLAYED_FACTS = [
    ("intermediate.int_demo_events", "demo_event_key, event_type, occurred_at, previous_invitee_uri",
     "occurred_at", "true"),
    ("intermediate.int_webinar_registrations_deduplicated", "email, webinar_code, registered_at",
     "registered_at", "true"),
    ("intermediate.int_purchases", "session_id, email, purchased_at", "purchased_at", "true"),
    ("intermediate.int_customer_status_changes", "email, status, changed_at, reason, source_id, is_transition",
     "changed_at", "true"),
    # a later consent = true lifts no_consent, so only the events are a cut
    ("intermediate.int_marketing_suppressions", "email, reason, suppressed_at", "suppressed_at",
     "reason in ('unsubscribed', 'hard_bounce')"),
]


@pytest.mark.parametrize(("model", "columns", "time_column", "rows"), REPLAYED_FACTS)
def test_event_facts_replayed_at_an_earlier_as_of_are_the_later_ones_cut_there(
        dbt_world: BuiltWorld, replay: tuple[datetime, Path], model: str, columns: str, time_column: str,
        rows: str) -> None:
    as_of, warehouse = replay
    earlier = replayed(warehouse, f"select {columns} from {model} where {rows}")
    later = cut(dbt_world.query(f"select {columns} from {model} where {rows} and {time_column} <= ?", [as_of]))
    assert earlier, model
    everything = dbt_world.query(f"select count(*) from {model} where {rows}")[0][0]
    assert len(later) < everything, "the replay is a strict cut"
    assert earlier == later


def test_tier_history_replayed_at_an_earlier_as_of_is_the_later_one_cut_there(
        dbt_world: BuiltWorld, replay: tuple[datetime, Path]) -> None:
    """Computed from change points, not snapshotted: the history as of a past moment is the present history
    up to that moment, the period then running left open."""
    as_of, warehouse = replay
    earlier = replayed(warehouse, """
        select email, tier, valid_from, valid_to, previous_tier from intermediate.int_engagement_tier_history""")
    later = cut([
        (email, tier, valid_from, valid_to if valid_to is not None and valid_to <= as_of else None, previous)
        for email, tier, valid_from, valid_to, previous in dbt_world.query("""
            select email, tier, valid_from, valid_to, previous_tier from intermediate.int_engagement_tier_history
            where valid_from <= ?""", [as_of])
    ])
    assert {row[1] for row in earlier} == {"new", "engaged", "most_engaged", "quiet"}
    assert earlier == later
    current = replayed(warehouse, "select email, engagement_tier, tier_since from marts.fct_engagement_tiers")
    assert current == cut([(email, tier, since) for email, tier, since, valid_to, _ in later if valid_to is None])
