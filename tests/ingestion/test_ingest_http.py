"""The REST sources' client (dlt's RESTClient with our hooks) and HubSpot's capped search paging: against a
requests transport adapter standing in for the vendor, and against the sandbox's careless echo mode."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import requests
from dlt.sources.helpers.rest_client.paginators import SinglePagePaginator
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from ingestion.pipelines import SOURCE_NAMES, build_source
from ingestion.sources.http import (
    Pace,
    Retries,
    VendorClient,
    brevo_client,
    calendly_client,
    hubspot_client,
    stripe_client,
)
from ingestion.sources.hubspot import listing_is_cheaper, search_modified_since
from settings import Settings
from tests.leaks import leaks
from vendor_http import ApiError

TOKEN = "pat-na1-very-secret"
BASE = "https://api.example.test"
FAST = Retries(attempts=4, backoff=0.001, max_delay=5.0)

Answer = tuple[int, Any, dict[str, str]] | Exception
"""(status, JSON body or text, headers), or an exception the transport raises."""


class FakeVendor(HTTPAdapter):
    """A requests transport adapter answering each request from ``handler``; it keeps what it was sent, when."""

    def __init__(self, handler: Callable[[requests.PreparedRequest], Answer]) -> None:
        super().__init__()
        self.handler = handler
        self.sent: list[requests.PreparedRequest] = []
        self.times: list[float] = []
        self.proxies: list[dict[str, str]] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        self.times.append(time.monotonic())
        self.proxies.append(dict(kwargs.get("proxies") or {}))
        answer = self.handler(request)
        if isinstance(answer, Exception):
            raise answer
        status, body, headers = answer
        response = requests.Response()
        response.status_code, response.request, response.url = status, request, request.url
        response.reason = "Fake"
        response._content = (body if isinstance(body, str) else json.dumps(body)).encode()
        response.headers = CaseInsensitiveDict(
            {"content-type": "text/plain" if isinstance(body, str) else "application/json", **headers})
        response.encoding = "utf-8"
        return response


def sequence(*answers: Answer | Callable[[requests.PreparedRequest], Answer]
             ) -> Callable[[requests.PreparedRequest], Answer]:
    """A handler giving each request the next answer (an answer that is a function is given the request)."""
    remaining = list(answers)

    def handler(request: requests.PreparedRequest) -> Answer:
        answer = remaining.pop(0)
        return answer(request) if callable(answer) else answer

    return handler


def read_timeout(request: requests.PreparedRequest) -> Exception:
    return requests.ReadTimeout("slow", request=request)


def refused(request: requests.PreparedRequest) -> Exception:
    return requests.ConnectionError("refused", request=request)


def fake(make: Callable[..., VendorClient], handler: Callable[[requests.PreparedRequest], Answer],
         retries: Retries = FAST, **kwargs: Any) -> tuple[VendorClient, FakeVendor]:
    vendor = FakeVendor(handler)
    client = make(BASE, TOKEN, retries=retries, **kwargs)
    client.session.mount(BASE, vendor)
    return client, vendor


@pytest.mark.parametrize(("headers", "expected_wait"), [
    ({"Retry-After": "1"}, 1.0),
    ({"X-HubSpot-RateLimit-Interval-Milliseconds": "1000"}, 1.0),
    ({"x-sib-ratelimit-reset": "1"}, 1.0),
    ({"X-RateLimit-Reset": "1"}, 1.0),
    ({"X-HubSpot-RateLimit-Interval-Milliseconds": "1200"}, 2.0),
])
def test_a_429_waits_as_long_as_the_vendor_asks_then_succeeds(headers: dict, expected_wait: float) -> None:
    """dlt's own backoff here would be a millisecond: the wait is the vendor's, in whichever header it uses
    (rounded up to whole seconds, as ``Retry-After`` counts)."""
    client, vendor = fake(hubspot_client, sequence((429, {"message": "slow down"}, headers), (200, {"ok": 1}, {})))

    with client:
        assert client.read("/things") == {"ok": 1}

    waited = vendor.times[1] - vendor.times[0]
    assert expected_wait <= waited < expected_wait + 0.5


def test_server_errors_and_timeouts_are_retried_then_the_answer_is_returned(
        caplog: pytest.LogCaptureFixture) -> None:
    client, vendor = fake(hubspot_client, sequence((502, {"message": "bad gateway"}, {}), read_timeout,
                                                   (200, {"ok": 1}, {})))

    with caplog.at_level(logging.WARNING, logger="ingestion"), client:
        assert client.read("/things") == {"ok": 1}

    assert len(vendor.sent) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "hubspot GET /things: HTTP 502: bad gateway, retrying while attempts remain",
        "hubspot GET /things: ReadTimeout, retrying while attempts remain"]


def test_retries_are_bounded_and_the_error_names_the_endpoint() -> None:
    client, vendor = fake(hubspot_client, lambda request: (500, {"message": "boom"}, {}))

    with client, pytest.raises(ApiError) as caught:
        client.read("/crm/v3/owners", {"limit": 1})

    assert len(vendor.sent) == FAST.attempts
    assert caught.value.status == 500
    assert str(caught.value) == "hubspot GET /crm/v3/owners failed (HTTP 500): boom"


def test_a_vendor_never_answering_is_an_api_error_without_a_status() -> None:
    client, vendor = fake(stripe_client, refused)

    with client, pytest.raises(ApiError) as caught:
        list(client.pages("/v1/events", SinglePagePaginator(), "data"))

    assert len(vendor.sent) == FAST.attempts
    assert caught.value.status is None and str(caught.value) == (
        "stripe GET /v1/events failed (no response): ConnectionError")
    assert isinstance(caught.value.__context__, requests.ConnectionError), "kept for the preflight's line"


def test_a_client_error_is_raised_at_once_with_the_vendor_message() -> None:
    body = {"status": "error", "category": "INVALID_AUTHENTICATION", "message": "The token is not valid",
            "correlationId": "c-1"}
    client, vendor = fake(hubspot_client, sequence((401, body, {})))

    with client, pytest.raises(ApiError) as caught:
        list(client.pages("/crm/v3/objects/contacts", SinglePagePaginator(), "results", {"limit": 100}))

    assert len(vendor.sent) == 1
    assert str(caught.value) == ("hubspot GET /crm/v3/objects/contacts failed (HTTP 401): "
                                 "INVALID_AUTHENTICATION: The token is not valid")
    assert caught.value.__context__ is None, "no requests exception (it holds the request's headers) rides along"


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
        make_client: Callable[..., VendorClient], prefix: str, credential: str, path: str, sandbox_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """The sandbox's echo mode repeats the request's credential in every error message, as a careless vendor
    would: in the 429s and 500s that are retried (and logged) and in the 401 that is raised. Every logger is
    watched, dlt's own included, at DEBUG."""
    admin = f"{sandbox_url}/_sandbox"
    httpx.post(f"{admin}/echo_credentials", json={"on": True}).raise_for_status()
    httpx.post(f"{admin}/faults", json={"rate_429": 0.3, "rate_500": 0.3, "seed": 2}).raise_for_status()
    retries = Retries(attempts=30, backoff=0.001, max_delay=0.001)
    with caplog.at_level(logging.DEBUG), make_client(sandbox_url + prefix, credential, retries=retries) as api:
        for _ in range(6):
            api.read(path)
    httpx.post(f"{admin}/faults", json={}).raise_for_status()
    wrong = credential + "-0123456789-wrong"
    with caplog.at_level(logging.DEBUG), make_client(sandbox_url + prefix, wrong, retries=retries) as api, \
            pytest.raises(ApiError) as caught:
        api.read(path)

    echoed = httpx.get(f"{admin}/echo_credentials").json()[prefix.split("/")[1]]["echoed"]
    assert [r for r in caplog.records if "retrying" in r.getMessage()]
    assert echoed > 1, "the sandbox echoed the credential in the retried errors and in the 401"
    assert caught.value.status == 401 and "credential presented: ***" in str(caught.value)
    assert leaks(credential, caplog.records) == []
    assert leaks(wrong, caplog.records, caught.value) == []


