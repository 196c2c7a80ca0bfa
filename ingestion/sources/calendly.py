"""Calendly bookings into ``raw_calendly``: signed webhooks (primary) plus REST reconciliation.

Run it::

    pipeline = dlt.pipeline("lifecycle_calendly", destination="duckdb", dataset_name="raw_calendly")
    pipeline.run(calendly_source(base_url="https://api.calendly.com", token="<PAT>",
                                 landing_dir="/path/to/.lifecycle/landing"))

Tables:
- ``webhook_events``: the envelopes the collector landed (``landing/calendly``), one row per delivery,
  merged on the landing ``id``. ``dedup_key`` = invitee uri + ``|`` + event name.
- ``scheduled_events`` and ``invitees``: the REST copies, merged on ``uri``. Calendly has no "modified
  since" filter, so every run lists the organization's events and the ``updated_at`` cursor keeps only
  those that changed (a cancellation or reschedule bumps it); invitees are fetched for those events only,
  and not for an event whose invitees the landed webhooks already hold in full (``WebhookCoverage``).
  ``invitees.created_event_key`` / ``canceled_event_key`` use the same format as ``dedup_key``, so a
  booking seen by webhook and by REST joins on one key downstream, while both raw copies are kept.
- ``rejected_lines``: landing lines that could not be read.

Nesting (``max_table_nesting``): a webhook row is envelope → payload → scheduled_event, so 2 levels are
flattened into columns (``payload__tracking__utm_source``, ``payload__scheduled_event__start_time``) and
anything deeper stays JSON; REST objects are one level shallower, so 1. Lists (questions and answers,
memberships, guests) are JSON columns rather than child tables.
"""

# ruff: noqa: B008 -- dlt declares incremental cursors as argument defaults
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dlt
from dlt.common.typing import TDataItems
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

from ingestion.landing import landing_files
from ingestion.sources import landing_resources, parse_timestamp, require_text, typed_columns
from ingestion.sources.http import calendly_client, json_path

BASE_URL = "https://api.calendly.com"
PAGE_SIZE = 100

INVITEE_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("uri", "email", "name", "first_name", "last_name", "status", "timezone", "event",
             "tracking__utm_campaign", "tracking__utm_source", "tracking__utm_medium", "tracking__utm_content",
             "tracking__utm_term", "tracking__salesforce_uuid", "text_reminder_number", "old_invitee",
             "new_invitee", "cancellation__canceled_by", "cancellation__reason", "cancellation__canceler_type",
             "cancel_url", "reschedule_url", "routing_form_submission", "scheduling_method",
             "invitee_scheduled_by"),
    "bool": ("rescheduled",),
    "timestamp": ("cancellation__created_at", "created_at", "updated_at"),
    "json": ("questions_and_answers", "payment", "no_show", "reconfirmation"),
}
"""The invitee fields of Calendly's webhook payload, typed so that each column exists even while it is always null."""

EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("uri", "name", "status", "event_type", "meeting_notes_plain", "meeting_notes_html"),
    "timestamp": ("start_time", "end_time", "created_at", "updated_at"),
    "json": ("event_memberships", "event_guests"),
}
EVENT_OBJECT_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("location__type", "location__location", "location__join_url", "cancellation__canceled_by",
             "cancellation__reason", "cancellation__canceler_type"),
    "bigint": ("invitees_counter__total", "invitees_counter__active", "invitees_counter__limit"),
    "timestamp": ("cancellation__created_at",),
}
"""An event's objects, flattened into columns in the REST table (one level deeper they stay JSON)."""


