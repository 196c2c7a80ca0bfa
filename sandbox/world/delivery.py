"""Pushing a generated world into the sandbox (admin and vendor APIs) and the collector, a few calls at a
time, and the summary of what was pushed."""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

import httpx

from sandbox.core import env
from sandbox.world.generator import (
    World,
)
from sandbox.world.vocabulary import (
    ADMIN_CHUNK,
    BAD_LIVE_FORMS,
    BREVO_CONTACTS_SPACING,
    BREVO_EVENT_CHUNK,
    BREVO_IMPORT_CHUNK,
    CONCURRENCY,
    FORM_IDS,
    HTTP_TIMEOUT,
    MAX_RATE_LIMIT_RETRIES,
    NEWSLETTER_LIST,
    WEBHOOK_CHUNK,
    Block,
    WorldError,
    default_start,
    iso,
)


class Client:
    """HTTP to the sandbox (admin + vendor APIs) and the collector, a few calls at a time."""

    def __init__(self, http: httpx.AsyncClient, sandbox_url: str, collector_url: str | None) -> None:
        self.http = http
        self.sandbox_url = sandbox_url.rstrip("/")
        self.collector_url = collector_url.rstrip("/") if collector_url else None
        self.gate = asyncio.Semaphore(CONCURRENCY)
        self.brevo_lock = asyncio.Lock()
        self.calls: collections.Counter[str] = collections.Counter()
        self.brevo_headers = {"api-key": env("BREVO_API_KEY", "xkeysib-sandbox"),
                              "accept": "application/json"}

    async def request(self, method: str, path: str, *, expect: tuple[int, ...], json_body: object = None,
                      headers: dict[str, str] | None = None, params: dict | None = None,
                      template: str | None = None) -> httpx.Response:
        """One call; a 429 is waited out per its Retry-After (rate limiting is not a failure).
        Calls are counted per path template, for the summary (what a run costs, and proof of determinism)."""
        for _ in range(MAX_RATE_LIMIT_RETRIES):
            self.calls[f"{method} {template or path}"] += 1
            async with self.gate:
                response = await self.http.request(method, self.sandbox_url + path, json=json_body,
                                                   headers=headers, params=params)
            if response.status_code != 429:
                break
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
        if response.status_code not in expect:
            raise WorldError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        return response

    async def admin(self, path: str, items: list[dict], template: str | None = None) -> list:
        """A bulk admin call: a list in, one result per item out, in order."""
        response = await self.request("POST", "/_sandbox" + path, json_body=items, expect=(200, 201),
                                      template=template and "/_sandbox" + template)
        results = response.json()
        if not isinstance(results, list) or len(results) != len(items):
            raise WorldError(f"POST /_sandbox{path} returned {type(results).__name__} for {len(items)} items")
        return results

    async def admin_tally(self, path: str, items: list[dict], key: str) -> None:
        """A bulk admin call that answers with a tally instead of one result per item: the HubSpot seed's
        ``{"ids": [...]}`` or Brevo's ``{"recorded": n}``. Every item must have been taken."""
        body = (await self.request("POST", "/_sandbox" + path, json_body=items, expect=(200, 201))).json()
        value = body.get(key) if isinstance(body, dict) else None
        taken = len(value) if isinstance(value, list) else value
        if taken != len(items):
            raise WorldError(f"POST /_sandbox{path} took {taken} of {len(items)} items")

    async def brevo(self, method: str, path: str, *, expect: tuple[int, ...], json_body: object = None,
                    params: dict | None = None) -> httpx.Response:
        """Brevo contacts endpoints, paced under their 10-per-second limit."""
        async with self.brevo_lock:
            response = await self.request(method, "/brevo/v3" + path, json_body=json_body, expect=expect,
                                          headers=self.brevo_headers, params=params)
            await asyncio.sleep(BREVO_CONTACTS_SPACING)
        return response


async def newsletter_list(client: Client) -> int:
    """The Brevo list the pre-existing marketing contacts are imported into (found, or created)."""
    offset = 0
    while True:
        page = (await client.brevo("GET", "/contacts/lists", expect=(200,),
                                   params={"limit": 50, "offset": offset})).json()
        lists = page.get("lists") or []
        for item in lists:
            if item.get("name") == NEWSLETTER_LIST:
                return int(item["id"])
        offset += len(lists)
        if not lists or offset >= int(page.get("count") or 0):
            break
    created = await client.brevo("POST", "/contacts/lists", expect=(201,),
                                 json_body={"name": NEWSLETTER_LIST, "folderId": 1})
    return int(created.json()["id"])


