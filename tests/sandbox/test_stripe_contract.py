"""Contract tests of the emulated Stripe (as https://docs.stripe.com documents it), over real HTTP.

Webhooks go to a small recording receiver registered through the emulated API; signatures are checked
both with the ``stripe`` library and with hmac/hashlib, independently of the emulator's own code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.servers import serve

KEY = "sk_test_sandbox"
SECRET = "whsec_sandbox"
DAY = 86400


class Receiver:
    """Records every webhook POST (raw body and headers)."""

    def __init__(self) -> None:
        self.received: list[dict] = []

    async def hook(self, request: Request) -> Response:
        self.received.append({"path": request.url.path, "headers": dict(request.headers),
                              "body": await request.body()})
        return Response(status_code=200)

    def at(self, path: str) -> list[dict]:
        return [r for r in self.received if r["path"] == path]


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
    receiver_server[1].received = []
    return receiver_server


@pytest.fixture()
def api(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url + "/stripe", headers={"Authorization": f"Bearer {KEY}"},
                      timeout=30) as client:
        yield client


def admin(sandbox_url: str, path: str, body: dict | list) -> dict | list:
    response = httpx.post(f"{sandbox_url}/_sandbox/stripe/{path}", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def purchase(sandbox_url: str, created: int, **extra: object) -> dict:
    return admin(sandbox_url, "purchases", {
        "email": "ada@example.com", "name": "Ada Lovelace", "product_id": "prod_course",
        "product_name": "Course", "amount": 4900, "currency": "usd", "created_at": created, **extra})


def event_ids(api: httpx.Client, **params: object) -> list[str]:
    response = api.get("/v1/events", params=params)
    assert response.status_code == 200, response.text
    return [event["id"] for event in response.json()["data"]]


def test_missing_wrong_and_basic_auth(sandbox_url: str) -> None:
    missing = httpx.get(sandbox_url + "/stripe/v1/events")
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert missing.json()["error"]["message"].startswith("You did not provide an API key")
    assert missing.headers["Request-Id"].startswith("req_")

    wrong_key = "sk_test_abcdefghijklmnopqrst1234"
    wrong = httpx.get(sandbox_url + "/stripe/v1/events", headers={"Authorization": f"Bearer {wrong_key}"})
    assert wrong.status_code == 401
    message = wrong.json()["error"]["message"]
    assert message == "Invalid API Key provided: sk_test_" + "*" * 20 + "1234"
    assert wrong_key not in wrong.text and KEY not in wrong.text

    basic = httpx.get(sandbox_url + "/stripe/v1/events", auth=(KEY, ""))
    assert basic.status_code == 200 and basic.headers["Request-Id"].startswith("req_")


def test_events_newest_first_with_cursor_paging(api: httpx.Client, sandbox_url: str) -> None:
    now = int(time.time())
    created = [now - 500, now - 400, now - 300, now - 300, now - 200, now - 100]
    ids = [purchase(sandbox_url, at)["event_id"] for at in created]
    newest_first = ids[::-1]  # the tie at now-300 goes to the later one first

    first = api.get("/v1/events", params={"limit": 4}).json()
    assert first["object"] == "list" and first["url"] == "/v1/events" and first["has_more"] is True
    assert [e["id"] for e in first["data"]] == newest_first[:4]
    second = api.get("/v1/events", params={"limit": 4, "starting_after": first["data"][-1]["id"]}).json()
    assert [e["id"] for e in second["data"]] == newest_first[4:] and second["has_more"] is False
    back = api.get("/v1/events", params={"limit": 2, "ending_before": second["data"][0]["id"]}).json()
    assert [e["id"] for e in back["data"]] == newest_first[2:4] and back["has_more"] is True

    event = api.get(f"/v1/events/{ids[0]}").json()
    assert event["object"] == "event" and event["type"] == "checkout.session.completed"
    assert event["api_version"] == "2025-03-31.basil" and event["created"] == now - 500
    assert event["livemode"] is False and event["pending_webhooks"] == 0
    assert event["request"]["id"].startswith("req_") and "idempotency_key" in event["request"]
    assert event["data"]["object"]["object"] == "checkout.session"

    unknown = api.get("/v1/events", params={"starting_after": "evt_unknown"})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "resource_missing"
    missing = api.get("/v1/events/evt_unknown")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"


def test_type_wildcard_types_list_and_both(api: httpx.Client, sandbox_url: str) -> None:
    now = int(time.time())
    session = purchase(sandbox_url, now - 900)
    admin(sandbox_url, "refunds", {"session_id": session["session_id"], "created_at": now - 800})
    sub = admin(sandbox_url, "subscriptions", {"email": "bo@example.com", "product_id": "prod_member",
                                               "started_at": now - 700})
    admin(sandbox_url, f"subscriptions/{sub['id']}/renew", {"at": now - 600, "paid": False})

    def types(**params: object) -> list[str]:
        return [e["type"] for e in api.get("/v1/events", params=params).json()["data"]]

    assert types(type="invoice.*") == ["invoice.payment_failed", "invoice.paid"]
    assert types(type="charge.refunded") == ["charge.refunded"]
    assert types(type="*.created") == ["customer.subscription.created"]
    assert types(**{"types[]": ["invoice.paid", "checkout.session.completed"]}) == [
        "invoice.paid", "checkout.session.completed"]
    both = api.get("/v1/events", params={"type": "invoice.*", "types[]": ["invoice.paid"]})
    assert both.status_code == 400 and both.json()["error"]["type"] == "invalid_request_error"
    too_many = api.get("/v1/events", params={"types[]": [f"invoice.t{n}" for n in range(21)]})
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "types"


def test_limit_must_be_1_to_100(api: httpx.Client) -> None:
    for limit in (101, 0, "ten"):
        response = api.get("/v1/events", params={"limit": limit})
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "limit"
    assert api.get("/v1/events", params={"limit": 100}).status_code == 200
    unknown = api.get("/v1/events", params={"colour": "blue"})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "parameter_unknown"
    for method, path in (("GET", "/v1/no_such_thing"), ("POST", "/v1/events")):
        unrecognized = api.request(method, path)
        assert unrecognized.status_code == 404
        message = unrecognized.json()["error"]["message"]
        assert message.startswith(f"Unrecognized request URL ({method}: {path})")


def test_unrecognized_urls_are_stripes_json_404_with_the_empty_id_hint(api: httpx.Client) -> None:
    for method, path, hinted in (("GET", "/v1/no_such_thing", False), ("DELETE", "/v1/events/evt_1", False),
                                 ("GET", "/v1/events/", True),
                                 ("GET", "/v1/checkout/sessions//line_items", True)):
        unrecognized = api.request(method, path)
        assert unrecognized.status_code == 404, path
        assert unrecognized.headers["request-id"].startswith("req_")
        error = unrecognized.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"].startswith(f"Unrecognized request URL ({method}: {path}). ")
        assert ("remove the trailing slash" in error["message"]) is hinted, path
        assert error["message"].endswith("we can help at https://support.stripe.com/.")


def test_created_range_filter(api: httpx.Client, sandbox_url: str) -> None:
    now = int(time.time())
    old, middle, new = (purchase(sandbox_url, now - s)["event_id"] for s in (300, 200, 100))
    assert event_ids(api, **{"created[gte]": now - 200}) == [new, middle]
    assert event_ids(api, **{"created[gt]": now - 200}) == [new]
    assert event_ids(api, **{"created[lt]": now - 200}) == [old]
    assert event_ids(api, **{"created[gte]": now - 300, "created[lte]": now - 200}) == [middle, old]
    assert event_ids(api, created=now - 200) == [middle]
    assert api.get("/v1/events", params={"created[gte]": "yesterday"}).status_code == 400


def test_only_the_last_30_days_are_listed(api: httpx.Client, sandbox_url: str) -> None:
    now = int(time.time())
    too_old = purchase(sandbox_url, now - 31 * DAY)["event_id"]
    recent = purchase(sandbox_url, now - 29 * DAY)["event_id"]
    assert event_ids(api) == [recent]
    assert event_ids(api, **{"created[gte]": now - 40 * DAY}) == [recent]
    assert api.get(f"/v1/events/{too_old}").status_code == 404
    assert api.get(f"/v1/events/{recent}").status_code == 200


def test_webhooks_are_signed_with_the_stripe_scheme(api: httpx.Client, sandbox_url: str,
                                                    receiver: tuple[str, Receiver]) -> None:
    url, sink = receiver
    assert api.post("/v1/webhook_endpoints", data={
        "url": url + "/checkout", "enabled_events[]": ["checkout.session.completed"]}).status_code == 200
    assert api.post("/v1/webhook_endpoints", data={
        "url": url + "/invoices", "enabled_events[0]": "invoice.paid"}).status_code == 200
    everything = api.post("/v1/webhook_endpoints", data={"url": url + "/all", "enabled_events[]": "*"})
    assert everything.status_code == 200
    result = purchase(sandbox_url, int(time.time()) - 60, utm_campaign="spring")

    assert sink.at("/invoices") == [] and len(sink.at("/all")) == 1
    [delivery] = sink.at("/checkout")
    header = delivery["headers"]["stripe-signature"]
    event = stripe.Webhook.construct_event(delivery["body"], header, SECRET)
    assert event.id == result["event_id"] and event.type == "checkout.session.completed"
    assert event.data.object.id == result["session_id"]
    assert "line_items" not in json.loads(delivery["body"])["data"]["object"]

    parts = [part.split("=", 1) for part in header.split(",")]
    timestamp = dict(parts)["t"]
    signed = f"{timestamp}.".encode() + delivery["body"]
    expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert ["v1", expected] in parts
    assert abs(int(timestamp) - time.time()) < 300

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery["body"].replace(b"spring", b"autumn"), header, SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery["body"], header, "whsec_other")

    # Delivered everywhere: nothing pending. A duplicate delivery carries the same event id.
    assert api.get(f"/v1/events/{result['event_id']}").json()["pending_webhooks"] == 0
    httpx.post(f"{sandbox_url}/_sandbox/stripe/events/{result['event_id']}/redeliver").raise_for_status()
    assert [json.loads(d["body"])["id"] for d in sink.at("/checkout")] == [result["event_id"]] * 2


def test_checkout_session_line_items_and_expand(api: httpx.Client, sandbox_url: str) -> None:
    now = int(time.time())
    first = purchase(sandbox_url, now - 120, quantity=2, amount=9800, utm_source="google", utm_medium="cpc",
                     utm_campaign="spring", client_reference_id="lead-7")
    second = purchase(sandbox_url, now - 60, email="bo@example.com", name="Bo")
    third = purchase(sandbox_url, now - 30)

    session = api.get(f"/v1/checkout/sessions/{first['session_id']}").json()
    assert session["object"] == "checkout.session" and session["mode"] == "payment"
    assert (session["status"], session["payment_status"]) == ("complete", "paid")
    assert session["customer"].startswith("cus_") and session["payment_intent"].startswith("pi_")
    assert session["customer_details"]["email"] == "ada@example.com"
    assert session["customer_details"]["name"] == "Ada Lovelace"
    assert session["metadata"] == {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring"}
    assert session["client_reference_id"] == "lead-7"
    assert (session["amount_subtotal"], session["amount_total"], session["currency"]) == (9800, 9800, "usd")
    assert session["created"] == now - 120 and "line_items" not in session
    third_session = api.get(f"/v1/checkout/sessions/{third['session_id']}").json()
    assert third_session["customer"] == session["customer"]

    items = api.get(f"/v1/checkout/sessions/{first['session_id']}/line_items").json()
    assert items["object"] == "list" and items["has_more"] is False
    assert items["url"] == f"/v1/checkout/sessions/{first['session_id']}/line_items"
    [item] = items["data"]
    assert item["id"].startswith("li_") and item["object"] == "item" and item["description"] == "Course"
    assert item["price"]["product"] == "prod_course" and item["price"]["unit_amount"] == 4900
    assert item["price"]["id"].startswith("price_") and item["price"]["currency"] == "usd"
    assert (item["quantity"], item["amount_subtotal"], item["amount_total"]) == (2, 9800, 9800)

    expanded = api.get(f"/v1/checkout/sessions/{first['session_id']}",
                       params={"expand[]": "line_items"}).json()
    assert expanded["line_items"]["data"] == [item]
    assert api.get(f"/v1/checkout/sessions/{first['session_id']}",
                   params={"expand[]": "invoice"}).status_code == 400

    listed = api.get("/v1/checkout/sessions", params={"customer_details[email]": "ada@example.com",
                                                      "expand[]": "data.line_items"}).json()
    assert [s["id"] for s in listed["data"]] == [third["session_id"], first["session_id"]]
    assert listed["data"][1]["line_items"]["data"] == [item]
    assert listed["url"] == "/v1/checkout/sessions"
    page = api.get("/v1/checkout/sessions", params={"limit": 1, "starting_after": third["session_id"]}).json()
    assert [s["id"] for s in page["data"]] == [second["session_id"]] and page["has_more"] is True

    missing = api.get("/v1/checkout/sessions/cs_test_nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"
    assert api.get("/v1/checkout/sessions/cs_test_nope/line_items").status_code == 404


def test_refund_raises_charge_refunded(api: httpx.Client, sandbox_url: str) -> None:
    now = int(time.time())
    result = purchase(sandbox_url, now - 3600, utm_source="google")
    refund = admin(sandbox_url, "refunds", {"session_id": result["session_id"], "created_at": now - 60})
    event = api.get(f"/v1/events/{refund['event_id']}").json()
    assert event["type"] == "charge.refunded" and event["created"] == now - 60
    charge = event["data"]["object"]
    session = api.get(f"/v1/checkout/sessions/{result['session_id']}").json()
    assert charge["id"] == refund["charge_id"] and charge["object"] == "charge"
    assert charge["payment_intent"] == session["payment_intent"]
    assert (charge["amount"], charge["amount_refunded"], charge["refunded"]) == (4900, 4900, True)
    assert charge["billing_details"]["email"] == "ada@example.com"
    assert charge["billing_details"]["name"] == "Ada Lovelace"
    assert charge["metadata"]["checkout_session"] == result["session_id"]
    assert charge["created"] == now - 3600
    assert event["data"]["previous_attributes"] == {"amount_refunded": 0, "refunded": False}

    again = httpx.post(sandbox_url + "/_sandbox/stripe/refunds",
                       json={"session_id": result["session_id"], "created_at": now})
    assert again.status_code == 400
    unknown = httpx.post(sandbox_url + "/_sandbox/stripe/refunds",
                         json={"session_id": "cs_x", "created_at": now})
    assert unknown.status_code == 404


def test_subscription_create_renew_fail_and_cancel(api: httpx.Client, sandbox_url: str) -> None:
    now = int(time.time())
    start = now - 25 * DAY
    sub = admin(sandbox_url, "subscriptions", {"email": "cy@example.com", "product_id": "prod_member",
                                               "started_at": start, "amount": 1500, "interval_days": 7})
    assert sub["id"].startswith("sub_")
    created = api.get("/v1/events", params={"type": "customer.subscription.created"}).json()["data"][0]
    subscription = created["data"]["object"]
    assert subscription["id"] == sub["id"] and subscription["status"] == "active"
    assert subscription["items"]["data"][0]["current_period_start"] == start
    assert subscription["items"]["data"][0]["current_period_end"] == start + 7 * DAY
    first_invoice = api.get("/v1/events", params={"type": "invoice.paid"}).json()["data"][0]["data"]["object"]
    assert first_invoice["billing_reason"] == "subscription_create"
    assert first_invoice["parent"] == {"type": "subscription_details", "quote_details": None,
                                       "subscription_details": {"subscription": sub["id"], "metadata": {}}}
    assert first_invoice["customer_email"] == "cy@example.com"
    assert first_invoice["customer"].startswith("cus_")
    assert (first_invoice["status"], first_invoice["amount_paid"]) == ("paid", 1500)

    renewal_at = start + 7 * DAY
    paid = admin(sandbox_url, f"subscriptions/{sub['id']}/renew", {"at": renewal_at})
    invoice = api.get(f"/v1/events/{paid['event_id']}").json()
    assert invoice["type"] == "invoice.paid" and invoice["created"] == renewal_at
    invoice = invoice["data"]["object"]
    assert invoice["id"] == paid["invoice_id"] and invoice["object"] == "invoice"
    assert invoice["billing_reason"] == "subscription_cycle" and invoice["status"] == "paid"
    assert (invoice["amount_paid"], invoice["amount_due"], invoice["currency"]) == (1500, 1500, "usd")
    assert (invoice["period_start"], invoice["period_end"]) == (start, renewal_at)
    assert invoice["lines"]["data"][0]["period"] == {"start": renewal_at, "end": renewal_at + 7 * DAY}
    assert invoice["parent"]["subscription_details"]["subscription"] == sub["id"]

    failed_at = renewal_at + 7 * DAY
    unpaid = admin(sandbox_url, f"subscriptions/{sub['id']}/renew", {"at": failed_at, "paid": False})
    event = api.get(f"/v1/events/{unpaid['event_id']}").json()
    assert event["type"] == "invoice.payment_failed"
    invoice = event["data"]["object"]
    assert (invoice["status"], invoice["attempt_count"], invoice["amount_paid"]) == ("open", 1, 0)
    assert invoice["amount_due"] == 1500 and invoice["billing_reason"] == "subscription_cycle"
    assert invoice["lines"]["data"][0]["period"]["start"] == failed_at

    canceled_at = failed_at + 3 * DAY
    cancel = admin(sandbox_url, f"subscriptions/{sub['id']}/cancel", {"at": canceled_at})
    event = api.get(f"/v1/events/{cancel['event_id']}").json()
    assert event["type"] == "customer.subscription.deleted" and event["created"] == canceled_at
    deleted = event["data"]["object"]
    assert (deleted["status"], deleted["canceled_at"], deleted["ended_at"]) == ("canceled", canceled_at,
                                                                                canceled_at)
    assert deleted["cancellation_details"]["reason"] == "cancellation_requested"
    # The earlier event is a snapshot: it still shows the subscription as it was then.
    assert api.get(f"/v1/events/{created['id']}").json()["data"]["object"]["status"] == "active"

    after = httpx.post(f"{sandbox_url}/_sandbox/stripe/subscriptions/{sub['id']}/renew", json={"at": now})
    assert after.status_code == 400
    assert httpx.post(f"{sandbox_url}/_sandbox/stripe/subscriptions/sub_nope/cancel",
                      json={"at": now}).status_code == 404


def test_bulk_admin_bodies_return_lists(api: httpx.Client, sandbox_url: str) -> None:
    now = int(time.time())
    results = admin(sandbox_url, "purchases", [
        {"email": f"p{n}@example.com", "product_id": "prod_course", "product_name": "Course", "amount": 100,
         "currency": "usd", "created_at": "2030-01-01T00:00:00Z" if n == 0 else now - n} for n in range(3)])
    assert len(results) == 3 and all(r["session_id"].startswith("cs_test_") for r in results)
    session = api.get(f"/v1/checkout/sessions/{results[0]['session_id']}").json()
    assert session["created"] == 1893456000
    bad = httpx.post(sandbox_url + "/_sandbox/stripe/purchases", json=[{"email": "x@example.com"}])
    assert bad.status_code == 400 and bad.json()["index"] == 0


def test_webhook_endpoints_create_list_delete(api: httpx.Client) -> None:
    created = api.post("/v1/webhook_endpoints", data={
        "url": "https://hooks.example/stripe", "enabled_events[]": ["invoice.paid", "charge.refunded"]})
    assert created.status_code == 200
    endpoint = created.json()
    assert endpoint["id"].startswith("we_") and endpoint["object"] == "webhook_endpoint"
    assert endpoint["enabled_events"] == ["invoice.paid", "charge.refunded"]
    assert endpoint["status"] == "enabled" and endpoint["secret"] == SECRET and endpoint["created"] > 0

    listed = api.get("/v1/webhook_endpoints").json()
    assert [e["id"] for e in listed["data"]] == [endpoint["id"]] and "secret" not in listed["data"][0]
    assert api.get(f"/v1/webhook_endpoints/{endpoint['id']}").json()["url"] == "https://hooks.example/stripe"
    deleted = api.delete(f"/v1/webhook_endpoints/{endpoint['id']}").json()
    assert deleted == {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}
    assert api.get(f"/v1/webhook_endpoints/{endpoint['id']}").status_code == 404
    assert api.get("/v1/webhook_endpoints").json()["data"] == []

    no_url = api.post("/v1/webhook_endpoints", data={"enabled_events[]": "*"})
    assert no_url.status_code == 400
    assert (no_url.json()["error"]["code"], no_url.json()["error"]["param"]) == ("parameter_missing", "url")
    no_events = api.post("/v1/webhook_endpoints", data={"url": "https://hooks.example/x"})
    assert no_events.status_code == 400 and no_events.json()["error"]["param"] == "enabled_events"


def test_idempotency_replay_and_mismatch(api: httpx.Client) -> None:
    body = {"url": "https://hooks.example/one", "enabled_events[]": "*"}
    first = api.post("/v1/webhook_endpoints", data=body, headers={"Idempotency-Key": "key-1"})
    replay = api.post("/v1/webhook_endpoints", data=body, headers={"Idempotency-Key": "key-1"})
    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(api.get("/v1/webhook_endpoints").json()["data"]) == 1

    mismatch = api.post("/v1/webhook_endpoints", data={**body, "url": "https://hooks.example/two"},
                        headers={"Idempotency-Key": "key-1"})
    assert mismatch.status_code == 400 and mismatch.json()["error"]["type"] == "idempotency_error"

    # A request that failed validation is not saved: the same key then executes normally.
    invalid = api.post("/v1/webhook_endpoints", data={"enabled_events[]": "*"},
                       headers={"Idempotency-Key": "key-2"})
    assert invalid.status_code == 400
    valid = api.post("/v1/webhook_endpoints", data=body, headers={"Idempotency-Key": "key-2"})
    assert valid.status_code == 200 and "Idempotent-Replayed" not in valid.headers
    assert len(api.get("/v1/webhook_endpoints").json()["data"]) == 2


def test_rate_limit_429(api: httpx.Client, sandbox_url: str) -> None:
    ok = api.get("/v1/events")
    assert not any(name.lower().startswith("x-ratelimit") for name in ok.headers)
    httpx.post(sandbox_url + "/_sandbox/limits", json={"service": "stripe", "per_10s": 2}).raise_for_status()
    responses = [api.get("/v1/events") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    error = responses[-1].json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "rate_limit"
    assert error["message"].startswith("Too many requests hit the API too quickly")
    assert 0 < int(responses[-1].headers["Retry-After"]) <= 10
    assert responses[-1].headers["Request-Id"].startswith("req_")


def test_injected_500_in_stripe_format(api: httpx.Client, sandbox_url: str) -> None:
    httpx.post(sandbox_url + "/_sandbox/faults", json={"service": "stripe", "rate_500": 1}).raise_for_status()
    response = api.get("/v1/events")
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "api_error" and response.json()["error"]["message"]
    assert response.headers["Request-Id"].startswith("req_")


def test_calls_are_counted_by_path_template(api: httpx.Client, sandbox_url: str) -> None:
    result = purchase(sandbox_url, int(time.time()))
    api.get("/v1/events")
    api.get("/v1/events", params={"limit": 1})
    api.get(f"/v1/checkout/sessions/{result['session_id']}/line_items")
    calls = httpx.get(sandbox_url + "/_sandbox/calls").json()
    assert calls["stripe GET /v1/events"] == 2
    assert calls["stripe GET /v1/checkout/sessions/{id}/line_items"] == 1


def test_the_stripe_sdk_speaks_to_the_emulator(sandbox_url: str) -> None:
    """The real SDK encodes lists as ``types[0]`` and hashes as ``created[gte]``: both must decode."""
    now = int(time.time())
    result = purchase(sandbox_url, now - 30, quantity=1)
    client = stripe.StripeClient(KEY, base_addresses={"api": sandbox_url + "/stripe"}, max_network_retries=0)
    events = client.v1.events.list(params={"types": ["checkout.session.completed"],
                                           "created": {"gte": now - 60}})
    assert [e.id for e in events.data] == [result["event_id"]]
    session = client.v1.checkout.sessions.retrieve(result["session_id"], params={"expand": ["line_items"]})
    assert session.line_items.data[0].price.product == "prod_course"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.list(params={"limit": 101})
