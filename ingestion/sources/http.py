"""The one HTTP client every REST source uses: vendor auth, bounded retries and readable errors.

Why our own small client rather than dlt's ``RESTClient``: each vendor says "slow down" differently
(``Retry-After``, ``X-HubSpot-RateLimit-Interval-Milliseconds``, ``x-sib-ratelimit-reset``,
``X-RateLimit-Reset``) and puts its error message in a different place, and the paging styles (opaque
``after`` cursors, numeric search offsets that cap at 10,000, ``page_token``, ``starting_after``, offsets)
are each a few lines in the source that owns them. httpx also lets tests swap in a ``MockTransport``.

Errors never carry credentials: messages name the vendor, method, path and the vendor's own message, and a
vendor may echo a credential in that message, so every secret the client is given (its own and any other the
caller wants kept out, e.g. every configured one) is replaced by ``***`` before the message is raised.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Self

import httpx

logger = logging.getLogger(__name__)

MASK = "***"
RETRY_HINT_HEADERS: tuple[tuple[str, float], ...] = (
    ("retry-after", 1.0),
    ("x-hubspot-ratelimit-interval-milliseconds", 0.001),
    ("x-sib-ratelimit-reset", 1.0),
    ("x-ratelimit-reset", 1.0),
)
"""Headers that say how long to wait after a 429, with the factor that turns each into seconds."""


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
    """A vendor API refused a request (4xx other than 429) or kept failing after every retry."""

    def __init__(self, vendor: str, method: str, path: str, status: int | None, message: str) -> None:
        self.vendor = vendor
        self.method = method
        self.path = path
        self.status = status
        self.vendor_message = message
        status_text = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{vendor} {method} {path} failed ({status_text}): {message}")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying. Rate limiting is expected, so it gets a larger budget than errors."""

    max_error_retries: int = 5
    max_rate_limit_waits: int = 30
    base_delay: float = 0.5
    max_delay: float = 60.0
    timeout: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, capped: 0.5 s, 1 s, 2 s, ... up to ``max_delay``."""
        delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return delay * random.uniform(0.8, 1.0)


def retry_hint_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds the vendor asks us to wait, from the first rate-limit header it sent."""
    for name, factor in RETRY_HINT_HEADERS:
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


def vendor_message(response: httpx.Response, secrets: Iterable[str]) -> str:
    """The human part of a vendor error body, wherever that vendor puts it, with ``secrets`` masked (before
    it is cut short, so that no part of one survives)."""
    try:
        body = scrub(response.json(), secrets)
    except ValueError:
        return scrub(response.text, secrets)[:500] or response.reason_phrase
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
    return str(body)[:500]


class RateGate:
    """Spaces calls at least ``1 / per_second`` apart, e.g. HubSpot search's 5 requests per second."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            time.sleep(delay)


class RestClient:
    """JSON over HTTP for one vendor. Retries 429 (honouring the vendor's wait hint), 5xx and timeouts."""

    def __init__(
        self,
        vendor: str,
        base_url: str,
        auth_headers: Mapping[str, str],
        *,
        secrets: Iterable[str] = (),
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.vendor = vendor
        self.retry = retry
        self._secrets = tuple(secrets)
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"accept": "application/json", **auth_headers},
            timeout=retry.timeout,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: Any = None, *, gate: RateGate | None = None) -> Any:
        return self.request("GET", path, params=params, gate=gate)

    def post(self, path: str, json: Any = None, *, gate: RateGate | None = None) -> Any:
        return self.request("POST", path, json=json, gate=gate)

    def request(self, method: str, path: str, *, params: Any = None, json: Any = None,
                gate: RateGate | None = None) -> Any:
        """Send one request, retrying what is worth retrying; returns the decoded JSON body."""
        errors = waits = 0
        while True:
            if gate is not None:
                gate.wait()
            try:
                response = self._http.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                errors += 1
                if errors > self.retry.max_error_retries:
                    raise self._error(method, path, None, type(exc).__name__) from None
                self._pause(method, path, type(exc).__name__, self.retry.backoff(errors))
                continue
            status = response.status_code
            if status == 429:
                waits += 1
                if waits > self.retry.max_rate_limit_waits:
                    raise self._error(method, path, status, vendor_message(response, self._secrets))
                hint = retry_hint_seconds(response.headers)
                delay = self.retry.backoff(waits) if hint is None else min(hint, self.retry.max_delay)
                self._pause(method, path, "HTTP 429", delay)
                continue
            if status >= 500:
                errors += 1
                if errors > self.retry.max_error_retries:
                    raise self._error(method, path, status, vendor_message(response, self._secrets))
                self._pause(method, path, f"HTTP {status}", self.retry.backoff(errors))
                continue
            if status >= 400:
                raise self._error(method, path, status, vendor_message(response, self._secrets))
            if status == 204 or not response.content:
                return None
            return response.json()

    def _pause(self, method: str, path: str, reason: str, delay: float) -> None:
        logger.warning("%s %s %s: %s, retrying in %.1f s", self.vendor, method, path, reason, delay)
        self._sleep(delay)

    def _error(self, method: str, path: str, status: int | None, message: str) -> ApiError:
        return ApiError(self.vendor, method, path, status, message)


def hubspot_client(base_url: str, token: str, mask: Iterable[str] = (), **kwargs: Any) -> RestClient:
    """``mask`` (here and below): other secrets to keep out of errors, should the vendor echo one."""
    return RestClient("hubspot", base_url, {"Authorization": f"Bearer {token}"}, secrets=(token, *mask),
                      **kwargs)


def brevo_client(base_url: str, api_key: str, mask: Iterable[str] = (), **kwargs: Any) -> RestClient:
    return RestClient("brevo", base_url, {"api-key": api_key}, secrets=(api_key, *mask), **kwargs)


def calendly_client(base_url: str, token: str, mask: Iterable[str] = (), **kwargs: Any) -> RestClient:
    return RestClient("calendly", base_url, {"Authorization": f"Bearer {token}"}, secrets=(token, *mask),
                      **kwargs)


def stripe_client(base_url: str, api_key: str, mask: Iterable[str] = (), **kwargs: Any) -> RestClient:
    return RestClient("stripe", base_url, {"Authorization": f"Bearer {api_key}"}, secrets=(api_key, *mask),
                      **kwargs)