def test_a_429s_echo_is_masked_in_the_log_while_its_retry_after_is_honoured(
        sandbox_url: str, caplog: pytest.LogCaptureFixture) -> None:
    admin = f"{sandbox_url}/_sandbox"
    httpx.post(f"{admin}/echo_credentials", json={"on": True}).raise_for_status()
    httpx.post(f"{admin}/faults", json={"service": "brevo", "rate_429": 0.5, "seed": 1}).raise_for_status()

    with caplog.at_level(logging.WARNING, logger="ingestion"), \
            brevo_client(sandbox_url + "/brevo/v3", "xkeysib-sandbox", retries=FAST) as api:
        started = time.monotonic()
        api.read("/contacts")
        api.read("/contacts")
        waited = time.monotonic() - started

    limited = [r.getMessage() for r in caplog.records if "HTTP 429" in r.getMessage()]
    assert limited and all("credential presented: ***" in message for message in limited)
    assert waited >= len(limited) * 1.0, "each 429 waited the sandbox's Retry-After of 1 s"
    assert leaks("xkeysib-sandbox", caplog.records) == []


def test_any_configured_secret_a_vendor_echoes_is_masked_not_only_the_token() -> None:
    other = "whsec_configured-for-stripe"
    client, _ = fake(hubspot_client, sequence((400, {"message": f"we also know {other}"}, {})), mask=(other,))

    with client, pytest.raises(ApiError) as caught:
        client.read("/crm/v3/owners")

    assert str(caught.value).endswith("we also know ***")
    assert leaks(other, [], caught.value) == []


