"""The emulated HubSpot's limits, built-in registry values, error bodies and small helpers shared by
its API resources."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import urllib.parse
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

TEN_SECONDLY = (100, 10.0)  # Free/Starter tier; /_sandbox/limits {"per_10s": 190} emulates Professional
SEARCH_PER_SECOND = (5, 1.0)
DAILY_LIMIT = 250_000
BATCH_LIMIT = 100
LIST_PAGE_MAX = 100
SEARCH_PAGE_MAX = 200
SEARCH_RESULT_CAP = 10_000
SEARCH_MAX_GROUPS, SEARCH_MAX_FILTERS_PER_GROUP, SEARCH_MAX_FILTERS = 5, 6, 18
SEARCH_QUERY_MAX = 3_000
NOTE_BODY_MAX = 65_536
NOTE_TO_CONTACT = 202
CONTACT_TO_NOTE = 201
ASSOCIATION_PAGE_MAX = 500
ASSOCIATION_BATCH_LIMIT = 1_000
DEFAULT_PROPERTIES = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")
ALWAYS_RETURNED = ("createdate", "hs_object_id", "lastmodifieddate")
NOTE_ALWAYS_RETURNED = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")
SEARCHABLE_BY_QUERY = ("email", "firstname", "lastname", "phone", "company")
OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}
FIELD_TYPES = {
    "string": {"text", "textarea"},
    "number": {"number"},
    "date": {"date"},
    "datetime": {"date"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox"},
    "bool": {"booleancheckbox"},
}
PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SEED_GROUP = "lifecycle"
BUILTIN_GROUPS = (
    ("contactinformation", "Contact information"),
    ("emailinformation", "Email information"),
    ("conversioninformation", "Conversion information"),
    ("contact_activity", "Contact activity"),
    ("analyticsinformation", "Web analytics history"),
    ("sales_properties", "Sales properties"),
    ("socialmediainformation", "Social media information"),
)
OBJECT_TYPES = {"contacts": "contacts", "contact": "contacts", "0-1": "contacts",
                "notes": "notes", "note": "notes", "0-46": "notes"}
DEFAULT_ASSOCIATION = {("notes", "contacts"): NOTE_TO_CONTACT, ("contacts", "notes"): CONTACT_TO_NOTE}

OWNERS = (
    ("101", "morgan.lee@sandbox-crm.example", "Morgan", "Lee", 9101),
    ("102", "priya.shah@sandbox-crm.example", "Priya", "Shah", 9102),
    ("103", "diego.alvarez@sandbox-crm.example", "Diego", "Alvarez", 9103),
)
LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
LEAD_STATUSES = (
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "BAD_TIMING",
)
ANALYTICS_SOURCES = (
    "ORGANIC_SEARCH",
    "PAID_SEARCH",
    "EMAIL_MARKETING",
    "SOCIAL_MEDIA",
    "REFERRALS",
    "OTHER_CAMPAIGNS",
    "DIRECT_TRAFFIC",
    "OFFLINE",
    "PAID_SOCIAL",
)
SOURCE_DRILL_DOWNS = ("hs_analytics_source_data_1", "hs_analytics_source_data_2")


def whole_seconds(seconds: float) -> int:
    """Seconds rounded up for headers; float noise (3600.0000001) must not add a second."""
    return math.ceil(round(seconds, 3))


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """HubSpot's own timestamp shape: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_instant(value: str) -> datetime | None:
    """Epoch milliseconds or ISO 8601 (date or date-time), the two forms HubSpot accepts for dates."""
    if re.fullmatch(r"-?\d+", value):
        try:
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def epoch_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def encode_cursor(value: str) -> str:
    """An opaque paging token (unpadded base64, so it needs no URL escaping)."""
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str | None:
    cursor = urllib.parse.unquote(cursor)
    try:
        return base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def hubspot_error(status: int, category: str | None, message: str, **extra: Any) -> JSONResponse:
    """HubSpot's error body: status, message, correlationId and (nearly always) category, plus extras."""
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4())}
    if category:
        body["category"] = category
    body.update(extra)
    return JSONResponse(body, status_code=status)


def unknown_path(request: Request) -> Response:
    """What HubSpot's own services answer for a path they do not serve: a JSON 404 without a category."""
    return hubspot_error(404, None, "resource not found")


def wrong_method(request: Request, allowed: list[str]) -> Response:
    response = hubspot_error(405, None, "HTTP 405 Method Not Allowed")
    response.headers["Allow"] = ", ".join(allowed)
    return response


def validation_error(message: str, **extra: Any) -> JSONResponse:
    return hubspot_error(400, "VALIDATION_ERROR", message, **extra)


def invalid_properties_message(problems: list[dict]) -> str:
    return "Property values were not valid: " + json.dumps(problems)


def problem_errors(problems: list[dict]) -> list[dict]:
    """The ``errors[]`` items of a validation error, one per rejected property value."""
    return [
        {
            "message": p["message"],
            "code": p["error"],
            "in": p["name"],
            "context": {"propertyName": [p["name"]]},
        }
        for p in problems
    ]


def invalid_properties(problems: list[dict]) -> JSONResponse:
    return validation_error(invalid_properties_message(problems), errors=problem_errors(problems))


def standard_error(category: str, message: str, ids: list[str], errors: list[dict] | None = None) -> dict:
    """One item of a batch response's ``errors[]`` (the OpenAPI ``StandardError``)."""
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": {"ids": ids},
        "errors": errors or [],
        "links": {},
    }


def wants_archived(request: Request) -> bool:
    """``?archived=true``: the read returns only archived objects."""
    return request.query_params.get("archived", "false").lower() == "true"


def requested_properties(request: Request) -> list[str] | None:
    """``properties=a,b`` and/or repeated ``properties=a&properties=b``; None when not given."""
    values = request.query_params.getlist("properties")
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def option(value: str, order: int, label: str | None = None) -> dict:
    return {
        "label": label or value.replace("_", " ").title(),
        "value": value,
        "displayOrder": order,
        "hidden": False,
    }


@dataclass
class Record:
    """A CRM object (contact or note): properties hold only set values, all strings."""

    id: str
    properties: dict[str, str]
    created_at: str
    updated_at: str
    associations: list[str] = field(default_factory=list)
    archived_at: str | None = None


