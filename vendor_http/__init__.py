"""What every conversation with a vendor API shares, reads (ingestion) and writes (activations) alike: the one
error a refused request becomes, how long a vendor asks us to wait, where it puts its message, and the
masking of every secret a careless vendor may echo back.

It imports nothing of ours and no HTTP library: headers are any case-insensitive mapping (httpx's and
requests' both are) and bodies are what the caller decoded, so each side keeps its own transport
(ingestion: dlt's ``RESTClient``; activations: ``activations/http.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

MASK = "***"
WAIT_HEADERS: tuple[tuple[str, float], ...] = (
    ("retry-after", 1.0),
    ("x-hubspot-ratelimit-interval-milliseconds", 0.001),
    ("x-sib-ratelimit-reset", 1.0),
    ("x-ratelimit-reset", 1.0),
)
"""Headers that say how long to wait after a 429, first found wins, with the factor that turns each into
seconds: the standard one (seconds or an HTTP date), then HubSpot's window, Brevo's and Calendly's reset."""


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` (vendor text, or a decoded JSON body) with every secret replaced by ``***`` at any depth."""
    # Longest first, so that a secret containing another is masked whole.
    ordered = sorted({secret for secret in secrets if secret}, key=len, reverse=True)

    def clean(item: Any) -> Any:
        if isinstance(item, str):
            for secret in ordered:
                item = item.replace(secret, MASK)
            return item
        if isinstance(item, dict):
            return {clean(key): clean(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [clean(inner) for inner in item]
        return item

    return clean(value)


class ApiError(RuntimeError):
    """A vendor refused a request (4xx other than 429), or kept failing after every retry, or never answered
    (``status`` None). ``path`` is the request's path, or its template for the activations' writes; ``body``
    the vendor's answer, masked. The message never holds a secret."""

    def __init__(self, vendor: str, method: str, path: str, status: int | None, message: str,
                 body: Any = None) -> None:
        self.vendor = vendor
        self.method = method
        self.path = path
        self.status = status
        self.vendor_message = message
        self.body = body
        status_text = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{vendor} {method} {path} failed ({status_text}): {message}")

    @property
    def category(self) -> str | None:
        """HubSpot's ``category`` or Brevo's ``code``: the machine-readable kind of error."""
        if isinstance(self.body, dict):
            return self.body.get("category") or self.body.get("code")
        return None


def wait_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds the vendor asks us to wait, from the first of ``WAIT_HEADERS`` it sent; None if it said nothing."""
    for name, factor in WAIT_HEADERS:
        value = headers.get(name)
        if not value:
            continue
        try:
            return max(0.0, float(value) * factor)
        except ValueError:
            if name == "retry-after":
                try:
                    return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
                except (TypeError, ValueError):
                    continue
    return None


def vendor_message(body: Any, text: str, reason: str, secrets: Iterable[str]) -> str:
    """The human part of an error answer, wherever the vendor puts it: Stripe's ``error.message``, else
    Calendly's ``title``, HubSpot's ``category``, Brevo's ``code`` and everyone's ``message`` (+ ``details``).
    ``body``: the decoded JSON answer (None if it was not JSON), ``text``: the raw one. Secrets are masked
    before anything is cut short, so that no part of one survives."""
    body, text = scrub(body, secrets), scrub(text, secrets)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        parts = [str(body[k]) for k in ("title", "category", "code", "message") if body.get(k)]
        details = body.get("details")
        if isinstance(details, list) and details:
            parts.append(str(details)[:300])
        if parts:
            return ": ".join(parts)
    if body is not None:
        return json.dumps(body, default=str)[:500]
    return text[:500] or reason
