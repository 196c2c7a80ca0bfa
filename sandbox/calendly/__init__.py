"""Emulated Calendly API v2: scheduled events, invitees, webhook subscriptions and signed deliveries.

Faithful to Calendly's API v2 documentation: bearer auth, the 500-per-minute bucket with ``X-RateLimit-*``
headers on every response, ``{collection, pagination}`` envelopes with opaque page tokens, and
``invitee.created`` / ``invitee.canceled`` webhooks signed
``t=<unix>,v1=<hex HMAC-SHA256(key, "t." + body)>``.
Resource URIs are absolute and built from the caller's own base URL, the way the real API answers with
``https://api.calendly.com/...``, so a client can follow them without knowing it talks to a sandbox.

One organization and one user (the host of every event). The admin routes (docs/interfaces.md#sandbox) book, cancel and
reschedule the way an invitee would on calendly.com; a reschedule cancels the old invitee and event and
creates a new event and invitee, linked both ways through ``old_invitee`` / ``new_invitee`` (Calendly's reschedule guide).
"""

from sandbox.calendly.account import Calendly

__all__ = ["Calendly"]
