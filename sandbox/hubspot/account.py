"""The emulated HubSpot account: its state, the gate every call passes (auth, rate limits), the routes,
owners and the admin API; each API resource's endpoints live in their own module."""

from __future__ import annotations

import collections
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.core import Limited, Service, env, read_json, unknown_route
from sandbox.hubspot.associations import AssociationsApi
from sandbox.hubspot.common import (
    ANALYTICS_SOURCES,
    BUILTIN_GROUPS,
    DAILY_LIMIT,
    LEAD_STATUSES,
    LIFECYCLE_STAGES,
    OWNERS,
    PROPERTY_NAME,
    SEARCH_PER_SECOND,
    SEED_GROUP,
    TEN_SECONDLY,
    Record,
    decode_cursor,
    encode_cursor,
    hubspot_error,
    iso,
    option,
    parse_instant,
    unknown_path,
    utc_now,
    validation_error,
    whole_seconds,
    wrong_method,
)
from sandbox.hubspot.contacts import ContactsApi
from sandbox.hubspot.notes import NotesApi
from sandbox.hubspot.properties import PropertiesApi
from sandbox.hubspot.search import SearchApi


class HubSpot(ContactsApi, PropertiesApi, SearchApi, NotesApi, AssociationsApi):
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
