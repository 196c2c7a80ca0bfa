"""The emulated Brevo's webhooks: ``/v3/webhooks`` as Brevo validates and answers it, and campaign events
recorded through the admin API delivered to marketing webhooks in Brevo's payload shape (with the bearer
token, batched or not), never in the transactional event log."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.servers import serve

KEY = {"api-key": "xkeysib-sandbox"}
MARKETING_EVENTS = ["opened", "click", "hardBounce", "unsubscribed", "spam"]


@pytest.fixture()
def brevo(sandbox_url: str) -> Iterator[httpx.Client]:
    httpx.post(f"{sandbox_url}/_sandbox/limits", json={"off": True}).raise_for_status()
    with httpx.Client(base_url=sandbox_url + "/brevo/v3", headers=KEY) as client:
        yield client


@pytest.fixture()
def admin(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url + "/_sandbox") as client:
        yield client


@pytest.fixture()
def receiver() -> Iterator[tuple[str, list[tuple[dict, object]]]]:
    """A notify URL that records each delivery's headers and JSON body."""
    received: list[tuple[dict, object]] = []

    async def hook(request: Request) -> JSONResponse:
        received.append((dict(request.headers), json.loads(await request.body())))
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"]),
                            Route("/healthz", lambda request: JSONResponse({"ok": True}))])
    with serve(app) as url:
        yield f"{url}/hook", received


def test_create_list_get_and_delete(brevo: httpx.Client) -> None:
    created = brevo.post("/webhooks", json={
        "url": "https://hooks.example.com/brevo", "type": "marketing", "events": MARKETING_EVENTS,
        "batched": True, "auth": {"type": "bearer", "token": "very-secret-token"}, "description": "ours"})
    assert created.status_code == 201
    webhook_id = created.json()["id"]
    transactional = brevo.post("/webhooks", json={"url": "https://hooks.example.com/t", "events": ["delivered"]})
    assert transactional.status_code == 201

    listed = brevo.get("/webhooks", params={"type": "marketing"})
    assert listed.status_code == 200
    [webhook] = listed.json()["webhooks"]
    assert (webhook["id"], webhook["url"], webhook["type"], webhook["events"], webhook["batched"]) == (
        webhook_id, "https://hooks.example.com/brevo", "marketing", MARKETING_EVENTS, True)
    assert webhook["auth"] == {"type": "bearer"} and "very-secret-token" not in listed.text
    assert [w["id"] for w in brevo.get("/webhooks").json()["webhooks"]] == [transactional.json()["id"]]
    assert brevo.get(f"/webhooks/{webhook_id}").json()["url"] == "https://hooks.example.com/brevo"

    assert brevo.delete(f"/webhooks/{webhook_id}").status_code == 204
    assert brevo.get("/webhooks", params={"type": "marketing"}).json() == {"webhooks": []}
    missing = brevo.get(f"/webhooks/{webhook_id}")
    assert missing.status_code == 404 and missing.json()["code"] == "document_not_found"
    assert brevo.delete(f"/webhooks/{webhook_id}").status_code == 404


