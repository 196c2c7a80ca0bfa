"""Notes (v3): created alone or in batches, with their associations to contacts."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.core import read_json
from sandbox.hubspot.common import (
    BATCH_LIMIT,
    NOTE_ALWAYS_RETURNED,
    NOTE_BODY_MAX,
    NOTE_TO_CONTACT,
    Record,
    invalid_properties,
    iso,
    requested_properties,
    utc_now,
    validation_error,
)


class NotesApi:
    """Note records and their endpoints."""

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

