"""The dbt project on the world generator's data: builds twice, flags bad records, stages cleanly, and
builds on a warehouse that dlt has not filled yet."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from activations.state import migrate
from ingestion.forms import is_valid_email
from orchestration.resources import DBT_EXECUTABLE, DBT_PROJECT_DIR
from sandbox.world import UNKNOWN_ORG_TYPES, UNKNOWN_WEBINAR_CODES, WEBINAR_CODES
from tests.dbt.conftest import UNKNOWN_FORM_ID, UNKNOWN_PRODUCT_ID, WORLD_CONTACTS, BuiltWorld, run_transform

KNOWN_ORG_TYPES = {"provider organization", "home care agency", "assisted living", "ymca", "hospital",
                   "individual"}


def test_dbt_build_succeeds_twice_on_the_world(dbt_world: BuiltWorld) -> None:
    first, second = dbt_world.builds
    assert first.success
    assert second.success
    for build in (first, second):
        materialized = {event.asset_key for event in build.get_asset_materialization_events()}
        assert dg.AssetKey(["marts", "dq_flagged_records"]) in materialized
        assert dg.AssetKey(["staging", "stg_forms__submissions"]) in materialized
        checks = build.get_asset_check_evaluations()
        assert len(checks) > 50
        assert all(check.passed for check in checks)
    assert dbt_world.query("select count(*) from staging.stg_forms__submissions")[0][0] > WORLD_CONTACTS


def test_staging_normalizes_emails_and_flags_them_like_the_collector(dbt_world: BuiltWorld) -> None:
    rows = dbt_world.query("select email_raw, email, is_valid_email from staging.stg_forms__submissions")
    assert any(raw != email for raw, email, _ in rows), "the world submits some emails in mixed case or padded"
    for raw, email, valid in rows:
        assert email == raw.strip().lower()
        assert valid == is_valid_email(raw), raw
    invalid = sum(1 for *_, valid in rows if not valid)
    assert invalid == dbt_world.summary["bad_records"] >= 3

    for model in ("stg_calendly__webhook_events", "stg_calendly__invitees", "stg_stripe__checkout_sessions",
                  "stg_crm__contacts", "stg_marketing__contacts"):
        pairs = dbt_world.query(f"select email_raw, email from staging.{model} where email_raw is not null")
        assert pairs, model
        assert all(email == raw.strip().lower() for raw, email in pairs), model


def test_stripe_webhook_and_api_copies_are_one_event(dbt_world: BuiltWorld) -> None:
    both = dbt_world.query("""
        select count(*) from staging.stg_stripe__events as api
        where exists (select 1 from staging.stg_stripe__webhook_events as hook where hook.event_id = api.event_id)
    """)[0][0]
    assert both > 0, "the Events API returns the last 30 days, which the webhooks also delivered"
    distinct = dbt_world.query("""
        select count(distinct event_id) from (
            select event_id from staging.stg_stripe__webhook_events
            union all select event_id from staging.stg_stripe__events)
    """)[0][0]
    assert dbt_world.query("select count(*) from intermediate.int_stripe__events")[0][0] == distinct


def test_dq_flagged_records_lists_the_bad_records_with_reasons(dbt_world: BuiltWorld) -> None:
    flagged: dict[str, set[str]] = {}
    for reason, record_id in dbt_world.query("select reason, record_id from marts.dq_flagged_records"):
        flagged.setdefault(reason, set()).add(record_id)

    submissions = dbt_world.query("select id, form_id, email, org_type, webinar_code from raw_forms.submissions")
    expected_invalid = {sid for sid, _, email, _, _ in submissions if not is_valid_email(email)}
    expected_org = {sid for sid, _, _, org, _ in submissions
                    if org and org.strip() and org.strip().lower() not in KNOWN_ORG_TYPES}
    expected_code = {sid for sid, form_id, _, _, code in submissions
                     if form_id == "webinar" and (code or "").strip().upper() not in WEBINAR_CODES}
    assert expected_invalid and expected_org and expected_code, "the world holds each kind of bad record"
    forms_flagged = {row[0] for row in dbt_world.query(
        "select record_id from marts.dq_flagged_records where source = 'forms' and reason = 'invalid_email'")}
    assert forms_flagged == expected_invalid
    assert flagged["unknown_org_type"] == expected_org
    assert flagged["unknown_webinar_code"] == expected_code
    details = dict(dbt_world.query("""
        select reason, list(distinct detail order by detail) from marts.dq_flagged_records
        where reason in ('unknown_org_type', 'unknown_webinar_code', 'unknown_form_id') group by reason
    """))
    assert set(details["unknown_org_type"]) <= set(UNKNOWN_ORG_TYPES)
    assert set(details["unknown_webinar_code"]) <= set(UNKNOWN_WEBINAR_CODES)
    assert details["unknown_form_id"] == [UNKNOWN_FORM_ID]

    assert dbt_world.query("""
        select count(*) from marts.dq_flagged_records
        where reason = 'unknown_product' and record_type = 'checkout_line_item' and detail = ?
    """, [UNKNOWN_PRODUCT_ID])[0][0] == 1
    rejected = dbt_world.query("""
        select record_id, detail from marts.dq_flagged_records
        where reason = 'rejected_landing_line' order by record_id
    """)
    assert rejected == [("forms/2026-08-01.hand-edited.jsonl:1", "missing field 'id'"),
                        ("forms/2026-08-01.hand-edited.jsonl:2", rejected[1][1])]
    assert rejected[1][1].startswith("invalid JSON")


def test_flagged_records_stay_in_the_pipeline(dbt_world: BuiltWorld) -> None:
    """Raw data is never dropped (docs/sources.md): a flagged submission is still in the intermediate model,
    an unknown org type with audience Other."""
    kept = dbt_world.query("""
        select submissions.primary_audience, submissions.segment
        from marts.dq_flagged_records as flagged
        join intermediate.int_forms__submissions as submissions on submissions.submission_id = flagged.record_id
        where flagged.reason = 'unknown_org_type'
    """)
    assert kept
    assert set(kept) == {("Other", None)}


def test_dbt_unit_tests_run_and_pass(dbt_world: BuiltWorld, tmp_path: Path) -> None:
    """``dbt test --select test_type:unit``: the SQL logic on fixed inputs. dbt reads the input tables'
    column types, so it runs against the session's warehouse; their data does not matter."""
    completed = subprocess.run(
        [DBT_EXECUTABLE, "test", "--select", "test_type:unit", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target"),
         "--log-path", str(tmp_path / "logs")],
        check=False, capture_output=True, text=True, timeout=120,
        env={**os.environ, "LIFECYCLE_HOME": str(dbt_world.home), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )
    assert completed.returncode == 0, completed.stdout[-3000:]
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    unit_tests = {result["unique_id"].rsplit(".", 1)[-1]: result["status"] for result in results
                  if result["unique_id"].startswith("unit_test.")}
    assert unit_tests["test_stg_forms__submissions_normalizes_and_flags_emails"] == "pass"
    assert unit_tests["test_int_forms__submissions_keeps_events_up_to_as_of_and_tags_audiences"] == "pass"
    assert set(unit_tests.values()) == {"pass"}
    declared = json.loads((tmp_path / "target" / "manifest.json").read_text())["unit_tests"]
    assert len(unit_tests) == len(declared) >= 50


def test_dbt_builds_on_a_warehouse_dlt_has_not_filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh install, or a company without webhooks: raw tables that do not exist stage as empty views."""
    monkeypatch.setenv("LIFECYCLE_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()

    result = run_transform()

    assert result.success
    with duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from staging.stg_calendly__webhook_events").fetchone() == (0,)
        assert con.execute("select count(*) from marts.dq_flagged_records").fetchone() == (0,)
        assert con.execute("select count(*) from activations.send_ledger").fetchone() == (0,)


def run_dbt(home: Path, target: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DBT_EXECUTABLE, *args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(target / "target"), "--log-path", str(target / "logs")],
        check=False, capture_output=True, text=True, timeout=180,
        env={**os.environ, "LIFECYCLE_HOME": str(home), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )


def test_dbt_on_its_own_reads_the_activation_tables_before_they_exist_then_the_real_ones(tmp_path: Path) -> None:
    """dbt run by hand before any activation: the tables the activations own (activations/state.py) are
    not there, and the models that read them build on empty stand-ins; once migrated in, they read them."""
    build = ("build", "--select", "stg_activations__sync_runs", "stg_activations__sync_log", "+int_sequence_messages",
             "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test")

    before = run_dbt(tmp_path, tmp_path, *build)

    assert before.returncode == 0, before.stdout[-3000:]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        assert con.execute("select count(*) from information_schema.tables "
                           "where table_schema = 'activations'").fetchone() == (0,)
        assert con.execute("select count(*) from staging.stg_activations__sync_runs").fetchone() == (0,)
        assert con.execute("select count(*) from intermediate.int_sequence_messages").fetchone() == (0,)
        migrate(con)
        con.execute("insert into activations.sync_runs (run_id, destination, object, status) "
                    "values ('run-1', 'brevo', 'emails', 'ok')")

    after = run_dbt(tmp_path, tmp_path, *build)

    assert after.returncode == 0, after.stdout[-3000:]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select sync_run_id, status from staging.stg_activations__sync_runs").fetchall() == [
            ("run-1", "ok")]


def test_the_marts_summary_reads_the_built_marts(dbt_world: BuiltWorld) -> None:
    """What `lifecycle demo` prints: figures straight from the marts, and no crash on tables without rows
    (this world was never activated: the transform created the sync runs' table empty)."""
    from orchestration.reporting import marts_summary

    summary = marts_summary(dbt_world.home / "warehouse.duckdb")
    contacts = dbt_world.query("select count(*) from marts.dim_contacts where segment = 'B2B'")[0][0]
    b2b_lines = [line for line in summary.splitlines() if line.strip().startswith("B2B / ")]
    assert sum(int(line.split()[-1].replace(",", "")) for line in b2b_lines) == contacts > 0
    assert "rows synced to the destinations:\n  (none)" in summary