@pytest.mark.parametrize(("body", "code", "names"), [
    ({"type": "marketing", "events": ["opened"]}, "invalid_parameter", "url"),
    ({"url": "not a url", "type": "marketing", "events": ["opened"]}, "invalid_parameter", "url"),
    ({"url": "https://h.example/x", "type": "marketing"}, "missing_parameter", "events"),
    ({"url": "https://h.example/x", "type": "marketing", "events": []}, "missing_parameter", "events"),
    # Marketing webhooks subscribe to click and hardBounce; the names Brevo *sends* are not accepted here.
    ({"url": "https://h.example/x", "type": "marketing", "events": ["clicked"]}, "invalid_parameter", "clicked"),
    ({"url": "https://h.example/x", "type": "marketing", "events": ["hard_bounce"]}, "invalid_parameter",
     "hard_bounce"),
    ({"url": "https://h.example/x", "type": "marketing", "events": ["request"]}, "invalid_parameter", "request"),
    ({"url": "https://h.example/x", "type": "newsletter", "events": ["opened"]}, "invalid_parameter", "type"),
    ({"url": "https://h.example/x", "type": "marketing", "events": ["opened"], "auth": {"type": "bearer"}},
     "invalid_parameter", "auth"),
    ({"url": "https://h.example/x", "type": "marketing", "events": ["opened"], "batched": "yes"},
     "invalid_parameter", "batched"),
])
def test_invalid_webhooks_are_400_in_brevo_error_shape(brevo: httpx.Client, body: dict, code: str,
                                                        names: str) -> None:
    response = brevo.post("/webhooks", json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message"} and response.json()["code"] == code
    assert names in response.json()["message"]
    assert brevo.get("/webhooks", params={"type": "marketing"}).json() == {"webhooks": []}


def test_webhooks_need_the_api_key(sandbox_url: str) -> None:
    response = httpx.get(f"{sandbox_url}/brevo/v3/webhooks", headers={"api-key": "xkeysib-wrong"})
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"


def campaign_events() -> list[dict]:
    common = {"email": "Ada@Example.com", "campaign_id": 12, "campaign_name": "August news",
              "campaign_sent_at": "2026-08-01T15:00:00Z"}
    return [
        {**common, "event": "opened", "at": "2026-08-02T08:00:00Z"},
        {**common, "event": "clicked", "at": "2026-08-02T08:01:00Z", "link": "https://x.example/a"},
        {**common, "event": "hard_bounce", "at": "2026-08-03T08:00:00Z"},
        {**common, "event": "unsubscribed", "at": "2026-08-04T08:00:00Z"},
        {**common, "event": "spam", "at": "2026-08-05T08:00:00Z"},
    ]


def test_campaign_events_reach_marketing_webhooks_in_brevo_shape_with_the_bearer_token(
        brevo: httpx.Client, admin: httpx.Client, receiver) -> None:
    url, received = receiver
    webhook_id = brevo.post("/webhooks", json={
        "url": url, "type": "marketing", "events": MARKETING_EVENTS,
        "auth": {"type": "bearer", "token": "tok-123"}}).json()["id"]
    # Subscribed to opens only: gets nothing else.
    brevo.post("/webhooks", json={"url": url + "?opens", "type": "marketing", "events": ["opened"]})
    # Transactional webhooks do not get campaign events.
    brevo.post("/webhooks", json={"url": url + "?transactional", "events": ["opened", "click"]})

    assert admin.post("/brevo/events", json=campaign_events()).json() == {"recorded": 5}

    ours = [(headers, body) for headers, body in received if headers.get("authorization") == "Bearer tok-123"]
    assert [body["event"] for _, body in ours] == ["opened", "click", "hard_bounce", "unsubscribe", "spam"]
    assert all(isinstance(body, dict) for _, body in ours)
    opened = ours[0][1]
    assert opened == {
        "id": webhook_id, "camp_id": 12, "email": "ada@example.com", "campaign name": "August news",
        "date_sent": "2026-08-01 15:00:00", "date_event": "2026-08-02 08:00:00", "event": "opened",
        "tag": "", "segment_ids": [], "ts_sent": 1785596400, "ts_event": 1785657600, "ts": 1785657600}
    click, bounce, unsubscribe, spam = (body for _, body in ours[1:])
    assert click["URL"] == "https://x.example/a" and click["ts_event"] == 1785657660
    assert "sending_ip" in bounce and unsubscribe["list_id"] == [] and spam["reason"]
    others = [body for headers, body in received if "authorization" not in headers]
    assert [body["event"] for body in others] == ["opened"]


def test_a_batched_webhook_gets_one_array_per_call(brevo: httpx.Client, admin: httpx.Client, receiver) -> None:
    url, received = receiver
    brevo.post("/webhooks", json={"url": url, "type": "marketing", "events": ["opened", "click"], "batched": True,
                                  "auth": {"type": "bearer", "token": "tok-456"}})
    admin.post("/brevo/events", json=campaign_events()).raise_for_status()
    admin.post("/brevo/events", json=campaign_events()[0]).raise_for_status()

    [(headers, first), (_, second)] = received
    assert headers["authorization"] == "Bearer tok-456" and headers["content-type"] == "application/json"
    assert [event["event"] for event in first] == ["opened", "click"]
    assert [event["event"] for event in second] == ["opened"]


def test_campaign_events_stay_out_of_the_transactional_log_and_the_statistics_keep_them(
        brevo: httpx.Client, admin: httpx.Client) -> None:
    brevo.post("/contacts", json={"email": "ada@example.com"}).raise_for_status()
    admin.post("/brevo/events", json=campaign_events()).raise_for_status()
    admin.post("/brevo/events", json={"email": "bo@example.com", "event": "opened",
                                      "at": "2026-08-02T08:00:00Z"}).raise_for_status()

    log = brevo.get("/smtp/statistics/events", params={"limit": 100}).json()["events"]
    assert [(e["email"], e["event"]) for e in log] == [("bo@example.com", "opened")]
    contact = brevo.get("/contacts/ada@example.com").json()
    statistics = contact["statistics"]
    assert [o["campaignId"] for o in statistics["opened"]] == [12]
    assert [c["campaignId"] for c in statistics["complaints"]] == [12]
    assert [u["campaignId"] for u in statistics["unsubscriptions"]["userUnsubscription"]] == [12]
    assert contact["emailBlacklisted"] is True


def test_a_failed_delivery_is_retried(brevo: httpx.Client, admin: httpx.Client, sandbox_url: str) -> None:
    brevo.post("/webhooks", json={"url": "http://127.0.0.1:9/nowhere", "type": "marketing",
                                  "events": ["opened"]}).raise_for_status()
    admin.post("/brevo/events", json=campaign_events()[0]).raise_for_status()
    flushed = admin.post("/webhooks/flush").json()
    assert flushed["retried"] == 1
    [delivery] = flushed["deliveries"]
    assert (delivery["service"], delivery["event_type"], delivery["attempts"]) == ("brevo", "opened", 2)
