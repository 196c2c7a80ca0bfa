"""Contract tests of the emulated Calendly (as https://developer.calendly.com documents it), over real HTTP.

Webhooks go to a small recording receiver subscribed through the emulated API; signatures are checked
with hmac/hashlib here, independently of the emulator's own code.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.servers import serve

TOKEN = "calendly-sandbox"
DEFAULT_KEY = "calendly-signing-sandbox"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Receiver:
    """Records every webhook POST (raw body and headers); answers 500 while ``failures`` lasts, and
    takes ``delay`` seconds to answer when set."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.attempts = 0
        self.failures = 0
        self.delay = 0.0

    def reset(self) -> None:
        self.received, self.attempts, self.failures, self.delay = [], 0, 0, 0.0

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        self.attempts += 1
        await asyncio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            return Response(status_code=500)
        self.received.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
        return Response(status_code=200)

    def events(self, path: str = "/hook") -> list[dict]:
        return [json.loads(r["body"]) for r in self.received if r["path"] == path]


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[tuple[str, Receiver]]:
    receiver = Receiver()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/healthz", healthz), Route("/{name}", receiver.hook, methods=["POST"])])
    with serve(app) as url:
        yield url, receiver


@pytest.fixture()
def receiver(receiver_server: tuple[str, Receiver]) -> tuple[str, Receiver]:
    receiver_server[1].reset()
    return receiver_server


@pytest.fixture()
def api(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url + "/calendly", headers=AUTH, timeout=30) as client:
        yield client


def me(api: httpx.Client) -> dict:
    return api.get("/users/me").json()["resource"]


