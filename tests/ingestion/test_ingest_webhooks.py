"""Webhook copies (through a live collector into the landing zone) and REST copies of the same Calendly
bookings and Stripe events: both raw copies are kept and they carry the same dedup key. Calendly's invitees
are read over REST only for what the webhooks missed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pytest

from ingestion.collector.app import create_collector_app
from ingestion.landing import LandingZone, landing_files
from ingestion.pipelines import run_ingestion
from settings import Settings, sandbox_environment
from tests.servers import serve, unsubscribe_calendly

CALENDLY = {"Authorization": "Bearer calendly-sandbox"}
STRIPE = {"Authorization": "Bearer sk_test_sandbox"}


def sandbox_config(tmp_path: Path, sandbox_url: str) -> Settings:
    return Settings.from_env(sandbox_environment(sandbox_url, tmp_path))


@pytest.fixture()
def config(tmp_path: Path, sandbox_url: str) -> Iterator[Settings]:
    """A live collector landing in tmp_path, subscribed to the sandbox's Calendly and Stripe webhooks."""
    config = sandbox_config(tmp_path, sandbox_url)
    app = create_collector_app(LandingZone(config.landing_dir, "collector"),
                               calendly_signing_key="calendly-signing-sandbox",
                               stripe_webhook_secret="whsec_sandbox")
    with serve(app) as collector_url:
        organization = httpx.get(f"{sandbox_url}/calendly/users/me", headers=CALENDLY).json()[
            "resource"]["current_organization"]
        httpx.post(f"{sandbox_url}/calendly/webhook_subscriptions", headers=CALENDLY, json={
            "url": f"{collector_url}/webhooks/calendly", "events": ["invitee.created", "invitee.canceled"],
            "organization": organization, "scope": "organization",
        }).raise_for_status()
        httpx.post(f"{sandbox_url}/stripe/v1/webhook_endpoints", headers=STRIPE, data={
            "url": f"{collector_url}/webhooks/stripe", "enabled_events[]": "*",
        }).raise_for_status()
        yield config


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def query(config: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        return con.sql(sql).fetchall()


def invitee_calls(sandbox_url: str) -> int:
    return httpx.get(f"{sandbox_url}/_sandbox/calls").json().get(
        "calendly GET /scheduled_events/{uuid}/invitees", 0)


def test_a_calendly_booking_seen_by_webhook_and_by_rest_shares_its_dedup_key(
        config: Settings, sandbox_url: str) -> None:
    """The REST copy is read only for what the webhooks missed: here the cancellation, after the collector's
    subscription was deleted; it carries the dedup key of the webhook's copy of the booking."""
    start = datetime.now(UTC) + timedelta(days=3)
    booking = httpx.post(f"{sandbox_url}/_sandbox/calendly/bookings", json={
        "email": "ada@example.com", "name": "Ada Lovelace", "event_name": "Demo",
        "start_time": iso(start), "end_time": iso(start + timedelta(minutes=30)),
        "created_at": iso(start - timedelta(days=3)), "utm_source": "google", "utm_campaign": "spring",
    }).json()
    invitee_uri = booking["invitee_uri"]

    first = run_ingestion(config, only=["calendly"])["calendly"]

    assert first == {"raw_calendly.webhook_events": 1, "raw_calendly.scheduled_events": 1}
    assert invitee_calls(sandbox_url) == 0
    assert query(config, "select dedup_key, payload__tracking__utm_campaign, payload__scheduled_event__name "
                         "from raw_calendly.webhook_events") == [
        (f"{invitee_uri}|invitee.created", "spring", "Demo")]

    unsubscribe_calendly(sandbox_url)
    httpx.post(f"{sandbox_url}/_sandbox/calendly/cancellations", json={
        "invitee_uri": invitee_uri, "canceled_at": iso(datetime.now(UTC))}).raise_for_status()
    second = run_ingestion(config, only=["calendly"])["calendly"]

    assert second == {"raw_calendly.scheduled_events": 1, "raw_calendly.invitees": 1}
    assert invitee_calls(sandbox_url) == 1
    assert query(config, """
        select w.event, i.uri, i.tracking__utm_source, i.status, i.canceled_event_key,
               i.cancellation__canceler_type is not null
        from raw_calendly.webhook_events w join raw_calendly.invitees i on w.dedup_key = i.created_event_key
        """) == [("invitee.created", invitee_uri, "google", "canceled", f"{invitee_uri}|invitee.canceled", True)]
    assert query(config, "select status from raw_calendly.scheduled_events") == [("canceled",)]


def test_a_corrupt_webhook_landing_line_is_kept_in_rejected_lines(
        config: Settings, sandbox_url: str) -> None:
    start = datetime.now(UTC) + timedelta(days=1)
    httpx.post(f"{sandbox_url}/_sandbox/calendly/bookings", json={
        "email": "bob@example.com", "name": "Bob", "event_name": "Demo", "start_time": iso(start),
        "end_time": iso(start + timedelta(minutes=30)), "created_at": iso(start - timedelta(days=1)),
    }).raise_for_status()
    (path,) = landing_files(config.landing_dir, "calendly")
    with open(path, "ab") as handle:
        handle.write(b'{"id": "cal_x", "received_at": "2025-01-01T00:00:00Z", "event": {"event": "invitee.created"}}\n')

    counts = run_ingestion(config, only=["calendly"])["calendly"]

    assert counts["raw_calendly.webhook_events"] == 1
    assert counts["raw_calendly.rejected_lines"] == 1
    assert query(config, "select landing_line, error from raw_calendly.rejected_lines") == [
        (2, "TypeError: 'event' must be a Calendly webhook body with a 'payload' object")]


def test_a_stripe_event_seen_by_webhook_and_by_the_events_api_shares_its_dedup_key(
        config: Settings, sandbox_url: str) -> None:
    now = datetime.now(UTC)
    purchase = httpx.post(f"{sandbox_url}/_sandbox/stripe/purchases", json={
        "email": "carla@example.com", "name": "Carla", "product_id": "prod_toolkit",
        "product_name": "Family care toolkit", "amount": 4900, "currency": "usd",
        "created_at": iso(now - timedelta(hours=2)), "utm_source": "newsletter",
    }).json()

    first = run_ingestion(config, only=["stripe"])["stripe"]

    assert first == {"raw_stripe.webhook_events": 1, "raw_stripe.events": 1, "raw_stripe.checkout_sessions": 1,
                     "raw_stripe.checkout_line_items": 1}
    assert query(config, """
        select w.dedup_key, w.type, e.id, w.id <> e.id
        from raw_stripe.webhook_events w join raw_stripe.events e on w.dedup_key = e.dedup_key""") == [
        (purchase["event_id"], "checkout.session.completed", purchase["event_id"], True)]
    assert query(config, """
        select s.id, s.customer_details__email, s.metadata__utm_source, l.description, l.price__product, l.quantity
        from raw_stripe.checkout_sessions s join raw_stripe.checkout_line_items l on l.session_id = s.id""") == [
        (purchase["session_id"], "carla@example.com", "newsletter", "Family care toolkit", "prod_toolkit", 1)]

    httpx.post(f"{sandbox_url}/_sandbox/stripe/purchases", json={
        "email": "dan@example.com", "product_id": "prod_consult", "product_name": "1:1 consultation",
        "amount": 9900, "currency": "usd", "created_at": iso(now - timedelta(hours=1)),
    }).raise_for_status()

    second = run_ingestion(config, only=["stripe"])["stripe"]

    assert second == first
    assert query(config, "select count(*), count(distinct dedup_key) from raw_stripe.webhook_events") == [(2, 2)]
    assert query(config, "select count(*) from raw_stripe.checkout_line_items") == [(2,)]
