"""REST sources against the live sandbox: first loads, incremental reloads of only what changed, the
HubSpot search path, paging, an end-to-end "nothing new loads nothing", and retried 429s."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pytest

from ingestion.landing import LandingZone
from ingestion.pipelines import SOURCE_NAMES, run_ingestion
from ingestion.sources import brevo as brevo_module
from ingestion.sources import parse_timestamp
from settings import Settings, sandbox_environment

HUBSPOT = {"Authorization": "Bearer pat-sandbox"}
BREVO = {"api-key": "xkeysib-sandbox"}


@pytest.fixture()
def config(tmp_path: Path, sandbox_url: str) -> Settings:
    return Settings.from_env(sandbox_environment(sandbox_url, tmp_path))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


NOW = datetime.now(UTC)


def query(config: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        return con.sql(sql).fetchall()


def calls(sandbox_url: str) -> dict[str, int]:
    return httpx.get(f"{sandbox_url}/_sandbox/calls").json()


def book(sandbox_url: str, n: int) -> dict:
    start = NOW + timedelta(days=2, hours=n)
    response = httpx.post(f"{sandbox_url}/_sandbox/calendly/bookings", json={
        "email": f"lead{n}@example.com", "name": f"Lead {n}", "event_name": "Demo",
        "start_time": iso(start), "end_time": iso(start + timedelta(minutes=30)),
        "created_at": iso(NOW - timedelta(days=1, hours=n)), "utm_source": "linkedin"})
    response.raise_for_status()
    return response.json()


def purchase(n: int) -> dict:
    return {"email": f"buyer{n}@example.com", "product_id": "prod_course_basics",
            "product_name": "Caregiving basics course", "amount": 2900, "currency": "usd",
            "created_at": iso(NOW - timedelta(days=2, minutes=n))}


def test_calendly_reconciliation_reloads_only_the_changed_event_and_its_invitee(
        config: Settings, sandbox_url: str) -> None:
    bookings = [book(sandbox_url, n) for n in range(3)]

    assert run_ingestion(config, only=["calendly"])["calendly"] == {
        "raw_calendly.scheduled_events": 3, "raw_calendly.invitees": 3}
    invitee_calls = calls(sandbox_url)["calendly GET /scheduled_events/{uuid}/invitees"]
    assert invitee_calls == 3

    assert sum(run_ingestion(config, only=["calendly"])["calendly"].values()) == 0
    assert calls(sandbox_url)["calendly GET /scheduled_events/{uuid}/invitees"] == invitee_calls

    httpx.post(f"{sandbox_url}/_sandbox/calendly/cancellations", json={
        "invitee_uri": bookings[1]["invitee_uri"], "canceled_at": iso(NOW)}).raise_for_status()

    assert run_ingestion(config, only=["calendly"])["calendly"] == {
        "raw_calendly.scheduled_events": 1, "raw_calendly.invitees": 1}
    assert calls(sandbox_url)["calendly GET /scheduled_events/{uuid}/invitees"] == invitee_calls + 1
    assert query(config, "select uri, status, canceled_event_key from raw_calendly.invitees "
                         "where status = 'canceled'") == [
        (bookings[1]["invitee_uri"], "canceled", f"{bookings[1]['invitee_uri']}|invitee.canceled")]
    assert query(config, "select count(*), count(*) filter (where status = 'canceled') "
                         "from raw_calendly.scheduled_events") == [(3, 1)]


def test_stripe_lists_sessions_with_line_items_a_hundred_per_call(
        config: Settings, sandbox_url: str) -> None:
    httpx.post(f"{sandbox_url}/_sandbox/stripe/purchases",
               json=[purchase(n) for n in range(120)]).raise_for_status()

    assert run_ingestion(config, only=["stripe"])["stripe"] == {
        "raw_stripe.events": 120, "raw_stripe.checkout_sessions": 120, "raw_stripe.checkout_line_items": 120}
    made = calls(sandbox_url)
    assert made["stripe GET /v1/events"] == 2
    assert made["stripe GET /v1/checkout/sessions"] == 2
    assert made.get("stripe GET /v1/checkout/sessions/{id}/line_items", 0) == 0
    assert query(config, "select count(distinct session_id), sum(amount_total) "
                         "from raw_stripe.checkout_line_items") == [(120, 120 * 2900)]

    assert sum(run_ingestion(config, only=["stripe"])["stripe"].values()) == 0

    httpx.post(f"{sandbox_url}/_sandbox/stripe/purchases", json={**purchase(999), "created_at": iso(NOW)})
    assert run_ingestion(config, only=["stripe"])["stripe"] == {
        "raw_stripe.events": 1, "raw_stripe.checkout_sessions": 1, "raw_stripe.checkout_line_items": 1}


def test_hubspot_lists_first_then_searches_for_changes(config: Settings, sandbox_url: str) -> None:
    seeded = httpx.post(f"{sandbox_url}/_sandbox/hubspot/contacts", json=[
        {"properties": {"email": f"crm{n}@example.com", "firstname": f"C{n}", "hubspot_owner_id": "102",
                        "lifecyclestage": "lead"}} for n in range(3)]).json()["ids"]

    assert run_ingestion(config, only=["crm"])["crm"] == {"raw_crm.contacts": 3, "raw_crm.owners": 3}
    made = calls(sandbox_url)
    assert made["hubspot GET /crm/v3/objects/contacts"] == 1
    assert "hubspot POST /crm/v3/objects/contacts/search" not in made
    assert query(config, "select id, email, hubspot_owner_id, lifecyclestage, customer_segment "
                         "from raw_crm.contacts order by id") == [
        (seeded[n], f"crm{n}@example.com", "102", "lead", None) for n in range(3)]

    assert sum(run_ingestion(config, only=["crm"])["crm"].values()) == 0
    assert calls(sandbox_url)["hubspot POST /crm/v3/objects/contacts/search"] == 1

    httpx.patch(f"{sandbox_url}/hubspot/crm/v3/objects/contacts/{seeded[1]}", headers=HUBSPOT,
                json={"properties": {"firstname": "Changed"}}).raise_for_status()

    assert run_ingestion(config, only=["crm"])["crm"] == {"raw_crm.contacts": 1}
    made = calls(sandbox_url)
    assert made["hubspot POST /crm/v3/objects/contacts/search"] == 2
    assert made["hubspot GET /crm/v3/objects/contacts"] == 1
    assert query(config, "select firstname from raw_crm.contacts order by id") == [("C0",), ("Changed",), ("C2",)]


def test_hubspot_lists_every_contact_when_most_changed_and_loads_only_the_changed(
    config: Settings, sandbox_url: str
) -> None:
    emails = [f"bulk{n}@example.com" for n in range(450)]
    httpx.post(f"{sandbox_url}/_sandbox/hubspot/contacts",
               json=[{"properties": {"email": email, "firstname": "Old"}} for email in emails]).raise_for_status()
    run_ingestion(config, only=["crm"])
    for start in range(0, 400, 100):  # a bulk write to 400 of 450 contacts, e.g. a first full sync
        httpx.post(f"{sandbox_url}/hubspot/crm/v3/objects/contacts/batch/upsert", headers=HUBSPOT, json={
            "inputs": [{"idProperty": "email", "id": email, "properties": {"firstname": "New"}}
                       for email in emails[start:start + 100]]}).raise_for_status()
    before = calls(sandbox_url)

    assert run_ingestion(config, only=["crm"])["crm"] == {"raw_crm.contacts": 400}

    made = calls(sandbox_url)
    # one search page says 400 changed, one counts everyone; 5 list pages beat 2 more search pages
    new_calls = {endpoint: count - before.get(endpoint, 0) for endpoint, count in made.items()
                 if count != before.get(endpoint)}
    assert new_calls == {
        "hubspot POST /crm/v3/objects/contacts/search": 2, "hubspot GET /crm/v3/objects/contacts": 5,
        "hubspot GET /crm/v3/owners": 1}
    assert query(config, "select firstname, count(*) from raw_crm.contacts group by all order by 1") == [
        ("New", 400), ("Old", 50)]


def test_brevo_loads_contacts_and_email_events_incrementally(config: Settings, sandbox_url: str) -> None:
    for n in range(2):
        httpx.post(f"{sandbox_url}/brevo/v3/contacts", headers=BREVO, json={
            "email": f"sub{n}@example.com", "attributes": {"FIRSTNAME": f"S{n}"}}).raise_for_status()
    httpx.post(f"{sandbox_url}/_sandbox/brevo/events", json=[
        {"email": "sub0@example.com", "event": "opened", "at": iso(NOW - timedelta(days=3))},
        {"email": "sub0@example.com", "event": "clicked", "at": iso(NOW - timedelta(days=2)),
         "link": "https://example.com/a"},
    ]).raise_for_status()

    assert run_ingestion(config, only=["marketing"])["marketing"] == {
        "raw_marketing.contacts": 2, "raw_marketing.email_events": 2}
    assert query(config, "select email, attributes__firstname from raw_marketing.contacts order by email") == [
        ("sub0@example.com", "S0"), ("sub1@example.com", "S1")]
    assert query(config, "select event, link, length(event_key) from raw_marketing.email_events order by date") == [
        ("opened", None, 64), ("clicks", "https://example.com/a", 64)]

    assert sum(run_ingestion(config, only=["marketing"])["marketing"].values()) == 0

    httpx.post(f"{sandbox_url}/_sandbox/brevo/events", json={
        "email": "sub1@example.com", "event": "opened", "at": iso(NOW - timedelta(hours=1))}).raise_for_status()
    httpx.put(f"{sandbox_url}/brevo/v3/contacts/sub0%40example.com", headers=BREVO,
              json={"attributes": {"FIRSTNAME": "Renamed"}}).raise_for_status()

    assert run_ingestion(config, only=["marketing"])["marketing"] == {
        "raw_marketing.contacts": 1, "raw_marketing.email_events": 1}
    assert query(config, "select count(*) from raw_marketing.email_events") == [(3,)]
    assert query(config, "select attributes__firstname from raw_marketing.contacts "
                         "where email = 'sub0@example.com'") == [("Renamed",)]


def test_brevo_reads_events_newest_first_and_stops_at_the_cursor(
    config: Settings, sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(brevo_module, "EVENTS_PAGE_SIZE", 2)
    httpx.post(f"{sandbox_url}/brevo/v3/contacts", headers=BREVO, json={"email": "sub0@example.com"}).raise_for_status()
    httpx.post(f"{sandbox_url}/_sandbox/brevo/events", json=[
        {"email": "sub0@example.com", "event": "opened", "at": iso(NOW - timedelta(hours=20, minutes=n))}
        for n in range(6)]).raise_for_status()
    assert run_ingestion(config, only=["marketing"])["marketing"]["raw_marketing.email_events"] == 6
    httpx.post(f"{sandbox_url}/_sandbox/brevo/events", json={
        "email": "sub0@example.com", "event": "clicked", "at": iso(NOW - timedelta(hours=1)),
        "link": "https://example.com/new"}).raise_for_status()
    before = calls(sandbox_url)["brevo GET /v3/smtp/statistics/events"]

    assert run_ingestion(config, only=["marketing"])["marketing"] == {"raw_marketing.email_events": 1}

    # page 1: the new click and the newest open (the cursor itself, which may share its instant with the next
    # page); page 2 reaches back past the cursor, and the reading stops there (oldest first took 4 pages)
    assert calls(sandbox_url)["brevo GET /v3/smtp/statistics/events"] - before == 2
    assert query(config, "select count(*), count(distinct event_key) from raw_marketing.email_events") == [(7, 7)]


def test_every_source_loads_then_a_second_run_loads_nothing(config: Settings, sandbox_url: str) -> None:
    LandingZone(config.landing_dir, "collector").append("forms", {
        "id": "frm_1", "form_id": "newsletter", "submitted_at": iso(NOW), "received_at": iso(NOW),
        "origin": "collector", "fields": {"email": "all@example.com", "extra": {}}})
    book(sandbox_url, 1)
    httpx.post(f"{sandbox_url}/_sandbox/stripe/purchases", json=purchase(1)).raise_for_status()
    httpx.post(f"{sandbox_url}/_sandbox/hubspot/contacts",
               json={"properties": {"email": "all@example.com"}}).raise_for_status()
    httpx.post(f"{sandbox_url}/_sandbox/brevo/events",
               json={"email": "all@example.com", "event": "opened", "at": iso(NOW)}).raise_for_status()

    first = run_ingestion(config)

    assert list(first) == list(SOURCE_NAMES)
    assert all(sum(tables.values()) > 0 for tables in first.values()), first

    second = run_ingestion(config)

    assert second == {name: {} for name in SOURCE_NAMES}


def test_a_429_with_retry_after_is_retried_and_the_run_completes(
        config: Settings, sandbox_url: str) -> None:
    httpx.post(f"{sandbox_url}/_sandbox/stripe/purchases",
               json=[purchase(n) for n in range(3)]).raise_for_status()
    httpx.post(f"{sandbox_url}/_sandbox/faults",
               json={"service": "stripe", "rate_429": 0.5, "seed": 3}).raise_for_status()

    counts = run_ingestion(config, only=["stripe"])["stripe"]

    assert counts == {"raw_stripe.events": 3, "raw_stripe.checkout_sessions": 3,
                      "raw_stripe.checkout_line_items": 3}
    made = calls(sandbox_url)
    assert made["stripe GET /v1/events"] + made["stripe GET /v1/checkout/sessions"] > 2


def test_brevo_event_fields_beyond_the_documented_ones_are_kept(config: Settings, sandbox_url: str) -> None:
    """Events go through Arrow with a fixed schema; anything else the API sends lands in ``extra``."""
    httpx.post(f"{sandbox_url}/brevo/v3/smtp/email", headers=BREVO, json={
        "to": [{"email": "tagged@example.com"}], "templateId": 7, "params": {},
        "tags": ["demo_nurture", "key-1"]}).raise_for_status()

    run_ingestion(config, only=["marketing"])

    rows = query(config, "select event, template_id, tag, extra from raw_marketing.email_events order by event")
    assert [(event, template_id, tag) for event, template_id, tag, _ in rows] == [
        ("delivered", 7, "demo_nurture"), ("requests", 7, "demo_nurture")]
    assert all(json.loads(extra)["tags"] == ["demo_nurture", "key-1"] for *_, extra in rows)
    assert query(config, "select data_type from information_schema.columns where table_schema = "
                         "'raw_marketing' and table_name = 'email_events' and column_name = 'date'") == [
        ("TIMESTAMP WITH TIME ZONE",)]


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-09-02T08:00:00Z", datetime(2026, 9, 2, 8, tzinfo=UTC)),
    ("2026-09-02T10:00:00.250+02:00", datetime(2026, 9, 2, 8, 0, 0, 250000, tzinfo=UTC)),
    ("2026-09-02 08:00:00", datetime(2026, 9, 2, 8, tzinfo=UTC)),
    ("2026-09-02T08:00:00.123456789Z", datetime(2026, 9, 2, 8, 0, 0, 123456, tzinfo=UTC)),
    ("Wed, 02 Sep 2026 08:00:00 GMT", None),
    (1788336000000, datetime(2026, 9, 2, 8, tzinfo=UTC)),
    ("1788336000000", datetime(2026, 9, 2, 8, tzinfo=UTC)),
])
def test_timestamps_are_read_as_utc_in_every_form_vendors_send(value: object, expected: datetime | None) -> None:
    """The fast path (Python's ISO parser) and dlt's parser agree; what neither reads is an error, which rejects
    a landed line rather than loading it wrong."""
    if expected is None:
        with pytest.raises(ValueError):
            parse_timestamp(value)
    else:
        assert parse_timestamp(value) == expected
        assert parse_timestamp(value).utcoffset() == timedelta(0)