def prefixed(prefix: str, fields: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {data_type: tuple(prefix + name for name in names) for data_type, names in fields.items()}


WEBHOOK_COLUMNS = {
    **typed_columns(text=("id", "event", "created_by", "dedup_key", "landing_file"),
                    timestamp=("received_at", "created_at"), bigint=("landing_line",)),
    **typed_columns(**prefixed("payload__", INVITEE_FIELDS)),
    **typed_columns(**prefixed("payload__scheduled_event__", EVENT_FIELDS)),
    **typed_columns(json=tuple(f"payload__scheduled_event__{name}"
                               for name in ("location", "invitees_counter", "cancellation"))),
}
EVENT_COLUMNS = {**typed_columns(**EVENT_FIELDS), **typed_columns(**EVENT_OBJECT_FIELDS)}
INVITEE_COLUMNS = {
    **typed_columns(**INVITEE_FIELDS),
    **typed_columns(text=("created_event_key", "canceled_event_key")),
}


def without_null_cancellation(invitee: dict[str, Any]) -> dict[str, Any]:
    """A null ``cancellation`` would add an untyped ``cancellation`` column beside the typed
    ``cancellation__*`` ones that dlt flattens it into when present; null or absent mean the same."""
    if "cancellation" in invitee and invitee["cancellation"] is None:
        return {k: v for k, v in invitee.items() if k != "cancellation"}
    return invitee


def webhook_row(record: dict[str, Any]) -> dict[str, Any]:
    """A landed webhook: ``{"id", "received_at", "event": {"event", "created_at", "payload"}}``."""
    body = record["event"]
    if not isinstance(body, dict) or not isinstance(body.get("payload"), dict):
        raise TypeError("'event' must be a Calendly webhook body with a 'payload' object")
    name = require_text(body, "event")
    payload = body["payload"]
    return {
        "id": require_text(record, "id"),
        "received_at": record.get("received_at"),
        "event": name,
        "created_at": body.get("created_at"),
        "created_by": body.get("created_by"),
        "payload": without_null_cancellation(payload),
        "dedup_key": f"{require_text(payload, 'uri')}|{name}",
    }


def invitee_row(invitee: dict[str, Any]) -> dict[str, Any]:
    """A REST invitee with the keys its webhook copies carry in ``webhook_events.dedup_key``."""
    uri = invitee["uri"]
    return {
        **without_null_cancellation(invitee),
        "created_event_key": f"{uri}|invitee.created",
        "canceled_event_key": f"{uri}|invitee.canceled" if invitee.get("status") == "canceled" else None,
    }


class WebhookCoverage:
    """Which scheduled events' invitees the landed webhooks already hold in full, so that reconciling them
    over REST (one call per event: at Calendly's 500 calls a minute, most of a first load) would add nothing.

    The models keep the webhook copy of an invitee event over the REST copy of the same key
    (``int_calendly__invitee_events``), so the REST copy matters only for an ``invitee.created`` or
    ``invitee.canceled`` that no webhook brought. An event is covered when the landing zone holds an
    ``invitee.created`` for as many invitees as the event's ``invitees_counter.total`` and an
    ``invitee.canceled`` for as many of them as have canceled (``total - active``). Every line the collector
    landed counts, loaded or not: this run's landing reader loads those not loaded yet. Anything less (a lost
    webhook, a group event with an invitee missing, a landing zone moved away) is read over REST as before.
    The landing zone is read once, on the first event to reconcile, and only then.
    """

    def __init__(self, landing_dir: str | Path) -> None:
        self.landing_dir = Path(landing_dir)
        self._held: dict[str, tuple[set[str], set[str]]] | None = None

    def _read(self) -> dict[str, tuple[set[str], set[str]]]:
        held: dict[str, tuple[set[str], set[str]]] = {}
        for path in landing_files(self.landing_dir, "calendly"):
            with open(path, "rb") as handle:
                for line in handle:
                    if not line.endswith(b"\n"):
                        break  # being written: the landing reader leaves it for the next run too
                    try:
                        row = webhook_row(json.loads(line))
                    except (KeyError, TypeError, ValueError):
                        continue  # rejected by the landing reader as well
                    payload = row["payload"]
                    if row["event"] not in ("invitee.created", "invitee.canceled") or not isinstance(
                            payload.get("event"), str):
                        continue
                    created, canceled = held.setdefault(payload["event"], (set(), set()))
                    (created if row["event"] == "invitee.created" else canceled).add(payload["uri"])
        return held

    def covers(self, event: dict[str, Any]) -> bool:
        """Whether the landed webhooks hold every invitee event of this REST ``event``."""
        counter = event.get("invitees_counter")
        if not isinstance(counter, dict):
            return False
        total, active = counter.get("total"), counter.get("active")
        if not isinstance(total, int) or not isinstance(active, int):
            return False
        if self._held is None:
            self._held = self._read()
        created, canceled = self._held.get(event.get("uri"), (set(), set()))
        return len(created) == total and len(canceled) == total - active and canceled <= created


def page_tokens() -> JSONResponseCursorPaginator:
    """Calendly's ``pagination.next_page_token``, sent back as ``page_token`` (to our own base URL, rather than
    following the ``next_page`` URL the answer gives)."""
    return JSONResponseCursorPaginator(cursor_path=json_path("pagination.next_page_token"),
                                       cursor_param="page_token")


def uuid_of(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


@dlt.source(name="calendly")
def calendly_source(
    base_url: str = BASE_URL,
    token: str = dlt.secrets.value,
    landing_dir: str = dlt.config.value,
    mask: Sequence[str] = (),
) -> list[DltResource]:
    """Calendly webhooks from the landing zone and scheduled events + invitees from the REST API.
    ``mask``: other secrets to keep out of errors, should Calendly echo one."""

    @dlt.resource(name="scheduled_events", primary_key="uri", write_disposition="merge",
                  columns=EVENT_COLUMNS, max_table_nesting=1)
    def scheduled_events(
        updated_at: dlt.sources.incremental[Any] = dlt.sources.incremental("updated_at"),
    ) -> Iterator[TDataItems]:
        with calendly_client(base_url, token, mask) as client:
            me = client.read("/users/me")["resource"]
            params = {"organization": me["current_organization"], "count": PAGE_SIZE}
            for page in client.pages("/scheduled_events", page_tokens(), "collection", params):
                yield [{**event, "updated_at": parse_timestamp(event.get("updated_at"))} for event in page]

    coverage = WebhookCoverage(landing_dir)

    @dlt.transformer(data_from=scheduled_events, name="invitees", primary_key="uri",
                     write_disposition="merge", columns=INVITEE_COLUMNS, max_table_nesting=1)
    def invitees(events: list[dict[str, Any]]) -> Iterator[TDataItems]:
        """Invitees of the events that changed since the last run (the parent's cursor filtered them),
        except those the landed webhooks already hold in full."""
        events = [event for event in events if not coverage.covers(event)]
        if not events:
            return
        with calendly_client(base_url, token, mask) as client:
            for event in events:
                path = f"/scheduled_events/{uuid_of(event['uri'])}/invitees"
                for page in client.pages(path, page_tokens(), "collection", {"count": PAGE_SIZE}):
                    yield [invitee_row(invitee) for invitee in page]

    return [
        *landing_resources(landing_dir, "calendly", webhook_row, table_name="webhook_events",
                           columns=WEBHOOK_COLUMNS, max_table_nesting=2),
        scheduled_events,
        invitees,
    ]
