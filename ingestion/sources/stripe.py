"""Stripe into ``raw_stripe``: signed webhooks (primary), the Events API and checkout sessions.

Run it::

    pipeline = dlt.pipeline("lifecycle_stripe", destination="duckdb", dataset_name="raw_stripe")
    pipeline.run(stripe_source(base_url="https://api.stripe.com", api_key="sk_live_...",
                               landing_dir="/path/to/.lifecycle/landing"))

Tables:
- ``webhook_events``: events the collector landed (``landing/stripe``), merged on the landing ``id``.
- ``events``: ``GET /v1/events`` (reconciliation; Stripe keeps 30 days, so the very first run takes what
  is there), merged on the event ``id``.
  Both tables carry ``dedup_key`` = the Stripe event id, keep ``data`` (the object, rendered at the
  event's own ``api_version``) as one JSON column so that shape changes between API versions never
  reshape the table, and keep ``created`` as Stripe's unix seconds.
- ``checkout_sessions`` and ``checkout_line_items``: checkout webhook payloads do not carry line items,
  so sessions are listed with ``expand[]=data.line_items``: one call per 100 sessions instead of one
  line-items call per session (at 25 requests/s the latter takes minutes at 100k customers).
- ``rejected_lines``: landing lines that could not be read.
"""

# ruff: noqa: B008 -- dlt declares incremental cursors as argument defaults
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import dlt
from dlt.common.typing import TDataItems
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

from ingestion.sources import landing_resources, require_text, typed_columns
from ingestion.sources.http import VendorClient, json_path, stripe_client

BASE_URL = "https://api.stripe.com"
PAGE_SIZE = 100

EVENT_COLUMNS = typed_columns(
    text=("id", "object", "type", "api_version", "dedup_key", "request__id", "request__idempotency_key"),
    bigint=("created", "pending_webhooks"),
    bool=("livemode",),
    json=("data",),
)
WEBHOOK_COLUMNS = {
    **typed_columns(text=("event_id", "landing_file"), timestamp=("received_at",), bigint=("landing_line",)),
    **EVENT_COLUMNS,
}
SESSION_COLUMNS = typed_columns(
    text=("id", "object", "mode", "status", "payment_status", "customer", "customer_email",
          "customer_details__email", "customer_details__name", "customer_details__phone",
          "client_reference_id", "currency", "payment_intent", "subscription", "invoice", "url",
          "metadata__utm_source", "metadata__utm_medium", "metadata__utm_campaign"),
    bigint=("created", "expires_at", "amount_subtotal", "amount_total"),
    bool=("livemode",),
    json=("customer_details__address", "customer_details__tax_ids"),
)
LINE_ITEM_COLUMNS = typed_columns(
    text=("session_id", "id", "object", "description", "currency", "price__id", "price__product",
          "price__currency"),
    bigint=("quantity", "amount_subtotal", "amount_total", "amount_discount", "amount_tax",
            "price__unit_amount"),
)


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    """An Event object as a row; ``dedup_key`` is what webhook and API copies have in common."""
    return {**event, "dedup_key": event["id"]}


def webhook_row(record: dict[str, Any]) -> dict[str, Any]:
    """A landed webhook: ``{"id", "received_at", "event": <the Stripe Event>}``."""
    event = record["event"]
    if not isinstance(event, dict):
        raise TypeError("'event' must be a Stripe Event object")
    event_id = require_text(event, "id")
    row = {key: value for key, value in event.items() if key != "id"}
    return {**row, "id": require_text(record, "id"), "received_at": record.get("received_at"),
            "event_id": event_id, "dedup_key": event_id}


def list_pages(client: VendorClient, path: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Every page of a Stripe list (newest first): ``starting_after`` the last object's id while ``has_more``."""
    after_last = JSONResponseCursorPaginator(cursor_path=json_path("data[-1].id"), cursor_param="starting_after",
                                             has_more_path=json_path("has_more"))
    yield from client.pages(path, after_last, "data", params)


@dlt.source(name="stripe")
def stripe_source(
    base_url: str = BASE_URL,
    api_key: str = dlt.secrets.value,
    landing_dir: str = dlt.config.value,
    mask: Sequence[str] = (),
) -> list[DltResource]:
    """Stripe webhooks from the landing zone plus events and checkout sessions from the REST API.
    ``mask``: other secrets to keep out of errors, should Stripe echo one."""

    @dlt.resource(name="events", primary_key="id", write_disposition="merge", columns=EVENT_COLUMNS,
                  max_table_nesting=1)
    def events(created: dlt.sources.incremental[int] = dlt.sources.incremental("created")) -> Iterator[TDataItems]:
        """``created[gte]`` re-reads the last second; the cursor drops the events already loaded."""
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if created.last_value is not None:
            params["created[gte]"] = created.last_value
        with stripe_client(base_url, api_key, mask) as client:
            for page in list_pages(client, "/v1/events", params):
                yield [event_row(event) for event in page]

    @dlt.resource(name="checkout_session_pages", selected=False)
    def checkout_session_pages(
        created: dlt.sources.incremental[int] = dlt.sources.incremental("created", primary_key="id"),
    ) -> Iterator[TDataItems]:
        """Sessions with their line items expanded; feeds the two tables below, not loaded itself."""
        params: dict[str, Any] = {"limit": PAGE_SIZE, "expand[]": "data.line_items"}
        if created.last_value is not None:
            params["created[gte]"] = created.last_value
        with stripe_client(base_url, api_key, mask) as client:
            yield from list_pages(client, "/v1/checkout/sessions", params)

    @dlt.transformer(data_from=checkout_session_pages, name="checkout_sessions", primary_key="id",
                     write_disposition="merge", columns=SESSION_COLUMNS, max_table_nesting=1)
    def checkout_sessions(sessions: list[dict[str, Any]]) -> Iterator[TDataItems]:
        yield [{k: v for k, v in session.items() if k != "line_items"} for session in sessions]

    @dlt.transformer(data_from=checkout_session_pages, name="checkout_line_items",
                     primary_key=["session_id", "id"], write_disposition="merge", columns=LINE_ITEM_COLUMNS,
                     max_table_nesting=1)
    def checkout_line_items(sessions: list[dict[str, Any]]) -> Iterator[TDataItems]:
        rows = []
        for session in sessions:
            line_items = session.get("line_items") or {}
            if line_items.get("has_more"):
                with stripe_client(base_url, api_key, mask) as client:
                    items = [item for page in list_pages(client, f"/v1/checkout/sessions/{session['id']}/line_items",
                                                         {"limit": PAGE_SIZE}) for item in page]
            else:
                items = line_items.get("data") or []
            rows.extend({**item, "session_id": session["id"]} for item in items)
        if rows:
            yield rows

    return [
        *landing_resources(landing_dir, "stripe", webhook_row, table_name="webhook_events",
                           columns=WEBHOOK_COLUMNS, max_table_nesting=1),
        events,
        checkout_session_pages,
        checkout_sessions,
        checkout_line_items,
    ]