def chunks(items: list, size: int) -> Iterator[list]:
    for first in range(0, len(items), size):
        yield items[first:first + size]


async def send_block(client: Client, block: Block, list_id: int) -> None:
    """Phase 1 creates what exists on its own; phase 2 follows up on the ids phase 1 returned."""
    async def brevo_import(contacts: list[dict]) -> None:
        await client.brevo("POST", "/contacts/import", expect=(202,), json_body={
            "jsonBody": contacts, "listIds": [list_id], "updateExistingContacts": True,
            "emptyContactsAttributes": False, "disableNotification": True})

    async def created(path: str, items: list[dict]) -> list:
        """Chunks sent side by side; gather keeps their order, so results align with the follow-ups."""
        results = await asyncio.gather(*(client.admin(path, chunk) for chunk in chunks(items, WEBHOOK_CHUNK)))
        return [result for chunk in results for result in chunk]

    phase1 = [client.admin_tally("/hubspot/contacts", chunk, "ids")
              for chunk in chunks(block.crm, ADMIN_CHUNK)]
    phase1 += [brevo_import(chunk) for chunk in chunks(block.brevo_contacts, BREVO_IMPORT_CHUNK)]
    brevo_events = block.brevo_events if client.collector_url else [
        {k: v for k, v in event.items() if not k.startswith("campaign_")} for event in block.brevo_events]
    phase1 += [client.admin_tally("/brevo/events", chunk, "recorded")
               for chunk in chunks(brevo_events, BREVO_EVENT_CHUNK)]
    booking_results, purchase_results, subscription_results, *_ = await asyncio.gather(
        created("/calendly/bookings", block.bookings), created("/stripe/purchases", block.purchases),
        created("/stripe/subscriptions", block.subscriptions), *phase1)

    cancellations = [{"invitee_uri": result["invitee_uri"], **followup}
                     for result, followup in zip(booking_results, block.booking_followups, strict=True) if followup]
    refunds = [{"session_id": result["session_id"], "created_at": at}
               for result, at in zip(purchase_results, block.refund_times, strict=True) if at]

    async def subscription_followups(sub_id: str, renewals: list[dict], cancel: dict | None) -> None:
        path = f"/stripe/subscriptions/{quote(sub_id, safe='')}"
        if renewals:
            await client.admin(path + "/renew", renewals, "/stripe/subscriptions/{id}/renew")
        if cancel:
            await client.admin(path + "/cancel", [cancel], "/stripe/subscriptions/{id}/cancel")

    phase2 = [client.admin("/calendly/cancellations", chunk)
              for chunk in chunks(cancellations, WEBHOOK_CHUNK)]
    phase2 += [client.admin("/stripe/refunds", chunk) for chunk in chunks(refunds, WEBHOOK_CHUNK)]
    phase2 += [subscription_followups(result["id"], renewals, cancel)
               for result, (renewals, cancel) in zip(subscription_results, block.subscription_plans, strict=True)
               if renewals or cancel]
    await asyncio.gather(*phase2)


async def send_live_forms(client: Client, forms: list[tuple[str, dict]],
                          bad: tuple[tuple[str, dict], ...]) -> dict:
    """Live submissions through the collector: good ones must get 202, bad ones 422."""
    outcome = {"sent": 0, "accepted": 0, "rejected": 0, "failed": 0}
    if client.collector_url is None:
        return outcome
    for expected, batch in ((202, forms), (422, bad)):
        for form_id, fields in batch:
            outcome["sent"] += 1
            try:
                response = await client.http.post(f"{client.collector_url}/forms/{form_id}", json=fields)
                status = response.status_code
            except httpx.HTTPError:
                status = None
            if status == expected:
                outcome["accepted" if expected == 202 else "rejected"] += 1
            else:
                outcome["failed"] += 1
    return outcome


async def generate(world: World, sandbox_url: str, forms: TextIO, collector_url: str | None = None) -> dict:
    """Build the world into the sandbox, its historical forms into ``forms``; returns the summary."""
    live: list[tuple[str, dict]] = []
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        client = Client(http, sandbox_url, collector_url)
        list_id = await newsletter_list(client)
        for block in world.blocks():
            # Written between blocks, when no call is in flight: the blocking write holds nothing up.
            forms.writelines(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
                             for row in block.forms)
            live += block.live
            await send_block(client, block, list_id)
        # Brevo imports are processed after their 202: the world is complete once they are.
        await client.request("POST", "/_sandbox/brevo/imports/wait", expect=(200,))
        live_outcome = await send_live_forms(client, live, BAD_LIVE_FORMS)
    return summary(world, live_outcome, client.calls)


