"""The emulated Brevo account: its state, the gate every call passes (API key, rate-limit buckets), the
routes and the admin API; each API resource's endpoints live in their own module."""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from sandbox.brevo.attributes import AttributesApi
from sandbox.brevo.common import (
    ADMIN_EVENTS,
    ALL_METHODS,
    BLOCKLISTING_EVENTS,
    CONTACTS_PER_SECOND,
    IMPORT_DELAY_SECONDS,
    OTHER_PER_HOUR,
    SMTP_EMAIL_PER_SECOND,
    SMTP_OTHER_PER_HOUR,
    Contact,
    brevo_error,
    iso,
    parse_datetime,
    utc_now,
    whole_seconds,
)
from sandbox.brevo.contacts import ContactsApi
from sandbox.brevo.email import TransactionalEmailApi
from sandbox.brevo.imports import ImportsApi
from sandbox.brevo.lists import ListsApi
from sandbox.brevo.webhooks import WebhooksApi
from sandbox.core import Limited, Service, env, read_json
from sandbox.webhooks import WebhookSender


class Brevo(AttributesApi, ContactsApi, ImportsApi, ListsApi, TransactionalEmailApi, WebhooksApi):
    """The emulated Brevo account: contacts, one default folder, lists, sent email and its events."""

    def __init__(self, calls: collections.Counter[str], webhooks: WebhookSender) -> None:
        self.calls = calls
        self.webhooks = webhooks
        # The generic /_sandbox/limits handler sets the "default" group, so it is the contacts bucket.
        self.service = Service(
            "brevo",
            check_auth=lambda request: (
                request.headers.get("api-key") == env("BREVO_API_KEY", "xkeysib-sandbox")
            ),
            unauthorized=lambda: brevo_error(401, "unauthorized", "Key not found"),
            too_many_requests=self._too_many_requests,
            server_error=lambda: brevo_error(500, "internal_error", "Internal server error"),
            limit_headers=self._limit_headers,
            groups={
                "default": CONTACTS_PER_SECOND,
                "smtp_email": SMTP_EMAIL_PER_SECOND,
                "smtp_other": SMTP_OTHER_PER_HOUR,
                "other": OTHER_PER_HOUR,
            },
            calls=calls,
        )
        self._imports: set[asyncio.Task] = set()
        self.reset()

    def reset(self) -> None:
        for task in self._imports:
            task.cancel()
        self._imports.clear()
        self.import_delay = IMPORT_DELAY_SECONDS
        self.event_lag = 0.0
        self.reports: dict[str, dict[str, str]] = {}  # report token -> {kind: CSV text}
        self.campaign_events: dict[str, list[dict]] = {}  # email -> its campaign engagement
        self.campaigns: dict[int, dict] = {}  # campaign id -> {"name", "sent_at"}
        self.registered_webhooks: dict[int, dict] = {}  # webhook id -> as created (every type)
        self.attributes: dict[str, dict] = {
            name: {"name": name, "category": "normal", "type": "text"}
            for name in ("FIRSTNAME", "LASTNAME", "SMS")
        }
        self.contacts: dict[int, Contact] = {}
        self.by_email: dict[str, int] = {}
        self.by_ext_id: dict[str, int] = {}
        self.folders: dict[int, dict] = {1: {"id": 1, "name": "Your first folder"}}
        self.lists: dict[int, dict] = {}
        self.members: dict[int, set[int]] = {}
        self.processes: dict[int, dict] = {}
        self.emails: list[dict] = []
        self.sent_to: dict[str, list[dict]] = {}
        self.events: list[dict] = []
        self.ids = {kind: itertools.count(1)
                    for kind in ("contact", "folder", "list", "process", "message", "webhook")}
        next(self.ids["folder"])
        self.version = 0  # bumped by every contact write; keys the listing cache
        self._cache: dict[str, tuple[tuple, list]] = {}

    # ----- the gate ----------------------------------------------------------------------------------

    @staticmethod
    def _limit_headers(limited: Limited) -> dict[str, str]:
        return {
            "x-sib-ratelimit-limit": str(limited.limit),
            "x-sib-ratelimit-remaining": str(limited.remaining),
            "x-sib-ratelimit-reset": str(max(0, whole_seconds(limited.reset_seconds))),
        }

    @staticmethod
    def _too_many_requests(limited: Limited) -> Response:
        return JSONResponse(
            {"code": "too_many_requests", "message": "Too many requests"},
            status_code=429,
            headers={"Retry-After": str(max(1, whole_seconds(limited.reset_seconds)))},
        )

    def routes(self) -> list[Route]:
        s = self.service
        api = [
            s.route("GET", "/v3/contacts/attributes")(self.list_attributes),
            s.route("POST", "/v3/contacts/attributes/{category}/{name}")(self.create_attribute),
            s.route("GET", "/v3/contacts/folders")(self.list_folders),
            s.route("POST", "/v3/contacts/folders")(self.create_folder),
            s.route("GET", "/v3/contacts/lists")(self.list_lists),
            s.route("POST", "/v3/contacts/lists")(self.create_list),
            s.route("GET", "/v3/contacts/lists/{list_id}")(self.get_list),
            s.route("GET", "/v3/contacts/lists/{list_id}/contacts")(self.list_members),
            s.route("POST", "/v3/contacts/lists/{list_id}/contacts/add")(self.add_to_list),
            s.route("POST", "/v3/contacts/lists/{list_id}/contacts/remove")(self.remove_from_list),
            s.route("POST", "/v3/contacts/import")(self.import_contacts),
            s.route("POST", "/v3/contacts/batch")(self.batch_update),
            s.route("GET", "/v3/contacts")(self.list_contacts),
            s.route("POST", "/v3/contacts")(self.create_contact),
            s.route("GET", "/v3/contacts/{identifier}")(self.get_contact),
            s.route("PUT", "/v3/contacts/{identifier}")(self.update_contact),
            s.route("DELETE", "/v3/contacts/{identifier}")(self.delete_contact),
            s.route("GET", "/v3/processes", group="other")(self.list_processes),
            s.route("GET", "/v3/processes/{process_id}", group="other")(self.get_process),
            s.route("POST", "/v3/smtp/email", group="smtp_email")(self.send_email),
            s.route("GET", "/v3/smtp/statistics/events", group="smtp_other")(self.statistics_events),
            s.route("GET", "/v3/webhooks", group="other")(self.list_webhooks),
            s.route("POST", "/v3/webhooks", group="other")(self.create_webhook),
            s.route("GET", "/v3/webhooks/{webhook_id}", group="other")(self.get_webhook),
            s.route("DELETE", "/v3/webhooks/{webhook_id}", group="other")(self.delete_webhook),
        ]
        return [
            *api,
            Route("/import-reports/{token}/{kind}.csv", self.import_report, name="brevo_import_report"),
            Route("/{path:path}", self._no_route(api), methods=ALL_METHODS),
        ]

    @staticmethod
    def _no_route(api: list[Route]) -> Callable[[Request], Awaitable[Response]]:
        """Brevo's JSON error for a path it does not serve (404), or a method it does not take there (405)."""

        async def no_route(request: Request) -> Response:
            if any(route.matches(request.scope)[0] is Match.PARTIAL for route in api):
                return brevo_error(405, "method_not_allowed", f"{request.method} is not allowed on this path")
            return brevo_error(404, "document_not_found", f"Invalid route: {request.method} {request.url.path}")

        return no_route

    def admin_routes(self) -> list[Route]:
        return [
            Route("/brevo/events", self.record_events, methods=["POST"]),
            Route("/brevo/emails", self.sent_emails, methods=["GET"]),
            Route("/brevo/contacts/{email}", self.inspect_contact, methods=["GET"]),
            Route("/brevo/event_lag", self.set_event_lag, methods=["POST"]),
            Route("/brevo/import_delay", self.set_import_delay, methods=["POST"]),
            Route("/brevo/imports/wait", self.wait_for_imports, methods=["POST"]),
        ]

    # ----- admin -------------------------------------------------------------------------------------

    async def record_events(self, request: Request) -> Response:
        """Engagement the world generator simulates. A transactional event is tied to the latest email sent
        to that address (with that template, if given), as a real open or click would be; a campaign event
        (``campaign_id``) goes to the contact's statistics and the marketing webhooks instead."""
        body = await read_json(request)
        items = [body] if isinstance(body, dict) else body
        if not isinstance(items, list):
            return JSONResponse({"error": "body must be an event object or a list of them"}, status_code=400)
        prepared = []
        for index, item in enumerate(items):
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("email"), str)
                or not item["email"].strip()
            ):
                return JSONResponse({"error": f"item {index}: email is required"}, status_code=400)
            if item.get("event") not in ADMIN_EVENTS:
                return JSONResponse(
                    {"error": f"item {index}: event must be one of {', '.join(ADMIN_EVENTS)}"},
                    status_code=400,
                )
            raw_at = item.get("at")
            at = utc_now() if raw_at is None else parse_datetime(raw_at) if isinstance(raw_at, str) else None
            if at is None:
                return JSONResponse(
                    {"error": f"item {index}: at must be an ISO 8601 date-time"}, status_code=400
                )
            template_id, campaign_id = item.get("template_id"), item.get("campaign_id")
            for name, value in (("template_id", template_id), ("campaign_id", campaign_id)):
                if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                    return JSONResponse({"error": f"item {index}: {name} must be an integer"}, status_code=400)
            campaign_name, raw_sent_at = item.get("campaign_name"), item.get("campaign_sent_at")
            if campaign_name is not None and not isinstance(campaign_name, str):
                return JSONResponse({"error": f"item {index}: campaign_name must be a string"}, status_code=400)
            sent_at = parse_datetime(raw_sent_at) if isinstance(raw_sent_at, str) else None
            if raw_sent_at is not None and sent_at is None:
                return JSONResponse(
                    {"error": f"item {index}: campaign_sent_at must be an ISO 8601 date-time"}, status_code=400
                )
            prepared.append(
                (
                    item["email"].strip().lower(),
                    ADMIN_EVENTS[item["event"]],
                    iso(at),
                    item.get("link"),
                    template_id,
                    campaign_id,
                    {"name": campaign_name, "sent_at": iso(sent_at) if sent_at else None},
                )
            )
        campaign_events = []
        for email, event, at, link, template_id, campaign_id, campaign in prepared:
            if campaign_id is not None:
                known = self.campaigns.setdefault(campaign_id, {
                    "name": campaign["name"] or f"Campaign {campaign_id}", "sent_at": campaign["sent_at"] or at})
                recorded = {"event": event, "at": at, "link": link, "campaign_id": campaign_id}
                self.campaign_events.setdefault(email, []).append(recorded)
                campaign_events.append({**recorded, "email": email, **known})
            else:
                sent = [
                    m
                    for m in self.sent_to.get(email, [])
                    if template_id is None or m["templateId"] == template_id
                ]
                self._record_event(email, event, at, sent[-1] if sent else None, link, template_id)
            contact = self._find(email, "email_id")
            if event in BLOCKLISTING_EVENTS and contact is not None:
                contact.email_blacklisted = True
                self._touch(contact)
        await self._deliver_campaign_events(campaign_events)
        return JSONResponse({"recorded": len(prepared)})

    async def sent_emails(self, request: Request) -> Response:
        return JSONResponse(self.emails)

    @staticmethod
    async def _seconds(request: Request) -> float | JSONResponse:
        body = await read_json(request)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds <= 86_400:
            return JSONResponse({"error": "body must be {\"seconds\": a number from 0 to 86400}"}, status_code=400)
        return float(seconds)

    async def set_event_lag(self, request: Request) -> Response:
        seconds = await self._seconds(request)
        if isinstance(seconds, JSONResponse):
            return seconds
        self.event_lag = seconds
        return JSONResponse({"event_lag_seconds": seconds})

    async def set_import_delay(self, request: Request) -> Response:
        seconds = await self._seconds(request)
        if isinstance(seconds, JSONResponse):
            return seconds
        self.import_delay = seconds
        return JSONResponse({"import_delay_seconds": seconds})

    def pending_imports(self) -> int:
        return sum(not task.done() for task in self._imports)

    async def wait_for_imports(self, request: Request) -> Response:
        pending = list(self._imports)
        await asyncio.gather(*pending, return_exceptions=True)
        return JSONResponse({"completed": len(pending)})

    async def inspect_contact(self, request: Request) -> Response:
        contact = self._find(request.path_params["email"], "email_id")
        if contact is None:
            return JSONResponse({"error": "no contact with that email"}, status_code=404)
        return JSONResponse(
            {
                **contact.public(),
                "ext_id": contact.ext_id,
                "lists": [self.lists[i]["name"] for i in contact.list_ids],
            }
        )
