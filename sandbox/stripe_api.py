"""Emulated Stripe API: the Events API, Checkout Sessions with line items, webhook endpoints, and
webhook deliveries signed with the ``stripe`` library's own helper.

Faithful to reference/api_contracts.md §4: bearer or basic auth, form-encoded bodies in Stripe's bracket
notation, ``{"error": {...}}`` bodies with a ``Request-Id`` header on every answer, idempotency keys,
newest-first lists with ``starting_after`` / ``ending_before`` cursors, and events only for the last
30 days of wall-clock time. Events are immutable snapshots of their object, rendered at API version
``2025-03-31.basil`` (invoices carry ``parent.subscription_details``; subscription periods sit on the items).

The admin routes (SPEC §5.3) play the customer: purchases, refunds, and subscriptions that renew, fail
to renew or get canceled, each raising the events real Stripe sends for them.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextvars
import functools
import hashlib
import hmac
import itertools
import json
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import stripe
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.core import AdminError, Limited, Service, bulk_admin, env, rendering
from sandbox.webhooks import Delivery, WebhookSender

API_VERSION = "2025-03-31.basil"
RETENTION_DAYS = 30
MAX_TYPES = 20
MAX_LIMIT = 100
DEFAULT_LIMIT = 10
RATE_LIMIT = (25, 1.0)  # test mode: 25 requests per second (§4.5)
DEFAULT_SUBSCRIPTION_AMOUNT = 2000
EVENT_TYPE = re.compile(r"[a-z_]+(\.[a-z_]+)+")
MISSING_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, "
    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). "
    "See https://stripe.com/docs/api#authentication for details, "
    "or we can help at https://support.stripe.com/."
)
TOO_MANY_REQUESTS = (
    "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests."
)
SERVER_ERROR = (
    "Sorry, something went wrong. We've already been notified of the problem, but if you need any help, "
    "you can reach us at https://support.stripe.com/contact/"
)

# Why the gate refused the current request: ``Service.unauthorized`` takes no arguments, and Stripe words
# a missing key differently from a wrong one. Set and read within the one task serving the request.
_auth_failure: contextvars.ContextVar[str] = contextvars.ContextVar("stripe_auth_failure",
                                                                   default=MISSING_KEY)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def price_id(*identity: str) -> str:
    """The same product (and terms) always gets the same price id, as a catalogue would."""
    return "price_" + hashlib.sha256("/".join(identity).encode()).hexdigest()[:24]


def stripe_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """Every Stripe answer carries a ``Request-Id``."""
    return JSONResponse(body, status_code=status, headers={"Request-Id": new_id("req"), **(headers or {})})


class StripeError(Exception):
    """An API error, rendered in Stripe's ``{"error": {type, code, message, param}}`` envelope."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type_, "message": message}
        if code is not None:
            self.body["code"] = code
            self.body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param is not None:
            self.body["param"] = param

    def response(self) -> JSONResponse:
        return stripe_json({"error": self.body}, self.status)


