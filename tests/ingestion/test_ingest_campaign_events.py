"""Newsletter engagement: Brevo's marketing webhook (emulated) -> the collector -> the landing zone -> dlt into
``raw_marketing.campaign_events``, one row per event however often Brevo delivers it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import httpx
import pytest

from ingestion.collector.app import create_collector_app
from ingestion.landing import LandingZone, landing_files
from ingestion.pipelines import run_ingestion
from settings import Settings
from tests.ingestion.test_ingest_webhooks import sandbox_config
from tests.servers import serve

TOKEN = "brevo-webhook-test"
BREVO = {"api-key": "xkeysib-sandbox"}


@pytest.fixture()
def collected(tmp_path: Path, sandbox_url: str) -> Iterator[tuple[Settings, str]]:
    """A live collector landing in tmp_path, registered as a batched marketing webhook at the sandbox's Brevo."""
    config = sandbox_config(tmp_path, sandbox_url)
    app = create_collector_app(LandingZone(config.landing_dir, "collector"), calendly_signing_key="k",
                               stripe_webhook_secret="s", brevo_webhook_token=TOKEN)
    with serve(app) as collector_url:
        httpx.post(f"{sandbox_url}/brevo/v3/webhooks", headers=BREVO, json={
            "url": f"{collector_url}/webhooks/brevo", "type": "marketing", "batched": True,
            "events": ["opened", "click", "hardBounce", "unsubscribed", "spam"],
            "auth": {"type": "bearer", "token": TOKEN}}).raise_for_status()
        yield config, collector_url


