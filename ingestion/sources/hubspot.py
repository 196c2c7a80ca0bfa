"""HubSpot CRM contacts and owners into ``raw_crm``.

Run it::

    pipeline = dlt.pipeline("lifecycle_crm", destination="duckdb", dataset_name="raw_crm")
    pipeline.run(hubspot_source(base_url="https://api.hubapi.com", token="pat-na1-..."))

Tables:
- ``contacts``: merged on ``id``; every requested property is a top-level text column (HubSpot sends all
  values as strings; staging casts them), ``createdate`` / ``lastmodifieddate`` are timestamps. The first
  run lists every contact (``GET /crm/v3/objects/contacts``); later runs search for contacts whose
  ``lastmodifieddate`` is at or after the cursor, oldest change first (see ``search_modified_since``).
- ``owners``: ``GET /crm/v3/owners``, merged on ``id``, cursor on ``updatedAt``.
"""

# ruff: noqa: B008 -- dlt declares incremental cursors as argument defaults
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import dlt
from dlt.common.typing import TDataItems
from dlt.extract.resource import DltResource

from ingestion.sources import parse_timestamp, typed_columns
from ingestion.sources.http import RateGate, RestClient, hubspot_client

BASE_URL = "https://api.hubapi.com"
CONTACTS_PATH = "/crm/v3/objects/contacts"
SEARCH_PATH = "/crm/v3/objects/contacts/search"
LIST_PAGE_SIZE = 100
SEARCH_PAGE_SIZE = 200
SEARCH_RESULT_CAP = 10_000
SEARCH_REQUESTS_PER_SECOND = 4
"""Search allows 5 requests/s per account, shared by every app of the portal: leave one for the others."""

DEFAULT_CONTACT_PROPERTIES: tuple[str, ...] = (
    "email", "firstname", "lastname", "company", "phone", "lifecyclestage", "hs_lead_status",
    "hubspot_owner_id", "hs_analytics_source", "hs_latest_source", "createdate", "lastmodifieddate",
    # our own properties (SPEC §5.4); HubSpot ignores unknown names in reads, so this is safe before they exist
    "customer_segment", "primary_audience", "form_source", "original_touch_source", "original_touch_campaign",
    "original_touch_at", "latest_touch_source", "latest_touch_campaign", "latest_touch_at", "webinar_history",
    "demo_booked_at", "demo_event_name", "customer_status", "engagement_tier",
)
TIMESTAMP_PROPERTIES = ("createdate", "lastmodifieddate")
OWNER_COLUMNS = typed_columns(
    text=("id", "email", "first_name", "last_name", "type"),
    bigint=("user_id",),
    # the cursor column under its vendor name, as dlt's incremental hint names it
    timestamp=("created_at", "updatedAt"),
    bool=("archived",),
)


def epoch_ms(moment: Any) -> int:
    return round(parse_timestamp(moment).timestamp() * 1000)


def contact_row(contact: dict[str, Any]) -> dict[str, Any]:
    """Properties flattened to columns, next to the object's own id, timestamps and archived flag."""
    properties = contact.get("properties") or {}
    row = {**properties, "id": contact["id"], "createdAt": contact.get("createdAt"),
           "updatedAt": contact.get("updatedAt"), "archived": contact.get("archived")}
    for name in TIMESTAMP_PROPERTIES:
        row[name] = parse_timestamp(properties.get(name))
    return row


