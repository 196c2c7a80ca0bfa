"""Emulated Brevo API v3: contacts, attributes, lists, import, processes, transactional email and its
events.

Faithful where a client can get it wrong: attribute names must exist and values of the wrong type are
silently dropped, ``POST /contacts`` answers 201/204/400 by ``updateEnabled``, list additions are capped
at 150, errors are ``{"code", "message"}`` (an unknown route too: 404 ``document_not_found``, or 405
``method_not_allowed`` for a known path with another method), and each endpoint family has its own
rate-limit bucket with ``x-sib-ratelimit-*`` headers. Choices where Brevo is undocumented:
``modifiedAt`` moves on every accepted update (even one that changes nothing, as the 2026 changelog says);
``""`` clears an attribute of any type on update; the statistics endpoint answers ``{}`` when nothing
matches, as Brevo does.

Imports are asynchronous, as Brevo's are: ``POST /contacts/import`` answers 202 ``{"processId"}`` at once,
and the process then goes ``queued`` -> ``in_process`` -> ``completed`` in the background (each stage
lasts the import delay, 0.1 s unless set), its contacts becoming visible only at the end. Brevo skips the
rows it will not take, without failing the import: a completed ``IMPORTUSER`` process reports them in
``info.import``, one URL per kind of problem (``invalid_emails``, ``duplicate_email_id``,
``duplicate_ext_id``, ... or null), each a semicolon-separated CSV (``EMAIL;REASON``) that the sandbox
serves itself under ``/brevo/import-reports/`` without an API key, like a pre-signed download. The
sandbox skips (Brevo publishes no exact rule; these are ours):

- an email that is not ``local@domain``, is over 254 characters, or has a local part over 64;
- a local part with anything but ASCII letters, digits and ``. _ % + ' -`` (so ``!#$&*/=?^`{|}~``, which
  the email RFCs allow, quoted local parts and non-ASCII addresses are refused), or a dot at its start,
  its end or twice in a row;
- a domain with fewer than two labels, a label that is empty, over 63 characters, has anything but
  letters, digits and hyphens or starts or ends with a hyphen, an IP literal, or a top-level domain that
  is not alphabetic (2+ letters) nor punycode (``xn--``);
- a row whose email already came earlier in the same import (``duplicate_email_id``: the first is taken),
  or whose ``ext_id`` came earlier or belongs to another contact (``duplicate_ext_id``).

The same email rule applies to ``POST /contacts``, ``PUT`` of ``EMAIL`` and transactional recipients.

Contact reads carry the ``statistics`` object Brevo's spec requires: campaign statistics, so they hold
the engagement recorded through the admin API with a ``campaign_id`` (opens, clicks, hard bounces,
unsubscriptions); transactional email never appears there, as in Brevo. Campaign engagement never appears
in ``GET /v3/smtp/statistics/events`` either (that log is transactional only): Brevo has no account-wide
feed of campaign events, only its marketing webhooks, which the sandbox delivers.

Webhooks (``/v3/webhooks``):

| endpoint | body / result |
|---|---|
| ``POST /v3/webhooks`` | ``{url, events, type?, description?, auth?: {type: "bearer", token}, batched?, headers?}``: 201 ``{"id"}``; ``type`` is ``transactional`` (default), ``marketing`` or ``inbound``, and ``events`` must be names of that type (``opened``, ``click``, ``hardBounce``, ``unsubscribed``, ``spam``, ... for marketing) |
| ``GET /v3/webhooks`` | ``?type=`` (default ``transactional``), ``sort=asc|desc``: ``{"webhooks": [...]}``, each without its auth token |
| ``GET /v3/webhooks/{id}`` | one webhook, 404 ``document_not_found`` if unknown |
| ``DELETE /v3/webhooks/{id}`` | 204 |

A campaign event recorded through the admin API is POSTed, before that admin call returns, to every
marketing webhook whose ``events`` include it, in Brevo's marketing payload: ``id`` (the webhook's),
``camp_id``, ``campaign name``, ``email``, ``event`` as Brevo sends it (subscribed as ``click`` /
``hardBounce`` / ``unsubscribed``, sent as ``click`` / ``hard_bounce`` / ``unsubscribe``; ``opened`` and
``spam`` unchanged), ``date_sent`` / ``date_event`` (account time, UTC here), ``ts_sent`` / ``ts_event`` /
``ts`` (epoch seconds), ``tag``, ``segment_ids``, and per event ``URL`` (click), ``sending_ip`` (hard
bounce), ``list_id`` (unsubscribe) or ``reason`` (spam). With ``auth`` a delivery carries
``Authorization: Bearer <token>`` (Brevo signs nothing); a ``batched`` webhook gets one JSON array per
admin call instead of one object per event. Failed deliveries are retried like the other vendors'.

Admin API (``/_sandbox/brevo/...``):

| endpoint | body / result |
|---|---|
| ``POST events`` | ``{email, event, at?, link?, template_id?, campaign_id?, campaign_name?, campaign_sent_at?}`` (event: ``opened``, ``clicked``, ``unsubscribed``, ``hard_bounce`` or ``spam``), or a list of them; with a ``campaign_id`` the event is campaign engagement (contact statistics and marketing webhooks, named and dated by the first event of that campaign that gives them), else transactional (the event log) |
| ``GET emails`` | every transactional email received, never delayed by the event lag |
| ``GET contacts/{email}`` | a contact with its list names |
| ``POST event_lag`` | ``{"seconds": S}``: an event of ``GET /v3/smtp/statistics/events`` (the ``requests`` of an accepted email, and every other) shows only S seconds (wall clock) after its date, like Brevo's log lagging behind; ``0`` (and ``/_sandbox/reset``) clears it |
| ``POST import_delay`` | ``{"seconds": S}``: how long an import stays ``queued`` and then ``in_process`` (reset: 0.1) |
| ``POST imports/wait`` | returns once every import accepted so far has completed: ``{"completed": n}`` |

Handlers mutate the stores without awaiting in between (an import is applied in one step at the end of
its ``in_process`` stage), so one uvicorn worker's event loop serialises them.
"""

from __future__ import annotations

import asyncio
import collections
import csv
import io
import itertools
import json
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from sandbox.core import Limited, Service, env, read_json
from sandbox.webhooks import WebhookSender

