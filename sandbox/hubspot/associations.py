"""Associations (v4) between contacts and notes: default links, listing, batch associate and batch read."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.core import read_json
from sandbox.hubspot.common import (
    ASSOCIATION_BATCH_LIMIT,
    ASSOCIATION_PAGE_MAX,
    DEFAULT_ASSOCIATION,
    OBJECT_TYPES,
    Record,
    decode_cursor,
    encode_cursor,
    hubspot_error,
    iso,
    standard_error,
    utc_now,
    validation_error,
)


class AssociationsApi:
    """The v4 association endpoints."""

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
        for kind, identifier in zip(kinds, (from_id, to_id), strict=True):
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

