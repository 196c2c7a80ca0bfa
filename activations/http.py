"""The transport every destination client shares: auth, pacing, retries, call counts and safe errors.

Why not ingestion's HTTP client (dlt's): activations must not import ingestion (docs/architecture.md), and
writes need more than reads do; what both share (``ApiError``, masking, the wait headers, the vendor's
message) is ``vendor_http``'s. A run should stay under the vendor's limit instead of bouncing off it, so a
per-bucket ``Pacer`` reads the limit headers of every answer and waits before the request that would be
refused.
When a 429 still comes (another app shares the bucket), ``Retry-After`` is honoured, then the vendor's
window header, then exponential backoff; rate limiting has its own, larger budget and never surfaces as
an error while that budget lasts. 5xx answers and timeouts are retried with backoff, a bounded number
of times, through tenacity.

A write that is not idempotent (a note, an email) cannot be retried blindly: when its answer is lost
(read timeout, dropped connection, any 5xx: the sandbox, like a real gateway, may fail *after* the write
happened) the transport raises ``MaybeApplied`` and the caller reconciles before sending again.

Secrets are passed in and sent only as headers. A vendor may echo a credential in what it answers (an
error message, a per-row reason of a multi-status answer), so every secret the transport is given (its own
and any other the caller wants kept out, e.g. every configured one) is replaced by ``***`` in each answer
that is not a plain success, before any of it is logged, raised or returned to be stored.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self
from urllib.parse import quote

import httpx
import tenacity

from vendor_http import ApiError, scrub, vendor_message, wait_seconds

logger = logging.getLogger(__name__)

Outcome = Literal["accepted", "rejected", "maybe_applied"]


@dataclass(frozen=True)
class RowOutcome:
    """What a destination did with one row (a contact, a note, a list member), in input order.

    ``maybe_applied``: the answer was lost; the row must not be marked synced, and a non-idempotent
    write must be reconciled before it is sent again.
    """

    key: str
    status: Outcome
    id: str | None = None
    created: bool | None = None
    error: str | None = None
    code: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


class MaybeApplied(ApiError):
    """A non-idempotent write whose answer was lost: it may or may not have happened. Reconcile first."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Rate limiting is expected, so it gets a larger budget than errors."""

    max_attempts: int = 5
    max_rate_limit_waits: int = 30
    base_delay: float = 0.5
    max_delay: float = 60.0
    timeout: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: about 0.5 s, 1 s, 2 s, ... capped at ``max_delay``."""
        return min(self.max_delay, self.base_delay * 2 ** max(0, attempt - 1)) * random.uniform(0.8, 1.0)


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class Limits:
    """A bucket's state as one answer reports it. ``window`` is set for rolling windows (HubSpot),
    ``reset`` (seconds until the bucket refills) for Brevo."""

    remaining: int
    limit: int | None = None
    window: float | None = None
    reset: float | None = None


LimitReader = Callable[[httpx.Headers], Limits | None]


def _number(headers: httpx.Headers, name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


def hubspot_limits(headers: httpx.Headers) -> Limits | None:
    """``X-HubSpot-RateLimit-Remaining``/``-Max``/``-Interval-Milliseconds`` (absent on search)."""
    remaining = _number(headers, "x-hubspot-ratelimit-remaining")
    if remaining is None:
        return None
    limit = _number(headers, "x-hubspot-ratelimit-max")
    interval = _number(headers, "x-hubspot-ratelimit-interval-milliseconds")
    return Limits(int(remaining), int(limit) if limit else None, interval / 1000 if interval else None)


def brevo_limits(headers: httpx.Headers) -> Limits | None:
    """``x-sib-ratelimit-remaining``/``-limit``/``-reset`` (reset in seconds)."""
    remaining = _number(headers, "x-sib-ratelimit-remaining")
    if remaining is None:
        return None
    limit = _number(headers, "x-sib-ratelimit-limit")
    return Limits(int(remaining), int(limit) if limit else None, reset=_number(headers, "x-sib-ratelimit-reset"))


class Pacer:
    """Keeps one rate-limit bucket from overflowing, from the headers the vendor sends back.

    When an answer says nothing is left, the next request waits until a slot frees: for a rolling
    window, when the oldest request we made in it leaves the window (timed at the answer, which is
    never earlier than the server counted it); otherwise after the reported reset.
    """

    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._remaining: int | None = None
        self._ready_at = 0.0
        self._accepted: collections.deque[float] = collections.deque()
        self.waits = 0
        self.waited_seconds = 0.0

    def wait(self) -> None:
        with self._lock:
            delay = self._ready_at - self._clock() if self._remaining is not None and self._remaining <= 0 else 0
            self._remaining = None
            if delay > 0:
                self.waits += 1
                self.waited_seconds += delay
        if delay > 0:
            self._sleep(delay)

    def observe(self, status: int, limits: Limits | None) -> None:
        now = self._clock()
        with self._lock:
            if status != 429:
                self._accepted.append(now)
            if limits is None:
                return
            if limits.window is not None:
                while self._accepted and self._accepted[0] <= now - limits.window:
                    self._accepted.popleft()
                while limits.limit and len(self._accepted) > limits.limit:
                    self._accepted.popleft()
                oldest = self._accepted[0] if self._accepted else now
                self._ready_at = oldest + limits.window
            else:
                self._accepted.clear()
                self._ready_at = now + (limits.reset or 0.0)
            self._remaining = limits.remaining


@dataclass
class TransportStats:
    """What one client did: requests per "METHOD path-template", 429s met, retries, pacing waits."""

    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    rate_limited: int = 0
    retries: int = 0
    paced_waits: int = 0
    paced_seconds: float = 0.0


class _Transient(Exception):
    """One failed attempt worth retrying (kind: rate_limited, server, network)."""

    def __init__(self, kind: str, status: int | None, message: str, delay: float | None = None,
                 body: Any = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.message = message
        self.delay = delay
        self.body = body


# Failures that happen before the request leaves: safe to retry even for a non-idempotent write.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class Transport:
    """JSON over HTTP to one destination, with pacing per rate-limit bucket and bounded retries."""

    def __init__(
        self,
        vendor: str,
        base_url: str,
        auth_headers: Mapping[str, str],
        *,
        secrets: Iterable[str],
        limits: LimitReader,
        policy: RetryPolicy = DEFAULT_POLICY,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.vendor = vendor
        self.policy = policy
        self.stats = TransportStats()
        self._secrets = tuple(secrets)
        self._read_limits = limits
        self._sleep = sleep
        self._clock = clock
        self._pacers: dict[str, Pacer] = {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"accept": "application/json", "content-type": "application/json", **auth_headers},
            timeout=policy.timeout,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def pacer(self, bucket: str) -> Pacer:
        if bucket not in self._pacers:
            self._pacers[bucket] = Pacer(self._clock, self._sleep)
        return self._pacers[bucket]

    def request(
        self,
        method: str,
        template: str,
        *,
        path: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        bucket: str = "default",
        idempotent: bool = True,
    ) -> tuple[int, Any]:
        """Send one logical request; returns (status, decoded body or None). Raises ``ApiError`` on a
        4xx or when retries run out, ``MaybeApplied`` when a non-idempotent write's answer is lost."""
        url = template.format(**{k: quote(str(v), safe="") for k, v in (path or {}).items()})
        counts = {"rate_limited": 0, "failures": 0}
        pacer = self.pacer(bucket)

        def attempt() -> tuple[int, Any]:
            pacer.wait()
            self.stats.calls[f"{method} {template}"] += 1
            try:
                response = self._http.request(method, url, params=params, json=json_body)
            except httpx.TransportError as exc:
                reason = type(exc).__name__
                if not idempotent and not isinstance(exc, _NOT_SENT):
                    raise MaybeApplied(self.vendor, method, template, None,
                                       f"{reason}: answer lost") from None
                counts["failures"] += 1
                raise _Transient("network", None, reason) from None
            limits = self._read_limits(response.headers)
            pacer.observe(response.status_code, limits)
            status = response.status_code
            body = _decode(response)
            if 200 <= status < 300 and status != 207:
                return status, body
            body = scrub(body, self._secrets)
            message = vendor_message(body, response.text, response.reason_phrase, self._secrets)
            if status == 429:
                self.stats.rate_limited += 1
                if isinstance(body, dict) and body.get("policyName") == "DAILY":
                    raise ApiError(self.vendor, method, template, status, message, body)
                counts["rate_limited"] += 1
                raise _Transient("rate_limited", status, message, wait_seconds(response.headers), body)
            if status >= 500:
                if not idempotent:
                    raise MaybeApplied(self.vendor, method, template, status, message, body)
                counts["failures"] += 1
                raise _Transient("server", status, message, body=body)
            if status >= 400:
                raise ApiError(self.vendor, method, template, status, message, body)
            return status, body

        def give_up(state: tenacity.RetryCallState) -> bool:
            if counts["rate_limited"] > self.policy.max_rate_limit_waits:
                return True
            return counts["failures"] >= self.policy.max_attempts

        def delay(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, _Transient) and error.kind == "rate_limited":
                wait = error.delay if error.delay is not None else self.policy.backoff(counts["rate_limited"])
            else:
                wait = self.policy.backoff(counts["failures"])
            wait = min(wait, self.policy.max_delay)
            logger.info("%s %s %s: %s, retrying in %.2f s", self.vendor, method, template,
                        error.message if isinstance(error, _Transient) else "error", wait)
            self.stats.retries += 1
            return wait

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Transient),
            stop=give_up,
            wait=delay,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            result = retrying(attempt)
        except _Transient as failure:
            raise ApiError(self.vendor, method, template, failure.status,
                           f"gave up after retries: {failure.message}", failure.body) from None
        finally:
            self.stats.paced_waits = sum(p.waits for p in self._pacers.values())
            self.stats.paced_seconds = sum(p.waited_seconds for p in self._pacers.values())
        return result



def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


class DestinationClient:
    """What every destination client shares: its ``Transport`` (``self.http``), closing it, and its stats."""

    http: Transport

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> TransportStats:
        return self.http.stats