def test_a_long_text_error_is_masked_before_it_is_cut_short() -> None:
    """A secret straddling the cut of a long plain-text error body must not leave its head behind."""
    client, _ = fake(hubspot_client, sequence((400, "x" * 490 + f" {TOKEN} " + "y" * 100, {})))

    with client, pytest.raises(ApiError) as caught:
        client.read("/crm/v3/owners")

    assert TOKEN[:9] not in str(caught.value) and "***" in str(caught.value)


@pytest.mark.parametrize(("make_client", "header", "value"), [
    (hubspot_client, "Authorization", f"Bearer {TOKEN}"),
    (brevo_client, "api-key", TOKEN),
    (calendly_client, "Authorization", f"Bearer {TOKEN}"),
    (stripe_client, "Authorization", f"Bearer {TOKEN}"),
])
def test_requests_carry_the_vendor_auth_header(make_client: Callable[..., VendorClient], header: str,
                                               value: str) -> None:
    client, vendor = fake(make_client, lambda request: (200, {}, {}))

    with client:
        client.read("/x")

    assert vendor.sent[0].headers[header] == value


def test_an_empty_listing_gives_no_page() -> None:
    client, _ = fake(calendly_client, sequence((200, {"collection": []}, {}), (200, {"collection": [{"a": 1}]}, {})))
    assert list(client.pages("/scheduled_events", SinglePagePaginator(), "collection")) == []
    assert list(client.pages("/scheduled_events", SinglePagePaginator(), "collection")) == [[{"a": 1}]]


