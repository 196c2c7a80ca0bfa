"""The emulated Calendly account: the gate, users and organizations, scheduled events, invitees and webhook
subscriptions with their deliveries."""

from __future__ import annotations

import bisect
import functools
import hmac
import itertools
import json
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.calendly.admin import CalendlyAdmin
from sandbox.calendly.common import (
    ALL_METHODS,
    HOST_CREATED_AT,
    HOST_EMAIL,
    HOST_NAME,
    ORGANIZATION_UUID,
    RATE_LIMIT,
    SERVER_ERROR,
    SUBSCRIPTION_SCOPES,
    USER_UUID,
    WEBHOOK_EVENTS,
    CalendlyError,
    Invitee,
    ScheduledEvent,
    Subscription,
    api,
    calendly_base,
    calendly_signature,
    format_time,
    invalid,
    keys_of,
    not_found,
    paginate,
    parse_count,
    parse_sort,
    parse_status,
    parse_time,
    permission_denied,
    resource_uuid,
    unknown_path,
)
from sandbox.core import Limited, Service, env, read_json
from sandbox.webhooks import WebhookSender


class Calendly(CalendlyAdmin):
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
        """Exactly one of user/organization/group, and it must be ours."""
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

