"""Contacts, touches and the CRM / marketing sync payloads on the world generator's data (docs/README.md), checked against the raw tables and the generator's own counts: the payloads carry exactly the
destinations' field names, both systems get the same contacts, an original touch the CRM already holds is
never overwritten, each demo event is one note, and a touch's source follows the referrer seed."""

from __future__ import annotations

import csv
from urllib.parse import urlparse

import dagster as dg

from ingestion.forms import is_valid_email
from orchestration.resources import DBT_PROJECT_DIR
from tests.dbt.conftest import BuiltWorld

HUBSPOT_PROPERTIES = [
    "email", "firstname", "lastname", "company", "phone", "hs_lead_status", "customer_segment",
    "primary_audience", "form_source", "original_touch_source", "original_touch_campaign", "original_touch_at",
    "latest_touch_source", "latest_touch_campaign", "latest_touch_at", "webinar_history", "demo_booked_at",
    "demo_event_name", "customer_status", "engagement_tier",
]
BREVO_ATTRIBUTES = [
    "FIRSTNAME", "LASTNAME", "SEGMENT", "PRIMARY_AUDIENCE", "FORM_SOURCE", "ORIGINAL_SOURCE", "LATEST_SOURCE",
    "IS_CLIENT", "DEMO_BOOKED", "DEMO_DATE", "DEMO_EVENT_NAME", "WEBINAR_HISTORY", "ENGAGEMENT_TIER",
    "CUSTOMER_STATUS",
]
BREVO_BOOLEANS = {"IS_CLIENT", "DEMO_BOOKED"}
SYNC_MODELS = ("sync_crm__contacts", "sync_marketing__contacts", "sync_crm__notes")


def column_types(world: BuiltWorld, table: str) -> list[tuple[str, str]]:
    return world.query(
        "select column_name, data_type from information_schema.columns"
        " where table_schema = 'sync' and table_name = ? order by ordinal_position", [table])


def valid(emails: list[tuple[str | None]]) -> set[str]:
    return {email.strip().lower() for (email,) in emails if email and is_valid_email(email)}


def test_payloads_carry_exactly_the_destination_fields(dbt_world: BuiltWorld) -> None:
    """docs/field-names.md names, HubSpot values all strings, Brevo booleans as booleans; never-written HubSpot
    properties are not columns at all."""
    assert column_types(dbt_world, "sync_crm__contacts") == [(name, "VARCHAR") for name in HUBSPOT_PROPERTIES]
    assert column_types(dbt_world, "sync_marketing__contacts") == [("email", "VARCHAR")] + [
        (name, "BOOLEAN" if name in BREVO_BOOLEANS else "VARCHAR") for name in BREVO_ATTRIBUTES]
    assert [name for name, _ in column_types(dbt_world, "sync_crm__notes")] == [
        "note_key", "email", "note_type", "hs_timestamp", "hs_note_body"]


def test_the_transform_job_builds_the_sync_models(dbt_world: BuiltWorld) -> None:
    for build in dbt_world.builds:
        materialized = {event.asset_key for event in build.get_asset_materialization_events()}
        assert {dg.AssetKey(["sync", name]) for name in SYNC_MODELS} <= materialized
        assert dg.AssetKey(["marts", "dim_contacts"]) in materialized


def test_both_systems_get_every_contact(dbt_world: BuiltWorld) -> None:
    """docs/contacts-and-touches.md#both-systems-in-one-run: every valid email that submitted a form, booked or paid is one contact, in both payloads."""
    expected = (
        valid(dbt_world.query("select email from raw_forms.submissions"))
        | valid(dbt_world.query("select email_raw from staging.stg_calendly__invitees"))
        | valid(dbt_world.query("select payload__email from raw_calendly.webhook_events"))
        | valid(dbt_world.query("select coalesce(customer_details__email, customer_email) from raw_stripe.checkout_sessions"
                                " where status = 'complete' and payment_status = 'paid'"))
    )
    contacts = {email for (email,) in dbt_world.query("select email from marts.dim_contacts")}
    assert contacts == expected
    assert {email for (email,) in dbt_world.query("select email from sync.sync_crm__contacts")} == expected
    assert {email for (email,) in dbt_world.query("select email from sync.sync_marketing__contacts")} == expected


