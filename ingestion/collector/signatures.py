"""Webhook signature checks for the collector: Calendly's HMAC scheme and a replay guard for both vendors.

Stripe signatures are verified by the ``stripe`` library itself (in ``app.py``); Calendly ships no Python
SDK, so its scheme is implemented here: ``Calendly-Webhook-Signature: t=<unix>,v1=<hex>``
with ``v1 = HMAC-SHA256(signing key, f"{t}." + raw body)``.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
import threading
import time

_HEX64 = re.compile(r"[0-9a-f]{64}")


class SignatureError(Exception):
    """A webhook that must not be landed. The message is safe to log and to return: no key, no body."""


def hmac_sha256_hex(key: str, timestamp: int, body: bytes) -> str:
    return hmac.new(key.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_digest(signature: str) -> str:
    """What the replay guard keeps (in memory and in the landed record) of an accepted signature."""
    return hashlib.sha256(signature.encode("ascii")).hexdigest()


def parse_calendly_header(header: str | None) -> tuple[int, list[str]]:
    """``t`` and every ``v1`` of the header; raises ``SignatureError`` when it is missing or malformed."""
    if not header:
        raise SignatureError("missing Calendly-Webhook-Signature header")
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed Calendly-Webhook-Signature header")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value.lower())
    # Twelve digits reach the year 33658: a longer t is garbage, and int() of thousands of digits fails.
    if len(timestamps) != 1 or not (timestamps[0].isascii() and timestamps[0].isdigit()) \
            or len(timestamps[0]) > 12:
        raise SignatureError("malformed Calendly-Webhook-Signature header: needs exactly one numeric t")
    if not signatures or not all(_HEX64.fullmatch(s) for s in signatures):
        raise SignatureError("malformed Calendly-Webhook-Signature header: needs a hex v1 signature")
    return int(timestamps[0]), signatures


def verify_calendly(body: bytes, header: str | None, signing_key: str, tolerance_seconds: int,
                    now: float | None = None) -> tuple[int, str]:
    """Check the signature on the raw body and the timestamp's freshness (both directions).

    Returns ``(t, signature)`` for the replay guard. The signature is checked before the timestamp so a
    forger learns nothing about the clock from the error.
    """
    timestamp, signatures = parse_calendly_header(header)
    expected = hmac_sha256_hex(signing_key, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError("signature does not match")
    current = time.time() if now is None else now
    if timestamp < current - tolerance_seconds:
        raise SignatureError("signature timestamp is too old")
    if timestamp > current + tolerance_seconds:
        raise SignatureError("signature timestamp is in the future")
    return timestamp, expected


class ReplayGuard:
    """Signatures accepted recently, so the same signed request cannot be landed twice.

    An entry is kept until its timestamp falls out of the tolerance window, after which the freshness
    check rejects a replay anyway. The cache is bounded: when full, the entries closest to expiry go first
    (a flood of valid, signed deliveries is the only way to fill it, and that needs the secret). The guard
    lives in memory; the collector refills it at start-up from the records it landed (``restore``).
    """

    def __init__(self, tolerance_seconds: int, max_entries: int = 100_000) -> None:
        self.tolerance_seconds = tolerance_seconds
        self.max_entries = max_entries
        self._expiry: dict[tuple[int, str], float] = {}
        self._heap: list[tuple[float, tuple[int, str]]] = []
        self._lock = threading.Lock()

    def reserve(self, timestamp: int, signature: str, now: float | None = None) -> bool:
        """Record a signature; False when it was already accepted within the window (a replay)."""
        current = time.time() if now is None else now
        key = (timestamp, signature)
        with self._lock:
            self._purge(current)
            if key in self._expiry:
                return False
            while len(self._expiry) >= self.max_entries:
                expires_at, oldest = heapq.heappop(self._heap)
                if self._expiry.get(oldest) == expires_at:
                    del self._expiry[oldest]
            expires_at = max(timestamp, current) + self.tolerance_seconds
            self._expiry[key] = expires_at
            heapq.heappush(self._heap, (expires_at, key))
            return True

    def restore(self, timestamp: int, signature: str, accepted_at: float) -> None:
        """Re-enter a signature accepted at ``accepted_at`` (e.g. before a restart); its expiry is as then."""
        self.reserve(timestamp, signature, now=accepted_at)

    def release(self, timestamp: int, signature: str) -> None:
        """Forget a reservation whose request was not landed, so the vendor's retry is not refused."""
        with self._lock:
            self._expiry.pop((timestamp, signature), None)

    def __len__(self) -> int:
        return len(self._expiry)

    def _purge(self, current: float) -> None:
        while self._heap and self._heap[0][0] <= current:
            expires_at, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == expires_at:
                del self._expiry[key]
