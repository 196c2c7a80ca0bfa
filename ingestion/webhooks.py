"""``lifecycle webhooks register --url PUBLIC_URL``: subscribe the collector to Calendly, Stripe and Brevo.

Real clients of the real APIs (Calendly's webhook subscriptions, Stripe's webhook endpoints; base URLs configurable so the sandbox stands in).
Idempotent: an existing subscription for the same URL is left alone, so running it twice creates nothing.
Calendly disables a subscription after a day of failed deliveries and it must then be re-created, so a
disabled one is replaced. Stripe's endpoint signing secret is never printed: the operator copies it from
the Stripe dashboard into ``STRIPE_WEBHOOK_SECRET``. Brevo's marketing webhook (newsletter engagement, which
its REST API has no account-wide feed of) is registered with ``BREVO_WEBHOOK_TOKEN`` as its bearer token,
batched, so a campaign's opens arrive a page at a time rather than one call each.
"""

from __future__ import annotations

import httpx

from vendor_http import vendor_message

CALENDLY_EVENTS = ("invitee.created", "invitee.canceled")
STRIPE_EVENTS = (
    "checkout.session.completed", "charge.refunded", "invoice.paid", "invoice.payment_failed",
    "customer.subscription.created", "customer.subscription.deleted",
)
BREVO_MARKETING_EVENTS = ("opened", "click", "hardBounce", "unsubscribed", "spam")
"""What the engagement tiers and the suppressions read. Not ``delivered`` (one per recipient of every
campaign, read by no rule) nor ``softBounce`` (a full mailbox suppresses nobody, in Brevo or here)."""
PAGE_SIZE = 100


class WebhookRegistrationError(Exception):
    """A vendor refused a registration call: its HTTP status and its own message, never a credential."""

    def __init__(self, vendor: str, status: int, message: str) -> None:
        super().__init__(f"{vendor} answered {status}: {message}")
        self.vendor = vendor
        self.status = status


def register_webhooks(
    public_url: str,
    *,
    calendly_base_url: str,
    calendly_token: str,
    calendly_signing_key: str,
    stripe_base_url: str,
    stripe_api_key: str,
    brevo_base_url: str,
    brevo_api_key: str,
    brevo_webhook_token: str,
    http: httpx.Client | None = None,
) -> list[str]:
    """Make sure Calendly, Stripe and Brevo deliver to ``{public_url}/webhooks/...``; returns what was done."""
    if not brevo_webhook_token:
        raise ValueError("BREVO_WEBHOOK_TOKEN is not set: Brevo's webhook needs the token the collector checks")
    public_url = public_url.rstrip("/")
    client = http or httpx.Client(timeout=30.0)
    # Kept out of every error: a vendor may echo any credential it ever received.
    secrets = (calendly_token, calendly_signing_key, stripe_api_key, brevo_api_key, brevo_webhook_token)
    try:
        return [
            _register_calendly(client, calendly_base_url.rstrip("/"), calendly_token, calendly_signing_key,
                               f"{public_url}/webhooks/calendly", secrets),
            _register_stripe(client, stripe_base_url.rstrip("/"), stripe_api_key,
                             f"{public_url}/webhooks/stripe", secrets),
            _register_brevo(client, brevo_base_url.rstrip("/"), brevo_api_key, brevo_webhook_token,
                            f"{public_url}/webhooks/brevo", secrets),
        ]
    finally:
        if http is None:
            client.close()


def _check(vendor: str, response: httpx.Response, secrets: tuple[str, ...]) -> dict:
    """The JSON body of a 2xx answer, else a ``WebhookRegistrationError`` with the vendor's message."""
    if response.is_success:
        return response.json() if response.content else {}
    try:
        body = response.json()
    except ValueError:
        body = None
    message = vendor_message(body, response.text, response.reason_phrase or "no message", secrets)
    raise WebhookRegistrationError(vendor, response.status_code, message)


