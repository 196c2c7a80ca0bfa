"""Emulated Stripe API: the Events API, Checkout Sessions with line items, webhook endpoints, and
webhook deliveries signed with the ``stripe`` library's own helper.

Faithful to Stripe's API documentation: bearer or basic auth, form-encoded bodies in Stripe's bracket
notation, ``{"error": {...}}`` bodies with a ``Request-Id`` header on every answer, idempotency keys,
newest-first lists with ``starting_after`` / ``ending_before`` cursors, and events only for the last
30 days of wall-clock time. Events are immutable snapshots of their object, rendered at API version
``2025-03-31.basil`` (invoices carry ``parent.subscription_details``; subscription periods sit on the items).

The admin routes (docs/interfaces.md#sandbox) play the customer: purchases, refunds, and subscriptions that renew, fail
to renew or get canceled, each raising the events real Stripe sends for them.
"""

from sandbox.stripe_api.account import Stripe

__all__ = ["Stripe"]
