"""Contacts (v3): value checks against the property registry, create / update / archive, and the
endpoints, single and batch."""

from __future__ import annotations

import bisect
import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.core import read_json
from sandbox.hubspot.common import (
    ALWAYS_RETURNED,
    BATCH_LIMIT,
    DEFAULT_PROPERTIES,
    EMAIL,
    LIST_PAGE_MAX,
    SOURCE_DRILL_DOWNS,
    Record,
    decode_cursor,
    encode_cursor,
    hubspot_error,
    invalid_properties,
    invalid_properties_message,
    iso,
    parse_instant,
    problem_errors,
    requested_properties,
    standard_error,
    utc_now,
    validation_error,
    wants_archived,
)


class ContactsApi:
    """Contact records and their endpoints."""

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

    async def _checked_values(self, request: Request, record: Record | None) -> dict[str, str] | Response:
        """The body's properties, validated, or the error HubSpot answers: 400 for a body or value it
        refuses, 409 when the email belongs to another contact than ``record`` (None: a new contact)."""
        body = await read_json(request)
        if not isinstance(body, dict):
            return validation_error("Invalid input JSON: expected an object with properties")
        values, problems = self._validate(self.properties, body.get("properties", {}))
        if problems:
            return invalid_properties(problems)
        existing = self._email_conflict(record, values)
        if existing:
            return hubspot_error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")
        return values

    async def create_contact(self, request: Request) -> Response:
        values = await self._checked_values(request, None)
        if isinstance(values, Response):
            return values
        record = self._create(values, iso(utc_now()), via_api=True)
        return JSONResponse(self._public(record, list(values)), status_code=201)

    async def update_contact(self, request: Request) -> Response:
        identifier = request.path_params["contact_id"]
        record = self._find(identifier, request.query_params.get("idProperty"))
        if record is None:
            return self._not_found(identifier)
        values = await self._checked_values(request, record)
        if isinstance(values, Response):
            return values
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
        for item, key in zip(inputs, keys, strict=True):
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