def list_contacts(client: RestClient, properties: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
    """Every contact, a page of 100 at a time, following the opaque ``after`` cursor."""
    params: dict[str, Any] = {"limit": LIST_PAGE_SIZE, "properties": ",".join(properties)}
    while True:
        page = client.get(CONTACTS_PATH, params)
        if page.get("results"):
            yield page["results"]
        after = ((page.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return
        params["after"] = after


def search_modified_since(
    client: RestClient,
    properties: Sequence[str],
    since_ms: int,
    *,
    page_size: int = SEARCH_PAGE_SIZE,
    cap: int = SEARCH_RESULT_CAP,
    gate: RateGate | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Contacts with ``lastmodifieddate >= since_ms``, oldest change first, past the search cap.

    One search query can page through at most ``cap`` results (HubSpot answers 400 beyond 10,000). When
    the next page would cross it, the search restarts from the last ``lastmodifieddate`` seen; contacts
    at exactly that instant that were already returned are skipped, so no contact is yielded twice. If a
    whole capped query shares one instant, the window cannot move and a ``RuntimeError`` says so rather
    than looping.
    """
    start = since_ms
    already_seen: set[str] = set()
    while True:
        after = 0
        last_ms = start
        ids_at_last: set[str] = set(already_seen)
        while True:
            body: dict[str, Any] = {
                "filterGroups": [{"filters": [
                    {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(start)}]}],
                "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                "properties": list(properties),
                "limit": page_size,
            }
            if after:
                body["after"] = str(after)
            page = client.post(SEARCH_PATH, body, gate=gate)
            fresh = []
            for contact in page.get("results") or []:
                modified = epoch_ms((contact.get("properties") or {})["lastmodifieddate"])
                if modified == start and contact["id"] in already_seen:
                    continue
                fresh.append(contact)
                if modified > last_ms:
                    last_ms, ids_at_last = modified, set()
                ids_at_last.add(contact["id"])
            if fresh:
                yield fresh
            next_after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not next_after:
                return
            after = int(next_after)
            if after >= cap:
                break
        if last_ms == start:
            raise RuntimeError(
                f"hubspot search: more than {cap} contacts share lastmodifieddate {start} (epoch ms); "
                "the search window cannot advance")
        start, already_seen = last_ms, ids_at_last


@dlt.source(name="hubspot")
def hubspot_source(
    base_url: str = BASE_URL,
    token: str = dlt.secrets.value,
    properties: Sequence[str] = DEFAULT_CONTACT_PROPERTIES,
    mask: Sequence[str] = (),
) -> list[DltResource]:
    """HubSpot contacts (incremental on ``lastmodifieddate``) and owners. ``mask``: other secrets to keep
    out of errors, should HubSpot echo one."""
    requested = list(dict.fromkeys([*properties, *TIMESTAMP_PROPERTIES]))
    contact_columns = {
        **{name: {"data_type": "text"} for name in requested},
        **typed_columns(text=("id",), timestamp=(*TIMESTAMP_PROPERTIES, "created_at", "updated_at"),
                        bool=("archived",)),
    }

    @dlt.resource(name="contacts", primary_key="id", write_disposition="merge", columns=contact_columns)
    def contacts(
        lastmodifieddate: dlt.sources.incremental[Any] = dlt.sources.incremental("lastmodifieddate"),
    ) -> Iterator[TDataItems]:
        with hubspot_client(base_url, token, mask) as client:
            if lastmodifieddate.last_value is None:
                pages = list_contacts(client, requested)
            else:
                pages = search_modified_since(client, requested, epoch_ms(lastmodifieddate.last_value),
                                              gate=RateGate(SEARCH_REQUESTS_PER_SECOND))
            for page in pages:
                yield [contact_row(contact) for contact in page]

    @dlt.resource(name="owners", primary_key="id", write_disposition="merge", columns=OWNER_COLUMNS)
    def owners(
        updated_at: dlt.sources.incremental[Any] = dlt.sources.incremental("updatedAt"),
    ) -> Iterator[TDataItems]:
        params: dict[str, Any] = {"limit": LIST_PAGE_SIZE}
        with hubspot_client(base_url, token, mask) as client:
            while True:
                page = client.get("/crm/v3/owners", params)
                rows = [{**owner, "updatedAt": parse_timestamp(owner.get("updatedAt"))}
                        for owner in page.get("results") or []]
                if rows:
                    yield rows
                after = ((page.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    return
                params["after"] = after

    return [contacts, owners]
