"""The emulated Calendly's errors, time formats, stored records, paging tokens and webhook signature."""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.core import AdminError, rendering
from sandbox.webhooks import Delivery

WEBHOOK_EVENTS = frozenset({
    "invitee.created", "invitee.canceled", "invitee_no_show.created", "invitee_no_show.deleted",
    "routing_form_submission.created", "event_type.created", "event_type.updated", "event_type.deleted",
})
SUBSCRIPTION_SCOPES = ("user", "organization")
DEFAULT_COUNT = 20
MAX_COUNT = 100
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
RATE_LIMIT = (500, 60.0)  # paid plans: 500 requests per user per minute

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
        """Calendly retries failed deliveries, then disables the subscription."""
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



def calendly_signature(key: bytes, body: bytes) -> dict[str, str]:
    """``Calendly-Webhook-Signature`` with the current time: each delivery attempt is signed afresh."""
    t = int(time.time())
    digest = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Calendly-Webhook-Signature": f"t={t},v1={digest}"}


api = rendering(CalendlyError)

