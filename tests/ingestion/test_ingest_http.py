"""The shared REST client and HubSpot's capped search paging, against fake transports (no network)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import httpx
import pytest

from ingestion.pipelines import SOURCE_NAMES, build_source
from ingestion.sources.http import (
    ApiError,
    RestClient,
    RetryPolicy,
    brevo_client,
    calendly_client,
    hubspot_client,
    stripe_client,
)
from ingestion.sources.hubspot import listing_is_cheaper, search_modified_since
from settings import Settings
from tests.leaks import leaks

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


def test_a_client_error_is_raised_at_once_with_the_vendor_message() -> None:
    sleeps: list[float] = []
    body = {"status": "error", "category": "INVALID_AUTHENTICATION", "message": "The token is not valid",
            "correlationId": "c-1"}
    handler = sequence(httpx.Response(401, json=body))

    with client(handler, sleeps) as api, pytest.raises(ApiError) as caught:
        api.get("/crm/v3/objects/contacts", {"limit": 100})

    assert sleeps == []
    assert str(caught.value) == ("hubspot GET /crm/v3/objects/contacts failed (HTTP 401): "
                                 "INVALID_AUTHENTICATION: The token is not valid")


ECHOING_VENDORS = [
    # client factory, path prefix in the sandbox, the credential the sandbox accepts, an endpoint to read
    (hubspot_client, "/hubspot", "pat-sandbox", "/crm/v3/owners"),
    (brevo_client, "/brevo/v3", "xkeysib-sandbox", "/contacts"),
    (calendly_client, "/calendly", "calendly-sandbox", "/users/me"),
    (stripe_client, "/stripe", "sk_test_sandbox", "/v1/events"),
]


@pytest.mark.parametrize(("make_client", "prefix", "credential", "path"), ECHOING_VENDORS,
                         ids=[vendor[1].split("/")[1] for vendor in ECHOING_VENDORS])
def test_a_vendor_echoing_the_credential_never_gets_it_logged_or_raised(
        make_client: Callable[..., RestClient], prefix: str, credential: str, path: str, sandbox_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """The sandbox's echo mode repeats the request's credential in every error message, as a careless vendor
    would: in the 429s and 500s that are retried (and logged) and in the 401 that is raised."""
    admin = f"{sandbox_url}/_sandbox"
    httpx.post(f"{admin}/echo_credentials", json={"on": True}).raise_for_status()
    httpx.post(f"{admin}/faults", json={"rate_429": 0.3, "rate_500": 0.3, "seed": 2}).raise_for_status()
    retry = RetryPolicy(base_delay=0.001, max_delay=0.001)
    with caplog.at_level(logging.INFO, logger="ingestion"), \
            make_client(sandbox_url + prefix, credential, sleep=lambda _: None, retry=retry) as api:
        for _ in range(6):
            api.get(path)
    httpx.post(f"{admin}/faults", json={}).raise_for_status()
    wrong = credential + "-0123456789-wrong"
    with make_client(sandbox_url + prefix, wrong, retry=retry) as api, pytest.raises(ApiError) as caught:
        api.get(path)

    echoed = httpx.get(f"{admin}/echo_credentials").json()[prefix.split("/")[1]]["echoed"]
    assert [r for r in caplog.records if "retrying" in r.getMessage()]
    assert echoed > 1, "the sandbox echoed the credential in the retried errors and in the 401"
    assert caught.value.status == 401 and "credential presented: ***" in str(caught.value)
    assert leaks(credential, caplog.records) == []
    assert leaks(wrong, caplog.records, caught.value) == []


def test_any_configured_secret_a_vendor_echoes_is_masked_not_only_the_token() -> None:
    other = "whsec_configured-for-stripe"
    handler = sequence(httpx.Response(400, json={"message": f"we also know {other}"}))

    with hubspot_client("https://api.example.test", TOKEN, mask=(other,), transport=httpx.MockTransport(handler),
                        sleep=[].append) as api, pytest.raises(ApiError) as caught:
        api.get("/crm/v3/owners")

    assert str(caught.value).endswith("we also know ***")
    assert leaks(other, [], caught.value) == []


def test_a_long_text_error_is_masked_before_it_is_cut_short() -> None:
    """A secret straddling the cut of a long plain-text error body must not leave its head behind."""
    handler = sequence(httpx.Response(400, text="x" * 490 + f" {TOKEN} " + "y" * 100))

    with client(handler, []) as api, pytest.raises(ApiError) as caught:
        api.get("/crm/v3/owners")

    assert TOKEN[:9] not in str(caught.value) and "***" in str(caught.value)


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


def test_listing_every_contact_wins_only_when_most_of_them_changed() -> None:
    # search: 200 a page at 4/s; listing: 100 a page at 10/s, so listing wins above 80 % changed
    assert listing_is_cheaper(modified=100_000, everyone=100_000)
    assert listing_is_cheaper(modified=90_000, everyone=100_000)
    assert not listing_is_cheaper(modified=70_000, everyone=100_000)
    assert not listing_is_cheaper(modified=1_000, everyone=100_000)


def test_sources_build_without_network_and_expose_the_contracted_tables(tmp_path) -> None:
    unreachable = "http://127.0.0.1:9"
    config = Settings.from_env({
        "LIFECYCLE_HOME": str(tmp_path), "HUBSPOT_BASE_URL": unreachable, "BREVO_BASE_URL": unreachable,
        "CALENDLY_BASE_URL": unreachable, "STRIPE_BASE_URL": unreachable,
    }).without_secrets()

    tables = {name: sorted(build_source(name, config).selected_resources) for name in SOURCE_NAMES}

    assert tables == {
        "forms": ["rejected_lines", "submissions"],
        "calendly": ["invitees", "rejected_lines", "scheduled_events", "webhook_events"],
        "stripe": ["checkout_line_items", "checkout_sessions", "events", "rejected_lines", "webhook_events"],
        "crm": ["contacts", "owners"],
        "marketing": ["campaign_events", "contacts", "email_events", "rejected_lines"],
    }
    with pytest.raises(ValueError, match="unknown source"):
        build_source("salesforce", config)
