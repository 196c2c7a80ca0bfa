"""The emulated Brevo's limits, event names, email rules, error bodies and the contact record, shared by its
API resources."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

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

