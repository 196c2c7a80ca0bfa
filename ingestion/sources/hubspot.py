"""HubSpot CRM contacts and owners into ``raw_crm``.

Run it::

    pipeline = dlt.pipeline("lifecycle_crm", destination="duckdb", dataset_name="raw_crm")
    pipeline.run(hubspot_source(base_url="https://api.hubapi.com", token="pat-na1-..."))

Tables:
- ``contacts``: merged on ``id``; every requested property is a top-level text column (HubSpot sends all
  values as strings; staging casts them), ``createdate`` / ``lastmodifieddate`` are timestamps. The first
  run lists every contact (``GET /crm/v3/objects/contacts``); later runs read the contacts whose
  ``lastmodifieddate`` is at or after the cursor by the cheaper of a search and a listing (see
  ``modified_contacts``).
- ``owners``: ``GET /crm/v3/owners``, merged on ``id``, cursor on ``updatedAt``.
"""

# ruff: noqa: B008 -- dlt declares incremental cursors as argument defaults
from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dlt
from dlt.common.typing import TDataItems
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

from ingestion.echoes import EchoFilter, echo_filter
from ingestion.sources import parse_timestamp, typed_columns
from ingestion.sources.http import Pace, VendorClient, hubspot_client, json_path

logger = logging.getLogger(__name__)

BASE_URL = "https://api.hubapi.com"
CONTACTS_PATH = "/crm/v3/objects/contacts"
SEARCH_PATH = "/crm/v3/objects/contacts/search"
LIST_PAGE_SIZE = 100
SEARCH_PAGE_SIZE = 200
SEARCH_RESULT_CAP = 10_000
SEARCH_REQUESTS_PER_SECOND = 4
"""Search allows 5 requests/s per account, shared by every app of the portal: leave one for the others."""
LIST_REQUESTS_PER_SECOND = 10
"""Other calls share a burst limit of 100 requests per 10 s on the smallest plans (190 on paid ones)."""

