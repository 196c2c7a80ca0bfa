"""The emulated Stripe's ids, errors, form-encoded parameters, list paging, webhook signature and stored
state."""

from __future__ import annotations

import base64
import binascii
import bisect
import contextvars
import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import stripe
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.core import AdminError, rendering

API_VERSION = "2025-03-31.basil"
RETENTION_DAYS = 30
MAX_TYPES = 20
MAX_LIMIT = 100
DEFAULT_LIMIT = 10
RATE_LIMIT = (25, 1.0)  # test mode: 25 requests per second
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



api = rendering(StripeError)