def test_the_proxy_is_read_from_the_environment_once_when_the_client_is_made(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """requests would scan the whole environment on every request; the client reads it when it is made, so a
    proxy is honoured and a later change of the environment is not looked for."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client, vendor = fake(hubspot_client, sequence((200, {}, {}), (200, {}, {})))
    client.read("/crm/v3/owners")
    monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere.example.test:3128")
    client.read("/crm/v3/owners")
    assert [proxies.get("https") for proxies in vendor.proxies] == ["http://proxy.example.test:3128"] * 2


def test_a_paced_endpoint_is_never_called_faster_than_its_pace_and_nothing_waits_after_it() -> None:
    client, vendor = fake(hubspot_client, lambda request: (200, {"results": []}, {}))

    with client:
        pace = Pace(per_second=5)
        for _ in range(4):
            client.read("/search", json={}, pace=pace)
        client.read("/other")

    gaps = [later - earlier for earlier, later in zip(vendor.times, vendor.times[1:], strict=False)]
    assert all(gap >= 0.19 for gap in gaps[:3]), gaps  # 0.2 s, timed where the pace waits, a moment before
    assert gaps[3] < 0.1, "a call to another endpoint does not wait for the paced one"


class FakeSearch:
    """HubSpot's search semantics that matter here: GTE on lastmodifieddate, ascending sort, numeric
    ``after`` offsets, and a 400 for any page past ``cap`` results of one query."""

    def __init__(self, modified_ms: list[int], cap: int) -> None:
        self.contacts = [{"id": str(i + 1), "properties": {"lastmodifieddate": str(ms)}}
                         for i, ms in enumerate(modified_ms)]
        self.cap = cap
        self.bodies: list[dict] = []

    def __call__(self, request: requests.PreparedRequest) -> Answer:
        body = json.loads(request.body)
        self.bodies.append(body)
        (condition,) = body["filterGroups"][0]["filters"]
        assert condition["propertyName"] == "lastmodifieddate" and condition["operator"] == "GTE"
        assert body["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
        offset, limit = int(body.get("after", "0")), body["limit"]
        if offset >= self.cap:
            return 400, {"status": "error", "category": "VALIDATION_ERROR",
                         "message": "past the 10,000 results cap", "correlationId": "x"}, {}
        matches = sorted((c for c in self.contacts
                          if int(c["properties"]["lastmodifieddate"]) >= int(condition["value"])),
                         key=lambda c: (int(c["properties"]["lastmodifieddate"]), int(c["id"])))
        result: dict = {"total": len(matches), "results": matches[offset:offset + limit]}
        if offset + limit < len(matches):
            result["paging"] = {"next": {"after": str(offset + limit)}}
        return 200, result, {}


def test_search_restarts_from_the_last_modified_date_when_the_cap_is_reached() -> None:
    # ids 1..9; ids 4 and 5 share the instant where the first query hits its cap of 4 results
    search = FakeSearch([1000, 1001, 1002, 1003, 1003, 1004, 1005, 1006, 1007], cap=4)
    client, _ = fake(hubspot_client, search)

    with client:
        pages = list(search_modified_since(client, ["email"], 1000, page_size=2, cap=4))

    ids = [contact["id"] for page in pages for contact in page]
    assert ids == [str(i) for i in range(1, 10)]
    starts = [body["filterGroups"][0]["filters"][0]["value"] for body in search.bodies]
    assert starts[0] == "1000"
    assert "1003" in starts and "1005" in starts
    assert all(int(body.get("after", "0")) < 4 for body in search.bodies)


def test_search_without_cap_pressure_is_one_query_paged_with_after() -> None:
    search = FakeSearch([5, 6, 7], cap=10_000)
    client, _ = fake(hubspot_client, search)

    with client:
        ids = [c["id"] for page in search_modified_since(client, ["email"], 6, page_size=1) for c in page]

    assert ids == ["2", "3"]
    assert [body.get("after") for body in search.bodies] == [None, "1"]


def test_search_refuses_to_loop_when_a_whole_capped_query_shares_one_instant() -> None:
    client, _ = fake(hubspot_client, FakeSearch([2000] * 5, cap=4))

    with client, pytest.raises(RuntimeError, match="cannot advance"):
        list(search_modified_since(client, ["email"], 2000, page_size=2, cap=4))


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