DEFAULT_CONTACT_PROPERTIES: tuple[str, ...] = (
    "email", "firstname", "lastname", "company", "phone", "lifecyclestage", "hs_lead_status",
    "hubspot_owner_id", "hs_analytics_source", "hs_latest_source", "createdate", "lastmodifieddate",
    # our own properties (docs/field-names.md); HubSpot ignores unknown names in reads, so this is safe before they exist
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


def after_cursor() -> JSONResponseCursorPaginator:
    """HubSpot's listings: the opaque ``after`` cursor of ``paging.next``."""
    return JSONResponseCursorPaginator(cursor_path=json_path("paging.next.after"), cursor_param="after")


def list_contacts(client: VendorClient, properties: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
    """Every contact, a page of 100 at a time."""
    params = {"limit": LIST_PAGE_SIZE, "properties": ",".join(properties)}
    yield from client.pages(CONTACTS_PATH, after_cursor(), "results", params)


def search_page(client: VendorClient, properties: Sequence[str], since_ms: int | None, *, after: int = 0,
                page_size: int = SEARCH_PAGE_SIZE, pace: Pace | None = None) -> dict[str, Any]:
    """One page of contacts with ``lastmodifieddate >= since_ms`` (every contact if ``None``), oldest change
    first; its ``total`` counts every match."""
    body: dict[str, Any] = {
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": list(properties),
        "limit": page_size,
    }
    if since_ms is not None:
        body["filterGroups"] = [{"filters": [
            {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(since_ms)}]}]
    if after:
        body["after"] = str(after)
    return client.read(SEARCH_PATH, json=body, pace=pace)


def search_modified_since(
    client: VendorClient,
    properties: Sequence[str],
    since_ms: int,
    *,
    page_size: int = SEARCH_PAGE_SIZE,
    cap: int = SEARCH_RESULT_CAP,
    pace: Pace | None = None,
    first_page: dict[str, Any] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Contacts with ``lastmodifieddate >= since_ms``, oldest change first, past the search cap.

    One search query can page through at most ``cap`` results (HubSpot answers 400 beyond 10,000). When
    the next page would cross it, the search restarts from the last ``lastmodifieddate`` seen; contacts
    at exactly that instant that were already returned are skipped, so no contact is yielded twice. If a
    whole capped query shares one instant, the window cannot move and a ``RuntimeError`` says so rather
    than looping. ``first_page``: the first query's first page, when the caller already has it. Paged here
    rather than by a dlt paginator, since reaching the cap changes the query itself.
    """
    start = since_ms
    already_seen: set[str] = set()
    while True:
        after = 0
        last_ms = start
        ids_at_last: set[str] = set(already_seen)
        while True:
            if first_page is not None:
                page, first_page = first_page, None
            else:
                page = search_page(client, properties, start, after=after, page_size=page_size, pace=pace)
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


def listing_is_cheaper(modified: int, everyone: int) -> bool:
    """Whether listing every contact takes less of the rate limits' time than searching for the modified ones."""
    listing = math.ceil(everyone / LIST_PAGE_SIZE) / LIST_REQUESTS_PER_SECOND
    searching = math.ceil(modified / SEARCH_PAGE_SIZE) / SEARCH_REQUESTS_PER_SECOND
    return listing < searching


def modified_contacts(client: VendorClient, properties: Sequence[str], since_ms: int) -> Iterator[list[dict[str, Any]]]:
    """Contacts modified at or after ``since_ms``, read the cheaper way.

    An hour's changes are a few search pages. After a write to most contacts (the first full sync, a
    backfill) the search would page through nearly all of them at 4 requests/s, while a listing reads 100
    contacts a call under the larger burst limit: when the first search page's ``total`` says listing is
    cheaper, every contact is listed and the incremental cursor drops those modified before ``since_ms``.
    """
    pace = Pace(SEARCH_REQUESTS_PER_SECOND)
    first = search_page(client, properties, since_ms, pace=pace)
    modified = int(first.get("total") or 0)
    if modified > SEARCH_PAGE_SIZE:
        everyone = int(search_page(client, ["lastmodifieddate"], None, page_size=1, pace=pace).get("total") or 0)
        if listing_is_cheaper(modified, everyone):
            yield from list_contacts(client, properties)
            return
    yield from search_modified_since(client, properties, since_ms, pace=pace, first_page=first)


def contact_echoes(warehouse: Path, duckdb_config: Mapping[str, str], dataset: str, writes_sql: str
                   ) -> EchoFilter | None:
    """Recognises contacts that come back holding only our own writes (ingestion/echoes.py); a payload names
    properties as the ``contacts`` table does."""
    return echo_filter(warehouse, duckdb_config, dataset=dataset, landed_sql=f'select * from "{dataset}"."contacts"',
                       writes_sql=writes_sql, key="id", ignored=("lastmodifieddate", "updated_at"),
                       overlay=lambda landed, written: written)


@dlt.source(name="hubspot")
def hubspot_source(
    base_url: str = BASE_URL,
    token: str = dlt.secrets.value,
    properties: Sequence[str] = DEFAULT_CONTACT_PROPERTIES,
    mask: Sequence[str] = (),
    echoes: EchoFilter | None = None,
) -> list[DltResource]:
    """HubSpot contacts (incremental on ``lastmodifieddate``) and owners. ``mask``: other secrets to keep
    out of errors, should HubSpot echo one. ``echoes``: contacts not to load again (``contact_echoes``)."""
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
                pages = modified_contacts(client, requested, epoch_ms(lastmodifieddate.last_value))
            for page in pages:
                yield [contact_row(contact) for contact in page]
        if echoes is not None and echoes.skipped:
            logger.info("hubspot contacts: %d read back holding only our own writes; not loaded", echoes.skipped)

    if echoes is not None:
        contacts.add_step(echoes.step())

    @dlt.resource(name="owners", primary_key="id", write_disposition="merge", columns=OWNER_COLUMNS)
    def owners(
        updated_at: dlt.sources.incremental[Any] = dlt.sources.incremental("updatedAt"),
    ) -> Iterator[TDataItems]:
        with hubspot_client(base_url, token, mask) as client:
            for page in client.pages("/crm/v3/owners", after_cursor(), "results", {"limit": LIST_PAGE_SIZE}):
                yield [{**owner, "updatedAt": parse_timestamp(owner.get("updatedAt"))} for owner in page]

    return [contacts, owners]
