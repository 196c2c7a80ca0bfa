"""The shared REST client and HubSpot's capped search paging, against fake transports (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from ingestion.pipelines import SOURCE_NAMES, IngestionConfig, build_source
from ingestion.sources.http import ApiError, RestClient, RetryPolicy, hubspot_client
from ingestion.sources.hubspot import search_modified_since

TOKEN = "pat-na1-very-secret"


def client(handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float], **retry: float) -> RestClient:
    return hubspot_client("https://api.example.test", TOKEN, transport=httpx.MockTransport(handler),
                          sleep=sleeps.append, retry=RetryPolicy(**retry))


def sequence(*responses: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    """A handler answering each request with the next response (or raising the next exception)."""
    remaining = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = remaining.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


@pytest.mark.parametrize(("headers", "expected_wait"), [
    ({"Retry-After": "2"}, 2.0),
    ({"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}, 10.0),
    ({"x-sib-ratelimit-reset": "3"}, 3.0),
    ({"X-RateLimit-Reset": "7"}, 7.0),
])
def test_a_429_waits_as_long_as_the_vendor_asks_then_succeeds(headers: dict, expected_wait: float) -> None:
    sleeps: list[float] = []
    handler = sequence(httpx.Response(429, headers=headers, json={"message": "slow down"}),
                       httpx.Response(200, json={"ok": True}))

    with client(handler, sleeps) as api:
        assert api.get("/things") == {"ok": True}

    assert sleeps == [expected_wait]


def test_server_errors_and_timeouts_are_retried_with_growing_backoff() -> None:
    sleeps: list[float] = []
    handler = sequence(httpx.Response(502), httpx.ReadTimeout("slow"), httpx.Response(200, json={"ok": 1}))

    with client(handler, sleeps, base_delay=1.0) as api:
        assert api.get("/things") == {"ok": 1}

    assert len(sleeps) == 2
    assert 0.8 <= sleeps[0] <= 1.0 and 1.6 <= sleeps[1] <= 2.0


def test_retries_are_bounded_and_the_error_names_the_endpoint() -> None:
    sleeps: list[float] = []
    handler = sequence(*[httpx.Response(500, json={"message": "boom"})] * 3)

    with client(handler, sleeps, max_error_retries=2) as api, pytest.raises(ApiError) as caught:
        api.get("/crm/v3/owners")

    assert len(sleeps) == 2
    assert caught.value.status == 500
    assert str(caught.value) == "hubspot GET /crm/v3/owners failed (HTTP 500): boom"


def test_a_client_error_is_raised_at_once_with_the_vendor_message_and_never_the_token() -> None:
    sleeps: list[float] = []
    body = {"status": "error", "category": "INVALID_AUTHENTICATION",
            "message": f"The token {TOKEN} is not valid", "correlationId": "c-1"}
    handler = sequence(httpx.Response(401, json=body))

    with client(handler, sleeps) as api, pytest.raises(ApiError) as caught:
        api.get("/crm/v3/objects/contacts", {"limit": 100})

    message = str(caught.value)
    assert sleeps == []
    assert TOKEN not in message
    assert "hubspot GET /crm/v3/objects/contacts failed (HTTP 401)" in message
    assert "INVALID_AUTHENTICATION" in message and "The token *** is not valid" in message


def test_requests_carry_the_vendor_auth_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    with client(handler, []) as api:
        api.get("/x")

    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"


class FakeSearch:
    """HubSpot's search semantics that matter here: GTE on lastmodifieddate, ascending sort, numeric
    ``after`` offsets, and a 400 for any page past ``cap`` results of one query."""

    def __init__(self, modified_ms: list[int], cap: int) -> None:
        self.contacts = [{"id": str(i + 1), "properties": {"lastmodifieddate": str(ms)}}
                         for i, ms in enumerate(modified_ms)]
        self.cap = cap
        self.bodies: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        (condition,) = body["filterGroups"][0]["filters"]
        assert condition["propertyName"] == "lastmodifieddate" and condition["operator"] == "GTE"
        assert body["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
        offset, limit = int(body.get("after", "0")), body["limit"]
        if offset >= self.cap:
            return httpx.Response(400, json={"status": "error", "category": "VALIDATION_ERROR",
                                             "message": "past the 10,000 results cap", "correlationId": "x"})
        matches = sorted((c for c in self.contacts
                          if int(c["properties"]["lastmodifieddate"]) >= int(condition["value"])),
                         key=lambda c: (int(c["properties"]["lastmodifieddate"]), int(c["id"])))
        result: dict = {"total": len(matches), "results": matches[offset:offset + limit]}
        if offset + limit < len(matches):
            result["paging"] = {"next": {"after": str(offset + limit)}}
        return httpx.Response(200, json=result)


def test_search_restarts_from_the_last_modified_date_when_the_cap_is_reached() -> None:
    # ids 1..9; ids 4 and 5 share the instant where the first query hits its cap of 4 results
    fake = FakeSearch([1000, 1001, 1002, 1003, 1003, 1004, 1005, 1006, 1007], cap=4)

    with client(fake, []) as api:
        pages = list(search_modified_since(api, ["email"], 1000, page_size=2, cap=4))

    ids = [contact["id"] for page in pages for contact in page]
    assert ids == [str(i) for i in range(1, 10)]
    starts = [body["filterGroups"][0]["filters"][0]["value"] for body in fake.bodies]
    assert starts[0] == "1000"
    assert "1003" in starts and "1005" in starts
    assert all(int(body.get("after", "0")) < 4 for body in fake.bodies)


def test_search_without_cap_pressure_is_one_query_paged_with_after() -> None:
    fake = FakeSearch([5, 6, 7], cap=10_000)

    with client(fake, []) as api:
        ids = [c["id"] for page in search_modified_since(api, ["email"], 6, page_size=1) for c in page]

    assert ids == ["2", "3"]
    assert [body.get("after") for body in fake.bodies] == [None, "1"]


def test_search_refuses_to_loop_when_a_whole_capped_query_shares_one_instant() -> None:
    fake = FakeSearch([2000] * 5, cap=4)

    with client(fake, []) as api, pytest.raises(RuntimeError, match="cannot advance"):
        list(search_modified_since(api, ["email"], 2000, page_size=2, cap=4))


def test_sources_build_without_network_and_expose_the_contracted_tables(tmp_path) -> None:
    unreachable = "http://127.0.0.1:9"
    config = IngestionConfig(
        warehouse_path=tmp_path / "w.duckdb", pipelines_dir=tmp_path / "dlt", landing_dir=tmp_path / "landing",
        hubspot_base_url=unreachable, hubspot_token="placeholder", brevo_base_url=unreachable,
        brevo_api_key="placeholder", calendly_base_url=unreachable, calendly_token="placeholder",
        stripe_base_url=unreachable, stripe_api_key="placeholder",
    )

    tables = {name: sorted(build_source(name, config).selected_resources) for name in SOURCE_NAMES}

    assert tables == {
        "forms": ["rejected_lines", "submissions"],
        "calendly": ["invitees", "rejected_lines", "scheduled_events", "webhook_events"],
        "stripe": ["checkout_line_items", "checkout_sessions", "events", "rejected_lines", "webhook_events"],
        "crm": ["contacts", "owners"],
        "marketing": ["contacts", "email_events"],
    }
    with pytest.raises(ValueError, match="unknown source"):
        build_source("salesforce", config)
