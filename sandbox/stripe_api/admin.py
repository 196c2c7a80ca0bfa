"""The emulated Stripe's admin API: purchases, refunds, subscriptions, renewals and cancellations that emit
the events (and webhooks) the real ones would."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.core import AdminError, bulk_admin
from sandbox.stripe_api.common import (
    DEFAULT_SUBSCRIPTION_AMOUNT,
    SubscriptionState,
    Timeline,
    admin_int,
    admin_str,
    new_id,
    price_id,
    unix_time,
)


class StripeAdmin:
    """``/_sandbox/stripe/...``: the customer actions behind the events."""

    def admin_routes(self) -> list[Route]:
        return [
            Route("/stripe/purchases", admin(self.purchase), methods=["POST"]),
            Route("/stripe/refunds", admin(self.refund), methods=["POST"]),
            Route("/stripe/subscriptions", admin(self.subscribe), methods=["POST"]),
            Route("/stripe/subscriptions/{id}/renew", admin(self.renew), methods=["POST"]),
            Route("/stripe/subscriptions/{id}/cancel", admin(self.cancel), methods=["POST"]),
            Route("/stripe/events/{id}/redeliver", self.redeliver, methods=["POST"]),
        ]

    def _customer(self, email: str, name: str | None, created: int) -> dict:
        """One customer per email, as a shop that passes ``customer`` to Checkout keeps it."""
        key = email.strip().lower()
        customer = self.customer_by_email.get(key)
        if customer is None:
            customer = {"id": new_id("cus"), "object": "customer", "email": email.strip(), "name": name,
                        "created": created, "livemode": False, "metadata": {}}
            self.customers[customer["id"]] = customer
            self.customer_by_email[key] = customer
        return customer

    async def purchase(self, item: dict, path: dict) -> dict:
        """A paid one-off Checkout: customer, session, line item, payment intent and charge."""
        email = admin_str(item, "email", required=True)
        if "@" not in email:
            raise AdminError(400, "email must be an email address")
        name = admin_str(item, "name")
        product_id = admin_str(item, "product_id", required=True)
        product_name = admin_str(item, "product_name", required=True)
        amount = admin_int(item, "amount")
        quantity = admin_int(item, "quantity", default=1, minimum=1)
        if amount % quantity:
            raise AdminError(400, "amount (the total) must be a multiple of quantity")
        currency = admin_str(item, "currency", required=True).lower()
        created = unix_time(item, "created_at")
        metadata = {key: value for key in ("utm_source", "utm_medium", "utm_campaign")
                    if (value := admin_str(item, key)) is not None}
        client_reference_id = admin_str(item, "client_reference_id")
        customer = self._customer(email, name, created)
        session_id, payment_intent = f"cs_test_{uuid.uuid4().hex}", new_id("pi")
        session = {
            "id": session_id, "object": "checkout.session", "mode": "payment", "status": "complete",
            "payment_status": "paid", "customer": customer["id"], "customer_email": None,
            "customer_details": {"email": email.strip(), "name": name, "phone": None, "address": None,
                                 "tax_exempt": "none", "tax_ids": []},
            "client_reference_id": client_reference_id, "metadata": metadata, "amount_subtotal": amount,
            "amount_total": amount, "currency": currency, "payment_intent": payment_intent,
            "subscription": None, "invoice": None, "created": created, "expires_at": created + 86400,
            "livemode": False, "url": None,
        }
        line_items = Timeline("line_item")
        line_items.add({
            "id": new_id("li"), "object": "item", "description": product_name, "quantity": quantity,
            "price": {"id": price_id(product_id), "object": "price",
                      "product": product_id, "unit_amount": amount // quantity, "currency": currency},
            "amount_subtotal": amount, "amount_total": amount, "amount_discount": 0, "amount_tax": 0,
            "currency": currency, "created": created,
        }, next(self._seq))
        self.line_items[session_id] = line_items
        self.charges[session_id] = {
            "id": new_id("ch"), "object": "charge", "amount": amount, "amount_captured": amount,
            "amount_refunded": 0, "refunded": False, "captured": True, "paid": True, "status": "succeeded",
            "currency": currency, "customer": customer["id"], "payment_intent": payment_intent,
            "billing_details": {"email": email.strip(), "name": name, "phone": None, "address": None},
            "receipt_email": email.strip(), "metadata": {"checkout_session": session_id, **metadata},
            "created": created, "livemode": False,
        }
        self.sessions.add(session, next(self._seq))
        event_id = await self._emit("checkout.session.completed", session, created)
        return {"session_id": session_id, "event_id": event_id}

    async def refund(self, item: dict, path: dict) -> dict:
        session_id = admin_str(item, "session_id", required=True)
        created = unix_time(item, "created_at")
        charge = self.charges.get(session_id)
        if charge is None:
            raise AdminError(404, f"unknown checkout session {session_id!r}")
        if charge["refunded"]:
            raise AdminError(400, f"Charge {charge['id']} has already been refunded.")
        charge.update(amount_refunded=charge["amount"], refunded=True)
        previous = {"amount_refunded": 0, "refunded": False}
        event_id = await self._emit("charge.refunded", charge, created, previous)
        return {"event_id": event_id, "charge_id": charge["id"]}

    async def subscribe(self, item: dict, path: dict) -> dict:
        """A subscription whose first invoice is paid at once (``billing_reason = subscription_create``)."""
        email = admin_str(item, "email", required=True)
        if "@" not in email:
            raise AdminError(400, "email must be an email address")
        product_id = admin_str(item, "product_id", required=True)
        started = unix_time(item, "started_at")
        amount = admin_int(item, "amount", default=DEFAULT_SUBSCRIPTION_AMOUNT)
        interval_days = admin_int(item, "interval_days", default=30, minimum=1)
        currency = (admin_str(item, "currency") or "usd").lower()
        customer = self._customer(email, admin_str(item, "name"), started)
        sub_id = new_id("sub")
        price = {"id": price_id(product_id, str(amount), str(interval_days)), "object": "price",
                 "product": product_id, "unit_amount": amount, "currency": currency, "type": "recurring",
                 "recurring": {"interval": "day", "interval_count": interval_days}}
        sub_item = {"id": new_id("si"), "object": "subscription_item", "subscription": sub_id, "quantity": 1,
                    "current_period_start": started, "current_period_end": started + interval_days * 86400,
                    "price": price}
        obj = {
            "id": sub_id, "object": "subscription", "customer": customer["id"], "status": "active",
            "created": started, "start_date": started, "billing_cycle_anchor": started,
            "cancel_at": None, "cancel_at_period_end": False, "canceled_at": None, "ended_at": None,
            "cancellation_details": {"reason": None, "feedback": None, "comment": None},
            "collection_method": "charge_automatically", "currency": currency, "latest_invoice": None,
            "items": {"object": "list", "data": [sub_item], "has_more": False, "total_count": 1,
                      "url": f"/v1/subscription_items?subscription={sub_id}"},
            "livemode": False, "metadata": {},
        }
        state = SubscriptionState(obj, customer, amount, interval_days)
        self.subscriptions[sub_id] = state
        invoice = self._invoice(state, "subscription_create", started, started, started, paid=True)
        obj["latest_invoice"] = invoice["id"]
        created_event = await self._emit("customer.subscription.created", obj, started)
        paid_event = await self._emit("invoice.paid", invoice, started)
        return {"id": sub_id, "invoice_id": invoice["id"], "event_ids": [created_event, paid_event]}

    def _invoice(self, state: SubscriptionState, billing_reason: str, at: int, period_start: int,
                 period_end: int, paid: bool) -> dict:
        """A subscription invoice in the basil shape. As on real Stripe, ``period_start``/``period_end`` are
        the period that just ended (empty for the first invoice); the line's ``period`` is the one billed."""
        sub, item = state.obj, state.obj["items"]["data"][0]
        invoice_id = new_id("in")
        line = {
            "id": new_id("il"), "object": "line_item", "amount": state.amount, "currency": sub["currency"],
            "description": f"1 × {item['price']['product']}", "quantity": 1,
            "period": {"start": item["current_period_start"], "end": item["current_period_end"]},
            "pricing": {"type": "price_details", "unit_amount_decimal": str(state.amount),
                        "price_details": {"price": item["price"]["id"], "product": item["price"]["product"]}},
            "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                       "subscription_item_details": {"subscription": sub["id"],
                                                     "subscription_item": item["id"],
                                                     "invoice_item": None, "proration": False}},
        }
        return {
            "id": invoice_id, "object": "invoice", "customer": state.customer["id"],
            "customer_email": state.customer["email"], "customer_name": state.customer["name"],
            "status": "paid" if paid else "open", "amount_due": state.amount,
            "amount_paid": state.amount if paid else 0, "amount_remaining": 0 if paid else state.amount,
            "currency": sub["currency"], "billing_reason": billing_reason,
            "collection_method": "charge_automatically",
            "period_start": period_start, "period_end": period_end,
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"subscription": sub["id"], "metadata": {}}},
            "lines": {"object": "list", "data": [line], "has_more": False, "total_count": 1,
                      "url": f"/v1/invoices/{invoice_id}/lines"},
            "attempt_count": 1, "attempted": True,
            "next_payment_attempt": None if paid else at + 3 * 86400,
            "status_transitions": {"finalized_at": at, "paid_at": at if paid else None,
                                   "marked_uncollectible_at": None, "voided_at": None},
            "hosted_invoice_url": None, "created": at, "livemode": False,
        }

    def _live_subscription(self, path: dict) -> SubscriptionState:
        state = self.subscriptions.get(path["id"])
        if state is None:
            raise AdminError(404, f"unknown subscription {path['id']!r}")
        if state.obj["status"] == "canceled":
            raise AdminError(400, f"subscription {path['id']} is canceled")
        return state

    async def renew(self, item: dict, path: dict) -> dict:
        """A cycle renewal at ``at``: a new period begins; its invoice is paid, or fails (``paid: false``)."""
        state = self._live_subscription(path)
        at = unix_time(item, "at")
        paid = item.get("paid", True)
        if not isinstance(paid, bool):
            raise AdminError(400, "paid must be a boolean")
        sub_item = state.obj["items"]["data"][0]
        previous_start = sub_item["current_period_start"]
        sub_item.update(current_period_start=at, current_period_end=at + state.interval_days * 86400)
        invoice = self._invoice(state, "subscription_cycle", at, previous_start, at, paid=paid)
        state.obj.update(status="active" if paid else "past_due", latest_invoice=invoice["id"])
        event_id = await self._emit("invoice.paid" if paid else "invoice.payment_failed", invoice, at)
        return {"invoice_id": invoice["id"], "event_id": event_id}

    async def cancel(self, item: dict, path: dict) -> dict:
        state = self._live_subscription(path)
        at = unix_time(item, "at")
        reason = item.get("reason", "cancellation_requested")
        if reason not in ("cancellation_requested", "payment_failed", "payment_disputed"):
            raise AdminError(400, "reason must be cancellation_requested, payment_failed or payment_disputed")
        state.obj.update(status="canceled", canceled_at=at, ended_at=at,
                         cancellation_details={"reason": reason, "feedback": None, "comment": None})
        event_id = await self._emit("customer.subscription.deleted", state.obj, at)
        return {"id": state.obj["id"], "event_id": event_id}

    async def redeliver(self, request: Request) -> Response:
        """Send a stored event again, as Stripe does when it retries or duplicates a delivery."""
        event = self.events.objects.get(request.path_params["id"])
        if event is None:
            return JSONResponse({"error": f"unknown event {request.path_params['id']!r}"}, status_code=404)
        listeners = self._listeners(event["type"])
        await self._deliver(event, listeners)
        return JSONResponse({"event_id": event["id"], "deliveries": len(listeners)})


def admin(handler: Callable[[dict, dict], Awaitable[dict]]) -> Callable[[Request], Awaitable[Response]]:
    """A bulk admin endpoint whose handler gets the request's path parameters."""
    return bulk_admin(handler, context=lambda request: request.path_params)
