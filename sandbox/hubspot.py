"""Emulated HubSpot CRM: contacts (v3, with archive), the property registry and its groups, search, notes,
owners and v4 associations between contacts and notes.

Faithful where a client can get it wrong: every value is a string and ``""`` clears it, unknown and
read-only properties and invalid enumeration options are rejected, a property must name an existing property
group, batches are capped at 100 and report partial failures with HTTP 207, search pages by numeric offset
and stops at 10,000 results, and the rolling 10-second bucket (with its headers) is separate from search's
own 5-per-second limit, which sends no rate-limit headers. An archived contact leaves reads, search and
batch reads (``?archived=true`` lists it) and frees its email. Paths HubSpot does not serve here answer
HubSpot's JSON 404, and a known path called with another method its JSON 405. Handlers mutate the stores
without awaiting in between, so one uvicorn worker's event loop serialises them.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import collections
import fnmatch
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
from starlette.routing import Route

from sandbox.core import Limited, Service, env, read_json, unknown_route

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


class HubSpot:
    """The emulated HubSpot account: one portal, three owners, the contact property registry."""

    def __init__(self, calls: collections.Counter[str]) -> None:
        self.calls = calls
        self.service = Service(
            "hubspot",
            check_auth=self._authorized,
            unauthorized=self._unauthorized,
            too_many_requests=self._too_many_requests,
            server_error=lambda: hubspot_error(500, "INTERNAL_ERROR", "internal error"),
            limit_headers=self._limit_headers,
            groups={"default": TEN_SECONDLY, "search": SEARCH_PER_SECOND},
            calls=calls,
        )
        self.owners = [
            {
                "id": oid,
                "email": email,
                "type": "PERSON",
                "firstName": first,
                "lastName": last,
                "userId": user_id,
                "createdAt": "2023-01-09T09:00:00.000Z",
                "updatedAt": "2024-02-01T09:00:00.000Z",
                "archived": False,
            }
            for oid, email, first, last, user_id in OWNERS
        ]
        self.reset()

    # ----- state -------------------------------------------------------------------------------------

    def reset(self) -> None:
        self.properties: dict[str, dict] = self._builtin_properties()
        self.groups: dict[str, dict] = {
            name: {"name": name, "label": label, "displayOrder": order, "archived": False}
            for order, (name, label) in enumerate(BUILTIN_GROUPS)
        }
        self.contacts: dict[str, Record] = {}
        self.contact_ids: list[int] = []  # ascending: list paging bisects it instead of scanning
        self.archived: dict[str, Record] = {}  # archived contacts, out of every read but ?archived=true
        self.archived_ids: list[int] = []
        self.by_email: dict[str, str] = {}
        self.notes: dict[str, Record] = {}
        self.next_contact_id = 1001
        self.next_note_id = 50001
        self.version = 0  # bumped by every contact write; keys the search cache
        self._search_cache: tuple[tuple, list[Record]] | None = None

    def _builtin_properties(self) -> dict[str, dict]:
        owner_options = [
            option(o["id"], i, f"{o['firstName']} {o['lastName']}") for i, o in enumerate(self.owners)
        ]
        specs = [
            ("email", "Email", "string", "text", (), False),
            ("firstname", "First Name", "string", "text", (), False),
            ("lastname", "Last Name", "string", "text", (), False),
            ("company", "Company Name", "string", "text", (), False),
            ("phone", "Phone Number", "string", "text", (), False),
            ("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", LIFECYCLE_STAGES, False),
            ("hs_lead_status", "Lead Status", "enumeration", "radio", LEAD_STATUSES, False),
            ("hubspot_owner_id", "Contact owner", "enumeration", "select", (), False),
            ("hs_analytics_source", "Original Source", "enumeration", "select", ANALYTICS_SOURCES, False),
            ("hs_analytics_source_data_1", "Original Source Drill-Down 1", "string", "text", (), True),
            ("hs_analytics_source_data_2", "Original Source Drill-Down 2", "string", "text", (), True),
            ("hs_latest_source", "Latest Traffic Source", "enumeration", "select", ANALYTICS_SOURCES, True),
            ("createdate", "Create Date", "datetime", "date", (), True),
            ("lastmodifieddate", "Last Modified Date", "datetime", "date", (), True),
            ("hs_object_id", "Record ID", "number", "number", (), True),
        ]
        registry = {}
        for order, (name, label, type_, field_type, options, read_only) in enumerate(specs):
            registry[name] = {
                "name": name,
                "label": label,
                "type": type_,
                "fieldType": field_type,
                "description": "",
                "groupName": "contactinformation",
                "options": owner_options
                if name == "hubspot_owner_id"
                else [option(value, i) for i, value in enumerate(options)],
                "displayOrder": order,
                "calculated": False,
                "externalOptions": name == "hubspot_owner_id",
                "hasUniqueValue": name == "email",
                "hidden": False,
                "hubspotDefined": True,
                "modificationMetadata": {
                    "archivable": False,
                    "readOnlyDefinition": True,
                    "readOnlyValue": read_only,
                    "readOnlyOptions": name != "hs_lead_status",
                },
                "formField": not read_only,
                "createdAt": "2019-08-06T02:41:08.029Z",
                "updatedAt": "2019-08-06T02:41:08.029Z",
                "archived": False,
            }
        return registry

    # ----- the gate ----------------------------------------------------------------------------------

    @staticmethod
    def _authorized(request: Request) -> bool:
        return request.headers.get("authorization", "") == f"Bearer {env('HUBSPOT_TOKEN', 'pat-sandbox')}"

    @staticmethod
    def _unauthorized() -> Response:
        return hubspot_error(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
            "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )

    @staticmethod
    def _too_many_requests(limited: Limited) -> Response:
        if limited.group == "search":
            message, policy = "You have reached your secondly limit.", "SECONDLY"
        else:
            message, policy = "You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING"
        body = {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "requestId": str(uuid.uuid4()),
        }
        return JSONResponse(
            body, status_code=429, headers={"Retry-After": str(max(1, whole_seconds(limited.reset_seconds)))}
        )

    def _limit_headers(self, limited: Limited) -> dict[str, str]:
        """Search answers carry no rate-limit headers; everything else reports both buckets."""
        if limited.group == "search":
            return {}
        used_today = sum(
            n for key, n in self.calls.items() if key.startswith("hubspot ") and not key.endswith("/search")
        )
        return {
            "X-HubSpot-RateLimit-Max": str(limited.limit),
            "X-HubSpot-RateLimit-Remaining": str(limited.remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(limited.window_seconds * 1000)),
            "X-HubSpot-RateLimit-Daily": str(DAILY_LIMIT),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, DAILY_LIMIT - used_today)),
        }

    # ----- property values ---------------------------------------------------------------------------

    def _check_value(self, prop: dict, raw: Any) -> tuple[str, dict | None]:
        """Normalise one written value; returns (value, problem). ``""`` means clear."""
        name = prop["name"]

        def problem(code: str, message: str) -> tuple[str, dict]:
            return "", {"isValid": False, "message": message, "error": code, "name": name}

        if raw is None:
            return "", None
        if isinstance(raw, bool):
            raw = "true" if raw else "false"
        elif isinstance(raw, (int, float)):
            raw = str(raw)
        elif not isinstance(raw, str):
            return problem("INVALID_PROPERTY_VALUE", f"{json.dumps(raw)} is not a valid value for {name}")
        if raw == "":
            return "", None
        type_ = prop["type"]
        if type_ != "string" and raw != raw.strip():
            return problem(
                "INVALID_PROPERTY_VALUE",
                f"{raw!r} has leading or trailing whitespace, not allowed for a {type_} property",
            )
        if name == "hubspot_owner_id":
            if raw not in {o["id"] for o in self.owners}:
                return problem("INVALID_OWNER_ID", f"{raw} is not a valid owner id")
            return raw, None
        if type_ == "enumeration":
            allowed = [o["value"] for o in prop["options"]]
            values = raw.split(";") if prop["fieldType"] == "checkbox" else [raw]
            for value in values:
                if value not in allowed:
                    return problem(
                        "INVALID_OPTION",
                        f"{value} was not one of the allowed options: [{', '.join(allowed)}]",
                    )
            return raw, None
        if type_ == "bool":
            if raw.lower() not in ("true", "false"):
                return problem("INVALID_BOOLEAN", f"{raw} is not a valid boolean (true or false)")
            return raw.lower(), None
        if type_ == "number":
            try:
                number = float(raw)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                return problem("INVALID_FLOAT", f"{raw} is not a valid number")
            return raw, None
        if type_ in ("date", "datetime"):
            moment = parse_instant(raw)
            if moment is None:
                return problem("INVALID_DATE", f"{raw} is not a valid date (epoch milliseconds or ISO 8601)")
            if type_ == "date":
                if (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0):
                    return problem(
                        "INVALID_DATE",
                        f"{raw} is at {moment:%H:%M:%S} UTC, not midnight! Date properties need midnight UTC",
                    )
                return moment.strftime("%Y-%m-%d"), None
            return iso(moment), None
        if name == "email":
            if not EMAIL.match(raw):
                return problem("INVALID_EMAIL", f"Email address {raw} is invalid")
            return raw.lower(), None
        return raw, None

    def _validate(
        self, registry: dict[str, dict], properties: Any, *, allow_read_only: bool = False
    ) -> tuple[dict[str, str], list[dict]]:
        """Check a write's properties against a registry; returns (normalised values, problems)."""
        if not isinstance(properties, dict):
            return {}, [
                {
                    "isValid": False,
                    "message": "properties must be an object",
                    "error": "INVALID_INPUT",
                    "name": "properties",
                }
            ]
        values: dict[str, str] = {}
        problems: list[dict] = []
        for name, raw in properties.items():
            prop = registry.get(name)
            if prop is None:
                problems.append(
                    {
                        "isValid": False,
                        "message": f'Property "{name}" does not exist',
                        "error": "PROPERTY_DOESNT_EXIST",
                        "name": name,
                    }
                )
                continue
            if prop["modificationMetadata"]["readOnlyValue"] and not allow_read_only:
                problems.append(
                    {
                        "isValid": False,
                        "message": f'"{name}" is a read only property; its value cannot be set.',
                        "error": "READ_ONLY_VALUE",
                        "name": name,
                    }
                )
                continue
            value, problem = self._check_value(prop, raw)
            if problem:
                problems.append(problem)
            else:
                values[name] = value
        return values, problems

    # ----- contacts ----------------------------------------------------------------------------------

    def _apply(self, record: Record, values: dict[str, str], moment: str) -> None:
        """Write values into a contact; only a write that changes something moves lastmodifieddate."""
        changed = False
        source_before = record.properties.get("hs_analytics_source")
        for name, value in values.items():
            if value == "":
                changed |= record.properties.pop(name, None) is not None
            elif record.properties.get(name) != value:
                record.properties[name] = value
                changed = True
        if record.properties.get("hs_analytics_source") != source_before:
            # HubSpot clears the read-only drill-downs whenever the original source itself changes.
            for drill_down in SOURCE_DRILL_DOWNS:
                if drill_down not in values:
                    record.properties.pop(drill_down, None)
        if changed:
            record.properties["lastmodifieddate"] = moment
            record.updated_at = moment
            self.version += 1

    def _create(self, values: dict[str, str], created: str, *, via_api: bool) -> Record:
        contact_id = str(self.next_contact_id)
        self.next_contact_id += 1
        record = Record(
            contact_id,
            {"hs_object_id": contact_id, "createdate": created, "lastmodifieddate": created},
            created,
            created,
        )
        if via_api and "hs_analytics_source" not in values:
            # Contacts created through the API get "Offline sources" with the integration drill-down.
            record.properties.update(
                {
                    "hs_analytics_source": "OFFLINE",
                    "hs_analytics_source_data_1": "API",
                    "hs_latest_source": "OFFLINE",
                }
            )
        record.properties.update({k: v for k, v in values.items() if v != ""})
        self.contacts[contact_id] = record
        self.contact_ids.append(int(contact_id))
        if "email" in record.properties:
            self.by_email[record.properties["email"]] = contact_id
        self.version += 1
        return record

    def _email_conflict(self, record: Record | None, values: dict[str, str]) -> str | None:
        """The id of another contact that already has the email being written, if any."""
        email = values.get("email")
        if not email:
            return None
        owner = self.by_email.get(email)
        return owner if owner is not None and (record is None or owner != record.id) else None

    def _update(self, record: Record, values: dict[str, str], moment: str) -> None:
        old_email = record.properties.get("email")
        self._apply(record, values, moment)
        new_email = record.properties.get("email")
        if new_email != old_email:
            if old_email:
                self.by_email.pop(old_email, None)
            if new_email:
                self.by_email[new_email] = record.id

    def _find(self, identifier: str, id_property: str | None, *, archived: bool = False) -> Record | None:
        """A live contact by id or email; with ``archived``, only an archived one (the latest by email)."""
        if archived:
            if id_property == "email":
                email = identifier.strip().lower()
                return next((r for r in reversed(self.archived.values()) if r.properties.get("email") == email),
                            None)
            return self.archived.get(identifier)
        if id_property == "email":
            contact_id = self.by_email.get(identifier.strip().lower())
            return self.contacts.get(contact_id) if contact_id else None
        return self.contacts.get(identifier)

    def _archive(self, record: Record) -> None:
        """Into the recycle bin: out of every read, search and association, and its email free again."""
        moment = iso(utc_now())
        del self.contacts[record.id]
        self.contact_ids.pop(bisect.bisect_left(self.contact_ids, int(record.id)))
        email = record.properties.get("email")
        if email and self.by_email.get(email) == record.id:
            del self.by_email[email]
        record.archived_at = record.updated_at = moment
        self.archived[record.id] = record
        bisect.insort(self.archived_ids, int(record.id))
        self.version += 1

    def _public(
        self,
        record: Record,
        names: list[str] | None,
        *,
        defaults: tuple[str, ...] = DEFAULT_PROPERTIES,
        always: tuple[str, ...] = ALWAYS_RETURNED,
        registry: dict[str, dict] | None = None,
    ) -> dict:
        """A SimplePublicObject: requested (or default) properties; unknown names ignored, unset → null."""
        registry = self.properties if registry is None else registry
        wanted = list(defaults) if names is None else [n for n in names if n in registry]
        for name in always:
            if name not in wanted:
                wanted.append(name)
        body = {
            "id": record.id,
            "properties": {n: record.properties.get(n) for n in wanted},
            "createdAt": record.created_at,
            "updatedAt": record.updated_at,
            "archived": record.archived_at is not None,
        }
        if record.archived_at is not None:
            body["archivedAt"] = record.archived_at
        return body

    def _not_found(self, identifier: str) -> JSONResponse:
        return hubspot_error(
            404,
            "OBJECT_NOT_FOUND",
            f"Object not found.  objectId are usually numeric. Unable to find {identifier}",
            context={"id": [identifier]},
        )

    # ----- routes ------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        s = self.service
        routes = [
            s.route("GET", "/crm/v3/properties/contacts")(self.list_properties),
            s.route("POST", "/crm/v3/properties/contacts")(self.create_property),
            s.route("POST", "/crm/v3/properties/contacts/batch/create")(self.batch_create_properties),
            s.route("GET", "/crm/v3/properties/contacts/groups")(self.list_groups),
            s.route("POST", "/crm/v3/properties/contacts/groups")(self.create_group),
            s.route("GET", "/crm/v3/properties/contacts/groups/{group_name}")(self.get_group),
            s.route("PATCH", "/crm/v3/properties/contacts/groups/{group_name}")(self.update_group),
            s.route("DELETE", "/crm/v3/properties/contacts/groups/{group_name}")(self.archive_group),
            s.route("GET", "/crm/v3/properties/contacts/{name}")(self.get_property),
            s.route("PATCH", "/crm/v3/properties/contacts/{name}")(self.update_property),
            s.route("GET", "/crm/v3/objects/contacts")(self.list_contacts),
            s.route("POST", "/crm/v3/objects/contacts")(self.create_contact),
            s.route("POST", "/crm/v3/objects/contacts/batch/upsert")(self.batch_upsert),
            s.route("POST", "/crm/v3/objects/contacts/batch/read")(self.batch_read),
            s.route("POST", "/crm/v3/objects/contacts/batch/archive")(self.batch_archive),
            s.route("POST", "/crm/v3/objects/contacts/search", group="search", headers_on_success=False)(
                self.search
            ),
            s.route("GET", "/crm/v3/objects/contacts/{contact_id}")(self.get_contact),
            s.route("PATCH", "/crm/v3/objects/contacts/{contact_id}")(self.update_contact),
            s.route("DELETE", "/crm/v3/objects/contacts/{contact_id}")(self.archive_contact),
            s.route("POST", "/crm/v3/objects/notes")(self.create_note),
            s.route("POST", "/crm/v3/objects/notes/batch/create")(self.batch_create_notes),
            s.route("GET", "/crm/v3/objects/notes/{note_id}")(self.get_note),
            s.route("GET", "/crm/v3/owners")(self.list_owners),
            s.route("GET", "/crm/v3/owners/")(self.list_owners),
            s.route("PUT", "/crm/v4/objects/{from_type}/{from_id}/associations/default/{to_type}/{to_id}")(
                self.associate_default
            ),
            s.route("GET", "/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}")(self.list_associations),
            s.route("POST", "/crm/v4/associations/{from_type}/{to_type}/batch/associate/default")(
                self.batch_associate_default
            ),
            s.route("POST", "/crm/v4/associations/{from_type}/{to_type}/batch/read")(self.batch_read_associations),
        ]
        return [*routes, unknown_route(routes, not_found=unknown_path, wrong_method=wrong_method)]

    def admin_routes(self) -> list[Route]:
        return [
            Route("/hubspot/contacts", self.seed_contacts, methods=["POST"]),
            Route("/hubspot/contacts/{email}", self.inspect_contact, methods=["GET"]),
        ]

    # ----- properties --------------------------------------------------------------------------------

    async def list_properties(self, request: Request) -> Response:
        return JSONResponse({"results": list(self.properties.values())})

    async def get_property(self, request: Request) -> Response:
        name = request.path_params["name"]
        prop = self.properties.get(name)
        if prop is None:
            return hubspot_error(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}")
        return JSONResponse(prop)

    def _property_problem(self, body: Any) -> str | None:
        """Why a property definition cannot be created, or None."""
        if not isinstance(body, dict):
            return "The property definition must be a JSON object"
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            return f"Missing required fields: {', '.join(missing)}"
        if not isinstance(body["name"], str) or not PROPERTY_NAME.match(body["name"]):
            return (
                f"Invalid property name {body['name']!r}: use lowercase letters, digits and underscores, "
                "starting with a letter"
            )
        return (
            self._group_missing(body["groupName"])
            or self._type_problem(body["type"], body["fieldType"])
            or self._options_problem(body.get("options"))
        )

    def _group_missing(self, name: Any) -> str | None:
        if name in self.groups:
            return None
        return f'Property group "{name}" does not exist'

    @staticmethod
    def _type_problem(type_: Any, field_type: Any) -> str | None:
        if type_ not in FIELD_TYPES:
            return f"Invalid type {type_!r}: one of {', '.join(FIELD_TYPES)}"
        if field_type not in FIELD_TYPES[type_]:
            allowed = sorted(FIELD_TYPES[type_])
            return f"fieldType {field_type!r} is not valid for type {type_!r}: one of {allowed}"
        return None

    @staticmethod
    def _options_problem(options: Any) -> str | None:
        if options is None:
            return None
        if not isinstance(options, list) or not all(
            isinstance(o, dict)
            and isinstance(o.get("label"), str)
            and isinstance(o.get("value"), str)
            and o["value"]
            for o in options
        ):
            return "options must be a list of {label, value} objects with string values"
        values = [o["value"] for o in options]
        if len(set(values)) != len(values):
            return "Option values must be unique"
        return None

    @staticmethod
    def _options(options: list[dict] | None, type_: str) -> list[dict]:
        if type_ == "bool" and not options:
            return [option("true", 0, "Yes"), option("false", 1, "No")]
        return [
            {
                "label": o["label"],
                "value": o["value"],
                "displayOrder": o.get("displayOrder", i),
                "hidden": bool(o.get("hidden", False)),
                **({"description": o["description"]} if "description" in o else {}),
            }
            for i, o in enumerate(options or [])
        ]

    def _new_property(self, body: dict) -> dict:
        prop = self._property_definition(body)
        self.properties[prop["name"]] = prop
        return prop

    def _property_definition(self, body: dict) -> dict:
        """A custom property as HubSpot returns it, from a validated create request."""
        moment = iso(utc_now())
        return {
            "name": body["name"],
            "label": body["label"],
            "type": body["type"],
            "fieldType": body["fieldType"],
            "description": body.get("description", ""),
            "groupName": body["groupName"],
            "options": self._options(body.get("options"), body["type"]),
            "displayOrder": body.get("displayOrder", -1),
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": False,
            "hidden": bool(body.get("hidden", False)),
            "modificationMetadata": {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": False},
            "formField": bool(body.get("formField", False)),
            "createdAt": moment,
            "updatedAt": moment,
            "archived": False,
        }

    async def create_property(self, request: Request) -> Response:
        body = await read_json(request)
        problem = self._property_problem(body)
        if problem:
            return validation_error(problem)
        if body["name"] in self.properties:
            return hubspot_error(409, "CONFLICT", f"A property named '{body['name']}' already exists.")
        return JSONResponse(self._new_property(body), status_code=201)

    async def batch_create_properties(self, request: Request) -> Response:
        body = await read_json(request)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list):
            return validation_error("inputs must be a list of property definitions")
        if len(inputs) > BATCH_LIMIT:
            return validation_error(f"inputs: size must be between 0 and {BATCH_LIMIT}")
        started = iso(utc_now())
        results, errors = [], []
        for item in inputs:
            problem = self._property_problem(item)
            name = str(item.get("name")) if isinstance(item, dict) else ""
            if problem:
                errors.append(standard_error("VALIDATION_ERROR", problem, [name]))
            elif item["name"] in self.properties:
                errors.append(
                    standard_error("CONFLICT", f"A property named '{name}' already exists.", [name])
                )
            else:
                results.append(self._new_property(item))
        return self._batch_response(results, errors, started, success_status=201)

    async def update_property(self, request: Request) -> Response:
        """Update label, description, group, display and options; ``options`` replaces the whole list, so
        adding an option (e.g. DEMO_SCHEDULED) means sending the existing options plus the new one."""
        name = request.path_params["name"]
        prop = self.properties.get(name)
        if prop is None:
            return hubspot_error(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}")
        body = await read_json(request)
        if not isinstance(body, dict):
            return validation_error("The property update must be a JSON object")
        meta = prop["modificationMetadata"]
        definition_keys = {
            "label",
            "description",
            "groupName",
            "type",
            "fieldType",
            "displayOrder",
            "hidden",
            "formField",
        }
        if meta["readOnlyDefinition"] and definition_keys & body.keys():
            return validation_error(f"The definition of {name} is read-only; only its options can change")
        if "options" in body and (meta.get("readOnlyOptions") or prop["type"] not in ("enumeration", "bool")):
            return validation_error(f"The options of {name} cannot be changed")
        type_, field_type = body.get("type", prop["type"]), body.get("fieldType", prop["fieldType"])
        problem = (
            ("groupName" in body and self._group_missing(body["groupName"]))
            or self._type_problem(type_, field_type)
            or self._options_problem(body.get("options"))
        )
        if problem:
            return validation_error(problem)
        for key in ("label", "description", "groupName", "displayOrder", "hidden", "formField"):
            if key in body:
                prop[key] = body[key]
        prop["type"], prop["fieldType"] = type_, field_type
        if "options" in body:
            prop["options"] = self._options(body["options"], type_)
        prop["updatedAt"] = iso(utc_now())
        return JSONResponse(prop)

    # ----- property groups ---------------------------------------------------------------------------

    def _group_not_found(self, name: str) -> JSONResponse:
        return hubspot_error(404, "OBJECT_NOT_FOUND", f"Unable to find property group {name}")

    async def list_groups(self, request: Request) -> Response:
        return JSONResponse({"results": list(self.groups.values())})

    async def get_group(self, request: Request) -> Response:
        name = request.path_params["group_name"]
        group = self.groups.get(name)
        return JSONResponse(group) if group else self._group_not_found(name)

    @staticmethod
    def _group_problem(body: dict, *, creating: bool) -> str | None:
        """Why a group create or update body is invalid, or None."""
        if creating and (not isinstance(body.get("name"), str) or not PROPERTY_NAME.match(body["name"])):
            return (f"Invalid property group name {body.get('name')!r}: use lowercase letters, digits and "
                    "underscores, starting with a letter")
        if (creating or "label" in body) and (not isinstance(body.get("label"), str) or not body["label"]):
            return "label is required and must be a non-empty string"
        order = body.get("displayOrder", -1)
        if not isinstance(order, int) or isinstance(order, bool):
            return "displayOrder must be an integer"
        return None

    async def create_group(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return validation_error("The property group must be a JSON object")
        problem = self._group_problem(body, creating=True)
        if problem:
            return validation_error(problem)
        if body["name"] in self.groups:
            return hubspot_error(409, "CONFLICT", f"A property group named '{body['name']}' already exists.")
        group = {"name": body["name"], "label": body["label"], "displayOrder": body.get("displayOrder", -1),
                 "archived": False}
        self.groups[group["name"]] = group
        return JSONResponse(group, status_code=201)

    async def update_group(self, request: Request) -> Response:
        name = request.path_params["group_name"]
        group = self.groups.get(name)
        if group is None:
            return self._group_not_found(name)
        body = await read_json(request)
        if not isinstance(body, dict):
            return validation_error("The property group update must be a JSON object")
        problem = self._group_problem(body, creating=False)
        if problem:
            return validation_error(problem)
        group.update({k: body[k] for k in ("label", "displayOrder") if k in body})
        return JSONResponse(group)

    async def archive_group(self, request: Request) -> Response:
        """A group still holding properties is refused, so no property is left in a group that is gone."""
        name = request.path_params["group_name"]
        if name not in self.groups:
            return self._group_not_found(name)
        members = sorted(p["name"] for p in self.properties.values() if p["groupName"] == name)
        if members:
            return validation_error(
                f"Property group {name} still holds properties {members}; move or archive them first")
        del self.groups[name]
        return Response(status_code=204)

    # ----- contact endpoints -------------------------------------------------------------------------

    async def get_contact(self, request: Request) -> Response:
        identifier = request.path_params["contact_id"]
        record = self._find(identifier, request.query_params.get("idProperty"), archived=wants_archived(request))
        if record is None:
            return self._not_found(identifier)
        body = self._public(record, requested_properties(request))
        associations = [a for value in request.query_params.getlist("associations") for a in value.split(",")]
        if any(a.strip() in ("notes", "note", "0-46") for a in associations) and record.associations:
            body["associations"] = {
                "notes": {
                    "results": [{"id": note_id, "type": "contact_to_note"} for note_id in record.associations]
                }
            }
        return JSONResponse(body)

    async def create_contact(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return validation_error("Invalid input JSON: expected an object with properties")
        values, problems = self._validate(self.properties, body.get("properties", {}))
        if problems:
            return invalid_properties(problems)
        existing = self._email_conflict(None, values)
        if existing:
            return hubspot_error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")
        record = self._create(values, iso(utc_now()), via_api=True)
        return JSONResponse(self._public(record, list(values)), status_code=201)

    async def update_contact(self, request: Request) -> Response:
        identifier = request.path_params["contact_id"]
        record = self._find(identifier, request.query_params.get("idProperty"))
        if record is None:
            return self._not_found(identifier)
        body = await read_json(request)
        if not isinstance(body, dict):
            return validation_error("Invalid input JSON: expected an object with properties")
        values, problems = self._validate(self.properties, body.get("properties", {}))
        if problems:
            return invalid_properties(problems)
        existing = self._email_conflict(record, values)
        if existing:
            return hubspot_error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")
        self._update(record, values, iso(utc_now()))
        return JSONResponse(self._public(record, list(values)))

    async def archive_contact(self, request: Request) -> Response:
        """204 whether or not the contact exists, as HubSpot answers: archiving is idempotent."""
        identifier = request.path_params["contact_id"]
        if not identifier.isdigit():
            return self._not_found(identifier)
        record = self.contacts.get(identifier)
        if record is not None:
            self._archive(record)
        return Response(status_code=204)

    async def batch_archive(self, request: Request) -> Response:
        inputs = self._batch_inputs(await read_json(request))
        if isinstance(inputs, JSONResponse):
            return inputs
        for item in inputs:
            record = self.contacts.get(str(item["id"]))
            if record is not None:
                self._archive(record)
        return Response(status_code=204)

    async def list_contacts(self, request: Request) -> Response:
        """Cursor paging in id order; the cursor is the base64 of the last id returned."""
        try:
            limit = int(request.query_params.get("limit", "10"))
        except ValueError:
            return validation_error("limit must be an integer")
        if not 1 <= limit <= LIST_PAGE_MAX:
            return validation_error(f"limit must be between 1 and {LIST_PAGE_MAX}")
        ids, store = (self.archived_ids, self.archived) if wants_archived(request) else (self.contact_ids,
                                                                                         self.contacts)
        start = 0
        if "after" in request.query_params:
            decoded = decode_cursor(request.query_params["after"])
            if decoded is None or not decoded.isdigit():
                return validation_error(f"Invalid after cursor: {request.query_params['after']}")
            start = bisect.bisect_right(ids, int(decoded))
        page_ids = ids[start : start + limit]
        names = requested_properties(request)
        body: dict[str, Any] = {"results": [self._public(store[str(i)], names) for i in page_ids]}
        if start + limit < len(ids):
            cursor = encode_cursor(str(page_ids[-1]))
            body["paging"] = {"next": {"after": cursor, "link": f"?after={cursor}"}}
        return JSONResponse(body)

    @staticmethod
    def _batch_response(
        results: list[dict], errors: list[dict], started: str, *, success_status: int = 200
    ) -> JSONResponse:
        body = {
            "status": "COMPLETE",
            "results": results,
            "requestedAt": started,
            "startedAt": started,
            "completedAt": iso(utc_now()),
            "numErrors": len(errors),
            "errors": errors,
            "links": {},
        }
        return JSONResponse(body, status_code=207 if errors else success_status)

    @staticmethod
    def _batch_inputs(body: Any) -> list | JSONResponse:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            return validation_error("Invalid input JSON: expected an object with an inputs list")
        inputs = body["inputs"]
        if len(inputs) > BATCH_LIMIT:
            return validation_error(
                f"inputs: size must be between 0 and {BATCH_LIMIT}",
                context={"limit": [str(BATCH_LIMIT)], "size": [str(len(inputs))]},
            )
        if not all(isinstance(item, dict) and isinstance(item.get("id"), (str, int)) for item in inputs):
            return validation_error("Every input needs an id")
        return inputs

    async def batch_upsert(self, request: Request) -> Response:
        """Create or update by email (or update by record id); per-input failures give HTTP 207."""
        inputs = self._batch_inputs(await read_json(request))
        if isinstance(inputs, JSONResponse):
            return inputs
        keys = []
        for item in inputs:
            id_property = item.get("idProperty") or "hs_object_id"
            if id_property not in ("email", "hs_object_id"):
                return validation_error(f"{id_property} is not a unique property of contacts")
            keys.append(str(item["id"]).strip().lower() if id_property == "email" else str(item["id"]))
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            return validation_error(f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")
        started = iso(utc_now())
        results, errors = [], []
        for item, key in zip(inputs, keys):
            by_email = (item.get("idProperty") or "hs_object_id") == "email"
            values, problems = self._validate(self.properties, item.get("properties", {}))
            if by_email and not EMAIL.match(key):
                problems.append(
                    {
                        "isValid": False,
                        "message": f"Email address {key} is invalid",
                        "error": "INVALID_EMAIL",
                        "name": "email",
                    }
                )
            if by_email and values.get("email", key) != key:
                problems.append(
                    {
                        "isValid": False,
                        "message": "The email property must match the id when idProperty is email",
                        "error": "INVALID_EMAIL",
                        "name": "email",
                    }
                )
            if problems:
                errors.append(
                    standard_error(
                        "VALIDATION_ERROR",
                        invalid_properties_message(problems),
                        [key],
                        problem_errors(problems),
                    )
                )
                continue
            record = self._find(key, "email" if by_email else None)
            if record is None and not by_email:
                errors.append(standard_error("OBJECT_NOT_FOUND", f"No contact with id {key}", [key]))
                continue
            conflict = self._email_conflict(record, values)
            if conflict:
                errors.append(
                    standard_error("CONFLICT", f"Contact already exists. Existing ID: {conflict}", [key])
                )
                continue
            moment = iso(utc_now())
            if record is None:
                record = self._create({**values, "email": key}, moment, via_api=True)
                new = True
            else:
                self._update(record, values, moment)
                new = False
            names = [*values, "email"]
            results.append({**self._public(record, names, defaults=()), "new": new})
        return self._batch_response(results, errors, started)

    async def batch_read(self, request: Request) -> Response:
        body = await read_json(request)
        inputs = self._batch_inputs(body)
        if isinstance(inputs, JSONResponse):
            return inputs
        id_property = body.get("idProperty")
        if id_property not in (None, "email", "hs_object_id"):
            return validation_error(f"{id_property} is not a unique property of contacts")
        names = body.get("properties")
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            return validation_error("properties must be a list of property names")
        started = iso(utc_now())
        results, missing, seen = [], [], set()
        archived = wants_archived(request)
        for item in inputs:
            identifier = str(item["id"])
            record = self._find(identifier, id_property, archived=archived)
            if record is None:
                missing.append(identifier)
            elif record.id not in seen:
                seen.add(record.id)
                results.append(self._public(record, names))
        errors = (
            [
                standard_error(
                    "OBJECT_NOT_FOUND",
                    "Could not get some CONTACT objects, they may be deleted "
                    "or not exist. Check that ids are valid.",
                    missing,
                )
            ]
            if missing
            else []
        )
        return self._batch_response(results, errors, started)

    # ----- search ------------------------------------------------------------------------------------

    def _comparable(self, name: str, value: str | None) -> Any:
        """A property value as search compares it: dates as epoch ms, numbers as floats, text folded."""
        if value is None:
            return None
        type_ = self.properties[name]["type"]
        if type_ in ("date", "datetime"):
            moment = parse_instant(value)
            return epoch_ms(moment) if moment else None
        if type_ == "number":
            try:
                return float(value)
            except ValueError:
                return None
        return value.lower()

    def _filter_problem(self, item: Any) -> str | None:
        if not isinstance(item, dict):
            return "Each filter must be an object"
        name, operator = item.get("propertyName"), item.get("operator", "EQ")
        if name not in self.properties:
            return f"Property {name!r} does not exist"
        if operator not in OPERATORS:
            return f"Unknown operator {operator!r}: one of {', '.join(sorted(OPERATORS))}"
        if operator in ("IN", "NOT_IN") and not isinstance(item.get("values"), list):
            return f"{operator} needs a values list"
        if operator == "BETWEEN" and (item.get("value") is None or item.get("highValue") is None):
            return "BETWEEN needs value and highValue"
        if (
            operator not in ("IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY", "BETWEEN")
            and item.get("value") is None
        ):
            return f"{operator} needs a value"
        return None

    def _matches(self, record: Record, item: dict) -> bool:
        name, operator = item["propertyName"], item.get("operator", "EQ")
        raw = record.properties.get(name)
        if operator == "HAS_PROPERTY":
            return raw is not None
        if operator == "NOT_HAS_PROPERTY":
            return raw is None
        if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            pattern = str(item["value"]).lower()
            text = (raw or "").lower()
            tokens = [text, *re.split(r"[\s,;]+", text)]
            found = raw is not None and any(fnmatch.fnmatchcase(t, pattern) for t in tokens)
            return found if operator == "CONTAINS_TOKEN" else not found
        value = self._comparable(name, raw)
        if operator in ("IN", "NOT_IN"):
            wanted = {self._comparable(name, str(v)) for v in item["values"]}
            return (value in wanted) if operator == "IN" else (value not in wanted)
        target = self._comparable(name, str(item["value"]))
        if operator == "EQ":
            return value is not None and value == target
        if operator == "NEQ":
            return value != target
        if value is None or target is None:
            return False
        try:
            if operator == "BETWEEN":
                return target <= value <= self._comparable(name, str(item["highValue"]))
            return {
                "LT": value < target,
                "LTE": value <= target,
                "GT": value > target,
                "GTE": value >= target,
            }[operator]
        except TypeError:
            return False

    def _search_matches(self, groups: list[dict], sorts: list[dict], query: str) -> list[Record]:
        key = (json.dumps(groups, sort_keys=True), json.dumps(sorts, sort_keys=True), query, self.version)
        if self._search_cache and self._search_cache[0] == key:
            return self._search_cache[1]
        records = list(self.contacts.values())
        if query:
            needle = query.lower()
            records = [
                r
                for r in records
                if any(needle in (r.properties.get(n) or "").lower() for n in SEARCHABLE_BY_QUERY)
            ]
        if groups:
            records = [
                r
                for r in records
                if any(all(self._matches(r, f) for f in g.get("filters", [])) for g in groups)
            ]
        for sort in reversed(sorts):
            name = sort["propertyName"]
            present = [r for r in records if self._comparable(name, r.properties.get(name)) is not None]
            absent = [r for r in records if self._comparable(name, r.properties.get(name)) is None]
            present.sort(
                key=lambda r: self._comparable(name, r.properties.get(name)),
                reverse=sort.get("direction", "ASCENDING") == "DESCENDING",
            )
            records = present + absent
        self._search_cache = (key, records)
        return records

    async def search(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return validation_error("Invalid input JSON: expected a search request object")
        groups = body.get("filterGroups") or []
        if not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("filters", []), list) for g in groups
        ):
            return validation_error("filterGroups must be a list of {filters: [...]} objects")
        filter_count = sum(len(g.get("filters", [])) for g in groups)
        if (
            len(groups) > SEARCH_MAX_GROUPS
            or filter_count > SEARCH_MAX_FILTERS
            or any(len(g.get("filters", [])) > SEARCH_MAX_FILTERS_PER_GROUP for g in groups)
        ):
            return validation_error(
                f"Too many filters: at most {SEARCH_MAX_GROUPS} filterGroups, {SEARCH_MAX_FILTERS_PER_GROUP} "
                f"filters per group and {SEARCH_MAX_FILTERS} filters in total"
            )
        for group in groups:
            for item in group.get("filters", []):
                problem = self._filter_problem(item)
                if problem:
                    return validation_error(problem)
        sorts = body.get("sorts") or []
        if isinstance(sorts, list):
            # The OpenAPI spec (and so the SDKs) types sorts as strings: a property name sorts ascending.
            sorts = [{"propertyName": s, "direction": "ASCENDING"} if isinstance(s, str) else s for s in sorts]
        if not isinstance(sorts, list) or not all(
            isinstance(s, dict)
            and s.get("propertyName") in self.properties
            and s.get("direction", "ASCENDING") in ("ASCENDING", "DESCENDING")
            for s in sorts
        ):
            return validation_error(
                "sorts must be a list of {propertyName, direction: ASCENDING|DESCENDING} "
                "with existing properties"
            )
        query = body.get("query") or ""
        if not isinstance(query, str) or len(query) > SEARCH_QUERY_MAX:
            return validation_error(f"query must be a string of at most {SEARCH_QUERY_MAX} characters")
        limit, after = body.get("limit", 10), body.get("after", "0")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= SEARCH_PAGE_MAX:
            return validation_error(f"limit must be an integer between 1 and {SEARCH_PAGE_MAX}")
        if not str(after).isdigit():
            return validation_error(f"after must be a numeric offset, got {after!r}")
        offset = int(after)
        if offset >= SEARCH_RESULT_CAP:
            return validation_error(
                f"The maximum number of results reachable through paging is "
                f"{SEARCH_RESULT_CAP}; narrow the query (e.g. filter on hs_object_id GT "
                "the last id seen)"
            )
        names = body.get("properties")
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            return validation_error("properties must be a list of property names")
        matches = self._search_matches(groups, sorts, query)
        page = matches[offset : min(offset + limit, SEARCH_RESULT_CAP)]
        result: dict[str, Any] = {"total": len(matches), "results": [self._public(r, names) for r in page]}
        if offset + limit < len(matches):
            result["paging"] = {"next": {"after": str(offset + limit)}}
        return JSONResponse(result)

    # ----- notes -------------------------------------------------------------------------------------

    def _note_registry(self) -> dict[str, dict]:
        def prop(name: str, type_: str, field_type: str, read_only: bool) -> dict:
            return {
                "name": name,
                "type": type_,
                "fieldType": field_type,
                "options": [],
                "modificationMetadata": {"readOnlyValue": read_only},
            }

        return {
            "hs_timestamp": prop("hs_timestamp", "datetime", "date", False),
            "hs_note_body": prop("hs_note_body", "string", "html", False),
            "hubspot_owner_id": prop("hubspot_owner_id", "enumeration", "select", False),
            "hs_attachment_ids": prop("hs_attachment_ids", "string", "text", False),
            "hs_createdate": prop("hs_createdate", "datetime", "date", True),
            "hs_lastmodifieddate": prop("hs_lastmodifieddate", "datetime", "date", True),
            "hs_object_id": prop("hs_object_id", "number", "number", True),
        }

    def _note_problem(self, item: Any) -> tuple[dict[str, str], list[str], JSONResponse | None]:
        """Validate a note input; returns (values, associated contact ids, error response)."""
        if not isinstance(item, dict):
            return {}, [], validation_error("Invalid input JSON: expected an object with properties")
        values, problems = self._validate(self._note_registry(), item.get("properties", {}))
        if problems:
            return {}, [], invalid_properties(problems)
        if not values.get("hs_timestamp"):
            return (
                {},
                [],
                invalid_properties(
                    [
                        {
                            "isValid": False,
                            "message": "hs_timestamp is required",
                            "error": "REQUIRED_PROPERTY",
                            "name": "hs_timestamp",
                        }
                    ]
                ),
            )
        if len(values.get("hs_note_body", "")) > NOTE_BODY_MAX:
            return (
                {},
                [],
                invalid_properties(
                    [
                        {
                            "isValid": False,
                            "message": f"hs_note_body is longer than {NOTE_BODY_MAX} characters",
                            "error": "INVALID_PROPERTY_VALUE",
                            "name": "hs_note_body",
                        }
                    ]
                ),
            )
        associations = item.get("associations") or []
        if not isinstance(associations, list):
            return {}, [], validation_error("associations must be a list")
        contact_ids = []
        for association in associations:
            target = association.get("to") if isinstance(association, dict) else None
            types = association.get("types") if isinstance(association, dict) else None
            if not isinstance(target, dict) or not isinstance(types, list) or not types:
                return {}, [], validation_error("Each association needs to: {id} and a non-empty types list")
            if any(
                not isinstance(t, dict)
                or t.get("associationCategory") != "HUBSPOT_DEFINED"
                or t.get("associationTypeId") != NOTE_TO_CONTACT
                for t in types
            ):
                return (
                    {},
                    [],
                    validation_error(
                        f"Invalid association type: notes associate to contacts with HUBSPOT_DEFINED "
                        f"associationTypeId {NOTE_TO_CONTACT}"
                    ),
                )
            contact_id = str(target.get("id"))
            if contact_id not in self.contacts:
                return (
                    {},
                    [],
                    validation_error(
                        f"One or more associations are invalid: contact {contact_id} does not exist",
                        context={"ids": [contact_id]},
                    ),
                )
            contact_ids.append(contact_id)
        return values, contact_ids, None

    def _create_note(self, values: dict[str, str], contact_ids: list[str]) -> Record:
        note_id = str(self.next_note_id)
        self.next_note_id += 1
        moment = iso(utc_now())
        record = Record(
            note_id,
            {
                **{k: v for k, v in values.items() if v != ""},
                "hs_object_id": note_id,
                "hs_createdate": moment,
                "hs_lastmodifieddate": moment,
            },
            moment,
            moment,
            list(dict.fromkeys(contact_ids)),
        )
        self.notes[note_id] = record
        for contact_id in record.associations:
            self.contacts[contact_id].associations.append(note_id)
        return record

    def _public_note(self, record: Record, names: list[str] | None) -> dict:
        return self._public(
            record, names, defaults=(), always=NOTE_ALWAYS_RETURNED, registry=self._note_registry()
        )

    async def create_note(self, request: Request) -> Response:
        values, contact_ids, problem = self._note_problem(await read_json(request))
        if problem:
            return problem
        record = self._create_note(values, contact_ids)
        return JSONResponse(self._public_note(record, list(values)), status_code=201)

    async def batch_create_notes(self, request: Request) -> Response:
        """All or nothing: one invalid input rejects the batch, so no note is ever half-written."""
        inputs = await read_json(request)
        if not isinstance(inputs, dict) or not isinstance(inputs.get("inputs"), list):
            return validation_error("Invalid input JSON: expected an object with an inputs list")
        if len(inputs["inputs"]) > BATCH_LIMIT:
            return validation_error(f"inputs: size must be between 0 and {BATCH_LIMIT}")
        started = iso(utc_now())
        checked = []
        for item in inputs["inputs"]:
            values, contact_ids, problem = self._note_problem(item)
            if problem:
                return problem
            checked.append((values, contact_ids))
        results = [self._public_note(self._create_note(v, c), list(v)) for v, c in checked]
        return self._batch_response(results, [], started, success_status=201)

    async def get_note(self, request: Request) -> Response:
        note_id = request.path_params["note_id"]
        record = self.notes.get(note_id)
        if record is None:
            return self._not_found(note_id)
        body = self._public_note(record, requested_properties(request))
        associations = [a for value in request.query_params.getlist("associations") for a in value.split(",")]
        contact_ids = [c for c in record.associations if c in self.contacts]
        if any(a.strip() in ("contacts", "contact", "0-1") for a in associations) and contact_ids:
            body["associations"] = {
                "contacts": {"results": [{"id": c, "type": "note_to_contact"} for c in contact_ids]}
            }
        return JSONResponse(body)

    # ----- associations (v4) --------------------------------------------------------------------------

    def _store(self, kind: str) -> dict[str, Record]:
        return self.contacts if kind == "contacts" else self.notes

    @staticmethod
    def _kinds(from_type: str, to_type: str) -> tuple[str, str] | JSONResponse:
        """The two object kinds of a v4 path (names, singulars or type ids), or HubSpot's 400."""
        kinds = []
        for given in (from_type, to_type):
            kind = OBJECT_TYPES.get(given.lower())
            if kind is None:
                return hubspot_error(400, None, f"Unable to infer object type from: {given}")
            kinds.append(kind)
        return kinds[0], kinds[1]

    def _associated(self, kinds: tuple[str, str], record: Record) -> list[str]:
        """Live objects of the second kind associated with ``record`` (archived contacts are hidden)."""
        if kinds not in DEFAULT_ASSOCIATION:
            return []
        targets = self._store(kinds[1])
        return [i for i in record.associations if i in targets]

    def _link_problem(self, kinds: tuple[str, str], from_id: str, to_id: str) -> JSONResponse | None:
        if kinds not in DEFAULT_ASSOCIATION:
            return validation_error(f"There is no default association from {kinds[0]} to {kinds[1]}")
        for kind, identifier in zip(kinds, (from_id, to_id)):
            if identifier not in self._store(kind):
                return validation_error(
                    f"One or more associations are invalid: {kind} {identifier} does not exist",
                    context={"ids": [identifier]},
                )
        return None

    def _link(self, kinds: tuple[str, str], from_id: str, to_id: str) -> list[dict]:
        """Associate two objects with the default type, both ways; returns both directions, as HubSpot does."""
        from_record, to_record = self._store(kinds[0])[from_id], self._store(kinds[1])[to_id]
        for record, other in ((from_record, to_id), (to_record, from_id)):
            if other not in record.associations:
                record.associations.append(other)
        return [
            {
                "from": {"id": a},
                "to": {"id": b},
                "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id},
            }
            for a, b, type_id in ((from_id, to_id, DEFAULT_ASSOCIATION[kinds]),
                                  (to_id, from_id, DEFAULT_ASSOCIATION[(kinds[1], kinds[0])]))
        ]

    @staticmethod
    def _association_page(kinds: tuple[str, str], targets: list[str], after: Any,
                          limit: int) -> tuple[list[dict], dict | None] | JSONResponse:
        """One page of ``MultiAssociatedObjectWithLabel`` items and its ``paging`` (None on the last page)."""
        start = 0
        if after is not None:
            decoded = decode_cursor(str(after))
            if decoded is None or not decoded.isdigit():
                return validation_error(f"Invalid after cursor: {after}")
            start = int(decoded)
        label = {"category": "HUBSPOT_DEFINED", "typeId": DEFAULT_ASSOCIATION.get(kinds), "label": None}
        items = [{"toObjectId": int(t), "associationTypes": [label]} for t in targets[start : start + limit]]
        if start + limit >= len(targets):
            return items, None
        cursor = encode_cursor(str(start + limit))
        return items, {"next": {"after": cursor, "link": f"?after={cursor}"}}

    async def associate_default(self, request: Request) -> Response:
        path = request.path_params
        kinds = self._kinds(path["from_type"], path["to_type"])
        if isinstance(kinds, JSONResponse):
            return kinds
        problem = self._link_problem(kinds, path["from_id"], path["to_id"])
        if problem:
            return problem
        started = iso(utc_now())
        return self._batch_response(self._link(kinds, path["from_id"], path["to_id"]), [], started)

    async def list_associations(self, request: Request) -> Response:
        path = request.path_params
        kinds = self._kinds(path["from_type"], path["to_type"])
        if isinstance(kinds, JSONResponse):
            return kinds
        record = self._store(kinds[0]).get(path["from_id"])
        if record is None:
            return self._not_found(path["from_id"])
        try:
            limit = int(request.query_params.get("limit", str(ASSOCIATION_PAGE_MAX)))
        except ValueError:
            return validation_error("limit must be an integer")
        if not 1 <= limit <= ASSOCIATION_PAGE_MAX:
            return validation_error(f"limit must be between 1 and {ASSOCIATION_PAGE_MAX}")
        page = self._association_page(kinds, self._associated(kinds, record), request.query_params.get("after"),
                                      limit)
        if isinstance(page, JSONResponse):
            return page
        items, paging = page
        return JSONResponse({"results": items, **({"paging": paging} if paging else {})})

    @staticmethod
    def _association_inputs(body: Any, valid: Any) -> list[dict] | JSONResponse:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            return validation_error("Invalid input JSON: expected an object with an inputs list")
        inputs = body["inputs"]
        if len(inputs) > ASSOCIATION_BATCH_LIMIT:
            return validation_error(f"inputs: size must be between 0 and {ASSOCIATION_BATCH_LIMIT}")
        if not all(isinstance(item, dict) and valid(item) for item in inputs):
            return validation_error("Invalid input JSON: every input needs its object ids")
        return inputs

    async def batch_associate_default(self, request: Request) -> Response:
        """All or nothing: one invalid pair rejects the batch, so no association is half-made."""
        path = request.path_params
        kinds = self._kinds(path["from_type"], path["to_type"])
        if isinstance(kinds, JSONResponse):
            return kinds

        def ids(item: dict) -> bool:
            return all(isinstance(item.get(end), dict) and isinstance(item[end].get("id"), (str, int))
                       for end in ("from", "to"))

        inputs = self._association_inputs(await read_json(request), ids)
        if isinstance(inputs, JSONResponse):
            return inputs
        pairs = [(str(item["from"]["id"]), str(item["to"]["id"])) for item in inputs]
        for from_id, to_id in pairs:
            problem = self._link_problem(kinds, from_id, to_id)
            if problem:
                return problem
        started = iso(utc_now())
        return self._batch_response([r for f, t in pairs for r in self._link(kinds, f, t)], [], started)

    async def batch_read_associations(self, request: Request) -> Response:
        """Each input's first page; an object with no associations (or none at all) is an error of 207."""
        path = request.path_params
        kinds = self._kinds(path["from_type"], path["to_type"])
        if isinstance(kinds, JSONResponse):
            return kinds
        inputs = self._association_inputs(await read_json(request),
                                          lambda item: isinstance(item.get("id"), (str, int)))
        if isinstance(inputs, JSONResponse):
            return inputs
        started = iso(utc_now())
        results, errors = [], []
        for item in inputs:
            from_id = str(item["id"])
            record = self._store(kinds[0]).get(from_id)
            targets = self._associated(kinds, record) if record else []
            if not targets:
                errors.append({
                    **standard_error("OBJECT_NOT_FOUND",
                                     f"No {kinds[1][:-1]} is associated with {kinds[0][:-1]} {from_id}.", []),
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "context": {"fromObjectId": [from_id]},
                })
                continue
            page = self._association_page(kinds, targets, item.get("after"), ASSOCIATION_PAGE_MAX)
            if isinstance(page, JSONResponse):
                return page
            to, paging = page
            results.append({"from": {"id": from_id}, "to": to, **({"paging": paging} if paging else {})})
        return self._batch_response(results, errors, started)

    # ----- owners ------------------------------------------------------------------------------------

    async def list_owners(self, request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            return validation_error("limit must be an integer")
        if not 1 <= limit <= 500:
            return validation_error("limit must be between 1 and 500")
        owners = self.owners
        if "email" in request.query_params:
            owners = [o for o in owners if o["email"] == request.query_params["email"].lower()]
        start = 0
        if "after" in request.query_params:
            decoded = decode_cursor(request.query_params["after"])
            if decoded is None or not decoded.isdigit():
                return validation_error(f"Invalid after cursor: {request.query_params['after']}")
            start = int(decoded)
        body: dict[str, Any] = {"results": owners[start : start + limit]}
        if start + limit < len(owners):
            cursor = encode_cursor(str(start + limit))
            body["paging"] = {"next": {"after": cursor, "link": f"?after={cursor}"}}
        return JSONResponse(body)

    # ----- admin -------------------------------------------------------------------------------------

    async def seed_contacts(self, request: Request) -> Response:
        """Pre-existing CRM contacts for the world generator: owners, original sources, history.

        Read-only fields (drill-downs, ``createdate``) may be set; names the registry does not know yet are
        registered as custom text properties (group ``lifecycle``, created if missing), since a real CRM that holds
        such values already has the properties. All items are checked before any is stored.
        """
        body = await read_json(request)
        items = [body] if isinstance(body, dict) else body
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("properties"), dict) for i in items
        ):
            return JSONResponse(
                {"error": "body must be an object or a list of {properties, createdate?}"}, status_code=400
            )
        registry = dict(self.properties)
        for item in items:
            for name in item["properties"]:
                if name not in registry and PROPERTY_NAME.match(name):
                    registry[name] = self._property_definition(
                        {
                            "name": name,
                            "label": name.replace("_", " ").capitalize(),
                            "type": "string",
                            "fieldType": "text",
                            "groupName": SEED_GROUP,
                        }
                    )
        prepared, emails = [], set()
        for index, item in enumerate(items):
            properties = {
                k: v
                for k, v in item["properties"].items()
                if k not in ("hs_object_id", "lastmodifieddate", "createdate")
            }
            created_raw = item.get("createdate") or item["properties"].get("createdate")
            values, problems = self._validate(registry, properties, allow_read_only=True)
            created = parse_instant(str(created_raw)) if created_raw else utc_now()
            if created is None:
                problems.append(
                    {
                        "name": "createdate",
                        "error": "INVALID_DATE",
                        "message": f"{created_raw} is not a valid date",
                    }
                )
            if problems:
                return JSONResponse(
                    {"error": f"item {index}: invalid properties", "errors": problems}, status_code=400
                )
            email = values.get("email")
            if email and (email in self.by_email or email in emails):
                return JSONResponse(
                    {"error": f"item {index}: a contact with email {email} already exists"}, status_code=409
                )
            if email:
                emails.add(email)
            prepared.append((values, iso(created)))
        self.properties = registry
        if any(p["groupName"] == SEED_GROUP for p in registry.values()):
            self.groups.setdefault(SEED_GROUP, {"name": SEED_GROUP, "label": "Lifecycle", "displayOrder": -1,
                                                "archived": False})
        ids = [self._create(values, created, via_api=False).id for values, created in prepared]
        return JSONResponse({"ids": ids}, status_code=201)

    async def inspect_contact(self, request: Request) -> Response:
        """Everything stored about one contact, with its notes, for end-to-end assertions."""
        record = self._find(request.path_params["email"], "email")
        if record is None:
            return JSONResponse({"error": "no contact with that email"}, status_code=404)
        notes = sorted(
            (self.notes[n] for n in record.associations),
            key=lambda n: (n.properties.get("hs_timestamp", ""), int(n.id)),
        )
        return JSONResponse(
            {
                "id": record.id,
                "properties": dict(record.properties),
                "createdAt": record.created_at,
                "updatedAt": record.updated_at,
                "archived": False,
                "notes": [
                    {
                        "id": n.id,
                        "hs_timestamp": n.properties.get("hs_timestamp"),
                        "hs_note_body": n.properties.get("hs_note_body"),
                        "hubspot_owner_id": n.properties.get("hubspot_owner_id"),
                        "createdAt": n.created_at,
                    }
                    for n in notes
                ],
            }
        )
