"""The emulated Stripe account: the gate, the Events API, Checkout Sessions with line items and webhook
endpoints with their deliveries."""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
import json
import math
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.core import Limited, Service, env
from sandbox.stripe_api.admin import StripeAdmin
from sandbox.stripe_api.common import (
    API_VERSION,
    EVENT_TYPE,
    MAX_LIMIT,
    MISSING_KEY,
    RATE_LIMIT,
    RETENTION_DAYS,
    SERVER_ERROR,
    TOO_MANY_REQUESTS,
    Saved,
    StripeError,
    SubscriptionState,
    Timeline,
    _auth_failure,
    api,
    check_known,
    form,
    invalid,
    list_object,
    mask_key,
    missing,
    new_id,
    parse_expand,
    presented_key,
    query,
    stripe_json,
    stripe_signature,
    type_matcher,
    unrecognized_url,
)
from sandbox.webhooks import Delivery, WebhookSender


class Stripe(StripeAdmin):
    """The emulated Stripe: in-memory stores behind the shared ``Service`` gate."""

    def __init__(self, calls, webhooks: WebhookSender) -> None:
        self.api_key = env("STRIPE_API_KEY", "sk_test_sandbox")
        self.webhook_secret = env("STRIPE_WEBHOOK_SECRET", "whsec_sandbox")
        self.webhooks = webhooks
        self.service = Service(
            "stripe",
            check_auth=self._authorized,
            unauthorized=lambda: StripeError(401, _auth_failure.get()).response(),
            too_many_requests=self._too_many_requests,
            server_error=lambda: StripeError(500, SERVER_ERROR, type_="api_error").response(),
            limit_headers=lambda limited: {},
            groups={"default": RATE_LIMIT},
            calls=calls,
        )
        self.reset()

    def reset(self) -> None:
        self.events = Timeline("event")
        self.sessions = Timeline("checkout.session")
        self.endpoints = Timeline("webhook_endpoint")
        self.line_items: dict[str, Timeline] = {}
        self.charges: dict[str, dict] = {}  # by checkout session id
        self.customers: dict[str, dict] = {}
        self.customer_by_email: dict[str, dict] = {}
        self.subscriptions: dict[str, SubscriptionState] = {}
        self.deliveries: dict[str, list[Delivery]] = {}  # by event id
        self.idempotency: dict[tuple[str, str], Saved] = {}
        self._seq = itertools.count()

    # -- gate ---------------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        key = presented_key(request)
        if key is None:
            _auth_failure.set(MISSING_KEY)
            return False
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            _auth_failure.set(f"Invalid API Key provided: {mask_key(key)}")
            return False
        return True

    @staticmethod
    def _too_many_requests(limited: Limited) -> Response:
        response = StripeError(429, TOO_MANY_REQUESTS, code="rate_limit").response()
        response.headers["Retry-After"] = str(max(1, math.ceil(limited.reset_seconds)))
        return response

    # -- REST ---------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        route = self.service.route
        return [
            route("GET", "/v1/events")(api(self.list_events)),
            route("GET", "/v1/events/{id}")(api(self.get_event)),
            route("GET", "/v1/checkout/sessions")(api(self.list_sessions)),
            route("GET", "/v1/checkout/sessions/{id}")(api(self.get_session)),
            route("GET", "/v1/checkout/sessions/{id}/line_items")(api(self.list_line_items)),
            route("POST", "/v1/webhook_endpoints")(api(self.create_endpoint)),
            route("GET", "/v1/webhook_endpoints")(api(self.list_endpoints)),
            route("GET", "/v1/webhook_endpoints/{id}")(api(self.get_endpoint)),
            route("DELETE", "/v1/webhook_endpoints/{id}")(api(self.delete_endpoint)),
            Route("/{path:path}", unrecognized_url, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]

    def _event_json(self, event: dict) -> dict:
        pending = sum(1 for d in self.deliveries.get(event["id"], ()) if d.status != "delivered")
        return {**event, "pending_webhooks": pending}

    @staticmethod
    def _retention_start() -> int:
        return int(time.time()) - RETENTION_DAYS * 86400

    async def list_events(self, request: Request) -> Response:
        params = query(request)
        check_known(params, {"type", "types", "created", "delivery_success", "limit", "starting_after",
                             "ending_before", "expand"})
        parse_expand(params, set())
        matchers = [m for m in (type_matcher(params), self._delivery_matcher(params)) if m is not None]
        page, has_more = self.events.page(params, lambda e: all(m(e) for m in matchers),
                                          min_created=self._retention_start())
        return stripe_json(list_object("/v1/events", [self._event_json(e) for e in page], has_more))

    def _delivery_matcher(self, params: dict[str, Any]) -> Callable[[dict], bool] | None:
        if "delivery_success" not in params:
            return None
        wanted = params["delivery_success"]
        if wanted not in ("true", "false"):
            raise invalid("Invalid boolean: must be true or false.", "delivery_success")

        def match(event: dict) -> bool:
            delivered = all(d.status == "delivered" for d in self.deliveries.get(event["id"], ()))
            return delivered == (wanted == "true")

        return match

    async def get_event(self, request: Request) -> Response:
        event_id = request.path_params["id"]
        event = self.events.objects.get(event_id)
        if event is None or event["created"] < self._retention_start():
            raise missing("event", event_id)
        return stripe_json(self._event_json(event))

    def _session_json(self, session: dict, expand: set[str]) -> dict:
        body = dict(session)
        if "line_items" in expand:
            items, has_more = self.line_items[session["id"]].page({"limit": str(MAX_LIMIT)}, descending=False)
            url = f"/v1/checkout/sessions/{session['id']}/line_items"
            body["line_items"] = list_object(url, items, has_more)
        if "customer" in expand and session["customer"]:
            body["customer"] = self.customers[session["customer"]]
        return body

    async def list_sessions(self, request: Request) -> Response:
        params = query(request)
        check_known(params, {"created", "customer", "customer_details", "payment_intent", "status", "limit",
                             "starting_after", "ending_before", "expand"})
        expand = {path.removeprefix("data.")
                  for path in parse_expand(params, {"data.line_items", "data.customer"})}
        details = params.get("customer_details", {})
        if not isinstance(details, dict) or set(details) - {"email"}:
            raise invalid("Invalid customer_details: only email is supported.", "customer_details")
        filters = {name: params[name] for name in ("customer", "payment_intent", "status") if name in params}
        email = details.get("email")

        def match(session: dict) -> bool:
            return (all(session.get(name) == value for name, value in filters.items())
                    and (email is None or session["customer_details"]["email"] == email))

        page, has_more = self.sessions.page(params, match)
        return stripe_json(list_object("/v1/checkout/sessions", [self._session_json(s, expand) for s in page],
                                       has_more))

    def _session(self, request: Request) -> dict:
        session = self.sessions.objects.get(request.path_params["id"])
        if session is None:
            raise missing("checkout.session", request.path_params["id"], "session")
        return session

    async def get_session(self, request: Request) -> Response:
        params = query(request)
        check_known(params, {"expand"})
        expand = parse_expand(params, {"line_items", "customer"})
        return stripe_json(self._session_json(self._session(request), expand))

    async def list_line_items(self, request: Request) -> Response:
        params = query(request)
        check_known(params, {"limit", "starting_after", "ending_before", "expand"})
        parse_expand(params, set())
        session = self._session(request)
        page, has_more = self.line_items[session["id"]].page(params, descending=False)
        return stripe_json(list_object(f"/v1/checkout/sessions/{session['id']}/line_items", page, has_more))

    async def create_endpoint(self, request: Request) -> Response:
        params = await form(request)
        return await self._idempotent(request, params, lambda: self._create_endpoint(params))

    def _create_endpoint(self, params: dict[str, Any]) -> Response:
        check_known(params, {"url", "enabled_events", "description", "metadata", "api_version", "expand"})
        url = params.get("url")
        if not url:
            raise invalid("Missing required param: url.", "url", "parameter_missing")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise invalid(f"Invalid URL: {url}", "url", "url_invalid")
        enabled = params.get("enabled_events")
        if not enabled:
            raise invalid("Missing required param: enabled_events.", "enabled_events", "parameter_missing")
        if not isinstance(enabled, list):
            raise invalid("Invalid array", "enabled_events")
        for index, name in enumerate(enabled):
            if name != "*" and not (isinstance(name, str) and EVENT_TYPE.fullmatch(name)):
                raise invalid(f"Invalid enabled_events[{index}]: must be an event type or '*'.",
                              f"enabled_events[{index}]")
        metadata = params.get("metadata", {})
        if not isinstance(metadata, dict):
            raise invalid("Invalid object", "metadata")
        endpoint = {
            "id": new_id("we"), "object": "webhook_endpoint", "api_version": params.get("api_version"),
            "application": None, "created": int(time.time()), "description": params.get("description"),
            "enabled_events": list(enabled), "livemode": False, "metadata": metadata, "status": "enabled",
            "url": url,
        }
        self.endpoints.add(endpoint, next(self._seq))
        # The secret is only ever shown in the answer to the create call, as on real Stripe.
        return stripe_json({**endpoint, "secret": self.webhook_secret})

    async def _idempotent(self, request: Request, params: dict[str, Any],
                          execute: Callable[[], Response]) -> Response:
        """Replay the first outcome for a reused ``Idempotency-Key``; refuse it for other parameters.

        Validation errors are not saved (Stripe re-executes those), so ``execute`` raising skips the save.
        """
        key = request.headers.get("idempotency-key")
        if key is None:
            return execute()
        if not key or len(key) > 255:
            raise invalid("Idempotency-Key must be 1 to 255 characters.", "Idempotency-Key")
        fingerprint = hashlib.sha256(json.dumps(
            [request.method, request.url.path, params], sort_keys=True).encode()).hexdigest()
        store_key = (presented_key(request) or "", key)
        saved = self.idempotency.get(store_key)
        if saved is not None:
            if saved.fingerprint != fingerprint:
                raise StripeError(
                    400, "Keys for idempotent requests can only be used with the same parameters they "
                    f"were first used with. Try using a key other than '{key}' if you meant to execute "
                    "a different request.",
                    type_="idempotency_error",
                )
            return Response(saved.body, status_code=saved.status, media_type="application/json", headers={
                "Request-Id": new_id("req"), "Idempotent-Replayed": "true",
                "Original-Request": saved.request_id,
            })
        response = execute()
        self.idempotency[store_key] = Saved(fingerprint, response.status_code, bytes(response.body),
                                            response.headers["Request-Id"])
        return response

    async def list_endpoints(self, request: Request) -> Response:
        params = query(request)
        check_known(params, {"limit", "starting_after", "ending_before", "expand"})
        parse_expand(params, set())
        page, has_more = self.endpoints.page(params)
        return stripe_json(list_object("/v1/webhook_endpoints", page, has_more))

    def _endpoint(self, request: Request) -> dict:
        endpoint = self.endpoints.objects.get(request.path_params["id"])
        if endpoint is None:
            raise missing("webhook_endpoint", request.path_params["id"])
        return endpoint

    async def get_endpoint(self, request: Request) -> Response:
        return stripe_json(self._endpoint(request))

    async def delete_endpoint(self, request: Request) -> Response:
        endpoint = self._endpoint(request)
        self.endpoints.remove(endpoint["id"])
        return stripe_json({"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True})

    # -- events and webhooks ------------------------------------------------------------------------

    async def _emit(self, event_type: str, obj: dict, created: int, previous: dict | None = None) -> str:
        """Record an event (a snapshot of ``obj``) and deliver it to every endpoint listening to it."""
        data: dict[str, Any] = {"object": json.loads(json.dumps(obj))}
        if previous is not None:
            data["previous_attributes"] = previous
        listeners = self._listeners(event_type)
        event = {
            "id": new_id("evt"), "object": "event", "api_version": API_VERSION, "created": created,
            "data": data, "livemode": False, "pending_webhooks": len(listeners),
            "request": {"id": new_id("req"), "idempotency_key": None}, "type": event_type,
        }
        self.events.add(event, next(self._seq))
        await self._deliver(event, listeners)
        return event["id"]

    def _listeners(self, event_type: str) -> list[dict]:
        return [endpoint for endpoint in self.endpoints.objects.values()
                if endpoint["status"] == "enabled"
                and ("*" in endpoint["enabled_events"] or event_type in endpoint["enabled_events"])]

    async def _deliver(self, event: dict, listeners: list[dict]) -> None:
        if not listeners:
            return
        payload = json.dumps(event)
        deliveries = self.deliveries.setdefault(event["id"], [])
        for endpoint in listeners:
            sign = functools.partial(stripe_signature, payload, self.webhook_secret)
            deliveries.append(await self.webhooks.send("stripe", endpoint["url"], event["type"],
                                                       payload.encode(), sign))

    # -- admin --------------------------------------------------------------------------------------

