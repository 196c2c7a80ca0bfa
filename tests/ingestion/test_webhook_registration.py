"""``lifecycle webhooks register``: idempotent subscription with Calendly, Stripe and Brevo, proven end to
end by sandbox deliveries that pass the collector's signature (or bearer token) checks and land."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ingestion.collector import create_collector_app
from ingestion.landing import LandingZone, landing_files
from ingestion.webhooks import WebhookRegistrationError, register_webhooks
from settings import Settings, sandbox_environment
from tests.servers import serve


def landed(root: Path, stream: str) -> list[dict]:
    return [json.loads(line) for path in landing_files(root, stream) for line in path.read_text().splitlines()]


def registration_kwargs(settings: Settings) -> dict:
    return {
        "calendly_base_url": settings.calendly_base_url,
        "calendly_token": settings.calendly_token.reveal(),
        "calendly_signing_key": settings.calendly_webhook_signing_key.reveal(),
        "stripe_base_url": settings.stripe_base_url,
        "stripe_api_key": settings.stripe_api_key.reveal(),
        "brevo_base_url": settings.brevo_base_url,
        "brevo_api_key": settings.brevo_api_key.reveal(),
        "brevo_webhook_token": settings.brevo_webhook_token.reveal(),
    }


def test_registration_is_idempotent_and_deliveries_land(sandbox_url: str, tmp_path: Path) -> None:
    settings = Settings.from_env(sandbox_environment(sandbox_url, tmp_path))
    root = tmp_path / "landing"
    app = create_collector_app(LandingZone(root, "collector"),
                               calendly_signing_key=settings.calendly_webhook_signing_key.reveal(),
                               stripe_webhook_secret=settings.stripe_webhook_secret.reveal(),
                               brevo_webhook_token=settings.brevo_webhook_token.reveal())
    with serve(app) as collector_url, httpx.Client(base_url=sandbox_url) as admin:
        first = register_webhooks(collector_url, **registration_kwargs(settings))
        second = register_webhooks(collector_url + "/", **registration_kwargs(settings))

        calls = admin.get("/_sandbox/calls").json()
        assert calls["calendly POST /webhook_subscriptions"] == 1
        assert calls["stripe POST /v1/webhook_endpoints"] == 1
        assert calls["brevo POST /v3/webhooks"] == 1
        assert all("created" in message for message in first)
        assert all("already exists" in message for message in second)
        assert not any(settings.brevo_webhook_token.reveal() in message for message in first + second)
        assert all("STRIPE_WEBHOOK_SECRET" in message for message in (first[1], second[1]))
        assert not any("whsec_" in message for message in first + second)

        calendly_auth = {"Authorization": f"Bearer {settings.calendly_token.reveal()}"}
        organization = admin.get("/calendly/users/me", headers=calendly_auth).json()["resource"][
            "current_organization"]
        subscriptions = admin.get("/calendly/webhook_subscriptions", headers=calendly_auth,
                                  params={"organization": organization, "scope": "organization"}).json()
        assert [(s["callback_url"], sorted(s["events"])) for s in subscriptions["collection"]] == [
            (f"{collector_url}/webhooks/calendly", ["invitee.canceled", "invitee.created"])]
        endpoints = admin.get("/stripe/v1/webhook_endpoints",
                              headers={"Authorization": f"Bearer {settings.stripe_api_key.reveal()}"}).json()
        assert [e["url"] for e in endpoints["data"]] == [f"{collector_url}/webhooks/stripe"]
        assert "checkout.session.completed" in endpoints["data"][0]["enabled_events"]
        brevo = admin.get("/brevo/v3/webhooks", params={"type": "marketing"},
                          headers={"api-key": settings.brevo_api_key.reveal()}).json()["webhooks"]
        assert [(w["url"], sorted(w["events"]), w["batched"], w["auth"]) for w in brevo] == [
            (f"{collector_url}/webhooks/brevo", ["click", "hardBounce", "opened", "spam", "unsubscribed"], True,
             {"type": "bearer"})]

        booking = admin.post("/_sandbox/calendly/bookings", json={
            "email": "ada@example.com", "name": "Ada Lovelace", "event_name": "Demo",
            "start_time": "2030-01-10T10:00:00Z", "end_time": "2030-01-10T10:30:00Z",
            "created_at": "2030-01-01T09:00:00Z", "utm_source": "google",
        })
        booking.raise_for_status()
        purchase = admin.post("/_sandbox/stripe/purchases", json={
            "email": "bo@example.com", "name": "Bo", "product_id": "prod_course", "product_name": "Course",
            "amount": 4900, "currency": "usd", "created_at": "2030-01-02T09:00:00Z",
        })
        purchase.raise_for_status()
        admin.post("/_sandbox/brevo/events", json={
            "email": "cy@example.com", "event": "opened", "at": "2030-01-03T09:00:00Z", "campaign_id": 5,
            "campaign_name": "January news"}).raise_for_status()
        deliveries = admin.get("/_sandbox/webhooks").json()

    assert {(d["service"], d["status"], d["last_status_code"]) for d in deliveries} == {
        ("calendly", "delivered", 200), ("stripe", "delivered", 200), ("brevo", "delivered", 200)}
    [newsletter_open] = landed(root, "brevo")
    assert (newsletter_open["event"]["camp_id"], newsletter_open["event"]["event"],
            newsletter_open["event"]["email"]) == (5, "opened", "cy@example.com")
    [calendly] = landed(root, "calendly")
    assert calendly["event"]["event"] == "invitee.created"
    assert calendly["event"]["payload"]["uri"] == booking.json()["invitee_uri"]
    assert calendly["event"]["payload"]["email"] == "ada@example.com"
    [stripe_record] = landed(root, "stripe")
    assert stripe_record["event"]["type"] == "checkout.session.completed"
    assert stripe_record["event"]["data"]["object"]["id"] == purchase.json()["session_id"]


def test_a_refused_token_is_a_clear_error_without_the_token(sandbox_url: str, tmp_path: Path) -> None:
    """The sandbox echoes each refused credential in its message, as a careless vendor would."""
    settings = Settings.from_env(sandbox_environment(sandbox_url, tmp_path))
    httpx.post(f"{sandbox_url}/_sandbox/echo_credentials", json={"on": True}).raise_for_status()
    kwargs = {**registration_kwargs(settings), "calendly_token": "calendly-wrong-token-123"}
    with pytest.raises(WebhookRegistrationError) as raised:
        register_webhooks("http://127.0.0.1:9", **kwargs)
    assert raised.value.status == 401 and raised.value.vendor == "Calendly"
    assert "401" in str(raised.value) and "calendly-wrong-token-123" not in str(raised.value)
    assert str(raised.value).endswith("(credential presented: ***)")

    kwargs = {**registration_kwargs(settings), "stripe_api_key": "sk_test_wrong_key_123456"}
    with pytest.raises(WebhookRegistrationError) as raised:
        register_webhooks("http://127.0.0.1:9", **kwargs)
    assert raised.value.status == 401 and raised.value.vendor == "Stripe"
    assert "sk_test_wrong_key_123456" not in str(raised.value) and "credential presented: ***" in str(raised.value)

    kwargs = {**registration_kwargs(settings), "brevo_api_key": "xkeysib-wrong-key-123456"}
    with pytest.raises(WebhookRegistrationError) as raised:
        register_webhooks("http://127.0.0.1:9", **kwargs)
    assert raised.value.status == 401 and raised.value.vendor == "Brevo"
    assert "xkeysib-wrong-key-123456" not in str(raised.value) and "credential presented: ***" in str(raised.value)

    with pytest.raises(ValueError, match="BREVO_WEBHOOK_TOKEN is not set"):
        register_webhooks("http://127.0.0.1:9", **{**registration_kwargs(settings), "brevo_webhook_token": ""})


# --- paths the sandbox cannot reach: fake vendors on an httpx.MockTransport ------------------------------

CALENDLY = "https://calendly.test"
STRIPE = "https://stripe.test"
BREVO = "https://brevo.test/v3"
HOOKS = "https://hooks.example.com"


def fake_vendors(calendly_pages: list[list[dict]], stripe_pages: list[list[dict]],
                 log: list[str], brevo_webhooks: list[dict] | None = None) -> Callable[[httpx.Request], httpx.Response]:
    """Calendly, Stripe and Brevo answering from fixed pages, logging every call as "METHOD path?query"."""

    def handle(request: httpx.Request) -> httpx.Response:
        log.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        path, params = request.url.path, request.url.params
        if request.url.host == "calendly.test":
            assert request.headers["authorization"] == "Bearer cal-token"
            if path == "/users/me":
                return httpx.Response(200, json={"resource": {"current_organization": f"{CALENDLY}/organizations/O"}})
            if path == "/webhook_subscriptions" and request.method == "GET":
                index = int(params.get("page_token", "0"))
                more = index + 1 < len(calendly_pages)
                return httpx.Response(200, json={"collection": calendly_pages[index], "pagination": {
                    "next_page_token": str(index + 1) if more else None}})
            if path == "/webhook_subscriptions" and request.method == "POST":
                body = json.loads(request.content)
                assert body["signing_key"] == "cal-key" and body["scope"] == "organization"
                return httpx.Response(201, json={"resource": {"uri": f"{CALENDLY}/webhook_subscriptions/NEW",
                                                              "callback_url": body["url"]}})
            if request.method == "DELETE":
                return httpx.Response(204)
        if request.url.host == "stripe.test" and path == "/v1/webhook_endpoints":
            assert request.headers["authorization"] == "Bearer sk_test_x"
            if request.method == "GET":
                index = next((i + 1 for i, page in enumerate(stripe_pages)
                              if page and page[-1]["id"] == params.get("starting_after")), 0)
                return httpx.Response(200, json={"object": "list", "data": stripe_pages[index],
                                                 "has_more": index + 1 < len(stripe_pages)})
            form = httpx.QueryParams(request.content.decode())
            assert form.get_list("enabled_events[]")[0] == "checkout.session.completed"
            return httpx.Response(200, json={"id": "we_new", "url": form["url"], "secret": "whsec_abc"})
        if request.url.host == "brevo.test" and path == "/v3/webhooks":
            assert request.headers["api-key"] == "xkeysib-x"
            if request.method == "GET":
                assert params["type"] == "marketing"
                return httpx.Response(200, json={"webhooks": brevo_webhooks or []})
            body = json.loads(request.content)
            assert body["auth"] == {"type": "bearer", "token": "brevo-token"} and body["type"] == "marketing"
            return httpx.Response(201, json={"id": 77})
        return httpx.Response(404, json={"title": "Resource Not Found", "message": "no such path"})

    return handle


def register_with(handler: Callable[[httpx.Request], httpx.Response]) -> list[str]:
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        return register_webhooks(HOOKS, calendly_base_url=CALENDLY, calendly_token="cal-token",
                                 calendly_signing_key="cal-key", stripe_base_url=STRIPE, stripe_api_key="sk_test_x",
                                 brevo_base_url=BREVO, brevo_api_key="xkeysib-x", brevo_webhook_token="brevo-token",
                                 http=http)


def test_existing_registrations_on_later_pages_are_found() -> None:
    log: list[str] = []
    calendly_pages = [[{"uri": f"{CALENDLY}/webhook_subscriptions/A", "callback_url": "https://other/x",
                        "state": "active"}],
                      [{"uri": f"{CALENDLY}/webhook_subscriptions/B", "callback_url": f"{HOOKS}/webhooks/calendly",
                        "state": "active"}]]
    stripe_pages = [[{"id": "we_1", "url": "https://other/y"}],
                    [{"id": "we_2", "url": f"{HOOKS}/webhooks/stripe", "status": "enabled"}]]
    brevo_webhooks = [{"id": 3, "url": "https://other/z"}, {"id": 4, "url": f"{HOOKS}/webhooks/brevo"}]
    messages = register_with(fake_vendors(calendly_pages, stripe_pages, log, brevo_webhooks))
    assert not any(call.startswith(("POST", "DELETE")) for call in log)
    assert "webhook_subscriptions/B" in messages[0] and "we_2" in messages[1] and "(4)" in messages[2]
    assert any("page_token=1" in call for call in log) and any("starting_after=we_1" in call for call in log)


def test_a_disabled_calendly_subscription_is_replaced_and_the_stripe_secret_is_not_shown() -> None:
    log: list[str] = []
    disabled = {"uri": f"{CALENDLY}/webhook_subscriptions/OLD", "callback_url": f"{HOOKS}/webhooks/calendly",
                "state": "disabled"}
    messages = register_with(fake_vendors([[disabled]], [[]], log))
    assert "DELETE /webhook_subscriptions/OLD?" in log
    assert "POST /webhook_subscriptions?" in log and "POST /v1/webhook_endpoints?" in log
    assert "replacing disabled subscription" in messages[0]
    assert "we_new" in messages[1] and "whsec_abc" not in " ".join(messages)
    assert "POST /v3/webhooks?" in log and "created marketing webhook 77" in messages[2]
    assert "brevo-token" not in " ".join(messages)
