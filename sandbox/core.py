"""Shared machinery of the emulators: auth, call counting, rate limits, fault injection, careless echoes.

Every emulated endpoint is declared with ``Service.route`` so that each request goes through the same
gate, in the order a real API applies them: count the call, injected fault, authentication, rate limit,
then the handler. Each vendor supplies its own error bodies and rate-limit headers, so the clients see
exactly what the real service would send.

Echo mode (``Service.echo_credentials``) plays a careless vendor: every error answer (4xx, 5xx, 429, and
the per-row errors of a 207) repeats the credential the request presented inside its message field, so
that tests can prove a client keeps it out of its logs, errors and stored reasons.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

Handler = Callable[[Request], Awaitable[Response]]


class RollingWindow:
    """At most ``limit`` requests in any ``window_seconds``: the vendors' rolling-window limits."""

    def __init__(self, limit: int, window_seconds: float) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._hits: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, int, float]:
        """Try to take one request. Returns (allowed, remaining, seconds until a slot frees up)."""
        now = time.monotonic()
        with self._lock:
            while self._hits and self._hits[0] <= now - self.window_seconds:
                self._hits.popleft()
            if len(self._hits) >= self.limit:
                return False, 0, self._hits[0] + self.window_seconds - now
            self._hits.append(now)
            reset = self._hits[0] + self.window_seconds - now
            return True, self.limit - len(self._hits), reset


@dataclass
class Faults:
    """Injected failures for one service: a share of 429s, 500s and timeouts, reproducible by seed."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    timeout_seconds: float = 5.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    latency_seconds: float = 0.0
    """Every answer comes this long after the request was handled, as a real API's does: a client killed in
    that time has had its write applied without learning it (what the crash suite needs to hit)."""

    def draw(self) -> str | None:
        if not (self.rate_429 or self.rate_500 or self.rate_timeout):
            return None
        roll = self.rng.random()
        if roll < self.rate_429:
            return "429"
        if roll < self.rate_429 + self.rate_500:
            return "500"
        if roll < self.rate_429 + self.rate_500 + self.rate_timeout:
            return "timeout"
        return None


@dataclass
class Limited:
    """What a rate-limit group reports back: the outcome and the numbers for the vendor's headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float
    window_seconds: float
    group: str


class Service:
    """One emulated vendor API: its credentials, rate-limit groups, error formats and routes."""

    def __init__(
        self,
        name: str,
        *,
        check_auth: Callable[[Request], bool],
        unauthorized: Callable[[], Response],
        too_many_requests: Callable[[Limited], Response],
        server_error: Callable[[], Response],
        limit_headers: Callable[[Limited], dict[str, str]],
        groups: dict[str, tuple[int, float]],
        calls: collections.Counter[str],
    ) -> None:
        self.name = name
        self.check_auth = check_auth
        self.unauthorized = unauthorized
        self.too_many_requests = too_many_requests
        self.server_error = server_error
        self.limit_headers = limit_headers
        self.default_groups = dict(groups)
        self.calls = calls
        self.faults = Faults()
        self.limits_on = True
        self.echo_credentials = False
        self.echoed = 0
        self.windows: dict[str, RollingWindow] = {}
        self.route_groups: dict[str, str] = {}
        """``METHOD /path/template`` -> its rate-limit group, for every limited endpoint."""
        self.reset_limits()

    def reset_limits(self, overrides: dict[str, tuple[int, float]] | None = None) -> None:
        groups = {**self.default_groups, **(overrides or {})}
        self.windows = {g: RollingWindow(limit, window) for g, (limit, window) in groups.items()}

    def set_faults(self, rate_429: float = 0, rate_500: float = 0, rate_timeout: float = 0,
                   seed: int = 0, timeout_seconds: float = 5.0, latency_seconds: float = 0.0) -> None:
        self.faults = Faults(rate_429, rate_500, rate_timeout, timeout_seconds, random.Random(seed),
                             latency_seconds)

    def describe_limits(self) -> dict[str, Any]:
        """The limits in force (what ``GET /_sandbox/limits`` shows, e.g. to compute a rate-limit floor)."""
        return {
            "on": self.limits_on,
            "groups": {name: {"limit": window.limit, "window_seconds": window.window_seconds}
                       for name, window in self.windows.items()},
            "routes": dict(self.route_groups),
        }

    def _limit(self, group: str) -> Limited | None:
        window = self.windows.get(group)
        if window is None:
            return None
        if not self.limits_on:
            return Limited(True, window.limit, window.limit, window.window_seconds, window.window_seconds, group)
        allowed, remaining, reset = window.take()
        return Limited(allowed, window.limit, remaining, reset, window.window_seconds, group)

    def route(self, method: str, path: str, *, group: str | None = "default",
              headers_on_success: bool = True) -> Callable[[Handler], Route]:
        """Declare an endpoint. ``group`` names the rate-limit bucket (None: not limited)."""
        key = f"{self.name} {method} {path}"
        if group:
            self.route_groups[f"{method} {path}"] = group

        def decorate(handler: Handler) -> Route:
            async def endpoint(request: Request) -> Response:
                response = await gated(request)
                return self._echoed(request, response) if self.echo_credentials else response

            async def gated(request: Request) -> Response:
                self.calls[key] += 1
                fault = self.faults.draw()
                if fault == "500":
                    return self.server_error()
                if not self.check_auth(request):
                    return self.unauthorized()
                limited = self._limit(group) if group else None
                if fault == "429" and limited is not None:
                    limited = Limited(False, limited.limit, 0, 1.0, limited.window_seconds, limited.group)
                if limited is not None and not limited.allowed:
                    response = self.too_many_requests(limited)
                    response.headers.update(self.limit_headers(limited))
                    return response
                if fault == "429":
                    return self.too_many_requests(Limited(False, 1, 0, 1.0, 1.0, group or "default"))
                response = await handler(request)
                if self.faults.latency_seconds:
                    await asyncio.sleep(self.faults.latency_seconds)
                if fault == "timeout":
                    # The write has happened; the answer never arrives in time. The hardest case for
                    # a client, and the one that exactly-once sending has to survive.
                    await asyncio.sleep(self.faults.timeout_seconds)
                    return self.server_error()
                if limited is not None and headers_on_success:
                    response.headers.update(self.limit_headers(limited))
                return response

            endpoint.__name__ = handler.__name__
            return Route(path, endpoint, methods=[method])

        return decorate

    def _echoed(self, request: Request, response: Response) -> Response:
        """``response`` with the request's credential appended to every ``message`` of an error answer."""
        credential = presented_credential(request)
        if credential is None or not (response.status_code >= 400 or response.status_code == 207):
            return response
        try:
            body = json.loads(getattr(response, "body", b""))
        except ValueError:
            return response
        if not _append_to_messages(body, f" (credential presented: {credential})"):
            if not isinstance(body, dict):
                return response
            body["message"] = f"credential presented: {credential}"
        self.echoed += 1
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
        return JSONResponse(body, status_code=response.status_code, headers=headers)