CONTACTS_PER_SECOND = (10, 1.0)
SMTP_EMAIL_PER_SECOND = (1000, 1.0)
SMTP_OTHER_PER_HOUR = (300, 3600.0)
OTHER_PER_HOUR = (100, 3600.0)
BATCH_LIMIT = 100  # POST /contacts/batch: not documented; 100 is the usual assumption
LIST_ADD_LIMIT = 150
CONTACTS_PAGE_MAX = 1000
LIST_CONTACTS_PAGE_MAX = 500
LISTS_PAGE_MAX = 50
EVENTS_PAGE_MAX = 5000
EVENTS_PAGE_DEFAULT = 2500
MESSAGE_VERSIONS_MAX = 1000
STATISTICS_EVENTS = (
    "bounces",
    "hardBounces",
    "softBounces",
    "delivered",
    "spam",
    "requests",
    "opened",
    "clicks",
    "invalid",
    "deferred",
    "blocked",
    "unsubscribed",
    "error",
    "loadedByProxy",
)
ADMIN_EVENTS = {
    "opened": "opened",
    "clicked": "clicks",
    "unsubscribed": "unsubscribed",
    "hard_bounce": "hardBounces",
    "spam": "spam",
}
BLOCKLISTING_EVENTS = ("unsubscribed", "hardBounces", "spam")
WEBHOOK_EVENTS = {
    "transactional": ("sent", "hardBounce", "softBounce", "blocked", "spam", "delivered", "request", "click",
                      "invalid", "deferred", "opened", "uniqueOpened", "unsubscribed"),
    "marketing": ("spam", "opened", "click", "hardBounce", "softBounce", "delivered", "unsubscribed",
                  "listAddition", "contactUpdated", "contactDeleted"),
    "inbound": ("inboundEmailProcessed",),
}
"""What ``POST /v3/webhooks`` takes in ``events``, per webhook type."""
CAMPAIGN_WEBHOOK_EVENTS = {
    "opened": ("opened", "opened"),
    "clicks": ("click", "click"),
    "hardBounces": ("hardBounce", "hard_bounce"),
    "unsubscribed": ("unsubscribed", "unsubscribe"),
    "spam": ("spam", "spam"),
}
"""A recorded campaign event: the name a marketing webhook subscribes to, and the one Brevo sends."""
MAX_WEBHOOKS = 40
ATTRIBUTE_CATEGORIES = ("normal", "transactional", "category", "calculated", "global")
TYPES_BY_CATEGORY = {
    "normal": ("text", "date", "float", "boolean"),
    "transactional": ("id", "float"),
    "category": ("category",),
}
IDENTIFIER_TYPES = ("email_id", "contact_id", "ext_id", "phone_id")
LOCAL_PART = re.compile(r"[A-Za-z0-9_%+'-]+(?:\.[A-Za-z0-9_%+'-]+)*")
DOMAIN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
TOP_LEVEL_DOMAIN = re.compile(r"[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}")
IMPORT_REPORTS = (
    "invalid_emails",
    "duplicate_contact_id",
    "duplicate_ext_id",
    "duplicate_email_id",
    "duplicate_phone_id",
    "duplicate_whatsapp_id",
    "duplicate_landline_number_id",
)
"""The report URLs of a completed import's ``info.import``, each null when it has nothing to report."""
IMPORT_DELAY_SECONDS = 0.1
PROCESSES_PAGE_MAX = 50
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
ATTRIBUTE_NAME = re.compile(r"^[A-Z0-9_\-]+$")
DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
RELAY_IP = "198.51.100.7"
DROP = object()  # a value Brevo ignores without an error (unknown attribute, wrong type)


def whole_seconds(seconds: float) -> int:
    """Seconds rounded up for headers; float noise (3600.0000001) must not add a second."""
    return math.ceil(round(seconds, 3))


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Brevo's timestamp shape: milliseconds and an explicit offset. One fixed width, so the stored
    strings compare correctly as text."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+00:00"


def parse_datetime(value: str) -> datetime | None:
    """An ISO 8601 date-time; without an offset it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def email_problem(address: str) -> str | None:
    """Why Brevo would refuse this email address (the rules in the module docstring), or None."""
    if len(address) > 254:
        return "email longer than 254 characters"
    local, at, domain = address.rpartition("@")
    if not (at and local and domain):
        return "email is not of the form local-part@domain"
    if len(local) > 64:
        return "local part longer than 64 characters"
    if not LOCAL_PART.fullmatch(local):
        return "local part has a character Brevo does not take, or a misplaced dot"
    labels = domain.split(".")
    if len(labels) < 2 or not all(DOMAIN_LABEL.fullmatch(label) for label in labels):
        return "domain is not a valid host name"
    if not TOP_LEVEL_DOMAIN.fullmatch(labels[-1]):
        return "top-level domain is not valid"
    return None


def valid_email(value: Any) -> bool:
    return isinstance(value, str) and email_problem(value.strip()) is None


def brevo_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def bad(code: str, message: str) -> JSONResponse:
    return brevo_error(400, code, message)


def int_param(request: Request, name: str, default: int, low: int, high: int | None) -> int | JSONResponse:
    """A bounded integer query parameter, or the 400 ``out_of_range`` Brevo gives outside the bounds."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return bad("invalid_parameter", f"{name} must be an integer")
    if value < low or (high is not None and value > high):
        return bad(
            "out_of_range",
            f"{name} must be between {low} and {high}"
            if high is not None
            else f"{name} must be at least {low}",
        )
    return value


def page_params(request: Request, default_limit: int, max_limit: int) -> tuple[int, int, bool] | JSONResponse:
    """``limit``, ``offset`` and ``sort`` (creation order, default desc) of a Brevo listing: (limit, offset,
    newest first), or the 400 Brevo gives for a bad one."""
    limit = int_param(request, "limit", default_limit, 0, max_limit)
    offset = int_param(request, "offset", 0, 0, None)
    for value in (limit, offset):
        if isinstance(value, JSONResponse):
            return value
    sort = request.query_params.get("sort", "desc")
    if sort not in ("asc", "desc"):
        return bad("invalid_parameter", "sort must be asc or desc")
    return limit, offset, sort == "desc"


def is_int_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


@dataclass
class Contact:
    id: int
    email: str | None
    ext_id: str | None
    created_at: str
    modified_at: str
    attributes: dict[str, Any] = field(default_factory=dict)
    list_ids: list[int] = field(default_factory=list)
    email_blacklisted: bool = False
    sms_blacklisted: bool = False

    def public(self) -> dict:
        return {
            "id": self.id,
            "email": self.email,
            "emailBlacklisted": self.email_blacklisted,
            "smsBlacklisted": self.sms_blacklisted,
            "whatsappBlacklisted": False,
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
            "listIds": list(self.list_ids),
            "attributes": dict(self.attributes),
        }


