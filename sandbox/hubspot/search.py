"""Contact search (v3): filter groups, sorts and a free-text query, numeric offsets capped at 10,000
results, behind search's own 5-per-second limit."""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.core import read_json
from sandbox.hubspot.common import (
    OPERATORS,
    SEARCH_MAX_FILTERS,
    SEARCH_MAX_FILTERS_PER_GROUP,
    SEARCH_MAX_GROUPS,
    SEARCH_PAGE_MAX,
    SEARCH_QUERY_MAX,
    SEARCH_RESULT_CAP,
    SEARCHABLE_BY_QUERY,
    Record,
    epoch_ms,
    parse_instant,
    validation_error,
)


class SearchApi:
    """``POST /crm/v3/objects/contacts/search``."""

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

