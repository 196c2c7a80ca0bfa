"""Contact attributes: the registry, their types and how a written value is coerced (or silently dropped)."""

from __future__ import annotations

from datetime import UTC, date
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.brevo.common import (
    ATTRIBUTE_CATEGORIES,
    ATTRIBUTE_NAME,
    DATE_ONLY,
    DROP,
    TYPES_BY_CATEGORY,
    Contact,
    bad,
    parse_datetime,
)
from sandbox.core import read_json


class AttributesApi:
    """``/v3/contacts/attributes``."""

    async def list_attributes(self, request: Request) -> Response:
        return JSONResponse({"attributes": list(self.attributes.values())})

    async def create_attribute(self, request: Request) -> Response:
        category, name = request.path_params["category"], request.path_params["name"].upper()
        if category not in ATTRIBUTE_CATEGORIES:
            return bad(
                "invalid_parameter", f"Invalid attribute category: one of {', '.join(ATTRIBUTE_CATEGORIES)}"
            )
        if not ATTRIBUTE_NAME.match(name):
            return bad("invalid_parameter", "Attribute names use letters, digits, underscores and hyphens")
        if name in self.attributes:
            return bad("duplicate_parameter", "Attribute name already exists")
        body = await read_json(request)
        if not isinstance(body, dict):
            return bad("bad_request", "Input must be a valid JSON object")
        attribute: dict[str, Any] = {"name": name, "category": category}
        if category in ("calculated", "global"):
            if not isinstance(body.get("value"), str) or not body["value"]:
                return bad("missing_parameter", f"A {category} attribute needs a value (formula)")
            attribute["calculatedValue"] = body["value"]
        else:
            type_ = body.get("type", "text" if category == "normal" else None)
            if type_ not in TYPES_BY_CATEGORY[category]:
                return bad(
                    "invalid_parameter",
                    f"Invalid type for a {category} attribute: one of "
                    f"{', '.join(TYPES_BY_CATEGORY[category])}",
                )
            attribute["type"] = type_
            if type_ == "category":
                enumeration = body.get("enumeration")
                if (
                    not isinstance(enumeration, list)
                    or not enumeration
                    or not all(
                        isinstance(e, dict)
                        and isinstance(e.get("value"), int)
                        and isinstance(e.get("label"), str)
                        and len(e["label"]) <= 200
                        for e in enumeration
                    )
                ):
                    return bad(
                        "invalid_parameter", "A category attribute needs enumeration [{value: int, label}]"
                    )
                attribute["enumeration"] = [{"value": e["value"], "label": e["label"]} for e in enumeration]
        self.attributes[name] = attribute
        return Response(status_code=201)

    def _coerce(self, attribute: dict, raw: Any, *, lenient: bool) -> Any:
        """The stored form of a value, ``None`` to clear, or ``DROP`` when Brevo would ignore it.

        API writes are strict about JSON types; imports (CSV cells are all text) accept text forms.
        """
        if raw == "" or (raw is None and lenient):
            return None
        type_ = attribute.get("type")
        if type_ == "text":
            if isinstance(raw, str):
                return raw
            return (
                str(raw) if lenient and isinstance(raw, (int, float)) and not isinstance(raw, bool) else DROP
            )
        if type_ == "float":
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                return raw
            if lenient and isinstance(raw, str):
                try:
                    number = float(raw)
                except ValueError:
                    return DROP
                return int(number) if number.is_integer() else number
            return DROP
        if type_ == "boolean":
            if isinstance(raw, bool):
                return raw
            if (
                lenient
                and isinstance(raw, str)
                and raw.strip().lower() in ("true", "false", "yes", "no", "1", "0")
            ):
                return raw.strip().lower() in ("true", "yes", "1")
            return DROP
        if type_ == "date":
            if not isinstance(raw, str):
                return DROP
            if DATE_ONLY.match(raw):
                try:
                    return date.fromisoformat(raw).isoformat()
                except ValueError:
                    return DROP
            moment = parse_datetime(raw)
            return moment.astimezone(UTC).date().isoformat() if moment else DROP
        if type_ == "category":
            if isinstance(raw, bool):
                return DROP
            for entry in attribute["enumeration"]:
                if raw == entry["value"] or raw == entry["label"] or (lenient and raw == str(entry["value"])):
                    return entry["value"]
            return DROP
        if type_ == "id":
            return str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else DROP
        return DROP  # calculated and global attributes are computed, never written

    def _apply_attributes(
        self, contact: Contact, attributes: dict, *, lenient: bool = False, clear_empty: bool = True
    ) -> None:
        """Write known attributes of the right type; silently skip everything else, as Brevo does."""
        for name, raw in attributes.items():
            attribute = self.attributes.get(name)
            if attribute is None:
                continue
            value = self._coerce(attribute, raw, lenient=lenient)
            if value is DROP:
                continue
            if value is None:
                if clear_empty:
                    contact.attributes.pop(name, None)
            else:
                contact.attributes[name] = value

