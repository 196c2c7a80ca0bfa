"""Emulated Calendly API v2: scheduled events, invitees, webhook subscriptions and signed deliveries.

Faithful to reference/api_contracts.md §3: bearer auth, the 500-per-minute bucket with ``X-RateLimit-*``
headers on every response, ``{collection, pagination}`` envelopes with opaque page tokens, and
``invitee.created`` / ``invitee.canceled`` webhooks signed
``t=<unix>,v1=<hex HMAC-SHA256(key, "t." + body)>``.
Resource URIs are absolute and built from the caller's own base URL, the way the real API answers with
``https://api.calendly.com/...``, so a client can follow them without knowing it talks to a sandbox.

One organization and one user (the host of every event). The admin routes (SPEC §5.3) book, cancel and
reschedule the way an invitee would on calendly.com; a reschedule cancels the old invitee and event and
creates a new event and invitee, linked both ways through ``old_invitee`` / ``new_invitee`` (§3.3).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import hashlib
import hmac
import itertools
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.core import AdminError, Limited, Service, bulk_admin, env, read_json, rendering
from sandbox.webhooks import Delivery, WebhookSender

WEBHOOK_EVENTS = frozenset({
    "invitee.created", "invitee.canceled", "invitee_no_show.created", "invitee_no_show.deleted",
    "routing_form_submission.created", "event_type.created", "event_type.updated", "event_type.deleted",
})
SUBSCRIPTION_SCOPES = ("user", "organization")
DEFAULT_COUNT = 20
MAX_COUNT = 100
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
RATE_LIMIT = (500, 60.0)  # paid plans: 500 requests per user per minute (§3.7)

ORGANIZATION_UUID = str(uuid.uuid5(uuid.NAMESPACE_URL, "sandbox.calendly/organization"))
USER_UUID = str(uuid.uuid5(uuid.NAMESPACE_URL, "sandbox.calendly/user"))
HOST_NAME = "Sandbox Host"
HOST_EMAIL = "host@sandbox.test"
HOST_CREATED_AT = "2024-01-01T00:00:00.000000Z"
SERVER_ERROR = "The server encountered an unexpected condition that prevented it from fulfilling the request."


class CalendlyError(Exception):
    """An API error, rendered in Calendly's ``{title, message[, details]}`` body."""

    def __init__(self, status: int, title: str, message: str, details: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.details = details

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"title": self.title, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return JSONResponse(body, status_code=self.status)


def invalid(parameter: str, message: str) -> CalendlyError:
    return CalendlyError(400, "Invalid Argument", "The supplied parameters are invalid.",
                         [{"parameter": parameter, "message": message}])


def not_found() -> CalendlyError:
    return CalendlyError(404, "Resource Not Found", "The server could not find the requested resource.")


def permission_denied() -> CalendlyError:
    return CalendlyError(403, "Permission Denied", "You do not have permission to access this resource.")


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 timestamp (``Z`` or an offset; naive means UTC) as an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """Calendly's timestamp format; fixed width, so these strings also sort chronologically."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def resource_uuid(uri: object, collection: str) -> str | None:
    """The last path segment of ``.../<collection>/<uuid>``, whatever host the URI names."""
    if not isinstance(uri, str):
        return None
    head, _, tail = uri.rstrip("/").rpartition("/")
    return tail if tail and head.endswith("/" + collection) else None


@dataclass
class ScheduledEvent:
    uuid: str
    seq: int
    name: str
    start_time: str
    end_time: str
    created_at: str
    updated_at: str
    status: str = "active"
    cancellation: dict | None = None
    invitees: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int]:
        return (self.start_time, self.seq)


@dataclass
class Invitee:
    uuid: str
    event_uuid: str
    seq: int
    email: str
    name: str
    timezone: str
    tracking: dict
    created_at: str
    updated_at: str
    status: str = "active"
    rescheduled: bool = False
    old_invitee: str | None = None  # invitee uuid
    new_invitee: str | None = None  # invitee uuid
    cancellation: dict | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.created_at, self.seq)


@dataclass
class Subscription:
    uuid: str
    seq: int
    url: str
    events: list[str]
    scope: str
    signing_key: str
    created_at: str
    state: str = "active"
    retry_started_at: str | None = None
    pending: list[Delivery] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int]:
        return (self.created_at, self.seq)

    def track(self, delivery: Delivery) -> None:
        if delivery.status != "delivered":
            self.pending.append(delivery)
        self.refresh()

    def refresh(self) -> None:
        """Calendly retries failed deliveries, then disables the subscription (§3.5)."""
        if any(d.status == "failed" for d in self.pending):
            self.state = "disabled"
        self.pending = [d for d in self.pending if d.status in ("pending", "sending")]
        if self.pending and self.retry_started_at is None:
            self.retry_started_at = format_time(datetime.now(UTC))
        elif not self.pending:
            self.retry_started_at = None


def keys_of(item: ScheduledEvent | Invitee | Subscription) -> tuple:
    return item.key


def encode_token(direction: str, key: tuple) -> str:
    raw = json.dumps({"d": direction, "k": list(key)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[str, tuple]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        direction, key = data["d"], tuple(data["k"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise invalid("page_token", "is invalid") from None
    if direction not in ("next", "prev") or len(key) != 2 or not (
            isinstance(key[0], str) and isinstance(key[1], int)):
        raise invalid("page_token", "is invalid")
    return direction, key


def paginate(request: Request, items: Sequence, keys: Sequence[tuple], match: Callable[[Any], bool],
             count: int, descending: bool, bounds: tuple[int, int] | None = None) -> tuple[list, dict]:
    """One page of ``items`` (sorted ascending by ``keys``) in display order, with keyset page tokens.

    Tokens carry the sort key of the page edge, so pages stay stable while new items arrive.
    ``bounds`` restricts the scan to an index range (e.g. a start-time window found by bisection).
    """
    lo, hi = bounds or (0, len(items))
    forward = -1 if descending else 1
    token = request.query_params.get("page_token")
    direction, anchor = decode_token(token) if token else ("next", None)

    def scan(start: int, step: int, limit: int) -> list:
        found: list = []
        index = min(start, hi - 1) if step < 0 else max(start, lo)
        while lo <= index < hi and len(found) < limit:
            if match(items[index]):
                found.append(items[index])
            index += step
        return found

    def after(key: tuple, step: int) -> int:
        """Index of the first item past ``key`` when walking by ``step``."""
        return bisect.bisect_right(keys, key) if step > 0 else bisect.bisect_left(keys, key) - 1

    if anchor is None:
        page = scan(hi - 1 if descending else lo, forward, count)
    elif direction == "next":
        page = scan(after(anchor, forward), forward, count)
    else:
        page = scan(after(anchor, -forward), -forward, count)[::-1]
    next_key = keys_of(page[-1]) if page else None
    prev_key = keys_of(page[0]) if page else None
    has_next = bool(page) and bool(scan(after(next_key, forward), forward, 1))
    has_prev = bool(page) and bool(scan(after(prev_key, -forward), -forward, 1))
    next_token = encode_token("next", next_key) if has_next else None
    prev_token = encode_token("prev", prev_key) if has_prev else None
    pagination = {
        "count": len(page),
        "next_page": str(request.url.include_query_params(page_token=next_token)) if next_token else None,
        "previous_page": str(request.url.include_query_params(page_token=prev_token)) if prev_token else None,
        "next_page_token": next_token,
        "previous_page_token": prev_token,
    }
    return page, pagination


async def unknown_path(request: Request) -> Response:
    """Calendly's JSON 404 for a path it does not serve, rather than the web framework's plain text."""
    return not_found().response()


def parse_count(request: Request) -> int:
    raw = request.query_params.get("count")
    if raw is None:
        return DEFAULT_COUNT
    try:
        value = int(raw)
    except ValueError:
        raise invalid("count", "must be an integer") from None
    if not 1 <= value <= MAX_COUNT:
        raise invalid("count", f"must be between 1 and {MAX_COUNT}")
    return value


def parse_sort(request: Request, field_name: str) -> bool:
    """True when the caller asked for descending order."""
    raw = request.query_params.get("sort", f"{field_name}:asc")
    if raw not in (f"{field_name}:asc", f"{field_name}:desc"):
        raise invalid("sort", f"must be {field_name}:asc or {field_name}:desc")
    return raw.endswith(":desc")


def parse_status(request: Request) -> str | None:
    status = request.query_params.get("status")
    if status is not None and status not in ("active", "canceled"):
        raise invalid("status", "must be active or canceled")
    return status


def calendly_base(request: Request) -> str:
    """Where the emulated API lives, as seen by the caller: the prefix of every resource URI."""
    return str(request.base_url).rstrip("/") + "/calendly"


def required_time(item: dict, name: str) -> str:
    moment = parse_time(item.get(name))
    if moment is None:
        raise AdminError(400, f"{name} must be an ISO 8601 timestamp")
    return format_time(moment)


def optional_str(item: dict, name: str) -> str | None:
    value = item.get(name)
    if value is not None and not isinstance(value, str):
        raise AdminError(400, f"{name} must be a string")
    return value


class Calendly:
    """The emulated Calendly: in-memory stores behind the shared ``Service`` gate."""

    def __init__(self, calls, webhooks: WebhookSender) -> None:
        self.token = env("CALENDLY_TOKEN", "calendly-sandbox")
        self.default_signing_key = env("CALENDLY_WEBHOOK_SIGNING_KEY", "calendly-signing-sandbox")
        self.webhooks = webhooks
        self.service = Service(
            "calendly",
            check_auth=self._authorized,
            unauthorized=lambda: CalendlyError(
                401, "Unauthenticated", "The access token is invalid").response(),
            too_many_requests=self._too_many_requests,
            server_error=lambda: CalendlyError(500, "Internal Server Error", SERVER_ERROR).response(),
            limit_headers=self._limit_headers,
            groups={"default": RATE_LIMIT},
            calls=calls,
        )
        self.reset()

    def reset(self) -> None:
        self.events: dict[str, ScheduledEvent] = {}
        self.invitees: dict[str, Invitee] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.events_by_email: dict[str, set[str]] = {}
        self._sorted_events: list[ScheduledEvent] = []
        self._sorted_keys: list[tuple[str, int]] = []
        self._sorted_stale = False
        self._seq = itertools.count()

    # -- gate -------------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        return hmac.compare_digest(header.encode(), f"Bearer {self.token}".encode())

    @staticmethod
    def _limit_headers(limited: Limited) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(limited.limit),
            "X-RateLimit-Remaining": str(limited.remaining),
            "X-RateLimit-Reset": str(math.ceil(limited.reset_seconds)),
        }

    @staticmethod
    def _too_many_requests(limited: Limited) -> Response:
        response = CalendlyError(
            429, "Too Many Requests", "You have exceeded the rate limit. Please try again later."
        ).response()
        response.headers["Retry-After"] = str(max(1, math.ceil(limited.reset_seconds)))
        return response

    # -- rendering ----------------------------------------------------------------------------------

    def _user_uri(self, base: str) -> str:
        return f"{base}/users/{USER_UUID}"

    def _organization_uri(self, base: str) -> str:
        return f"{base}/organizations/{ORGANIZATION_UUID}"

    def _invitee_uri(self, base: str, invitee_uuid: str | None) -> str | None:
        if invitee_uuid is None:
            return None
        return f"{base}/scheduled_events/{self.invitees[invitee_uuid].event_uuid}/invitees/{invitee_uuid}"

    def _event_json(self, event: ScheduledEvent, base: str) -> dict:
        event_type = uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox.calendly/event_type/{event.name}")
        active = sum(1 for i in event.invitees if self.invitees[i].status == "active")
        body = {
            "uri": f"{base}/scheduled_events/{event.uuid}",
            "name": event.name,
            "meeting_notes_plain": None,
            "meeting_notes_html": None,
            "status": event.status,
            "start_time": event.start_time,
            "end_time": event.end_time,
            "event_type": f"{base}/event_types/{event_type}",
            "location": {"type": "zoom", "location": None,
                         "join_url": f"https://zoom.us/j/{int(event.uuid[:8], 16):010d}"},
            "invitees_counter": {"total": len(event.invitees), "active": active, "limit": 1},
            "created_at": event.created_at,
            "updated_at": event.updated_at,
            "event_memberships": [{"user": self._user_uri(base), "user_email": HOST_EMAIL,
                                   "user_name": HOST_NAME}],
            "event_guests": [],
        }
        if event.cancellation is not None:
            body["cancellation"] = event.cancellation
        return body

    def _invitee_json(self, invitee: Invitee, base: str) -> dict:
        first, _, last = invitee.name.partition(" ")
        return {
            "uri": self._invitee_uri(base, invitee.uuid),
            "email": invitee.email,
            "name": invitee.name,
            "first_name": first or None,
            "last_name": last or None,
            "status": invitee.status,
            "timezone": invitee.timezone,
            "event": f"{base}/scheduled_events/{invitee.event_uuid}",
            "questions_and_answers": [],
            "tracking": dict(invitee.tracking),
            "text_reminder_number": None,
            "rescheduled": invitee.rescheduled,
            "old_invitee": self._invitee_uri(base, invitee.old_invitee),
            "new_invitee": self._invitee_uri(base, invitee.new_invitee),
            "cancellation": invitee.cancellation,
            "cancel_url": f"https://calendly.com/cancellations/{invitee.uuid}",
            "reschedule_url": f"https://calendly.com/reschedulings/{invitee.uuid}",
            "routing_form_submission": None,
            "payment": None,
            "no_show": None,
            "reconfirmation": None,
            "scheduling_method": None,
            "invitee_scheduled_by": None,
            "created_at": invitee.created_at,
            "updated_at": invitee.updated_at,
        }

    def _subscription_json(self, subscription: Subscription, base: str) -> dict:
        subscription.refresh()
        return {
            "uri": f"{base}/webhook_subscriptions/{subscription.uuid}",
            "callback_url": subscription.url,
            "created_at": subscription.created_at,
            "updated_at": subscription.created_at,
            "retry_started_at": subscription.retry_started_at,
            "state": subscription.state,
            "events": list(subscription.events),
            "scope": subscription.scope,
            "organization": self._organization_uri(base),
            "user": self._user_uri(base) if subscription.scope == "user" else None,
            "group": None,
            "creator": self._user_uri(base),
        }

    # -- REST ---------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        route = self.service.route
        return [
            route("GET", "/users/me")(api(self.get_me)),
            route("GET", "/scheduled_events")(api(self.list_events)),
            route("GET", "/scheduled_events/{uuid}")(api(self.get_event)),
            route("GET", "/scheduled_events/{uuid}/invitees")(api(self.list_invitees)),
            route("GET", "/scheduled_events/{uuid}/invitees/{invitee_uuid}")(api(self.get_invitee)),
            route("POST", "/webhook_subscriptions")(api(self.create_subscription)),
            route("GET", "/webhook_subscriptions")(api(self.list_subscriptions)),
            route("GET", "/webhook_subscriptions/{uuid}")(api(self.get_subscription)),
            route("DELETE", "/webhook_subscriptions/{uuid}")(api(self.delete_subscription)),
            Route("/{path:path}", unknown_path, methods=ALL_METHODS),
        ]

    async def get_me(self, request: Request) -> Response:
        base = calendly_base(request)
        return JSONResponse({"resource": {
            "uri": self._user_uri(base),
            "name": HOST_NAME,
            "slug": "sandbox-host",
            "email": HOST_EMAIL,
            "scheduling_url": "https://calendly.com/sandbox-host",
            "timezone": "UTC",
            "avatar_url": None,
            "locale": "en",
            "resource_type": "User",
            "created_at": HOST_CREATED_AT,
            "updated_at": HOST_CREATED_AT,
            "current_organization": self._organization_uri(base),
        }})

    def _check_owner(self, request: Request) -> None:
        """Exactly one of user/organization/group, and it must be ours (§3.6)."""
        given = [name for name in ("user", "organization", "group") if name in request.query_params]
        if len(given) != 1:
            raise invalid("organization", "exactly one of user, organization or group is required")
        name = given[0]
        owners = {"user": ("users", USER_UUID), "organization": ("organizations", ORGANIZATION_UUID)}
        expected = owners.get(name)
        if expected is None or resource_uuid(request.query_params[name], expected[0]) != expected[1]:
            raise permission_denied()

    def _events_in_order(self) -> tuple[list[ScheduledEvent], list[tuple[str, int]]]:
        if self._sorted_stale:
            self._sorted_events = sorted(self.events.values(), key=keys_of)
            self._sorted_keys = [event.key for event in self._sorted_events]
            self._sorted_stale = False
        return self._sorted_events, self._sorted_keys

    async def list_events(self, request: Request) -> Response:
        self._check_owner(request)
        params = request.query_params
        count = parse_count(request)
        descending = parse_sort(request, "start_time")
        status = parse_status(request)
        window = []
        for name in ("min_start_time", "max_start_time"):
            moment = parse_time(params[name]) if name in params else None
            if name in params and moment is None:
                raise invalid(name, "must be an ISO 8601 timestamp")
            window.append(format_time(moment) if moment else None)
        email = params.get("invitee_email")
        if email is not None:
            items = sorted((self.events[u] for u in self.events_by_email.get(email.strip().lower(), ())),
                           key=keys_of)
            keys = [event.key for event in items]
        else:
            items, keys = self._events_in_order()
        lo = bisect.bisect_left(keys, (window[0],)) if window[0] else 0
        hi = bisect.bisect_left(keys, (window[1],)) if window[1] else len(items)
        page, pagination = paginate(
            request, items, keys, lambda event: status is None or event.status == status,
            count, descending, (lo, max(lo, hi)),
        )
        base = calendly_base(request)
        return JSONResponse({"collection": [self._event_json(e, base) for e in page],
                             "pagination": pagination})

    def _event(self, request: Request) -> ScheduledEvent:
        event = self.events.get(request.path_params["uuid"])
        if event is None:
            raise not_found()
        return event

    async def get_event(self, request: Request) -> Response:
        return JSONResponse({"resource": self._event_json(self._event(request), calendly_base(request))})

    async def list_invitees(self, request: Request) -> Response:
        event = self._event(request)
        count = parse_count(request)
        descending = parse_sort(request, "created_at")
        status = parse_status(request)
        email = request.query_params.get("email")
        items = sorted((self.invitees[u] for u in event.invitees), key=keys_of)

        def match(invitee: Invitee) -> bool:
            return ((status is None or invitee.status == status)
                    and (email is None or invitee.email.lower() == email.strip().lower()))

        page, pagination = paginate(request, items, [i.key for i in items], match, count, descending)
        base = calendly_base(request)
        return JSONResponse({"collection": [self._invitee_json(i, base) for i in page],
                             "pagination": pagination})

    async def get_invitee(self, request: Request) -> Response:
        event = self._event(request)
        invitee_uuid = request.path_params["invitee_uuid"]
        if invitee_uuid not in event.invitees:
            raise not_found()
        invitee = self.invitees[invitee_uuid]
        return JSONResponse({"resource": self._invitee_json(invitee, calendly_base(request))})

    async def create_subscription(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise invalid("body", "must be a JSON object")
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise invalid("url", "must be an http(s) URL")
        events = body.get("events")
        if not isinstance(events, list) or not events or not all(e in WEBHOOK_EVENTS for e in events):
            raise invalid("events", f"must be a non-empty list of: {', '.join(sorted(WEBHOOK_EVENTS))}")
        scope = body.get("scope")
        if scope not in SUBSCRIPTION_SCOPES:
            raise invalid("scope", "must be user or organization")
        if "organization" not in body:
            raise invalid("organization", "is required")
        if resource_uuid(body["organization"], "organizations") != ORGANIZATION_UUID:
            raise permission_denied()
        if scope == "user":
            if "user" not in body:
                raise invalid("user", "is required when scope is user")
            if resource_uuid(body["user"], "users") != USER_UUID:
                raise permission_denied()
        signing_key = body.get("signing_key")
        if signing_key is not None and (not isinstance(signing_key, str) or not signing_key):
            raise invalid("signing_key", "must be a non-empty string")
        if any(s.url == url and s.scope == scope for s in self.subscriptions.values()):
            raise CalendlyError(409, "Already Exists", "Hook with this url already exists")
        subscription = Subscription(
            uuid=str(uuid.uuid4()), seq=next(self._seq), url=url, events=list(dict.fromkeys(events)),
            scope=scope, signing_key=signing_key or self.default_signing_key,
            created_at=format_time(datetime.now(UTC)),
        )
        self.subscriptions[subscription.uuid] = subscription
        return JSONResponse({"resource": self._subscription_json(subscription, calendly_base(request))},
                            status_code=201)

    async def list_subscriptions(self, request: Request) -> Response:
        params = request.query_params
        if "organization" not in params:
            raise invalid("organization", "is required")
        scope = params.get("scope")
        if scope not in ("user", "organization", "group"):
            raise invalid("scope", "is required: user, organization or group")
        if resource_uuid(params["organization"], "organizations") != ORGANIZATION_UUID:
            raise permission_denied()
        if scope == "user":
            if "user" not in params:
                raise invalid("user", "is required when scope is user")
            if resource_uuid(params["user"], "users") != USER_UUID:
                raise permission_denied()
        count = parse_count(request)
        descending = parse_sort(request, "created_at")
        items = sorted(self.subscriptions.values(), key=keys_of)
        page, pagination = paginate(request, items, [s.key for s in items], lambda s: s.scope == scope,
                                    count, descending)
        base = calendly_base(request)
        return JSONResponse({"collection": [self._subscription_json(s, base) for s in page],
                             "pagination": pagination})

    def _subscription(self, request: Request) -> Subscription:
        subscription = self.subscriptions.get(request.path_params["uuid"])
        if subscription is None:
            raise not_found()
        return subscription

    async def get_subscription(self, request: Request) -> Response:
        return JSONResponse({"resource": self._subscription_json(self._subscription(request),
                                                                 calendly_base(request))})

    async def delete_subscription(self, request: Request) -> Response:
        del self.subscriptions[self._subscription(request).uuid]
        return Response(status_code=204)

    # -- webhooks -----------------------------------------------------------------------------------

    def _listeners(self, event_name: str) -> Iterator[Subscription]:
        for subscription in list(self.subscriptions.values()):
            subscription.refresh()
            if subscription.state == "active" and event_name in subscription.events:
                yield subscription

    async def _fire(self, event_name: str, invitee: Invitee, base: str, at: str) -> None:
        """Deliver one webhook to every active subscription listening to it, re-signed per attempt."""
        listeners = list(self._listeners(event_name))
        if not listeners:
            return
        payload = self._invitee_json(invitee, base)
        payload["scheduled_event"] = self._event_json(self.events[invitee.event_uuid], base)
        envelope = {"event": event_name, "created_at": at, "created_by": self._user_uri(base),
                    "payload": payload}
        body = json.dumps(envelope).encode()
        for subscription in listeners:
            sign = functools.partial(calendly_signature, subscription.signing_key.encode(), body)
            subscription.track(await self.webhooks.send("calendly", subscription.url, event_name, body, sign))

    # -- admin --------------------------------------------------------------------------------------

    def admin_routes(self) -> list[Route]:
        return [
            Route("/calendly/bookings", admin(self.book), methods=["POST"]),
            Route("/calendly/cancellations", admin(self.cancel), methods=["POST"]),
        ]

    def _add_event(self, name: str, start_time: str, end_time: str, created_at: str) -> ScheduledEvent:
        event = ScheduledEvent(uuid=str(uuid.uuid4()), seq=next(self._seq), name=name, start_time=start_time,
                               end_time=end_time, created_at=created_at, updated_at=created_at)
        self.events[event.uuid] = event
        self._sorted_stale = True
        return event

    def _add_invitee(self, event: ScheduledEvent, email: str, name: str, tz: str, tracking: dict,
                     created_at: str, old_invitee: str | None = None) -> Invitee:
        invitee = Invitee(uuid=str(uuid.uuid4()), event_uuid=event.uuid, seq=next(self._seq), email=email,
                          name=name, timezone=tz, tracking=tracking, created_at=created_at,
                          updated_at=created_at, old_invitee=old_invitee)
        self.invitees[invitee.uuid] = invitee
        event.invitees.append(invitee.uuid)
        self.events_by_email.setdefault(email.lower(), set()).add(event.uuid)
        return invitee

    async def book(self, item: dict, base: str) -> dict:
        """An invitee books through the booking page (UTMs from the link land in ``tracking``)."""
        email, name, event_name = (optional_str(item, key) for key in ("email", "name", "event_name"))
        if not email or "@" not in email:
            raise AdminError(400, "email is required")
        if not name or not event_name:
            raise AdminError(400, "name and event_name are required")
        start_time, end_time = required_time(item, "start_time"), required_time(item, "end_time")
        created_at = required_time(item, "created_at")
        if end_time <= start_time:
            raise AdminError(400, "end_time must be after start_time")
        tracking = {key: optional_str(item, key) for key in
                    ("utm_campaign", "utm_source", "utm_medium", "utm_content", "utm_term")}
        tracking["salesforce_uuid"] = None
        tz = optional_str(item, "timezone") or "UTC"
        event = self._add_event(event_name, start_time, end_time, created_at)
        invitee = self._add_invitee(event, email.strip(), name, tz, tracking, created_at)
        await self._fire("invitee.created", invitee, base, created_at)
        return {"invitee_uri": self._invitee_uri(base, invitee.uuid),
                "event_uri": f"{base}/scheduled_events/{event.uuid}"}

    async def cancel(self, item: dict, base: str) -> dict:
        """A plain cancellation, or a reschedule: the old booking canceled plus a new one (§3.3)."""
        invitee_uuid = resource_uuid(item.get("invitee_uri"), "invitees")
        canceled_at = required_time(item, "canceled_at")
        reschedule_to = item.get("reschedule_to")
        if reschedule_to is not None:
            if not isinstance(reschedule_to, dict):
                raise AdminError(400, "reschedule_to must be an object {start_time, end_time}")
            start_time = required_time(reschedule_to, "start_time")
            end_time = required_time(reschedule_to, "end_time")
            if end_time <= start_time:
                raise AdminError(400, "reschedule_to.end_time must be after start_time")
        canceler_type = item.get("canceler_type", "invitee")
        if canceler_type not in ("invitee", "host"):
            raise AdminError(400, "canceler_type must be invitee or host")
        reason = optional_str(item, "reason")
        reverse_order = item.get("reverse_order", False)
        if not isinstance(reverse_order, bool):
            raise AdminError(400, "reverse_order must be a boolean")
        old = self.invitees.get(invitee_uuid or "")
        if old is None:
            raise AdminError(404, f"unknown invitee {item.get('invitee_uri')!r}")
        if old.status == "canceled":
            raise AdminError(400, "invitee is already canceled")
        cancellation = {"canceled_by": old.name if canceler_type == "invitee" else HOST_NAME,
                        "reason": reason, "canceler_type": canceler_type, "created_at": canceled_at}
        old_event = self.events[old.event_uuid]
        new = None
        if reschedule_to is not None:
            event = self._add_event(old_event.name, start_time, end_time, canceled_at)
            new = self._add_invitee(event, old.email, old.name, old.timezone, dict(old.tracking), canceled_at,
                                    old_invitee=old.uuid)
            old.rescheduled = True
            old.new_invitee = new.uuid
        old.status = "canceled"
        old.cancellation = cancellation
        old.updated_at = canceled_at
        old_event.status = "canceled"
        old_event.cancellation = dict(cancellation)
        old_event.updated_at = canceled_at
        fired = [("invitee.canceled", old, canceled_at)]
        if new is not None:
            fired.append(("invitee.created", new, canceled_at))
            if reverse_order:
                fired.reverse()
        for event_name, invitee, at in fired:
            await self._fire(event_name, invitee, base, at)
        return {"new_invitee_uri": self._invitee_uri(base, new.uuid) if new else None,
                "new_event_uri": f"{base}/scheduled_events/{new.event_uuid}" if new else None}


def calendly_signature(key: bytes, body: bytes) -> dict[str, str]:
    """``Calendly-Webhook-Signature`` with the current time: each delivery attempt is signed afresh."""
    t = int(time.time())
    digest = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Calendly-Webhook-Signature": f"t={t},v1={digest}"}


api = rendering(CalendlyError)


def admin(handler: Callable[[dict, str], Awaitable[dict]]) -> Callable[[Request], Awaitable[Response]]:
    """A bulk admin endpoint whose handler gets the emulated API's base URL (see ``calendly_base``)."""
    return bulk_admin(handler, context=calendly_base)