def _register_calendly(client: httpx.Client, base_url: str, token: str, signing_key: str, url: str,
                       secrets: tuple[str, ...]) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    me = _check("Calendly", client.get(f"{base_url}/users/me", headers=headers), secrets)
    organization = me["resource"]["current_organization"]
    existing = None
    params: dict[str, str | int] = {"organization": organization, "scope": "organization", "count": PAGE_SIZE}
    while True:
        page = _check("Calendly", client.get(f"{base_url}/webhook_subscriptions", params=params,
                                             headers=headers), secrets)
        existing = next((s for s in page["collection"] if s.get("callback_url") == url), None)
        next_token = (page.get("pagination") or {}).get("next_page_token")
        if existing is not None or not next_token:
            break
        params["page_token"] = next_token
    replaced = ""
    if existing is not None:
        if existing.get("state") != "disabled":
            return (f"Calendly: a webhook subscription for {url} already exists ({existing['uri']}); left as "
                    f"is. CALENDLY_WEBHOOK_SIGNING_KEY must be the signing key it was created with.")
        # Built from our own base URL: the token only ever goes to the configured API.
        uuid = existing["uri"].rstrip("/").rsplit("/", 1)[-1]
        _check("Calendly", client.delete(f"{base_url}/webhook_subscriptions/{uuid}", headers=headers), secrets)
        replaced = f" (replacing disabled subscription {existing['uri']})"
    created = _check("Calendly", client.post(f"{base_url}/webhook_subscriptions", headers=headers, json={
        "url": url, "events": list(CALENDLY_EVENTS), "organization": organization, "scope": "organization",
        "signing_key": signing_key,
    }), secrets)
    return (f"Calendly: created webhook subscription {created['resource']['uri']} for {url}{replaced}, "
            f"events {', '.join(CALENDLY_EVENTS)}, signed with CALENDLY_WEBHOOK_SIGNING_KEY.")


def _register_stripe(client: httpx.Client, base_url: str, api_key: str, url: str, secrets: tuple[str, ...]
                     ) -> str:
    headers = {"Authorization": f"Bearer {api_key}"}
    params: dict[str, str | int] = {"limit": PAGE_SIZE}
    while True:
        page = _check("Stripe", client.get(f"{base_url}/v1/webhook_endpoints", params=params, headers=headers),
                      secrets)
        existing = next((e for e in page["data"] if e.get("url") == url), None)
        if existing is not None:
            return (f"Stripe: a webhook endpoint for {url} already exists ({existing['id']}, "
                    f"status {existing.get('status', 'unknown')}); left as is. STRIPE_WEBHOOK_SECRET must "
                    f"be that endpoint's signing secret (shown in the Stripe dashboard).")
        if not page.get("has_more") or not page["data"]:
            break
        params["starting_after"] = page["data"][-1]["id"]
    created = _check("Stripe", client.post(f"{base_url}/v1/webhook_endpoints", headers=headers, data={
        "url": url, "enabled_events[]": list(STRIPE_EVENTS),
    }), secrets)
    # The answer carries the endpoint's signing secret: deliberately neither returned nor logged.
    return (f"Stripe: created webhook endpoint {created['id']} for {url}, events {', '.join(STRIPE_EVENTS)}. "
            f"Set STRIPE_WEBHOOK_SECRET to this endpoint's signing secret (shown in the Stripe dashboard).")


def _register_brevo(client: httpx.Client, base_url: str, api_key: str, token: str, url: str,
                    secrets: tuple[str, ...]) -> str:
    headers = {"api-key": api_key, "accept": "application/json"}
    page = _check("Brevo", client.get(f"{base_url}/webhooks", params={"type": "marketing"}, headers=headers),
                  secrets)
    existing = next((w for w in page.get("webhooks") or [] if w.get("url") == url), None)
    if existing is not None:
        return (f"Brevo: a marketing webhook for {url} already exists ({existing['id']}); left as is. "
                f"BREVO_WEBHOOK_TOKEN must be the bearer token it was created with.")
    created = _check("Brevo", client.post(f"{base_url}/webhooks", headers=headers, json={
        "url": url, "type": "marketing", "events": list(BREVO_MARKETING_EVENTS), "batched": True,
        "description": "lifecycle collector: newsletter engagement",
        "auth": {"type": "bearer", "token": token},
    }), secrets)
    return (f"Brevo: created marketing webhook {created['id']} for {url}, events "
            f"{', '.join(BREVO_MARKETING_EVENTS)}, batched, with BREVO_WEBHOOK_TOKEN as its bearer token.")