def presented_credential(request: Request) -> str | None:
    """What the request authenticated with: Brevo's ``api-key`` header, else the ``Authorization`` value
    after its scheme (the bearer token, Stripe's key)."""
    api_key = request.headers.get("api-key")
    if api_key:
        return api_key
    _, _, credential = request.headers.get("authorization", "").partition(" ")
    return credential.strip() or None


def _append_to_messages(body: Any, suffix: str) -> bool:
    """Append ``suffix`` to every string ``message`` in ``body``, at any depth; True when there was one."""
    found = False
    if isinstance(body, dict):
        for name, value in body.items():
            if name == "message" and isinstance(value, str):
                body[name] = value + suffix
                found = True
            else:
                found = _append_to_messages(value, suffix) or found
    elif isinstance(body, list):
        for value in body:
            found = _append_to_messages(value, suffix) or found
    return found


def unknown_route(routes: list[Route], *, not_found: Callable[[Request], Response],
                  wrong_method: Callable[[Request, list[str]], Response]) -> Route:
    """A last route that answers in the vendor's own error format what no route in ``routes`` serves.

    A path that a route serves with other methods gets ``wrong_method(request, allowed)``; any other path
    gets ``not_found(request)``. Without it the web framework would answer in plain text.
    """

    async def endpoint(request: Request) -> Response:
        allowed = sorted({
            method
            for route in routes
            if route.matches({**request.scope, "method": "OPTIONS"})[0] is not Match.NONE
            for method in route.methods or ()
        })
        return wrong_method(request, allowed) if allowed else not_found(request)

    return Route("/{path:path}", endpoint, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])


def env(name: str, default: str) -> str:
    """Credentials the sandbox accepts: the clients' own variables, so one ``.env`` serves both."""
    return os.environ.get(name) or default


def json_error(status: int, body: dict) -> JSONResponse:
    return JSONResponse(body, status_code=status)


async def read_json(request: Request) -> object | None:
    """The request body as JSON, or None when it is not valid JSON."""
    try:
        return await request.json()
    except ValueError:
        return None


class AdminError(Exception):
    """A rejected admin call: the HTTP status and a plain message for the test or generator driving it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def rendering(error_type: type[Exception]) -> Callable[[Handler], Handler]:
    """Wrap an endpoint so that ``error_type`` (a vendor error with ``.response()``) becomes its answer."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: Request) -> Response:
            try:
                return await handler(request)
            except error_type as error:
                return error.response()  # type: ignore[attr-defined]

        return wrapper

    return decorate


def bulk_admin(handler: Callable[[dict, Any], Awaitable[dict]], *,
               context: Callable[[Request], Any]) -> Handler:
    """An admin endpoint taking one object or a list of them (the world generator's bulk form).

    ``handler(item, context(request))`` runs for each item in order; a rejected item stops the batch and
    the answer lists what was already done.
    """

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        body = await read_json(request)
        items = body if isinstance(body, list) else [body]
        if not all(isinstance(item, dict) for item in items):
            return JSONResponse({"error": "body must be a JSON object or a list of objects"}, status_code=400)
        shared = context(request)
        results: list[dict] = []
        for index, item in enumerate(items):
            try:
                results.append(await handler(item, shared))
            except AdminError as error:
                answer: dict[str, Any] = {"error": error.message}
                if isinstance(body, list):
                    answer.update(index=index, results=results)
                return JSONResponse(answer, status_code=error.status)
        return JSONResponse(results if isinstance(body, list) else results[0])

    return endpoint