def invalid(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(400, message, code=code, param=param)


def missing(noun: str, object_id: str, param: str = "id", status: int = 404) -> StripeError:
    return StripeError(status, f"No such {noun}: '{object_id}'", code="resource_missing", param=param)


def mask_key(key: str) -> str:
    """Stripe's way of naming a rejected key: the mode prefix, stars, and at most the last four characters."""
    prefix = next((p for p in ("sk_test_", "sk_live_", "rk_test_", "rk_live_") if key.startswith(p)), "")
    rest = key[len(prefix):]
    tail = rest[-4:] if len(rest) >= 16 else ""
    return prefix + "*" * (len(rest) - len(tail)) + tail


def presented_key(request: Request) -> str | None:
    """The API key from ``Authorization: Bearer sk_...`` or HTTP basic auth with the key as username."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    return None


def decode_params(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracket notation to nested values: ``a[]=x``, ``a[0]=x`` → lists; ``m[k]=v`` → dicts."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        head, bracket, rest = raw_key.partition("[")
        parts = [head] + (rest.rstrip("]").split("][") if bracket else [])
        node = root
        for depth, part in enumerate(parts):
            if part == "":
                part = str(len(node))
            if depth == len(parts) - 1:
                if isinstance(node.get(part), dict):
                    raise invalid(f"Invalid value for {raw_key}: expected an object.", param=raw_key)
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise invalid(f"Invalid value for {raw_key}.", param=raw_key)
                node = child
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(key.isdigit() for key in node):
        return [_listify(node[key]) for key in sorted(node, key=int)]
    return {key: _listify(value) for key, value in node.items()}


def query(request: Request) -> dict[str, Any]:
    return decode_params(parse_qsl(request.url.query, keep_blank_values=True))


async def form(request: Request) -> dict[str, Any]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return decode_params(parse_qsl(body, keep_blank_values=True))


def check_known(params: dict[str, Any], allowed: set[str]) -> None:
    for name in params:
        if name not in allowed:
            raise invalid(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")


def parse_int(value: Any, param: str) -> int:
    if not isinstance(value, str):
        raise invalid(f"Invalid integer: {value!r}", param=param)
    try:
        return int(value)
    except ValueError:
        raise invalid(f"Invalid integer: {value}", param=param) from None


def parse_limit(params: dict[str, Any]) -> int:
    if "limit" not in params:
        return DEFAULT_LIMIT
    limit = parse_int(params["limit"], "limit")
    if limit < 1:
        raise invalid(f"This value must be greater than or equal to 1 (it currently is '{limit}').", "limit")
    if limit > MAX_LIMIT:
        raise invalid(f"This value must be less than or equal to {MAX_LIMIT} (it currently is '{limit}').",
                      "limit")
    return limit


def parse_created(params: dict[str, Any]) -> tuple[int | None, int | None]:
    """``created=<t>`` or ``created[gte|gt|lte|lt]=<t>`` as a half-open range [low, high)."""
    created = params.get("created")
    if created is None:
        return None, None
    if isinstance(created, str):
        exact = parse_int(created, "created")
        return exact, exact + 1
    if not isinstance(created, dict):
        raise invalid("Invalid created: must be an integer or a hash of gte, gt, lte, lt.", "created")
    low = high = None
    for op, raw in created.items():
        value = parse_int(raw, f"created[{op}]")
        if op == "gte":
            low = value if low is None else max(low, value)
        elif op == "gt":
            low = value + 1 if low is None else max(low, value + 1)
        elif op == "lte":
            high = value + 1 if high is None else min(high, value + 1)
        elif op == "lt":
            high = value if high is None else min(high, value)
        else:
            raise invalid(f"Received unknown parameter: created[{op}]", f"created[{op}]", "parameter_unknown")
    return low, high


def parse_expand(params: dict[str, Any], allowed: set[str]) -> set[str]:
    expand = params.get("expand", [])
    if not isinstance(expand, list) or not all(isinstance(e, str) for e in expand):
        raise invalid("Invalid array", "expand")
    for index, path in enumerate(expand):
        if path not in allowed:
            raise invalid(f"This property cannot be expanded ({path}).", f"expand[{index}]")
    return set(expand)


def cursor(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise invalid(f"Invalid {name}: must be an object id.", name)
    return value


class Timeline:
    """Objects of one kind in list order: by ``created``, ties broken by a creation sequence so that
    paging is stable. Sorted lazily, since the world generator may create them in any order."""

    def __init__(self, noun: str) -> None:
        self.noun = noun
        self.objects: dict[str, dict] = {}
        self._entries: list[tuple[int, int, dict]] = []
        self._keys: list[tuple[int, int]] = []
        self._position: dict[str, int] = {}
        self._stale = False

    def add(self, obj: dict, seq: int) -> None:
        self.objects[obj["id"]] = obj
        self._entries.append((obj["created"], seq, obj))
        self._stale = True

    def remove(self, object_id: str) -> None:
        del self.objects[object_id]
        self._entries = [entry for entry in self._entries if entry[2]["id"] != object_id]
        self._stale = True

    def _sort(self) -> None:
        if self._stale:
            self._entries.sort(key=lambda entry: (entry[0], entry[1]))
            self._keys = [(created, seq) for created, seq, _ in self._entries]
            self._position = {entry[2]["id"]: index for index, entry in enumerate(self._entries)}
            self._stale = False

    def page(self, params: dict[str, Any], match: Callable[[dict], bool] | None = None,
             descending: bool = True, min_created: int | None = None) -> tuple[list[dict], bool]:
        """One page per ``limit``, ``starting_after``, ``ending_before`` and ``created``; (data, has_more)."""
        limit = parse_limit(params)
        low, high = parse_created(params)
        starting_after, ending_before = cursor(params, "starting_after"), cursor(params, "ending_before")
        if starting_after and ending_before:
            raise invalid("You may only specify one of these parameters: starting_after, ending_before.")
        if min_created is not None:
            low = min_created if low is None else max(low, min_created)
        self._sort()
        lo = bisect.bisect_left(self._keys, (low,)) if low is not None else 0
        hi = bisect.bisect_left(self._keys, (high,)) if high is not None else len(self._entries)
        forward = -1 if descending else 1
        anchor_id = ending_before or starting_after
        if anchor_id is not None:
            if anchor_id not in self._position:
                param = "ending_before" if ending_before else "starting_after"
                raise missing(self.noun, anchor_id, param, 400)
            walk = -forward if ending_before else forward
            start = self._position[anchor_id] + walk
        else:
            walk, start = forward, (hi - 1 if descending else lo)
        index = min(start, hi - 1) if walk < 0 else max(start, lo)
        found: list[dict] = []
        while lo <= index < hi and len(found) <= limit:
            obj = self._entries[index][2]
            if match is None or match(obj):
                found.append(obj)
            index += walk
        has_more = len(found) > limit
        found = found[:limit]
        if ending_before:
            found.reverse()
        return found, has_more


def list_object(url: str, data: list, has_more: bool) -> dict:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def type_matcher(params: dict[str, Any]) -> Callable[[dict], bool] | None:
    """``type`` (one name, ``*`` wildcards allowed) or ``types[]`` (≤20 exact names), never both."""
    if "type" in params and "types" in params:
        raise invalid("You may only specify one of these parameters: type, types.", "type")
    if "type" in params:
        pattern = params["type"]
        if not isinstance(pattern, str):
            raise invalid("Invalid type: must be a string.", "type")
        regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
        return lambda event: regex.fullmatch(event["type"]) is not None
    if "types" in params:
        types = params["types"]
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise invalid("Invalid array", "types")
        if len(types) > MAX_TYPES:
            raise invalid(f"You may pass at most {MAX_TYPES} event types (you passed {len(types)}).", "types")
        wanted = set(types)
        return lambda event: event["type"] in wanted
    return None


def unix_time(item: dict, name: str) -> int:
    """Admin timestamps: unix seconds, or ISO 8601 (``Z`` or an offset; naive means UTC)."""
    value = item.get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())
    raise AdminError(400, f"{name} must be unix seconds or an ISO 8601 timestamp")


def admin_str(item: dict, name: str, required: bool = False) -> str | None:
    value = item.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise AdminError(400, f"{name} must be a non-empty string")
    return value


def admin_int(item: dict, name: str, default: int | None = None, minimum: int = 0) -> int:
    value = item.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise AdminError(400, f"{name} must be an integer >= {minimum}")
    return value


async def unrecognized_url(request: Request) -> Response:
    """Stripe's JSON 404 for a path or method it does not serve, rather than the framework's plain text.

    A trailing slash or an empty path segment (an id left blank) gets Stripe's hint about both."""
    path = "/" + request.path_params["path"]
    hint = ""
    if path.endswith("/") or "//" in path:
        hint = ("If you are trying to list objects, remove the trailing slash. If you are trying to retrieve an "
                "object, make sure you passed a valid (non-empty) identifier in your code. ")
    message = (f"Unrecognized request URL ({request.method}: {path}). {hint}"
               "Please see https://stripe.com/docs or we can help at https://support.stripe.com/.")
    return StripeError(404, message).response()


def stripe_signature(payload: str, secret: str) -> dict[str, str]:
    """Signed by the ``stripe`` library's own helper, with the current time: fresh for each attempt."""
    return {
        "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(payload, secret),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }


@dataclass
class Saved:
    """An idempotent request's first outcome, replayed for later requests with the same key."""

    fingerprint: str
    status: int
    body: bytes
    request_id: str


@dataclass
class SubscriptionState:
    obj: dict
    customer: dict
    amount: int
    interval_days: int


class Stripe:
    """The emulated Stripe: in-memory stores behind the shared ``Service`` gate."""

    def __init__(self, calls, webhooks: WebhookSender) -> None:
        self.api_key = env("STRIPE_API_KEY", "sk_test_sandbox")
        self.webhook_secret = env("STRIPE_WEBHOOK_SECRET", "whsec_sandbox")
        self.webhooks = webhooks
        self.service = Service(
            "stripe",
            check_auth=self._authorized,
            unauthorized=lambda: StripeError(401, _auth_failure.get()).response(),
            too_many_requests=self._too_many_requests,
            server_error=lambda: StripeError(500, SERVER_ERROR, type_="api_error").response(),
            limit_headers=lambda limited: {},
            groups={"default": RATE_LIMIT},
            calls=calls,
        )
        self.reset()

    def reset(self) -> None:
        self.events = Timeline("event")
        self.sessions = Timeline("checkout.session")
        self.endpoints = Timeline("webhook_endpoint")
        self.line_items: dict[str, Timeline] = {}
        self.charges: dict[str, dict] = {}  # by checkout session id
        self.customers: dict[str, dict] = {}
        self.customer_by_email: dict[str, dict] = {}
        self.subscriptions: dict[str, SubscriptionState] = {}
        self.deliveries: dict[str, list[Delivery]] = {}  # by event id
        self.idempotency: dict[tuple[str, str], Saved] = {}
        self._seq = itertools.count()

    # -- gate ---------------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        key = presented_key(request)
        if key is None:
            _auth_failure.set(MISSING_KEY)
            return False
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            _auth_failure.set(f"Invalid API Key provided: {mask_key(key)}")
            return False
        return True

    @staticmethod
    def _too_many_requests(limited: Limited) -> Response:
        response = StripeError(429, TOO_MANY_REQUESTS, code="rate_limit").response()
        response.headers["Retry-After"] = str(max(1, math.ceil(limited.reset_seconds)))
        return response

    # -- REST ---------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        route = self.service.route
        return [
            route("GET", "/v1/events")(api(self.list_events)),
            route("GET", "/v1/events/{id}")(api(self.get_event)),
            route("GET", "/v1/checkout/sessions")(api(self.list_sessions)),
            route("GET", "/v1/checkout/sessions/{id}")(api(self.get_session)),
            route("GET", "/v1/checkout/sessions/{id}/line_items")(api(self.list_line_items)),
            route("POST", "/v1/webhook_endpoints")(api(self.create_endpoint)),
            route("GET", "/v1/webhook_endpoints")(api(self.list_endpoints)),
            route("GET", "/v1/webhook_endpoints/{id}")(api(self.get_endpoint)),
            route("DELETE", "/v1/webhook_endpoints/{id}")(api(self.delete_endpoint)),
            Route("/{path:path}", unrecognized_url, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]

    def _event_json(self, event: dict) -> dict:
        pending = sum(1 for d in self.deliveries.get(event["id"], ()) if d.status != "delivered")
        return {**event, "pending_webhooks": pending}

    @staticmethod
    def _retention_start() -> int:
        return int(time.time()) - RETENTION_DAYS * 86400

    async def list_events(self, request: Request) -> Response:
        params = query(request)
        check_known(params, {"type", "types", "created", "delivery_success", "limit", "starting_after",
                             "ending_before", "expand"})
        parse_expand(params, set())
        matchers = [m for m in (type_matcher(params), self._delivery_matcher(params)) if m is not None]
        page, has_more = self.events.page(params, lambda e: all(m(e) for m in matchers),
                                          min_created=self._retention_start())
        return stripe_json(list_object("/v1/events", [self._event_json(e) for e in page], has_more))

    def _delivery_matcher(self, params: dict[str, Any]) -> Callable[[dict], bool] | None:
        if "delivery_success" not in params:
            return None
        wanted = params["delivery_success"]
        if wanted not in ("true", "false"):
            raise invalid("Invalid boolean: must be true or false.", "delivery_success")

        def match(event: dict) -> bool:
            delivered = all(d.status == "delivered" for d in self.deliveries.get(event["id"], ()))
            return delivered == (wanted == "true")

        return match

    async def get_event(self, request: Request) -> Response:
        event_id = request.path_params["id"]
        event = self.events.objects.get(event_id)
        if event is None or event["created"] < self._retention_start():
            raise missing("event", event_id)
        return stripe_json(self._event_json(event))

    def _session_json(self, session: dict, expand: set[str]) -> dict:
        body = dict(session)
        if "line_items" in expand:
            items, has_more = self.line_items[session["id"]].page({"limit": str(MAX_LIMIT)}, descending=False)
            url = f"/v1/checkout/sessions/{session['id']}/line_items"
            body["line_items"] = list_object(url, items, has_more)
        if "customer" in expand and session["customer"]:
            body["customer"] = self.customers[session["customer"]]
        return body

    async def list_sessions(self, request: Request) -> Response:
        params = query(request)
        check_known(params, {"created", "customer", "customer_details", "payment_intent", "status", "limit",
                             "starting_after", "ending_before", "expand"})
        expand = {path.removeprefix("data.")
                  for path in parse_expand(params, {"data.line_items", "data.customer"})}
        details = params.get("customer_details", {})
        if not isinstance(details, dict) or set(details) - {"email"}:
            raise invalid("Invalid customer_details: only email is supported.", "customer_details")
        filters = {name: params[name] for name in ("customer", "payment_intent", "status") if name in params}
        email = details.get("email")

        def match(session: dict) -> bool:
            return (all(session.get(name) == value for name, value in filters.items())
                    and (email is None or session["customer_details"]["email"] == email))

        page, has_more = self.sessions.page(params, match)
        return stripe_json(list_object("/v1/checkout/sessions", [self._session_json(s, expand) for s in page],
                                       has_more))

    def _session(self, request: Request) -> dict:
        session = self.sessions.objects.get(request.path_params["id"])
        if session is None:
            raise missing("checkout.session", request.path_params["id"], "session")
        return session

    async def get_session(self, request: Request) -> Response:
        params = query(request)
        check_known(params, {"expand"})
        expand = parse_expand(params, {"line_items", "customer"})
        return stripe_json(self._session_json(self._session(request), expand))

    async def list_line_items(self, request: Request) -> Response:
        params = query(request)
        check_known(params, {"limit", "starting_after", "ending_before", "expand"})
        parse_expand(params, set())
        session = self._session(request)
        page, has_more = self.line_items[session["id"]].page(params, descending=False)
        return stripe_json(list_object(f"/v1/checkout/sessions/{session['id']}/line_items", page, has_more))

    async def create_endpoint(self, request: Request) -> Response:
        params = await form(request)
        return await self._idempotent(request, params, lambda: self._create_endpoint(params))

    def _create_endpoint(self, params: dict[str, Any]) -> Response:
        check_known(params, {"url", "enabled_events", "description", "metadata", "api_version", "expand"})
        url = params.get("url")
        if not url:
            raise invalid("Missing required param: url.", "url", "parameter_missing")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise invalid(f"Invalid URL: {url}", "url", "url_invalid")
        enabled = params.get("enabled_events")
        if not enabled:
            raise invalid("Missing required param: enabled_events.", "enabled_events", "parameter_missing")
        if not isinstance(enabled, list):
            raise invalid("Invalid array", "enabled_events")
        for index, name in enumerate(enabled):
            if name != "*" and not (isinstance(name, str) and EVENT_TYPE.fullmatch(name)):
                raise invalid(f"Invalid enabled_events[{index}]: must be an event type or '*'.",
                              f"enabled_events[{index}]")
        metadata = params.get("metadata", {})
        if not isinstance(metadata, dict):
            raise invalid("Invalid object", "metadata")
        endpoint = {
            "id": new_id("we"), "object": "webhook_endpoint", "api_version": params.get("api_version"),
            "application": None, "created": int(time.time()), "description": params.get("description"),
            "enabled_events": list(enabled), "livemode": False, "metadata": metadata, "status": "enabled",
            "url": url,
        }
        self.endpoints.add(endpoint, next(self._seq))
        # The secret is only ever shown in the answer to the create call, as on real Stripe.
        return stripe_json({**endpoint, "secret": self.webhook_secret})

    async def _idempotent(self, request: Request, params: dict[str, Any],
                          execute: Callable[[], Response]) -> Response:
        """Replay the first outcome for a reused ``Idempotency-Key``; refuse it for other parameters.

        Validation errors are not saved (Stripe re-executes those), so ``execute`` raising skips the save.
        """
        key = request.headers.get("idempotency-key")
        if key is None:
            return execute()
        if not key or len(key) > 255:
            raise invalid("Idempotency-Key must be 1 to 255 characters.", "Idempotency-Key")
        fingerprint = hashlib.sha256(json.dumps(
            [request.method, request.url.path, params], sort_keys=True).encode()).hexdigest()
        store_key = (presented_key(request) or "", key)
        saved = self.idempotency.get(store_key)
        if saved is not None:
            if saved.fingerprint != fingerprint:
                raise StripeError(
                    400, "Keys for idempotent requests can only be used with the same parameters they "
                    f"were first used with. Try using a key other than '{key}' if you meant to execute "
                    "a different request.",
                    type_="idempotency_error",
                )
            return Response(saved.body, status_code=saved.status, media_type="application/json", headers={
                "Request-Id": new_id("req"), "Idempotent-Replayed": "true",
                "Original-Request": saved.request_id,
            })
        response = execute()
        self.idempotency[store_key] = Saved(fingerprint, response.status_code, bytes(response.body),
                                            response.headers["Request-Id"])
        return response

    async def list_endpoints(self, request: Request) -> Response:
        params = query(request)
        check_known(params, {"limit", "starting_after", "ending_before", "expand"})
        parse_expand(params, set())
        page, has_more = self.endpoints.page(params)
        return stripe_json(list_object("/v1/webhook_endpoints", page, has_more))

    def _endpoint(self, request: Request) -> dict:
        endpoint = self.endpoints.objects.get(request.path_params["id"])
        if endpoint is None:
            raise missing("webhook_endpoint", request.path_params["id"])
        return endpoint

    async def get_endpoint(self, request: Request) -> Response:
        return stripe_json(self._endpoint(request))

    async def delete_endpoint(self, request: Request) -> Response:
        endpoint = self._endpoint(request)
        self.endpoints.remove(endpoint["id"])
        return stripe_json({"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True})

    # -- events and webhooks ------------------------------------------------------------------------

    async def _emit(self, event_type: str, obj: dict, created: int, previous: dict | None = None) -> str:
        """Record an event (a snapshot of ``obj``) and deliver it to every endpoint listening to it."""
        data: dict[str, Any] = {"object": json.loads(json.dumps(obj))}
        if previous is not None:
            data["previous_attributes"] = previous
        listeners = self._listeners(event_type)
        event = {
            "id": new_id("evt"), "object": "event", "api_version": API_VERSION, "created": created,
            "data": data, "livemode": False, "pending_webhooks": len(listeners),
            "request": {"id": new_id("req"), "idempotency_key": None}, "type": event_type,
        }
        self.events.add(event, next(self._seq))
        await self._deliver(event, listeners)
        return event["id"]

    def _listeners(self, event_type: str) -> list[dict]:
        return [endpoint for endpoint in self.endpoints.objects.values()
                if endpoint["status"] == "enabled"
                and ("*" in endpoint["enabled_events"] or event_type in endpoint["enabled_events"])]

    async def _deliver(self, event: dict, listeners: list[dict]) -> None:
        if not listeners:
            return
        payload = json.dumps(event)
        deliveries = self.deliveries.setdefault(event["id"], [])
        for endpoint in listeners:
            sign = functools.partial(stripe_signature, payload, self.webhook_secret)
            deliveries.append(await self.webhooks.send("stripe", endpoint["url"], event["type"],
                                                       payload.encode(), sign))

    # -- admin --------------------------------------------------------------------------------------

    def admin_routes(self) -> list[Route]:
        return [
            Route("/stripe/purchases", admin(self.purchase), methods=["POST"]),
            Route("/stripe/refunds", admin(self.refund), methods=["POST"]),
            Route("/stripe/subscriptions", admin(self.subscribe), methods=["POST"]),
            Route("/stripe/subscriptions/{id}/renew", admin(self.renew), methods=["POST"]),
            Route("/stripe/subscriptions/{id}/cancel", admin(self.cancel), methods=["POST"]),
            Route("/stripe/events/{id}/redeliver", self.redeliver, methods=["POST"]),
        ]

    def _customer(self, email: str, name: str | None, created: int) -> dict:
        """One customer per email, as a shop that passes ``customer`` to Checkout keeps it."""
        key = email.strip().lower()
        customer = self.customer_by_email.get(key)
        if customer is None:
            customer = {"id": new_id("cus"), "object": "customer", "email": email.strip(), "name": name,
                        "created": created, "livemode": False, "metadata": {}}
            self.customers[customer["id"]] = customer
            self.customer_by_email[key] = customer
        return customer

    async def purchase(self, item: dict, path: dict) -> dict:
        """A paid one-off Checkout: customer, session, line item, payment intent and charge."""
        email = admin_str(item, "email", required=True)
        if "@" not in email:
            raise AdminError(400, "email must be an email address")
        name = admin_str(item, "name")
        product_id = admin_str(item, "product_id", required=True)
        product_name = admin_str(item, "product_name", required=True)
        amount = admin_int(item, "amount")
        quantity = admin_int(item, "quantity", default=1, minimum=1)
        if amount % quantity:
            raise AdminError(400, "amount (the total) must be a multiple of quantity")
        currency = admin_str(item, "currency", required=True).lower()
        created = unix_time(item, "created_at")
        metadata = {key: value for key in ("utm_source", "utm_medium", "utm_campaign")
                    if (value := admin_str(item, key)) is not None}
        client_reference_id = admin_str(item, "client_reference_id")
        customer = self._customer(email, name, created)
        session_id, payment_intent = f"cs_test_{uuid.uuid4().hex}", new_id("pi")
        session = {
            "id": session_id, "object": "checkout.session", "mode": "payment", "status": "complete",
            "payment_status": "paid", "customer": customer["id"], "customer_email": None,
            "customer_details": {"email": email.strip(), "name": name, "phone": None, "address": None,
                                 "tax_exempt": "none", "tax_ids": []},
            "client_reference_id": client_reference_id, "metadata": metadata, "amount_subtotal": amount,
            "amount_total": amount, "currency": currency, "payment_intent": payment_intent,
            "subscription": None, "invoice": None, "created": created, "expires_at": created + 86400,
            "livemode": False, "url": None,
        }
        line_items = Timeline("line_item")
        line_items.add({
            "id": new_id("li"), "object": "item", "description": product_name, "quantity": quantity,
            "price": {"id": price_id(product_id), "object": "price",
                      "product": product_id, "unit_amount": amount // quantity, "currency": currency},
            "amount_subtotal": amount, "amount_total": amount, "amount_discount": 0, "amount_tax": 0,
            "currency": currency, "created": created,
        }, next(self._seq))
        self.line_items[session_id] = line_items
        self.charges[session_id] = {
            "id": new_id("ch"), "object": "charge", "amount": amount, "amount_captured": amount,
            "amount_refunded": 0, "refunded": False, "captured": True, "paid": True, "status": "succeeded",
            "currency": currency, "customer": customer["id"], "payment_intent": payment_intent,
            "billing_details": {"email": email.strip(), "name": name, "phone": None, "address": None},
            "receipt_email": email.strip(), "metadata": {"checkout_session": session_id, **metadata},
            "created": created, "livemode": False,
        }
        self.sessions.add(session, next(self._seq))
        event_id = await self._emit("checkout.session.completed", session, created)
        return {"session_id": session_id, "event_id": event_id}

    async def refund(self, item: dict, path: dict) -> dict:
        session_id = admin_str(item, "session_id", required=True)
        created = unix_time(item, "created_at")
        charge = self.charges.get(session_id)
        if charge is None:
            raise AdminError(404, f"unknown checkout session {session_id!r}")
        if charge["refunded"]:
            raise AdminError(400, f"Charge {charge['id']} has already been refunded.")
        charge.update(amount_refunded=charge["amount"], refunded=True)
        previous = {"amount_refunded": 0, "refunded": False}
        event_id = await self._emit("charge.refunded", charge, created, previous)
        return {"event_id": event_id, "charge_id": charge["id"]}

    async def subscribe(self, item: dict, path: dict) -> dict:
        """A subscription whose first invoice is paid at once (``billing_reason = subscription_create``)."""
        email = admin_str(item, "email", required=True)
        if "@" not in email:
            raise AdminError(400, "email must be an email address")
        product_id = admin_str(item, "product_id", required=True)
        started = unix_time(item, "started_at")
        amount = admin_int(item, "amount", default=DEFAULT_SUBSCRIPTION_AMOUNT)
        interval_days = admin_int(item, "interval_days", default=30, minimum=1)
        currency = (admin_str(item, "currency") or "usd").lower()
        customer = self._customer(email, admin_str(item, "name"), started)
        sub_id = new_id("sub")
        price = {"id": price_id(product_id, str(amount), str(interval_days)), "object": "price",
                 "product": product_id, "unit_amount": amount, "currency": currency, "type": "recurring",
                 "recurring": {"interval": "day", "interval_count": interval_days}}
        sub_item = {"id": new_id("si"), "object": "subscription_item", "subscription": sub_id, "quantity": 1,
                    "current_period_start": started, "current_period_end": started + interval_days * 86400,
                    "price": price}
        obj = {
            "id": sub_id, "object": "subscription", "customer": customer["id"], "status": "active",
            "created": started, "start_date": started, "billing_cycle_anchor": started,
            "cancel_at": None, "cancel_at_period_end": False, "canceled_at": None, "ended_at": None,
            "cancellation_details": {"reason": None, "feedback": None, "comment": None},
            "collection_method": "charge_automatically", "currency": currency, "latest_invoice": None,
            "items": {"object": "list", "data": [sub_item], "has_more": False, "total_count": 1,
                      "url": f"/v1/subscription_items?subscription={sub_id}"},
            "livemode": False, "metadata": {},
        }
        state = SubscriptionState(obj, customer, amount, interval_days)
        self.subscriptions[sub_id] = state
        invoice = self._invoice(state, "subscription_create", started, started, started, paid=True)
        obj["latest_invoice"] = invoice["id"]
        created_event = await self._emit("customer.subscription.created", obj, started)
        paid_event = await self._emit("invoice.paid", invoice, started)
        return {"id": sub_id, "invoice_id": invoice["id"], "event_ids": [created_event, paid_event]}

    def _invoice(self, state: SubscriptionState, billing_reason: str, at: int, period_start: int,
                 period_end: int, paid: bool) -> dict:
        """A subscription invoice in the basil shape. As on real Stripe, ``period_start``/``period_end`` are
        the period that just ended (empty for the first invoice); the line's ``period`` is the one billed."""
        sub, item = state.obj, state.obj["items"]["data"][0]
        invoice_id = new_id("in")
        line = {
            "id": new_id("il"), "object": "line_item", "amount": state.amount, "currency": sub["currency"],
            "description": f"1 × {item['price']['product']}", "quantity": 1,
            "period": {"start": item["current_period_start"], "end": item["current_period_end"]},
            "pricing": {"type": "price_details", "unit_amount_decimal": str(state.amount),
                        "price_details": {"price": item["price"]["id"], "product": item["price"]["product"]}},
            "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                       "subscription_item_details": {"subscription": sub["id"],
                                                     "subscription_item": item["id"],
                                                     "invoice_item": None, "proration": False}},
        }
        return {
            "id": invoice_id, "object": "invoice", "customer": state.customer["id"],
            "customer_email": state.customer["email"], "customer_name": state.customer["name"],
            "status": "paid" if paid else "open", "amount_due": state.amount,
            "amount_paid": state.amount if paid else 0, "amount_remaining": 0 if paid else state.amount,
            "currency": sub["currency"], "billing_reason": billing_reason,
            "collection_method": "charge_automatically",
            "period_start": period_start, "period_end": period_end,
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"subscription": sub["id"], "metadata": {}}},
            "lines": {"object": "list", "data": [line], "has_more": False, "total_count": 1,
                      "url": f"/v1/invoices/{invoice_id}/lines"},
            "attempt_count": 1, "attempted": True,
            "next_payment_attempt": None if paid else at + 3 * 86400,
            "status_transitions": {"finalized_at": at, "paid_at": at if paid else None,
                                   "marked_uncollectible_at": None, "voided_at": None},
            "hosted_invoice_url": None, "created": at, "livemode": False,
        }

    def _live_subscription(self, path: dict) -> SubscriptionState:
        state = self.subscriptions.get(path["id"])
        if state is None:
            raise AdminError(404, f"unknown subscription {path['id']!r}")
        if state.obj["status"] == "canceled":
            raise AdminError(400, f"subscription {path['id']} is canceled")
        return state

    async def renew(self, item: dict, path: dict) -> dict:
        """A cycle renewal at ``at``: a new period begins; its invoice is paid, or fails (``paid: false``)."""
        state = self._live_subscription(path)
        at = unix_time(item, "at")
        paid = item.get("paid", True)
        if not isinstance(paid, bool):
            raise AdminError(400, "paid must be a boolean")
        sub_item = state.obj["items"]["data"][0]
        previous_start = sub_item["current_period_start"]
        sub_item.update(current_period_start=at, current_period_end=at + state.interval_days * 86400)
        invoice = self._invoice(state, "subscription_cycle", at, previous_start, at, paid=paid)
        state.obj.update(status="active" if paid else "past_due", latest_invoice=invoice["id"])
        event_id = await self._emit("invoice.paid" if paid else "invoice.payment_failed", invoice, at)
        return {"invoice_id": invoice["id"], "event_id": event_id}

    async def cancel(self, item: dict, path: dict) -> dict:
        state = self._live_subscription(path)
        at = unix_time(item, "at")
        reason = item.get("reason", "cancellation_requested")
        if reason not in ("cancellation_requested", "payment_failed", "payment_disputed"):
            raise AdminError(400, "reason must be cancellation_requested, payment_failed or payment_disputed")
        state.obj.update(status="canceled", canceled_at=at, ended_at=at,
                         cancellation_details={"reason": reason, "feedback": None, "comment": None})
        event_id = await self._emit("customer.subscription.deleted", state.obj, at)
        return {"id": state.obj["id"], "event_id": event_id}

    async def redeliver(self, request: Request) -> Response:
        """Send a stored event again, as Stripe does when it retries or duplicates a delivery."""
        event = self.events.objects.get(request.path_params["id"])
        if event is None:
            return JSONResponse({"error": f"unknown event {request.path_params['id']!r}"}, status_code=404)
        listeners = self._listeners(event["type"])
        await self._deliver(event, listeners)
        return JSONResponse({"event_id": event["id"], "deliveries": len(listeners)})


api = rendering(StripeError)


def admin(handler: Callable[[dict, dict], Awaitable[dict]]) -> Callable[[Request], Awaitable[Response]]:
    """A bulk admin endpoint whose handler gets the request's path parameters."""
    return bulk_admin(handler, context=lambda request: request.path_params)