def summary(world: World, live: dict, calls: collections.Counter[str]) -> dict:
    c = world.counts
    calendly_events = c["bookings"] + c["cancellations"] + 2 * c["reschedules"]
    stripe_events = (c["purchases"] + c["refunds"] + 2 * c["subscriptions"] + c["renewals"]
                     + c["unpaid_renewals"] + c["churns_by_cancellation"])
    forms_total = sum(world.forms.values())
    brevo_events = sum(world.brevo_event_counts.values())
    raw_events = (forms_total + live["accepted"] + calendly_events + stripe_events + c["crm_seeded"]
                  + c["brevo_seeded"] + brevo_events)
    return {
        "contacts": world.contacts,
        "segments": {"B2B": c["B2B"], "B2C": c["B2C"]},
        "window": {"start": iso(world.start), "end": iso(world.end)},
        "forms": {form_id: world.forms[form_id] for form_id in FORM_IDS},
        "forms_total": forms_total,
        "bad_records": c["bad_records"],
        "webinar_duplicates": c["webinar_duplicates"],
        "unknown_webinar_codes": c["unknown_webinar_codes"],
        "unknown_org_type_contacts": c["unknown_org_type_contacts"],
        "repeat_contact_in_nurture": c["repeat_contact_in_nurture"],
        "repeat_contact_after_90_days": c["repeat_contact_after_90_days"],
        "live_forms": live,
        "bookings": c["bookings"],
        "reschedules": c["reschedules"],
        "reschedules_reverse_order": c["reschedules_reverse_order"],
        "cancellations": c["cancellations"],
        "purchases": c["purchases"],
        "repeat_buyers": c["repeat_buyers"],
        "purchases_after_day_15": c["purchases_after_day_15"],
        "refunds": c["refunds"],
        "subscriptions": c["subscriptions"],
        "renewals": c["renewals"],
        "unpaid_renewals": c["unpaid_renewals"],
        "churns": c["churns_by_cancellation"] + c["churns_by_unpaid_renewal"],
        "churns_by_cancellation": c["churns_by_cancellation"],
        "churns_by_unpaid_renewal": c["churns_by_unpaid_renewal"],
        "crm_seeded": c["crm_seeded"],
        "crm_with_owner": c["crm_with_owner"],
        "crm_customers": c["crm_customers"],
        "crm_with_original_touch": c["crm_with_original_touch"],
        "brevo_seeded": c["brevo_seeded"],
        "brevo_events": brevo_events,
        "brevo_events_by_type": dict(sorted(world.brevo_event_counts.items())),
        "newsletter_campaigns": len(world.campaigns),
        "newsletter_events": c["newsletter_events"],
        "raw_events": raw_events,
        "events_per_contact": round(raw_events / world.contacts, 2),
        "sandbox_calls": dict(sorted(calls.items())),
    }


def run(contacts: int, seed: int, sandbox_url: str, forms_out: Path, *, collector_url: str | None = None,
        start: date | None = None, days: int = 120, live_forms: int | None = None) -> dict:
    """The ``world`` sub-command: generate, print nothing, return the summary."""
    if contacts < 1 or days < 1:
        raise WorldError("--contacts and --days must be at least 1")
    world = World(contacts, seed, start or default_start(days), days,
                  min(20, contacts) if live_forms is None else live_forms)
    forms_out = Path(forms_out)
    forms_out.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed at the end, so an interrupted run never leaves a file that looks complete.
    partial = forms_out.with_name(forms_out.name + ".partial")
    try:
        with open(partial, "w", encoding="utf-8", newline="\n") as forms:
            result = asyncio.run(generate(world, sandbox_url, forms, collector_url))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, forms_out)
    return result


def main(args: argparse.Namespace) -> int:
    """Entry point for ``python -m sandbox world``: the JSON summary on stdout, errors on stderr."""
    try:
        result = run(args.contacts, args.seed, args.sandbox_url, Path(args.forms_out),
                     collector_url=args.collector_url, start=args.start, days=args.days,
                     live_forms=args.live_forms)
    except (WorldError, httpx.HTTPError) as exc:
        print(f"world: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0