class Brevo:
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

    # ----- attributes --------------------------------------------------------------------------------

    async def list_attributes(self, request: Request) -> Response:
        return JSONResponse({"attributes": list(self.attributes.values())})

    async def create_attribute(self, request: Request) -> Response:
        category, name = request.path_params["category"], request.path_params["name"].upper()
        if category not in ATTRIBUTE_CATEGORIES:
            return bad(
                "invalid_parameter", f"Invalid attribute category: one of {', '.join(ATTRIBUTE_CATEGORIES)}"
            )
        if not ATTRIBUTE_NAME.match(name):
            return bad("invalid_parameter", "Attribute names use letters, digits, underscores and hyphens")
        if name in self.attributes:
            return bad("duplicate_parameter", "Attribute name already exists")
        body = await read_json(request)
        if not isinstance(body, dict):
            return bad("bad_request", "Input must be a valid JSON object")
        attribute: dict[str, Any] = {"name": name, "category": category}
        if category in ("calculated", "global"):
            if not isinstance(body.get("value"), str) or not body["value"]:
                return bad("missing_parameter", f"A {category} attribute needs a value (formula)")
            attribute["calculatedValue"] = body["value"]
        else:
            type_ = body.get("type", "text" if category == "normal" else None)
            if type_ not in TYPES_BY_CATEGORY[category]:
                return bad(
                    "invalid_parameter",
                    f"Invalid type for a {category} attribute: one of "
                    f"{', '.join(TYPES_BY_CATEGORY[category])}",
                )
            attribute["type"] = type_
            if type_ == "category":
                enumeration = body.get("enumeration")
                if (
                    not isinstance(enumeration, list)
                    or not enumeration
                    or not all(
                        isinstance(e, dict)
                        and isinstance(e.get("value"), int)
                        and isinstance(e.get("label"), str)
                        and len(e["label"]) <= 200
                        for e in enumeration
                    )
                ):
                    return bad(
                        "invalid_parameter", "A category attribute needs enumeration [{value: int, label}]"
                    )
                attribute["enumeration"] = [{"value": e["value"], "label": e["label"]} for e in enumeration]
        self.attributes[name] = attribute
        return Response(status_code=201)

    def _coerce(self, attribute: dict, raw: Any, *, lenient: bool) -> Any:
        """The stored form of a value, ``None`` to clear, or ``DROP`` when Brevo would ignore it.

        API writes are strict about JSON types; imports (CSV cells are all text) accept text forms.
        """
        if raw == "" or (raw is None and lenient):
            return None
        type_ = attribute.get("type")
        if type_ == "text":
            if isinstance(raw, str):
                return raw
            return (
                str(raw) if lenient and isinstance(raw, (int, float)) and not isinstance(raw, bool) else DROP
            )
        if type_ == "float":
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                return raw
            if lenient and isinstance(raw, str):
                try:
                    number = float(raw)
                except ValueError:
                    return DROP
                return int(number) if number.is_integer() else number
            return DROP
        if type_ == "boolean":
            if isinstance(raw, bool):
                return raw
            if (
                lenient
                and isinstance(raw, str)
                and raw.strip().lower() in ("true", "false", "yes", "no", "1", "0")
            ):
                return raw.strip().lower() in ("true", "yes", "1")
            return DROP
        if type_ == "date":
            if not isinstance(raw, str):
                return DROP
            if DATE_ONLY.match(raw):
                try:
                    return date.fromisoformat(raw).isoformat()
                except ValueError:
                    return DROP
            moment = parse_datetime(raw)
            return moment.astimezone(UTC).date().isoformat() if moment else DROP
        if type_ == "category":
            if isinstance(raw, bool):
                return DROP
            for entry in attribute["enumeration"]:
                if raw == entry["value"] or raw == entry["label"] or (lenient and raw == str(entry["value"])):
                    return entry["value"]
            return DROP
        if type_ == "id":
            return str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else DROP
        return DROP  # calculated and global attributes are computed, never written

    def _apply_attributes(
        self, contact: Contact, attributes: dict, *, lenient: bool = False, clear_empty: bool = True
    ) -> None:
        """Write known attributes of the right type; silently skip everything else, as Brevo does."""
        for name, raw in attributes.items():
            attribute = self.attributes.get(name)
            if attribute is None:
                continue
            value = self._coerce(attribute, raw, lenient=lenient)
            if value is DROP:
                continue
            if value is None:
                if clear_empty:
                    contact.attributes.pop(name, None)
            else:
                contact.attributes[name] = value

    # ----- contact store -----------------------------------------------------------------------------

    def _touch(self, contact: Contact) -> None:
        contact.modified_at = iso(utc_now())
        self.version += 1

    def _new_contact(self, email: str | None, ext_id: str | None) -> Contact:
        moment = iso(utc_now())
        contact = Contact(next(self.ids["contact"]), email, ext_id, moment, moment)
        self.contacts[contact.id] = contact
        if email:
            self.by_email[email] = contact.id
        if ext_id:
            self.by_ext_id[ext_id] = contact.id
        self.version += 1
        return contact

    def _find(self, identifier: str, identifier_type: str | None) -> Contact | None:
        """By email, numeric id, ext_id or SMS number; without a type, guessed from the identifier's shape."""
        if identifier_type is None:
            identifier_type = (
                "email_id" if "@" in identifier else "contact_id" if identifier.isdigit() else "ext_id"
            )
        if identifier_type == "email_id":
            contact_id = self.by_email.get(identifier.strip().lower())
        elif identifier_type == "contact_id":
            contact_id = int(identifier) if identifier.isdigit() else None
        elif identifier_type == "ext_id":
            contact_id = self.by_ext_id.get(identifier)
        else:
            contact_id = next(
                (c.id for c in self.contacts.values() if c.attributes.get("SMS") == identifier), None
            )
        return self.contacts.get(contact_id) if contact_id is not None else None

    def _link(self, contact: Contact, list_id: int) -> bool:
        if list_id in contact.list_ids:
            return False
        contact.list_ids.append(list_id)
        self.members[list_id].add(contact.id)
        return True

    def _unlink(self, contact: Contact, list_id: int) -> bool:
        if list_id not in contact.list_ids:
            return False
        contact.list_ids.remove(list_id)
        self.members[list_id].discard(contact.id)
        return True

    def _unknown_lists(self, list_ids: list[int]) -> list[int]:
        return [i for i in list_ids if i not in self.lists]

    def _change_problem(self, body: dict) -> JSONResponse | None:
        """Shape checks shared by create and update."""
        if "attributes" in body and not isinstance(body["attributes"], dict):
            return bad("invalid_parameter", "attributes must be an object")
        for key in ("listIds", "unlinkListIds"):
            if key in body:
                if not is_int_list(body[key]):
                    return bad("invalid_parameter", f"{key} must be a list of list ids")
                unknown = self._unknown_lists(body[key])
                if unknown:
                    return bad("invalid_parameter", f"{key}: list ids {unknown} do not exist")
        for key in ("emailBlacklisted", "smsBlacklisted"):
            if key in body and not isinstance(body[key], bool):
                return bad("invalid_parameter", f"{key} must be a boolean")
        return None

    def _change(self, contact: Contact, body: dict) -> None:
        """Apply attributes, list links and blocklist flags from a create/update body."""
        self._apply_attributes(contact, body.get("attributes") or {})
        for list_id in body.get("listIds") or []:
            self._link(contact, list_id)
        for list_id in body.get("unlinkListIds") or []:
            self._unlink(contact, list_id)
        if "emailBlacklisted" in body:
            contact.email_blacklisted = body["emailBlacklisted"]
        if "smsBlacklisted" in body:
            contact.sms_blacklisted = body["smsBlacklisted"]
        self._touch(contact)

    # ----- contacts ----------------------------------------------------------------------------------

    async def create_contact(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return bad("bad_request", "Input must be a valid JSON object")
        email = body.get("email")
        ext_id = body.get("ext_id")
        sms = (body.get("attributes") or {}).get("SMS") if isinstance(body.get("attributes"), dict) else None
        if not email and not ext_id and not sms:
            return bad(
                "missing_parameter", "An email or SMS phone number is mandatory to create a new contact."
            )
        if email is not None and not valid_email(email):
            return bad("invalid_parameter", "Invalid email address")
        if ext_id is not None and not isinstance(ext_id, str):
            return bad("invalid_parameter", "ext_id must be a string")
        problem = self._change_problem(body)
        if problem:
            return problem
        email = email.strip().lower() if email else None
        existing = (self._find(email, "email_id") if email else None) or (
            self._find(ext_id, "ext_id") if ext_id else None
        )
        if existing is not None:
            if body.get("updateEnabled") is not True:
                return bad("duplicate_parameter", "Contact already exist")
            if ext_id and ext_id not in self.by_ext_id:
                self.by_ext_id.pop(existing.ext_id or "", None)
                existing.ext_id = ext_id
                self.by_ext_id[ext_id] = existing.id
            self._change(existing, body)
            return Response(status_code=204)
        contact = self._new_contact(email, ext_id)
        self._change(contact, body)
        contact.modified_at = contact.created_at
        return JSONResponse({"id": contact.id}, status_code=201)

    def _identified(self, request: Request) -> Contact | JSONResponse:
        identifier_type = request.query_params.get("identifierType")
        if identifier_type is not None and identifier_type not in IDENTIFIER_TYPES:
            return bad("invalid_parameter", f"identifierType must be one of {', '.join(IDENTIFIER_TYPES)}")
        contact = self._find(request.path_params["identifier"], identifier_type)
        if contact is None:
            return brevo_error(404, "document_not_found", "Contact does not exist")
        return contact

    async def get_contact(self, request: Request) -> Response:
        contact = self._identified(request)
        if isinstance(contact, JSONResponse):
            return contact
        return JSONResponse({**contact.public(), "statistics": self._statistics(contact)})

    def _statistics(self, contact: Contact) -> dict:
        """The contact's campaign statistics in Brevo's shape, from the campaign engagement recorded."""
        opened: dict[int, dict] = {}
        clicked: dict[int, dict[str, dict]] = {}
        hard_bounces, unsubscriptions, complaints = [], [], []
        for event in self.campaign_events.get(contact.email or "", []):
            campaign_id, at = event["campaign_id"], event["at"]
            if event["event"] == "opened":
                seen = opened.setdefault(campaign_id, {"campaignId": campaign_id, "count": 0, "eventTime": at,
                                                       "ip": RELAY_IP})
                seen["count"] += 1
            elif event["event"] == "clicks":
                link = clicked.setdefault(campaign_id, {}).setdefault(
                    event["link"] or "", {"url": event["link"] or "", "count": 0, "eventTime": at, "ip": RELAY_IP})
                link["count"] += 1
            elif event["event"] == "hardBounces":
                hard_bounces.append({"campaignId": campaign_id, "eventTime": at})
            elif event["event"] == "spam":
                complaints.append({"campaignId": campaign_id, "eventTime": at})
            else:
                unsubscriptions.append({"campaignId": campaign_id, "eventTime": at, "ip": RELAY_IP})
        return {
            "messagesSent": [],
            "hardBounces": hard_bounces,
            "softBounces": [],
            "complaints": complaints,
            "unsubscriptions": {"userUnsubscription": unsubscriptions, "adminUnsubscription": []},
            "opened": list(opened.values()),
            "clicked": [{"campaignId": c, "links": list(links.values())} for c, links in clicked.items()],
            "transacAttributes": [],
            "delivered": [],
        }

    async def delete_contact(self, request: Request) -> Response:
        """204, and the contact leaves its lists; 404 ``document_not_found`` for an unknown one."""
        contact = self._identified(request)
        if isinstance(contact, JSONResponse):
            return contact
        for list_id in list(contact.list_ids):
            self._unlink(contact, list_id)
        if contact.email:
            self.by_email.pop(contact.email, None)
        if contact.ext_id:
            self.by_ext_id.pop(contact.ext_id, None)
        del self.contacts[contact.id]
        self.version += 1
        return Response(status_code=204)

    async def update_contact(self, request: Request) -> Response:
        """PUT: attributes (``""`` clears; ``EMAIL`` changes the address), lists, blocklist flags → 204."""
        contact = self._identified(request)
        if isinstance(contact, JSONResponse):
            return contact
        body = await read_json(request)
        if not isinstance(body, dict):
            return bad("bad_request", "Input must be a valid JSON object")
        problem = self._change_problem(body)
        if problem:
            return problem
        new_email = (body.get("attributes") or {}).get("EMAIL")
        if new_email is not None:
            if not valid_email(new_email):
                return bad("invalid_parameter", "Invalid email address")
            new_email = new_email.strip().lower()
            if self.by_email.get(new_email, contact.id) != contact.id:
                return bad(
                    "duplicate_parameter",
                    "Contact already exists with this email. Email address must be unique.",
                )
            if contact.email:
                self.by_email.pop(contact.email, None)
            contact.email = new_email
            self.by_email[new_email] = contact.id
        ext_id = body.get("ext_id")
        if isinstance(ext_id, str) and ext_id and self.by_ext_id.get(ext_id, contact.id) == contact.id:
            if contact.ext_id:
                self.by_ext_id.pop(contact.ext_id, None)
            contact.ext_id = ext_id
            self.by_ext_id[ext_id] = contact.id
        self._change(contact, body)
        return Response(status_code=204)

    def _since(self, request: Request, name: str) -> str | None | JSONResponse:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        moment = parse_datetime(raw)
        if moment is None:
            return bad(
                "invalid_parameter",
                f"{name} must be an ISO 8601 date-time with an offset, URL-encoded "
                "(a '+' sent unencoded arrives as a space)",
            )
        return iso(moment)

    def _listing(
        self, request: Request, contact_ids: Any, cache_name: str, list_id: int | None = None
    ) -> tuple[list[Contact], int, int] | JSONResponse:
        """Filter by modifiedSince/createdSince, sort by creation, page by limit/offset."""
        page_max = CONTACTS_PAGE_MAX if list_id is None else LIST_CONTACTS_PAGE_MAX
        limit = int_param(request, "limit", 50, 0, page_max)
        offset = int_param(request, "offset", 0, 0, None)
        modified_since = self._since(request, "modifiedSince")
        created_since = self._since(request, "createdSince")
        for value in (limit, offset, modified_since, created_since):
            if isinstance(value, JSONResponse):
                return value
        sort = request.query_params.get("sort", "desc")
        if sort not in ("asc", "desc"):
            return bad("invalid_parameter", "sort must be asc or desc")
        key = (modified_since, created_since, sort, list_id, self.version)
        cached = self._cache.get(cache_name)
        if cached and cached[0] == key:
            matches = cached[1]
        else:
            matches = [self.contacts[i] for i in sorted(contact_ids, reverse=sort == "desc")]
            if modified_since:
                matches = [c for c in matches if c.modified_at >= modified_since]
            if created_since:
                matches = [c for c in matches if c.created_at >= created_since]
            self._cache[cache_name] = (key, matches)
        return matches[offset : offset + limit], len(matches), offset

    async def list_contacts(self, request: Request) -> Response:
        """``modifiedSince`` is inclusive (a contact modified at the cursor instant is returned again)."""
        contact_ids: Any = self.contacts.keys()
        raw_lists = request.query_params.get("listIds")
        if raw_lists:
            try:
                wanted = [int(i) for i in raw_lists.split(",")]
            except ValueError:
                return bad("invalid_parameter", "listIds must be comma-separated list ids")
            contact_ids = set().union(*(self.members.get(i, set()) for i in wanted))
        listing = self._listing(request, contact_ids, f"contacts:{raw_lists}")
        if isinstance(listing, JSONResponse):
            return listing
        page, count, _ = listing
        return JSONResponse({"contacts": [c.public() for c in page], "count": count})

    # ----- import and batch --------------------------------------------------------------------------

    @staticmethod
    def _csv_rows(text: str) -> list[dict] | None:
        """``fileBody``: semicolon-separated, first line the header with EMAIL and attribute names."""
        reader = csv.reader(io.StringIO(text), delimiter=";")
        header = next(reader, None)
        if not header:
            return None
        header = [h.strip().upper() for h in header]
        if "EMAIL" not in header:
            return None
        rows = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            values = dict(zip(header, cells, strict=False))
            email = values.pop("EMAIL", "")
            rows.append({"email": email, "attributes": values})
        return rows

    async def _rows(self, body: dict) -> list[dict] | JSONResponse:
        sources = [k for k in ("jsonBody", "fileBody", "fileUrl") if body.get(k) not in (None, "", [])]
        if not sources:
            return bad("missing_parameter", "One of jsonBody, fileBody or fileUrl is required")
        if len(sources) > 1:
            return bad("invalid_parameter", "Send only one of jsonBody, fileBody and fileUrl")
        if "jsonBody" in sources:
            rows = body["jsonBody"]
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                return bad("invalid_parameter", "jsonBody must be a list of contact objects")
            return rows
        if "fileBody" in sources:
            text = body["fileBody"]
        else:
            url = body["fileUrl"]
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return bad(
                    "invalid_parameter", "fileUrl must be an http(s) URL of a .csv, .txt or .json file"
                )
            try:
                async with httpx.AsyncClient(timeout=10) as client:
                    fetched = await client.get(url)
                fetched.raise_for_status()
            except httpx.HTTPError:
                return bad("invalid_parameter", "fileUrl could not be downloaded")
            if url.split("?")[0].endswith(".json"):
                try:
                    rows = fetched.json()
                except ValueError:
                    rows = None
                if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                    return bad("invalid_parameter", "The JSON file must hold a list of contact objects")
                return rows
            text = fetched.text
        rows = self._csv_rows(text) if isinstance(text, str) else None
        if rows is None:
            return bad(
                "invalid_parameter", "The file needs a header line with an EMAIL column, separated by ';'"
            )
        return rows

    async def import_contacts(self, request: Request) -> Response:
        """Upsert many contacts into lists: 202 with a queued process, applied in the background."""
        body = await read_json(request)
        if not isinstance(body, dict):
            return bad("bad_request", "Input must be a valid JSON object")
        list_ids = body.get("listIds")
        new_list = body.get("newList")
        if not list_ids and not new_list:
            return bad("missing_parameter", "listIds or newList is required")
        if list_ids is not None and (not is_int_list(list_ids) or self._unknown_lists(list_ids)):
            return bad("invalid_parameter", f"listIds must be existing list ids: {list_ids}")
        if new_list is not None and (
            not isinstance(new_list, dict)
            or not new_list.get("listName")
            or new_list.get("folderId") not in self.folders
        ):
            return bad("invalid_parameter", "newList needs a listName and an existing folderId")
        rows = await self._rows(body)
        if isinstance(rows, JSONResponse):
            return rows
        targets = list(list_ids or [])
        if new_list:
            targets.append(self._new_list(new_list["listName"], new_list["folderId"]))
        process = self._new_process("IMPORTUSER", "queued")
        token = secrets.token_urlsafe(16)
        report_urls = {kind: str(request.url_for("brevo_import_report", token=token, kind=kind))
                       for kind in IMPORT_REPORTS}
        task = asyncio.get_running_loop().create_task(
            self._run_import(process, rows, targets, body, token, report_urls)
        )
        self._imports.add(task)
        task.add_done_callback(self._imports.discard)
        return JSONResponse({"processId": process["id"]}, status_code=202)

    async def _run_import(
        self, process: dict, rows: list[dict], targets: list[int], options: dict, token: str, urls: dict
    ) -> None:
        """queued, then in_process, then applied in one step and completed with its reports."""
        await asyncio.sleep(self.import_delay)
        process["status"] = "in_process"
        await asyncio.sleep(self.import_delay)
        skipped = self._apply_import(rows, targets, options)
        self.reports[token] = {kind: self._report_csv(lines) for kind, lines in skipped.items()}
        process["status"] = "completed"
        process["info"] = {"import": {kind: urls[kind] if kind in skipped else None for kind in IMPORT_REPORTS}}

    def _apply_import(self, rows: list[dict], targets: list[int], options: dict) -> dict[str, list]:
        """Apply the rows Brevo takes; returns the skipped ones as ``{report kind: [(email, reason)]}``."""
        update_existing = options.get("updateExistingContacts", True) is not False
        erase_empty = options.get("emptyContactsAttributes", False) is True
        skipped: dict[str, list[tuple[str, str]]] = {}
        emails_seen: set[str] = set()
        ext_ids_seen: set[str] = set()
        for row in rows:
            raw_email = row.get("email")
            email = raw_email.strip().lower() if isinstance(raw_email, str) else ""
            ext_id = row.get("ext_id") if isinstance(row.get("ext_id"), str) and row.get("ext_id") else None
            problem = email_problem(email) if email else "no email address"
            if problem:
                skipped.setdefault("invalid_emails", []).append((str(raw_email or ""), problem))
                continue
            if email in emails_seen:
                skipped.setdefault("duplicate_email_id", []).append(
                    (email, "email repeated in the import; its first row was taken"))
                continue
            emails_seen.add(email)
            contact = self._find(email, "email_id")
            if ext_id is not None:
                holder = self.by_ext_id.get(ext_id)
                if ext_id in ext_ids_seen or (holder is not None and (contact is None or holder != contact.id)):
                    skipped.setdefault("duplicate_ext_id", []).append(
                        (email, f"ext_id {ext_id!r} belongs to another contact"))
                    continue
                ext_ids_seen.add(ext_id)
            attributes = row.get("attributes") if isinstance(row.get("attributes"), dict) else {}
            if contact is None:
                contact = self._new_contact(email, ext_id)
                self._apply_attributes(contact, attributes, lenient=True, clear_empty=False)
            elif update_existing:
                self._apply_attributes(contact, attributes, lenient=True, clear_empty=erase_empty)
                self._touch(contact)
            else:
                continue
            for list_id in targets:
                self._link(contact, list_id)
            if options.get("emailBlacklist") is True:
                contact.email_blacklisted = True
            if options.get("smsBlacklist") is True:
                contact.sms_blacklisted = True
        return skipped

    @staticmethod
    def _report_csv(lines: list[tuple[str, str]]) -> str:
        text = io.StringIO()
        writer = csv.writer(text, delimiter=";", lineterminator="\n")
        writer.writerow(("EMAIL", "REASON"))
        writer.writerows(lines)
        return text.getvalue()

    async def import_report(self, request: Request) -> Response:
        """A report file of a completed import (no API key: the URL itself is the credential)."""
        report = self.reports.get(request.path_params["token"], {}).get(request.path_params["kind"])
        if report is None:
            return brevo_error(404, "document_not_found", "Report does not exist")
        return Response(report, media_type="text/csv")

    async def batch_update(self, request: Request) -> Response:
        """Updates only (no creates): 204 when every item applied, else 207 with the ids that failed."""
        body = await read_json(request)
        items = body.get("contacts") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return bad("missing_parameter", "contacts must be a non-empty list")
        if len(items) > BATCH_LIMIT:
            return bad("out_of_range", f"At most {BATCH_LIMIT} contacts per request")
        success, failure = [], []
        for item in items:
            keys = [
                k for k in ("email", "id", "sms") if isinstance(item, dict) and item.get(k) not in (None, "")
            ]
            if len(keys) != 1:
                failure.append(None)
                continue
            identifier = item[keys[0]]
            kind = {"email": "email_id", "id": "contact_id", "sms": "phone_id"}[keys[0]]
            contact = self._find(str(identifier), kind)
            if contact is None or self._change_problem(item) is not None:
                failure.append(identifier)
                continue
            self._change(contact, item)
            success.append(contact.id)
        if not failure:
            return Response(status_code=204)
        return JSONResponse({"successIds": success, "failureIds": failure}, status_code=207)

    def _new_process(self, name: str, status: str = "completed") -> dict:
        process = {"id": next(self.ids["process"]), "status": status, "name": name}
        self.processes[process["id"]] = process
        return process

    async def get_process(self, request: Request) -> Response:
        raw = request.path_params["process_id"]
        process = self.processes.get(int(raw)) if raw.isdigit() else None
        if process is None:
            return brevo_error(404, "document_not_found", "Process does not exist")
        return JSONResponse(process)

    async def list_processes(self, request: Request) -> Response:
        """``limit`` (default 10, at most 50), ``offset``, ``sort`` by creation (default desc)."""
        page = page_params(request, 10, PROCESSES_PAGE_MAX)
        if isinstance(page, JSONResponse):
            return page
        limit, offset, newest_first = page
        ids = sorted(self.processes, reverse=newest_first)[offset : offset + limit]
        return JSONResponse({"processes": [self.processes[i] for i in ids], "count": len(self.processes)})

    # ----- folders and lists -------------------------------------------------------------------------

    def _list_view(self, list_id: int) -> dict:
        members = self.members[list_id]
        blacklisted = sum(1 for i in members if self.contacts[i].email_blacklisted)
        return {
            **self.lists[list_id],
            "uniqueSubscribers": len(members),
            "totalBlacklisted": blacklisted,
            "totalSubscribers": len(members) - blacklisted,
        }

    def _new_list(self, name: str, folder_id: int) -> int:
        list_id = next(self.ids["list"])
        self.lists[list_id] = {
            "id": list_id,
            "name": name,
            "folderId": folder_id,
            "createdAt": iso(utc_now()),
        }
        self.members[list_id] = set()
        return list_id

    def _list_or_404(self, request: Request) -> int | JSONResponse:
        raw = request.path_params["list_id"]
        if not raw.isdigit() or int(raw) not in self.lists:
            return brevo_error(404, "document_not_found", "List ID does not exist")
        return int(raw)

    async def list_folders(self, request: Request) -> Response:
        limit = int_param(request, "limit", 10, 0, 50)
        offset = int_param(request, "offset", 0, 0, None)
        for value in (limit, offset):
            if isinstance(value, JSONResponse):
                return value
        folders = []
        for folder in list(self.folders.values())[offset : offset + limit]:
            lists = [self._list_view(i) for i, item in self.lists.items() if item["folderId"] == folder["id"]]
            folders.append(
                {
                    **folder,
                    "uniqueSubscribers": sum(v["uniqueSubscribers"] for v in lists),
                    "totalBlacklisted": sum(v["totalBlacklisted"] for v in lists),
                    "totalSubscribers": sum(v["totalSubscribers"] for v in lists),
                }
            )
        return JSONResponse({"folders": folders, "count": len(self.folders)})

    async def create_folder(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"].strip():
            return bad("missing_parameter", "name is required")
        folder_id = next(self.ids["folder"])
        self.folders[folder_id] = {"id": folder_id, "name": body["name"]}
        return JSONResponse({"id": folder_id}, status_code=201)

    async def list_lists(self, request: Request) -> Response:
        page = page_params(request, 10, LISTS_PAGE_MAX)
        if isinstance(page, JSONResponse):
            return page
        limit, offset, newest_first = page
        ids = sorted(self.lists, reverse=newest_first)[offset : offset + limit]
        return JSONResponse({"lists": [self._list_view(i) for i in ids], "count": len(self.lists)})

    async def create_list(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return bad("bad_request", "Input must be a valid JSON object")
        if not isinstance(body.get("name"), str) or not body["name"].strip() or body.get("folderId") is None:
            return bad("missing_parameter", "name and folderId are required")
        if body["folderId"] not in self.folders:
            return bad("invalid_parameter", "Folder ID does not exist")
        return JSONResponse({"id": self._new_list(body["name"], body["folderId"])}, status_code=201)

    async def get_list(self, request: Request) -> Response:
        list_id = self._list_or_404(request)
        if isinstance(list_id, JSONResponse):
            return list_id
        return JSONResponse({**self._list_view(list_id), "campaignStats": [], "dynamicList": False})

    async def list_members(self, request: Request) -> Response:
        list_id = self._list_or_404(request)
        if isinstance(list_id, JSONResponse):
            return list_id
        listing = self._listing(request, self.members[list_id], "list_members", list_id)
        if isinstance(listing, JSONResponse):
            return listing
        page, count, _ = listing
        return JSONResponse({"contacts": [c.public() for c in page], "count": count})

    def _membership_targets(self, body: Any) -> tuple[str, list] | JSONResponse:
        if not isinstance(body, dict):
            return bad("bad_request", "Input must be a valid JSON object")
        keys = [k for k in ("emails", "ids") if k in body]
        if len(keys) != 1 or not isinstance(body[keys[0]], list) or not body[keys[0]]:
            return bad("invalid_parameter", "Send either a non-empty emails list or a non-empty ids list")
        if len(body[keys[0]]) > LIST_ADD_LIMIT:
            return bad(
                "out_of_range", f"At most {LIST_ADD_LIMIT} contacts per request; use the import for bulk"
            )
        return keys[0], body[keys[0]]

    def _member(self, kind: str, value: Any) -> Contact | None:
        if kind == "emails":
            return self._find(value, "email_id") if isinstance(value, str) else None
        return self.contacts.get(value) if isinstance(value, int) and not isinstance(value, bool) else None

    async def add_to_list(self, request: Request) -> Response:
        """Existing contacts not yet in the list succeed; the rest fail; none succeeding is a 400."""
        list_id = self._list_or_404(request)
        if isinstance(list_id, JSONResponse):
            return list_id
        targets = self._membership_targets(await read_json(request))
        if isinstance(targets, JSONResponse):
            return targets
        success, failure = self._change_membership(*targets, lambda contact: self._link(contact, list_id))
        if not success:
            return bad(
                "invalid_parameter",
                "Contact is already present in the selected list or contact does not exist in account",
            )
        return JSONResponse({"contacts": {"success": success, "failure": failure}}, status_code=201)

    def _change_membership(self, kind: str, values: list, change: Callable[[Contact], bool]) -> tuple[list, list]:
        """Apply ``change`` (link or unlink) to each targeted contact: (values that changed, the rest)."""
        success, failure = [], []
        for value in values:
            contact = self._member(kind, value)
            if contact is not None and change(contact):
                self._touch(contact)
                success.append(value)
            else:
                failure.append(value)
        return success, failure

    async def remove_from_list(self, request: Request) -> Response:
        list_id = self._list_or_404(request)
        if isinstance(list_id, JSONResponse):
            return list_id
        body = await read_json(request)
        if isinstance(body, dict) and body.get("all") is True:
            members = [self.contacts[i] for i in sorted(self.members[list_id])]
            for contact in members:
                self._unlink(contact, list_id)
                self._touch(contact)
            process = self._new_process("remove_all_contacts_from_list")
            return JSONResponse(
                {"contacts": {"processId": process["id"], "total": len(members)}}, status_code=201
            )
        targets = self._membership_targets(body)
        if isinstance(targets, JSONResponse):
            return targets
        success, failure = self._change_membership(*targets, lambda contact: self._unlink(contact, list_id))
        return JSONResponse({"contacts": {"success": success, "failure": failure}}, status_code=201)

    # ----- transactional email -----------------------------------------------------------------------

    @staticmethod
    def _recipients_problem(recipients: Any, name: str) -> str | None:
        if not isinstance(recipients, list) or not recipients:
            return f"{name} must be a non-empty list of {{email, name}}"
        for recipient in recipients:
            if (
                not isinstance(recipient, dict)
                or not valid_email(recipient.get("email"))
            ):
                return f"valid email address is required in {name}"
            if "name" in recipient and not isinstance(recipient["name"], str):
                return f"name in {name} must be a string"
        return None

    def _email_problem(self, body: dict) -> JSONResponse | None:
        template_id = body.get("templateId")
        if template_id is not None and (
            not isinstance(template_id, int) or isinstance(template_id, bool) or template_id < 1
        ):
            return bad("invalid_parameter", "templateId must be a positive integer")
        versions = body.get("messageVersions")
        if versions is not None:
            if not isinstance(versions, list) or not versions or len(versions) > MESSAGE_VERSIONS_MAX:
                return bad(
                    "invalid_parameter", f"messageVersions must hold 1 to {MESSAGE_VERSIONS_MAX} versions"
                )
            for version in versions:
                problem = self._recipients_problem(
                    version.get("to") if isinstance(version, dict) else None, "to"
                )
                if problem:
                    return bad("invalid_parameter", f"messageVersions: {problem}")
                if "params" in version and not isinstance(version["params"], dict):
                    return bad("invalid_parameter", "messageVersions: params must be an object")
        else:
            if body.get("to") is None:
                return bad("missing_parameter", "to is missing")
            problem = self._recipients_problem(body["to"], "to")
            if problem:
                return bad("invalid_parameter", problem)
        for key in ("cc", "bcc"):
            if key in body:
                problem = self._recipients_problem(body[key], key)
                if problem:
                    return bad("invalid_parameter", problem)
        if template_id is None:
            if not (body.get("htmlContent") or body.get("textContent")):
                return bad("missing_parameter", "htmlContent, textContent or templateId is required")
            if not body.get("subject"):
                return bad("missing_parameter", "subject is missing")
            sender = body.get("sender")
            if not isinstance(sender, dict) or not (
                valid_email(sender.get("email")) or "id" in sender
            ):
                return bad("missing_parameter", "sender is missing (a valid sender email or id)")
        if "params" in body and not isinstance(body["params"], dict):
            return bad("invalid_parameter", "params must be an object")
        if "tags" in body and not (
            isinstance(body["tags"], list) and all(isinstance(t, str) for t in body["tags"])
        ):
            return bad("invalid_parameter", "tags must be a list of strings")
        if "headers" in body and not isinstance(body["headers"], dict):
            return bad("invalid_parameter", "headers must be an object")
        return None

    def _message_id(self, moment: datetime) -> str:
        return f"<{moment:%Y%m%d%H%M%S}.{next(self.ids['message'])}@smtp-relay.sandbox>"

    def _deliver(self, body: dict, version: dict) -> str:
        """Record one message and its ``requests`` and ``delivered`` events; returns its messageId."""
        moment = utc_now()
        message_id = self._message_id(moment)
        sender = body.get("sender") if isinstance(body.get("sender"), dict) else {}
        params = {**(body.get("params") or {}), **(version.get("params") or {})}
        to = [{"email": r["email"].strip().lower(), "name": r.get("name")} for r in version["to"]]
        email = {
            "messageId": message_id,
            "to": to,
            "templateId": body.get("templateId"),
            "params": params,
            "tags": list(body.get("tags") or []),
            "subject": version.get("subject") or body.get("subject"),
            "sender": sender or None,
            "headers": body.get("headers") or {},
            "received_at": iso(moment),
        }
        self.emails.append(email)
        for recipient in to:
            self.sent_to.setdefault(recipient["email"], []).append(email)
            for event in ("requests", "delivered"):
                self._record_event(recipient["email"], event, iso(moment), email)
        return message_id

    async def send_email(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return bad("bad_request", "Input must be a valid JSON object")
        problem = self._email_problem(body)
        if problem:
            return problem
        if body.get("messageVersions") is not None:
            ids = [self._deliver(body, version) for version in body["messageVersions"]]
            return JSONResponse({"messageIds": ids}, status_code=201)
        return JSONResponse({"messageId": self._deliver(body, {"to": body["to"]})}, status_code=201)

    # ----- statistics --------------------------------------------------------------------------------

    def _record_event(
        self,
        email: str,
        event: str,
        at: str,
        message: dict | None,
        link: str | None = None,
        template_id: int | None = None,
    ) -> None:
        """One statistics event; without a sent message (engagement simulated for a transactional email the
        sandbox did not send) it still gets a messageId of its own, as every Brevo event has one."""
        message_id = message["messageId"] if message else self._message_id(datetime.fromisoformat(at))
        self.events.append(
            {
                "email": email,
                "date": at,
                "messageId": message_id,
                "event": event,
                "tags": message["tags"] if message else [],
                "templateId": message["templateId"] if message else template_id,
                "subject": message["subject"] if message else None,
                "from": (message.get("sender") or {}).get("email") if message else None,
                "ip": RELAY_IP,
                "link": link,
            }
        )

    @staticmethod
    def _public_event(event: dict) -> dict:
        """Brevo's event item; ``tag`` is the first tag as Brevo reports it, ``tags`` keeps them all."""
        public = {k: v for k, v in event.items() if k != "link" or v is not None}
        public["tag"] = event["tags"][0] if event["tags"] else ""
        return public

    def _event_filters(self, request: Request) -> dict | JSONResponse:
        params = request.query_params
        start, end, days = params.get("startDate"), params.get("endDate"), params.get("days")
        if (start is None) != (end is None):
            return bad("invalid_parameter", "startDate and endDate must be given together")
        if days is not None and start is not None:
            return bad("invalid_parameter", "days cannot be combined with startDate and endDate")
        if start is not None:
            if not (DATE_ONLY.match(start) and DATE_ONLY.match(end)):
                return bad("invalid_parameter", "startDate and endDate use YYYY-MM-DD")
            if start > end:
                return bad("invalid_parameter", "startDate must not be after endDate")
        if days is not None:
            if not days.isdigit() or int(days) < 1:
                return bad("invalid_parameter", "days must be a positive integer")
            today = utc_now().date()
            start, end = (today - timedelta(days=int(days) - 1)).isoformat(), today.isoformat()
        event = params.get("event")
        if event is not None and event not in STATISTICS_EVENTS:
            return bad("invalid_parameter", f"event must be one of {', '.join(STATISTICS_EVENTS)}")
        template_id = params.get("templateId")
        if template_id is not None and not template_id.isdigit():
            return bad("invalid_parameter", "templateId must be an integer")
        sort = params.get("sort", "desc")
        if sort not in ("asc", "desc"):
            return bad("invalid_parameter", "sort must be asc or desc")
        tags = params.get("tags")
        if tags is not None:
            try:
                parsed = json.loads(tags)
            except ValueError:
                parsed = tags.split(",")
            tags = tuple(parsed) if isinstance(parsed, list) else (str(parsed),)
        return {
            "start": start,
            "end": end,
            "email": (params.get("email") or "").strip().lower() or None,
            "event": event,
            "tags": tags,
            "messageId": params.get("messageId"),
            "templateId": int(template_id) if template_id else None,
            "sort": sort,
        }

    def _event_matches(self, event: dict, f: dict) -> bool:
        day = event["date"][:10]
        if f["start"] and not f["start"] <= day <= f["end"]:
            return False
        if f["email"] and event["email"] != f["email"]:
            return False
        if f["event"] and not (
            event["event"] == f["event"]
            or f["event"] == "bounces"
            and event["event"] in ("hardBounces", "softBounces")
        ):
            return False
        if f["tags"] and not set(f["tags"]) & set(event["tags"]):
            return False
        if f["messageId"] and event["messageId"] != f["messageId"]:
            return False
        return not (f["templateId"] and event["templateId"] != f["templateId"])

    async def statistics_events(self, request: Request) -> Response:
        """Filtered, date-sorted events; ``{}`` when nothing matches, as Brevo answers. With an event lag,
        only the events dated at least that long ago."""
        limit = int_param(request, "limit", EVENTS_PAGE_DEFAULT, 0, EVENTS_PAGE_MAX)
        offset = int_param(request, "offset", 0, 0, None)
        for value in (limit, offset):
            if isinstance(value, JSONResponse):
                return value
        filters = self._event_filters(request)
        if isinstance(filters, JSONResponse):
            return filters
        key = (tuple(sorted(filters.items(), key=lambda kv: kv[0])), len(self.events))
        cached = self._cache.get("events")
        if cached and cached[0] == key:
            matches = cached[1]
        else:
            matches = sorted(
                (e for e in self.events if self._event_matches(e, filters)),
                key=lambda e: e["date"],
                reverse=filters["sort"] == "desc",
            )
            self._cache["events"] = (key, matches)
        if self.event_lag:
            shown_until = iso(utc_now() - timedelta(seconds=self.event_lag))
            matches = [e for e in matches if e["date"] <= shown_until]
        page = matches[offset : offset + limit]
        return JSONResponse({"events": [self._public_event(e) for e in page]} if page else {})

    # ----- webhooks ----------------------------------------------------------------------------------

    def _webhook_problem(self, body: Any) -> JSONResponse | None:
        if not isinstance(body, dict):
            return bad("invalid_parameter", "body must be a JSON object")
        url = body.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
            return bad("invalid_parameter", "url is missing or not a valid URL")
        kind = body.get("type", "transactional")
        if kind not in WEBHOOK_EVENTS:
            return bad("invalid_parameter", f"type must be one of {', '.join(WEBHOOK_EVENTS)}")
        events = body.get("events")
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            return bad("missing_parameter", "events must be a non-empty list of event names")
        unknown = [e for e in events if e not in WEBHOOK_EVENTS[kind]]
        if unknown:
            return bad("invalid_parameter", f"events not valid for a {kind} webhook: {', '.join(unknown)}; "
                                            f"expected some of {', '.join(WEBHOOK_EVENTS[kind])}")
        auth = body.get("auth")
        if auth is not None and not (
            isinstance(auth, dict) and auth.get("type") == "bearer"
            and isinstance(auth.get("token"), str) and auth["token"]
        ):
            return bad("invalid_parameter", "auth must be {\"type\": \"bearer\", \"token\": a non-empty string}")
        if "batched" in body and not isinstance(body["batched"], bool):
            return bad("invalid_parameter", "batched must be a boolean")
        if len(self.registered_webhooks) >= MAX_WEBHOOKS:
            return bad("not_acceptable", f"the account already has {MAX_WEBHOOKS} webhooks")
        return None

    async def create_webhook(self, request: Request) -> Response:
        body = await read_json(request)
        problem = self._webhook_problem(body)
        if problem is not None:
            return problem
        webhook_id = next(self.ids["webhook"])
        now = iso(utc_now())
        self.registered_webhooks[webhook_id] = {
            "id": webhook_id,
            "url": body["url"],
            "description": body.get("description") or "",
            "events": list(dict.fromkeys(body["events"])),
            "type": body.get("type", "transactional"),
            "batched": body.get("batched", False),
            "auth": body.get("auth"),
            "headers": body.get("headers") or [],
            "createdAt": now,
            "modifiedAt": now,
        }
        return JSONResponse({"id": webhook_id}, status_code=201)

    @staticmethod
    def _webhook_view(webhook: dict) -> dict:
        """A webhook as the API shows it: its auth type, never its token."""
        view = {k: v for k, v in webhook.items() if k != "auth"}
        if webhook["auth"]:
            view["auth"] = {"type": webhook["auth"]["type"]}
        return view

    async def list_webhooks(self, request: Request) -> Response:
        kind = request.query_params.get("type", "transactional")
        if kind not in WEBHOOK_EVENTS:
            return bad("invalid_parameter", f"type must be one of {', '.join(WEBHOOK_EVENTS)}")
        sort = request.query_params.get("sort", "desc")
        if sort not in ("asc", "desc"):
            return bad("invalid_parameter", "sort must be asc or desc")
        chosen = [self._webhook_view(w) for w in self.registered_webhooks.values() if w["type"] == kind]
        chosen.sort(key=lambda w: w["id"], reverse=sort == "desc")
        return JSONResponse({"webhooks": chosen})

    def _webhook_or_404(self, request: Request) -> dict | JSONResponse:
        raw = request.path_params["webhook_id"]
        webhook = self.registered_webhooks.get(int(raw)) if raw.isdigit() else None
        if webhook is None:
            return brevo_error(404, "document_not_found", "Webhook not found")
        return webhook

    async def get_webhook(self, request: Request) -> Response:
        webhook = self._webhook_or_404(request)
        return webhook if isinstance(webhook, JSONResponse) else JSONResponse(self._webhook_view(webhook))

    async def delete_webhook(self, request: Request) -> Response:
        webhook = self._webhook_or_404(request)
        if isinstance(webhook, JSONResponse):
            return webhook
        del self.registered_webhooks[webhook["id"]]
        return Response(status_code=204)

    @staticmethod
    def _campaign_payload(webhook_id: int, event: dict) -> dict:
        """One campaign event in Brevo's marketing webhook shape."""
        sent, happened = datetime.fromisoformat(event["sent_at"]), datetime.fromisoformat(event["at"])
        payload: dict[str, Any] = {
            "id": webhook_id,
            "camp_id": event["campaign_id"],
            "email": event["email"],
            "campaign name": event["name"],
            "date_sent": sent.strftime("%Y-%m-%d %H:%M:%S"),
            "date_event": happened.strftime("%Y-%m-%d %H:%M:%S"),
            "event": CAMPAIGN_WEBHOOK_EVENTS[event["event"]][1],
            "tag": "",
            "segment_ids": [],
            "ts_sent": int(sent.timestamp()),
            "ts_event": int(happened.timestamp()),
            "ts": int(happened.timestamp()),
        }
        if event["event"] == "clicks":
            payload["URL"] = event["link"] or ""
        elif event["event"] == "hardBounces":
            payload["sending_ip"] = RELAY_IP
        elif event["event"] == "unsubscribed":
            payload["list_id"] = []
        elif event["event"] == "spam":
            payload["reason"] = "undesired"
        return payload

    async def _deliver_campaign_events(self, events: list[dict]) -> None:
        """POST the events to every marketing webhook subscribed to them: one array per batched webhook,
        else one object per event, each with the webhook's bearer token when it has one."""
        for webhook in list(self.registered_webhooks.values()):
            if webhook["type"] != "marketing":
                continue
            payloads = [self._campaign_payload(webhook["id"], event) for event in events
                        if CAMPAIGN_WEBHOOK_EVENTS[event["event"]][0] in webhook["events"]]
            if not payloads:
                continue
            auth = webhook["auth"]
            headers = {"Authorization": f"Bearer {auth['token']}"} if auth else {}
            bodies = [payloads] if webhook["batched"] else payloads
            for body in bodies:
                event_type = "batch" if webhook["batched"] else body["event"]
                await self.webhooks.send("brevo", webhook["url"], event_type, json.dumps(body).encode(),
                                         lambda headers=headers: dict(headers))

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