def test_an_original_touch_the_crm_holds_is_never_overwritten(dbt_world: BuiltWorld) -> None:
    """docs/contacts-and-touches.md#attribution-is-never-overwritten: CRM contacts seeded with an original touch get no original_touch_* written, and Brevo shows
    the CRM's; CRM contacts with an owner but no original touch get ours (set if empty)."""
    kept = dbt_world.query("""
        select crm.original_touch_source, sync.original_touch_source, sync.original_touch_campaign,
               sync.original_touch_at, brevo."ORIGINAL_SOURCE", sync.latest_touch_source
        from raw_crm.contacts as crm
        join sync.sync_crm__contacts as sync on sync.email = lower(trim(crm.email))
        join sync.sync_marketing__contacts as brevo on brevo.email = sync.email
        where crm.original_touch_source is not null
    """)
    assert len(kept) == dbt_world.summary["crm_with_original_touch"] > 0
    for crm_source, source, campaign, at, brevo_source, latest in kept:
        assert (source, campaign, at) == (None, None, None)
        assert brevo_source == crm_source
        assert latest is not None

    filled = dbt_world.query("""
        select sync.original_touch_source, touches.source, sync.original_touch_at,
               cast(epoch_ms(touches.occurred_at) as varchar)
        from raw_crm.contacts as crm
        join sync.sync_crm__contacts as sync on sync.email = lower(trim(crm.email))
        join marts.fct_touches as touches on touches.email = sync.email and touches.is_original_touch
        where crm.original_touch_source is null and crm.hubspot_owner_id is not null
    """)
    assert filled
    for source, touch_source, at, touch_at in filled:
        assert (source, at) == (touch_source, touch_at)


def test_each_demo_event_is_one_note(dbt_world: BuiltWorld) -> None:
    """docs/contacts-and-touches.md#history-is-appended, docs/demos.md#demo-bookings: a note per booking, reschedule and plain cancellation; a reschedule reads
    "rescheduled from X to Y" whichever webhook came first."""
    summary = dbt_world.summary
    by_type = dict(dbt_world.query("select note_type, count(*) from sync.sync_crm__notes group by 1"))
    assert by_type == {"booked": summary["bookings"], "rescheduled": summary["reschedules"],
                       "canceled": summary["cancellations"]}
    bodies = [body for (body,) in dbt_world.query(
        "select hs_note_body from sync.sync_crm__notes where note_type = 'rescheduled'")]
    assert all(body.startswith("Demo rescheduled from ") and " UTC to " in body for body in bodies)


def test_form_touch_sources_follow_utm_then_the_referrer_seed(dbt_world: BuiltWorld) -> None:
    """docs/contacts-and-touches.md#touch-source end to end: utm_source if present, else the referrer's domain through the seed (or the
    domain itself), else direct."""
    with (DBT_PROJECT_DIR / "seeds" / "referrer_sources.csv").open(newline="") as seed:
        mapped = {row["referrer_domain"]: row["source"] for row in csv.DictReader(seed)}
    rows = dbt_world.query("""
        select raw.utm_source, raw.referrer, touches.source
        from raw_forms.submissions as raw
        join marts.fct_touches as touches on touches.touch_id = 'form:' || raw.id
    """)
    bases = set()
    for utm_source, referrer, source in rows:
        if utm_source and utm_source.strip():
            expected, basis = utm_source.strip(), "utm"
        elif referrer and referrer.strip():
            domain = (urlparse(referrer.strip()).hostname or "").removeprefix("www.")
            expected, basis = mapped.get(domain, domain), "referrer"
        else:
            expected, basis = "direct", "direct"
        assert source == expected, (utm_source, referrer)
        bases.add(basis)
    assert bases == {"utm", "referrer", "direct"}