def book(sandbox_url: str, body: dict | list) -> dict | list:
    response = httpx.post(sandbox_url + "/_sandbox/calendly/bookings", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def cancel(sandbox_url: str, body: dict) -> httpx.Response:
    return httpx.post(sandbox_url + "/_sandbox/calendly/cancellations", json=body, timeout=30)


def booking(n: int = 0, **extra: str) -> dict:
    return {"email": f"lead{n}@example.com", "name": f"Lead Number{n}", "event_name": "Demo",
            "start_time": f"2025-03-{1 + n // 24:02d}T{n % 24:02d}:00:00Z",
            "end_time": f"2025-03-{1 + n // 24:02d}T{n % 24:02d}:30:00Z",
            "created_at": "2025-02-20T10:00:00Z", **extra}


def subscribe(api: httpx.Client, url: str, **extra: object) -> httpx.Response:
    user = me(api)
    return api.post("/webhook_subscriptions", json={
        "url": url, "events": ["invitee.created", "invitee.canceled"],
        "organization": user["current_organization"], "scope": "organization", **extra})


def verify(delivery: dict, key: str) -> bool:
    """Calendly's scheme, written out independently: v1 = HMAC-SHA256(key, "t." + raw body)."""
    parts = dict(part.split("=", 1) for part in delivery["headers"]["calendly-webhook-signature"].split(","))
    signed = parts["t"].encode() + b"." + delivery["body"]
    expected = hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(int(parts["t"]) - time.time()) < 180


def test_missing_or_wrong_token_is_401(sandbox_url: str) -> None:
    missing = httpx.get(sandbox_url + "/calendly/users/me")
    wrong = httpx.get(sandbox_url + "/calendly/users/me", headers={"Authorization": "Bearer nope"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json() == {"title": "Unauthenticated", "message": "The access token is invalid"}


def test_users_me_uris_are_absolute_on_the_callers_base_url(api: httpx.Client, sandbox_url: str) -> None:
    user = me(api)
    assert user["uri"].startswith(sandbox_url + "/calendly/users/")
    assert user["current_organization"].startswith(sandbox_url + "/calendly/organizations/")
    assert user["email"] and user["name"]


def test_scheduled_events_needs_exactly_one_of_user_organization_group(api: httpx.Client) -> None:
    user = me(api)
    for params in ({}, {"user": user["uri"], "organization": user["current_organization"]}):
        response = api.get("/scheduled_events", params=params)
        assert response.status_code == 400
        body = response.json()
        assert body["title"] == "Invalid Argument"
        assert body["message"] == "The supplied parameters are invalid."
        assert body["details"] and "parameter" in body["details"][0]
    for params in ({"user": user["uri"]}, {"organization": user["current_organization"]}):
        assert api.get("/scheduled_events", params=params).status_code == 200


def test_unknown_paths_and_methods_answer_calendlys_json_404(api: httpx.Client) -> None:
    for method, path in (("GET", "/no_such_thing"), ("GET", "/"), ("POST", "/scheduled_events"),
                         ("DELETE", "/users/me"), ("PATCH", "/webhook_subscriptions")):
        unknown = api.request(method, path)
        assert unknown.status_code == 404, (method, path)
        assert unknown.headers["content-type"] == "application/json"
        assert unknown.json() == {"title": "Resource Not Found",
                                  "message": "The server could not find the requested resource."}


def test_count_above_100_is_rejected(api: httpx.Client) -> None:
    org = me(api)["current_organization"]
    response = api.get("/scheduled_events", params={"organization": org, "count": 101})
    assert response.status_code == 400
    assert response.json()["details"][0]["parameter"] == "count"
    assert api.get("/scheduled_events", params={"organization": org, "count": 100}).status_code == 200


def test_page_tokens_cover_every_event_exactly_once(api: httpx.Client, sandbox_url: str) -> None:
    booked = book(sandbox_url, [booking(n) for n in range(45)])
    org = me(api)["current_organization"]
    seen: list[dict] = []
    params: dict = {"organization": org, "count": 20}
    pages = 0
    while True:
        body = api.get("/scheduled_events", params=params).json()
        pages += 1
        seen.extend(body["collection"])
        token = body["pagination"]["next_page_token"]
        if token is None:
            assert body["pagination"]["next_page"] is None
            break
        assert body["pagination"]["next_page"].startswith(sandbox_url + "/calendly/scheduled_events?")
        params["page_token"] = token
    assert pages == 3
    uris = [event["uri"] for event in seen]
    assert sorted(uris) == sorted(b["event_uri"] for b in booked)
    assert len(set(uris)) == 45
    assert [e["start_time"] for e in seen] == sorted(e["start_time"] for e in seen)

    # next_page is a working absolute URL; previous_page_token leads back to the first page.
    first = api.get("/scheduled_events", params={"organization": org, "count": 20}).json()
    second = httpx.get(first["pagination"]["next_page"], headers=AUTH).json()
    assert second["collection"][0]["uri"] == seen[20]["uri"]
    previous = second["pagination"]["previous_page_token"]
    back = api.get("/scheduled_events",
                   params={"organization": org, "count": 20, "page_token": previous}).json()
    assert [e["uri"] for e in back["collection"]] == [e["uri"] for e in first["collection"]]
    assert first["pagination"]["previous_page_token"] is None

    descending = api.get("/scheduled_events", params={"organization": org, "count": 5,
                                                      "sort": "start_time:desc"}).json()
    assert [e["uri"] for e in descending["collection"]] == [e["uri"] for e in seen[::-1][:5]]


def test_filters_and_event_shape(api: httpx.Client, sandbox_url: str) -> None:
    first, second, _ = book(sandbox_url, [booking(0), booking(1), booking(2)])
    assert cancel(sandbox_url, {"invitee_uri": second["invitee_uri"],
                                "canceled_at": "2025-02-21T00:00:00Z"}).status_code == 200
    org = me(api)["current_organization"]

    def uris(**params: str) -> list[str]:
        body = api.get("/scheduled_events", params={"organization": org, **params}).json()
        return [e["uri"] for e in body["collection"]]

    assert uris(invitee_email="LEAD0@example.com") == [first["event_uri"]]
    assert uris(status="canceled") == [second["event_uri"]]
    assert len(uris(status="active")) == 2
    assert uris(min_start_time="2025-03-01T01:00:00Z", max_start_time="2025-03-01T02:00:00Z") == [
        second["event_uri"]]
    assert api.get("/scheduled_events", params={"organization": org, "status": "gone"}).status_code == 400

    event = api.get(first["event_uri"]).json()["resource"]
    assert event["uri"] == first["event_uri"]
    assert event["name"] == "Demo" and event["status"] == "active"
    assert event["start_time"] == "2025-03-01T00:00:00.000000Z"
    assert event["invitees_counter"] == {"total": 1, "active": 1, "limit": 1}
    assert event["event_memberships"][0]["user"] == me(api)["uri"]
    for key in ("event_type", "location", "created_at", "updated_at", "event_guests"):
        assert key in event
    for path in ("/scheduled_events/00000000-0000-0000-0000-000000000000", "/no_such_thing"):
        missing = api.get(path)
        assert missing.status_code == 404 and missing.json()["title"] == "Resource Not Found"


def test_invitees_list_and_get(api: httpx.Client, sandbox_url: str) -> None:
    result = book(sandbox_url, booking(3, utm_source="google", utm_medium="cpc", utm_campaign="spring"))
    body = api.get(result["event_uri"] + "/invitees").json()
    assert body["pagination"]["count"] == 1 and body["pagination"]["next_page_token"] is None
    invitee = body["collection"][0]
    assert invitee["uri"] == result["invitee_uri"]
    assert invitee["event"] == result["event_uri"]
    assert invitee["email"] == "lead3@example.com"
    assert (invitee["first_name"], invitee["last_name"]) == ("Lead", "Number3")
    assert invitee["status"] == "active" and invitee["rescheduled"] is False
    assert invitee["old_invitee"] is None and invitee["new_invitee"] is None
    assert invitee["cancellation"] is None
    assert invitee["tracking"] == {"utm_campaign": "spring", "utm_source": "google", "utm_medium": "cpc",
                                   "utm_content": None, "utm_term": None, "salesforce_uuid": None}
    assert invitee["created_at"] == "2025-02-20T10:00:00.000000Z"
    assert api.get(result["invitee_uri"]).json()["resource"] == invitee
    canceled = api.get(result["event_uri"] + "/invitees", params={"status": "canceled"}).json()
    assert canceled["collection"] == []
    assert api.get(result["event_uri"] + "/invitees", params={"count": 101}).status_code == 400
    assert api.get(result["event_uri"] + "/invitees/nope").status_code == 404


def test_webhook_subscriptions_create_list_conflict_delete(api: httpx.Client, sandbox_url: str) -> None:
    user = me(api)
    created = subscribe(api, "https://hooks.example/calendly", signing_key="secret-key")
    assert created.status_code == 201
    resource = created.json()["resource"]
    assert resource["callback_url"] == "https://hooks.example/calendly"
    assert resource["state"] == "active" and resource["scope"] == "organization"
    assert resource["events"] == ["invitee.created", "invitee.canceled"]
    assert resource["organization"] == user["current_organization"]
    assert resource["creator"] == user["uri"] and resource["retry_started_at"] is None
    assert "signing_key" not in resource and "secret-key" not in created.text

    again = subscribe(api, "https://hooks.example/calendly")
    assert again.status_code == 409 and again.json()["title"] == "Already Exists"
    assert subscribe(api, "https://hooks.example/other", events=["invitee.exploded"]).status_code == 400
    assert subscribe(api, "not a url").status_code == 400

    assert api.get("/webhook_subscriptions", params={"organization": user["current_organization"]}
                   ).status_code == 400
    listed = api.get("/webhook_subscriptions", params={"organization": user["current_organization"],
                                                       "scope": "organization"}).json()
    assert [s["uri"] for s in listed["collection"]] == [resource["uri"]]
    assert "pagination" in listed
    user_scope = api.get("/webhook_subscriptions", params={"organization": user["current_organization"],
                                                           "scope": "user", "user": user["uri"]}).json()
    assert user_scope["collection"] == []

    assert api.delete(resource["uri"]).status_code == 204
    assert api.delete(resource["uri"]).status_code == 404
    listed = api.get("/webhook_subscriptions", params={"organization": user["current_organization"],
                                                       "scope": "organization"}).json()
    assert listed["collection"] == []


def test_invitee_created_is_delivered_signed(api: httpx.Client, sandbox_url: str,
                                             receiver: tuple[str, Receiver]) -> None:
    url, sink = receiver
    assert subscribe(api, url + "/hook", signing_key="my-own-key").status_code == 201
    assert subscribe(api, url + "/default").status_code == 201
    result = book(sandbox_url, booking(4, utm_campaign="spring"))

    own = [r for r in sink.received if r["path"] == "/hook"]
    default = [r for r in sink.received if r["path"] == "/default"]
    assert len(own) == 1 and len(default) == 1
    assert verify(own[0], "my-own-key") and not verify(own[0], DEFAULT_KEY)
    assert verify(default[0], DEFAULT_KEY)
    tampered = {**own[0], "body": own[0]["body"].replace(b"spring", b"summer")}
    assert not verify(tampered, "my-own-key")

    envelope = json.loads(own[0]["body"])
    assert envelope["event"] == "invitee.created"
    assert envelope["created_by"] == me(api)["uri"]
    assert envelope["created_at"] == "2025-02-20T10:00:00.000000Z"
    payload = envelope["payload"]
    assert payload["uri"] == result["invitee_uri"] and payload["event"] == result["event_uri"]
    assert payload["scheduled_event"]["uri"] == result["event_uri"]
    assert payload["scheduled_event"]["status"] == "active"
    assert payload["tracking"]["utm_campaign"] == "spring"


@pytest.mark.parametrize("reverse_order", [False, True])
def test_reschedule_fires_both_webhooks_with_links(
        api: httpx.Client, sandbox_url: str, receiver: tuple[str, Receiver], reverse_order: bool) -> None:
    url, sink = receiver
    subscribe(api, url + "/hook")
    old = book(sandbox_url, booking(5, utm_source="linkedin"))
    response = cancel(sandbox_url, {"invitee_uri": old["invitee_uri"], "canceled_at": "2025-02-22T09:00:00Z",
                                    "reschedule_to": {"start_time": "2025-03-10T15:00:00Z",
                                                      "end_time": "2025-03-10T15:30:00Z"},
                                    "reverse_order": reverse_order})
    assert response.status_code == 200, response.text
    new = response.json()
    assert new["new_invitee_uri"] and new["new_event_uri"] and new["new_event_uri"] != old["event_uri"]

    events = sink.events()
    assert [e["event"] for e in events[1:]] == (
        ["invitee.created", "invitee.canceled"] if reverse_order else ["invitee.canceled", "invitee.created"])
    canceled = next(e["payload"] for e in events[1:] if e["event"] == "invitee.canceled")
    created = next(e["payload"] for e in events[1:] if e["event"] == "invitee.created")
    assert canceled["uri"] == old["invitee_uri"]
    assert canceled["status"] == "canceled" and canceled["rescheduled"] is True
    assert canceled["new_invitee"] == new["new_invitee_uri"] and canceled["old_invitee"] is None
    assert canceled["cancellation"]["created_at"] == "2025-02-22T09:00:00.000000Z"
    assert canceled["scheduled_event"]["status"] == "canceled"
    assert created["uri"] == new["new_invitee_uri"] and created["event"] == new["new_event_uri"]
    assert created["status"] == "active" and created["rescheduled"] is False
    assert created["old_invitee"] == old["invitee_uri"] and created["new_invitee"] is None
    assert created["email"] == canceled["email"] and created["tracking"]["utm_source"] == "linkedin"
    assert created["created_at"] == "2025-02-22T09:00:00.000000Z"
    assert created["scheduled_event"]["start_time"] == "2025-03-10T15:00:00.000000Z"

    assert api.get(old["event_uri"]).json()["resource"]["status"] == "canceled"
    assert api.get(new["new_event_uri"]).json()["resource"]["status"] == "active"
    assert api.get(old["invitee_uri"]).json()["resource"]["new_invitee"] == new["new_invitee_uri"]


def test_plain_cancellation_and_updated_at(api: httpx.Client, sandbox_url: str,
                                           receiver: tuple[str, Receiver]) -> None:
    url, sink = receiver
    subscribe(api, url + "/hook")
    result = book(sandbox_url, booking(6))
    before = api.get(result["event_uri"]).json()["resource"]
    response = cancel(sandbox_url, {"invitee_uri": result["invitee_uri"],
                                    "canceled_at": "2025-02-25T08:00:00Z", "reason": "conflict"})
    assert response.json() == {"new_invitee_uri": None, "new_event_uri": None}

    envelope = sink.events()[-1]
    assert envelope["event"] == "invitee.canceled"
    payload = envelope["payload"]
    assert payload["rescheduled"] is False and payload["new_invitee"] is None
    assert payload["status"] == "canceled"
    assert payload["cancellation"] == {"canceled_by": "Lead Number6", "reason": "conflict",
                                       "canceler_type": "invitee",
                                       "created_at": "2025-02-25T08:00:00.000000Z"}
    after = api.get(result["event_uri"]).json()["resource"]
    assert after["status"] == "canceled"
    assert after["updated_at"] == "2025-02-25T08:00:00.000000Z" > before["updated_at"]
    assert after["invitees_counter"]["active"] == 0

    assert cancel(sandbox_url, {"invitee_uri": result["invitee_uri"],
                                "canceled_at": "2025-02-26T08:00:00Z"}).status_code == 400
    unknown = result["invitee_uri"].rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    later = "2025-02-26T08:00:00Z"
    assert cancel(sandbox_url, {"invitee_uri": unknown, "canceled_at": later}).status_code == 404
    bad_time = cancel(sandbox_url, {"invitee_uri": result["invitee_uri"], "canceled_at": "soon"})
    assert bad_time.status_code == 400


def test_failed_delivery_is_retried_then_the_subscription_disabled(
        api: httpx.Client, sandbox_url: str, receiver: tuple[str, Receiver]) -> None:
    url, sink = receiver
    resource = subscribe(api, url + "/hook").json()["resource"]
    sink.failures = 3
    book(sandbox_url, booking(7))
    assert sink.received == []
    assert api.get(resource["uri"]).json()["resource"]["retry_started_at"] is not None
    for _ in range(10):
        deliveries = httpx.post(sandbox_url + "/_sandbox/webhooks/flush").json()["deliveries"]
        if deliveries[0]["status"] == "delivered":
            break
    assert deliveries[0]["status"] == "delivered" and deliveries[0]["attempts"] == 4
    assert sink.attempts == 4 and len(sink.received) == 1
    assert verify(sink.received[0], DEFAULT_KEY)
    assert json.loads(sink.received[0]["body"])["event"] == "invitee.created"
    assert api.get(resource["uri"]).json()["resource"]["retry_started_at"] is None

    # A receiver that never recovers: once the sender gives up, the subscription is disabled.
    sink.failures = 1000
    book(sandbox_url, booking(8))
    for _ in range(20):
        deliveries = httpx.post(sandbox_url + "/_sandbox/webhooks/flush").json()["deliveries"]
        if deliveries[-1]["status"] == "failed":
            break
    assert deliveries[-1]["status"] == "failed"
    assert api.get(resource["uri"]).json()["resource"]["state"] == "disabled"
    attempts = sink.attempts
    book(sandbox_url, booking(9))
    assert sink.attempts == attempts


def test_a_slow_receiver_gets_each_webhook_once(api: httpx.Client, sandbox_url: str,
                                                receiver: tuple[str, Receiver]) -> None:
    """The sandbox's background retry loop must leave a delivery alone while its attempt is in flight."""
    url, sink = receiver
    subscribe(api, url + "/hook")
    sink.delay = 0.8
    book(sandbox_url, booking(11))
    sink.delay = 0.0
    assert sink.attempts == 1 and len(sink.received) == 1


def test_rate_limit_429_with_headers(api: httpx.Client, sandbox_url: str) -> None:
    ok = api.get("/users/me")
    assert ok.headers["X-RateLimit-Limit"] == "500"
    assert int(ok.headers["X-RateLimit-Remaining"]) < 500
    assert "X-RateLimit-Reset" in ok.headers
    limits = httpx.post(sandbox_url + "/_sandbox/limits", json={"service": "calendly", "per_10s": 2})
    limits.raise_for_status()
    responses = [api.get("/users/me") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    limited = responses[-1]
    assert limited.json()["title"] == "Too Many Requests"
    assert limited.headers["X-RateLimit-Limit"] == "2"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert 0 < int(limited.headers["X-RateLimit-Reset"]) <= 10
    assert 0 < int(limited.headers["Retry-After"]) <= 10


def test_calls_are_counted_by_path_template(api: httpx.Client, sandbox_url: str) -> None:
    result = book(sandbox_url, booking(10))
    api.get(result["event_uri"])
    api.get(result["event_uri"] + "/invitees")
    calls = httpx.get(sandbox_url + "/_sandbox/calls").json()
    assert calls["calendly GET /scheduled_events/{uuid}"] == 1
    assert calls["calendly GET /scheduled_events/{uuid}/invitees"] == 1
