"""The contact property registry and its groups (v3)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.core import read_json
from sandbox.hubspot.common import (
    BATCH_LIMIT,
    FIELD_TYPES,
    PROPERTY_NAME,
    hubspot_error,
    iso,
    option,
    standard_error,
    utc_now,
    validation_error,
)


class PropertiesApi:
    """Property definitions and property groups."""

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