def query(config: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        return con.sql(sql).fetchall()


def landed_events(config: Settings) -> list[dict]:
    return [json.loads(line)["event"] for path in landing_files(config.landing_dir, "brevo")
            for line in path.read_text().splitlines()]


def test_campaign_events_load_once_each_and_redeliveries_change_nothing(collected, sandbox_url: str) -> None:
    config, collector_url = collected
    common = {"campaign_id": 31, "campaign_name": "September news", "campaign_sent_at": "2026-09-01T15:00:00Z"}
    httpx.post(f"{sandbox_url}/_sandbox/brevo/events", json=[
        {**common, "email": "Ada@Example.com", "event": "opened", "at": "2026-09-02T08:00:00Z"},
        {**common, "email": "ada@example.com", "event": "clicked", "at": "2026-09-02T08:01:00Z",
         "link": "https://x.example/a"},
        {**common, "email": "bo@example.com", "event": "unsubscribed", "at": "2026-09-03T10:00:00Z"},
        {"email": "cy@example.com", "event": "opened", "at": "2026-09-02T09:00:00Z"},  # transactional
    ]).raise_for_status()
    delivered = landed_events(config)
    assert [e["event"] for e in delivered] == ["opened", "click", "unsubscribe"]

    first = run_ingestion(config, only=["marketing"])
    assert first["marketing"]["raw_marketing.campaign_events"] == 3
    rows = query(config, """
        select email, event, campaign_id, campaign_name, url, occurred_at, sent_at
        from raw_marketing.campaign_events order by occurred_at""")
    assert rows == [
        ("ada@example.com", "opened", 31, "September news", None, datetime(2026, 9, 2, 8, tzinfo=UTC),
         datetime(2026, 9, 1, 15, tzinfo=UTC)),
        ("ada@example.com", "click", 31, "September news", "https://x.example/a",
         datetime(2026, 9, 2, 8, 1, tzinfo=UTC), datetime(2026, 9, 1, 15, tzinfo=UTC)),
        ("bo@example.com", "unsubscribe", 31, "September news", None, datetime(2026, 9, 3, 10, tzinfo=UTC),
         datetime(2026, 9, 1, 15, tzinfo=UTC)),
    ]
    # The transactional open is in the event log's table, the campaign events are not.
    assert query(config, "select email, event from raw_marketing.email_events") == [("cy@example.com", "opened")]

    # Brevo delivers the batch again (its answer was lost), then once more event by event.
    auth = {"Authorization": f"Bearer {TOKEN}"}
    httpx.post(f"{collector_url}/webhooks/brevo", json=delivered, headers=auth).raise_for_status()
    for event in delivered:
        httpx.post(f"{collector_url}/webhooks/brevo", json=event, headers=auth).raise_for_status()
    assert len(landed_events(config)) == 9
    run_ingestion(config, only=["marketing"])
    assert query(config, "select count(*), count(distinct event_key) from raw_marketing.campaign_events") == [
        (3, 3)]


def test_a_landed_event_without_a_campaign_or_time_is_a_rejected_line(collected) -> None:
    config, collector_url = collected
    auth = {"Authorization": f"Bearer {TOKEN}"}
    good = {"id": 1, "camp_id": 5, "email": "ada@example.com", "event": "opened", "ts_event": 1788000000}
    httpx.post(f"{collector_url}/webhooks/brevo", headers=auth, json=[
        good, {**good, "camp_id": None}, {**good, "ts_event": "yesterday"}]).raise_for_status()
    run_ingestion(config, only=["marketing"])
    assert query(config, "select email, campaign_id from raw_marketing.campaign_events") == [("ada@example.com", 5)]
    errors = [error for (error,) in query(config, "select error from raw_marketing.rejected_lines order by \"offset\"")]
    assert errors == ["missing field 'camp_id'", "TypeError: 'ts_event' must be epoch seconds"]


def test_events_loaded_as_arrow_carry_load_ids_and_match_their_hints(collected, sandbox_url: str) -> None:
    """Both event tables go to dlt as Arrow: each row still gets its load id and row id (a table that once
    loaded dicts has both as not null), and the Arrow schema agrees with the hints (else dlt warns on every
    page)."""
    config, collector_url = collected
    httpx.post(f"{collector_url}/webhooks/brevo", headers={"Authorization": f"Bearer {TOKEN}"}, json={
        "id": 1, "camp_id": 5, "email": "ada@example.com", "event": "opened", "ts_event": 1788000000,
        "campaign name": 2026, "tags": ["x"]}).raise_for_status()
    httpx.post(f"{sandbox_url}/_sandbox/brevo/events", json={
        "email": "cy@example.com", "event": "opened", "at": "2026-09-02T09:00:00Z"}).raise_for_status()
    warnings = Records()
    logging.getLogger("dlt").addHandler(warnings)
    try:
        run_ingestion(config, only=["marketing"])
    finally:
        logging.getLogger("dlt").removeHandler(warnings)

    assert [m for m in warnings.messages if "hints were different" in m] == []
    for table in ("campaign_events", "email_events"):
        assert query(config, f"select count(*), count(_dlt_load_id), count(_dlt_id) "
                             f"from raw_marketing.{table}") == [(1, 1, 1)]
    assert query(config, "select campaign_name, extra->>'tags' from raw_marketing.campaign_events") == [
        ("2026", '["x"]')]


def test_a_campaign_or_time_beyond_range_is_a_rejected_line(collected) -> None:
    config, collector_url = collected
    good = {"id": 1, "camp_id": 5, "email": "ada@example.com", "event": "opened", "ts_event": 1788000000}
    httpx.post(f"{collector_url}/webhooks/brevo", headers={"Authorization": f"Bearer {TOKEN}"}, json=[
        good, {**good, "camp_id": 2 ** 64}, {**good, "ts_event": 2 ** 70}]).raise_for_status()
    run_ingestion(config, only=["marketing"])
    assert query(config, "select campaign_id from raw_marketing.campaign_events") == [(5,)]
    errors = [error for (error,) in query(config, "select error from raw_marketing.rejected_lines order by \"offset\"")]
    assert errors == ["ValueError: 'camp_id' is beyond a 64-bit integer", "ValueError: 'ts_event' is out of range"]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
