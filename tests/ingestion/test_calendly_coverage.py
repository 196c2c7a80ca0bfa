"""Which Calendly events the landed webhooks cover, so that their invitees are not read again over REST: only
an event whose every booking and cancellation a readable, complete landing line holds."""

from __future__ import annotations

import json
from pathlib import Path

from ingestion.sources.calendly import WebhookCoverage

EVENT = "https://api.calendly.com/scheduled_events/E1"


def webhook(name: str, invitee: str, event: str = EVENT) -> str:
    return json.dumps({"id": f"cal_{name}_{invitee}", "received_at": "2026-03-01T10:00:00Z", "event": {
        "event": name, "created_at": "2026-03-01T10:00:00Z",
        "payload": {"uri": f"{event}/invitees/{invitee}", "event": event, "email": f"{invitee}@example.com"}}})


def land(landing: Path, *lines: str, torn: str = "") -> None:
    directory = landing / "calendly"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "2026-03-01.collector.jsonl").write_text("".join(f"{line}\n" for line in lines) + torn)


def rest_event(total: int, active: int, uri: str = EVENT) -> dict:
    return {"uri": uri, "invitees_counter": {"total": total, "active": active, "limit": 2}}


def test_an_event_is_covered_when_every_booking_and_cancellation_landed(tmp_path: Path) -> None:
    land(tmp_path, webhook("invitee.created", "I1"), webhook("invitee.created", "I2"),
         webhook("invitee.created", "I2"), webhook("invitee.canceled", "I2"))
    coverage = WebhookCoverage(tmp_path)

    assert coverage.covers(rest_event(total=2, active=1))
    assert not coverage.covers(rest_event(total=3, active=2))  # a third invitee came by no webhook
    assert not coverage.covers(rest_event(total=2, active=0))  # I1's cancellation came by no webhook
    assert not coverage.covers(rest_event(total=2, active=2))  # REST would not say canceled: read it
    assert not coverage.covers(rest_event(total=1, active=1, uri=f"{EVENT}-other"))


def test_unreadable_torn_and_foreign_lines_cover_nothing(tmp_path: Path) -> None:
    land(tmp_path, "{not json", json.dumps(["a list"]), webhook("routing_form_submission.created", "I1"),
         torn=webhook("invitee.created", "I1"))

    assert not WebhookCoverage(tmp_path).covers(rest_event(total=1, active=1))


def test_an_event_without_a_readable_counter_is_read_over_rest(tmp_path: Path) -> None:
    land(tmp_path, webhook("invitee.created", "I1"))
    coverage = WebhookCoverage(tmp_path)

    assert coverage.covers(rest_event(total=1, active=1))
    assert not coverage.covers({"uri": EVENT})
    assert not coverage.covers({"uri": EVENT, "invitees_counter": {"total": "1", "active": 1}})


def test_no_landing_zone_covers_nothing(tmp_path: Path) -> None:
    assert not WebhookCoverage(tmp_path / "missing").covers(rest_event(total=1, active=1))
