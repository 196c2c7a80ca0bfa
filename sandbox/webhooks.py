"""Webhook delivery from the emulated Calendly and Stripe to the URLs subscribed through their APIs.

Each event is delivered once, in the order it was raised, before the admin call that raised it returns;
a delivery the receiver does not answer with 2xx is retried in the background with a compressed
exponential backoff (real vendors retry for a day or three), and dropped after ``max_attempts``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class Delivery:
    service: str
    url: str
    event_type: str
    body: bytes
    sign: object  # callable () -> dict[str, str]: fresh signature headers for each attempt
    attempts: int = 0
    status: str = "pending"  # pending | sending (an attempt in flight) | delivered | failed
    last_status_code: int | None = None
    next_attempt_at: float = field(default_factory=time.monotonic)


class WebhookSender:
    def __init__(self, max_attempts: int = 8, base_delay: float = 0.5, timeout: float = 10.0) -> None:
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.timeout = timeout
        self.deliveries: list[Delivery] = []
        self._client: httpx.AsyncClient | None = None
        self._lock = asyncio.Lock()

    def reset(self) -> None:
        self.deliveries = []

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    async def send(self, service: str, url: str, event_type: str, body: bytes, sign) -> Delivery:
        """Deliver now; on failure leave it pending for the retry loop."""
        delivery = Delivery(service, url, event_type, body, sign)
        self.deliveries.append(delivery)
        await self._attempt(delivery)
        return delivery

    async def _attempt(self, delivery: Delivery) -> None:
        delivery.attempts += 1
        # In flight: the retry loop must not send it a second time while this attempt awaits its answer.
        delivery.status = "sending"
        headers = {"Content-Type": "application/json", **delivery.sign()}
        try:
            response = await self.client().post(delivery.url, content=delivery.body, headers=headers)
            delivery.last_status_code = response.status_code
            ok = 200 <= response.status_code < 300
        except httpx.HTTPError:
            ok = False
        if ok:
            delivery.status = "delivered"
        elif delivery.attempts >= self.max_attempts:
            delivery.status = "failed"
        else:
            delivery.status = "pending"
            delivery.next_attempt_at = time.monotonic() + self.base_delay * 2 ** (delivery.attempts - 1)

    async def retry_due(self, force: bool = False) -> int:
        """Retry pending deliveries whose backoff has passed (all of them with ``force``)."""
        async with self._lock:
            now = time.monotonic()
            due = [d for d in self.deliveries
                   if d.status == "pending" and d.attempts and (force or d.next_attempt_at <= now)]
            for delivery in due:
                await self._attempt(delivery)
            return len(due)

    async def run_retry_loop(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            await self.retry_due()

    def summary(self) -> list[dict]:
        return [
            {"service": d.service, "url": d.url, "event_type": d.event_type, "status": d.status,
             "attempts": d.attempts, "last_status_code": d.last_status_code}
            for d in self.deliveries
        ]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
