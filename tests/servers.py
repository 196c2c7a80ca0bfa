"""Run an ASGI app on a free loopback port in a background thread, for tests that speak real HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from orchestration.services import free_port


def fresh_sandbox(sandbox_url: str) -> None:
    """Empty every emulator and lift the rate limits: a world of the test's own, at our own cost."""
    httpx.post(f"{sandbox_url}/_sandbox/reset").raise_for_status()
    httpx.post(f"{sandbox_url}/_sandbox/limits", json={"off": True}).raise_for_status()


def unsubscribe_calendly(sandbox_url: str) -> None:
    """Delete every Calendly webhook subscription: later bookings and cancellations reach us by REST only, as
    when a collector was down."""
    headers = {"Authorization": "Bearer calendly-sandbox"}
    organization = httpx.get(f"{sandbox_url}/calendly/users/me", headers=headers).json()[
        "resource"]["current_organization"]
    subscriptions = httpx.get(f"{sandbox_url}/calendly/webhook_subscriptions", headers=headers, params={
        "organization": organization, "scope": "organization"}).json()["collection"]
    assert subscriptions, "no Calendly subscription to delete"
    for subscription in subscriptions:
        uuid = subscription["uri"].rsplit("/", 1)[-1]
        httpx.delete(f"{sandbox_url}/calendly/webhook_subscriptions/{uuid}", headers=headers).raise_for_status()


@contextmanager
def serve(app, health_path: str = "/healthz") -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(base_url + health_path, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server on {base_url} did not start")
        time.sleep(0.05)
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
