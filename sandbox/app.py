"""The sandbox: emulated HubSpot, Brevo, Calendly and Stripe behind one port, plus the admin API.

Path prefixes: ``/hubspot``, ``/brevo``, ``/calendly``, ``/stripe`` (point each client's base URL
there) and ``/_sandbox`` for what tests, the demo and the world generator drive.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from sandbox.brevo import Brevo
from sandbox.calendly import Calendly
from sandbox.core import read_json
from sandbox.hubspot import HubSpot
from sandbox.stripe_api import Stripe
from sandbox.webhooks import WebhookSender


class Sandbox:
    """Every store of every emulator, so one call can reset them all."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.webhooks = WebhookSender()
        self.emulators = {
            "hubspot": HubSpot(self.calls),
            "brevo": Brevo(self.calls, self.webhooks),
            "calendly": Calendly(self.calls, self.webhooks),
            "stripe": Stripe(self.calls, self.webhooks),
        }
        self._saved: dict[str, dict] | None = None

    def reset(self) -> None:
        self.calls.clear()
        self.webhooks.reset()
        for emulator in self.emulators.values():
            emulator.reset()
            emulator.service.set_faults()
            emulator.service.limits_on = True
            emulator.service.reset_limits()
            emulator.service.echo_credentials = False
            emulator.service.echoed = 0

    def snapshot(self) -> None:
        """Keep a copy of every emulator's stores (not the shared call counts, faults, limits or webhook
        sender), for ``restore``: a test can replay from one exact state, ids and timestamps included."""
        if self.emulators["brevo"].pending_imports():
            raise RuntimeError("Brevo imports are still running; POST /_sandbox/brevo/imports/wait first")
        self._saved = {name: copy.deepcopy(_stores(emulator)) for name, emulator in self.emulators.items()}

    def restore(self) -> None:
        if self._saved is None:
            raise RuntimeError("no snapshot taken; POST /_sandbox/snapshot first")
        for name, emulator in self.emulators.items():
            vars(emulator).update(copy.deepcopy(self._saved[name]))

    def services(self, name: str | None) -> list:
        if name is None:
            return [e.service for e in self.emulators.values()]
        return [self.emulators[name].service] if name in self.emulators else []


SHARED_ATTRIBUTES = frozenset({"service", "calls", "webhooks", "_imports"})
"""What an emulator holds that is not its stores: its gate (faults, limits), the shared call counter and
webhook sender, and running import tasks."""


def _stores(emulator: object) -> dict:
    return {name: value for name, value in vars(emulator).items() if name not in SHARED_ATTRIBUTES}


def admin_routes(sandbox: Sandbox) -> list[Route]:
    async def reset(request: Request) -> JSONResponse:
        sandbox.reset()
        return JSONResponse({"reset": True})

    async def calls(request: Request) -> JSONResponse:
        return JSONResponse(dict(sorted(sandbox.calls.items())))

    async def faults(request: Request) -> JSONResponse:
        body = await read_json(request)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        services = sandbox.services(body.get("service"))
        if not services:
            return JSONResponse({"error": f"unknown service {body.get('service')!r}"}, status_code=400)
        for service in services:
            service.set_faults(
                rate_429=float(body.get("rate_429", 0)), rate_500=float(body.get("rate_500", 0)),
                rate_timeout=float(body.get("rate_timeout", 0)), seed=int(body.get("seed", 0)),
                timeout_seconds=float(body.get("timeout_seconds", 5.0)),
                latency_seconds=float(body.get("latency_seconds", 0.0)),
            )
        return JSONResponse({"faults": body})

    async def limits(request: Request) -> JSONResponse:
        """``POST {"off": true}`` lifts every limit (raw-speed runs); ``{"service", "per_second"|"per_10s"}``
        sets a service's main bucket; ``{"on": true}`` restores the realistic defaults. ``GET``: per service,
        whether limits are on, each group's limit and window, and the group of each limited endpoint."""
        if request.method == "GET":
            return JSONResponse({e.service.name: e.service.describe_limits() for e in sandbox.emulators.values()})
        body = await read_json(request)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        services = sandbox.services(body.get("service"))
        if not services:
            return JSONResponse({"error": f"unknown service {body.get('service')!r}"}, status_code=400)
        for service in services:
            if body.get("off"):
                service.limits_on = False
                continue
            service.limits_on = True
            if "per_second" in body:
                service.reset_limits({"default": (int(body["per_second"]), 1.0)})
            elif "per_10s" in body:
                service.reset_limits({"default": (int(body["per_10s"]), 10.0)})
            else:
                service.reset_limits()
        return JSONResponse({"limits": body})

    async def echo_credentials(request: Request) -> JSONResponse:
        """``POST {"on": true|false, "service"?: name}``: error answers repeat the request's credential (a
        careless vendor), for every service or one. ``GET``: per service, whether it is on and how many
        answers echoed one so far. ``/reset`` turns it off."""
        if request.method == "POST":
            body = await read_json(request)
            if not isinstance(body, dict) or not isinstance(body.get("on"), bool):
                return JSONResponse({"error": 'body must be a JSON object with "on": true or false'},
                                    status_code=400)
            services = sandbox.services(body.get("service"))
            if not services:
                return JSONResponse({"error": f"unknown service {body.get('service')!r}"}, status_code=400)
            for service in services:
                service.echo_credentials = body["on"]
        return JSONResponse({e.service.name: {"on": e.service.echo_credentials, "echoed": e.service.echoed}
                             for e in sandbox.emulators.values()})

    async def snapshot(request: Request) -> JSONResponse:
        try:
            sandbox.snapshot()
        except RuntimeError as error:
            return JSONResponse({"error": str(error)}, status_code=409)
        return JSONResponse({"snapshot": True})

    async def restore(request: Request) -> JSONResponse:
        try:
            sandbox.restore()
        except RuntimeError as error:
            return JSONResponse({"error": str(error)}, status_code=409)
        return JSONResponse({"restored": True})

    async def webhook_deliveries(request: Request) -> JSONResponse:
        return JSONResponse(sandbox.webhooks.summary())

    async def flush_webhooks(request: Request) -> JSONResponse:
        retried = await sandbox.webhooks.retry_due(force=True)
        return JSONResponse({"retried": retried, "deliveries": sandbox.webhooks.summary()})

    routes = [
        Route("/reset", reset, methods=["POST"]),
        Route("/calls", calls, methods=["GET"]),
        Route("/faults", faults, methods=["POST"]),
        Route("/limits", limits, methods=["GET", "POST"]),
        Route("/echo_credentials", echo_credentials, methods=["GET", "POST"]),
        Route("/webhooks", webhook_deliveries, methods=["GET"]),
        Route("/webhooks/flush", flush_webhooks, methods=["POST"]),
        Route("/snapshot", snapshot, methods=["POST"]),
        Route("/restore", restore, methods=["POST"]),
    ]
    for emulator in sandbox.emulators.values():
        routes.extend(emulator.admin_routes())
    return routes


def create_app(sandbox: Sandbox | None = None) -> Starlette:
    sandbox = sandbox or Sandbox()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        retry_loop = asyncio.create_task(sandbox.webhooks.run_retry_loop())
        try:
            yield
        finally:
            retry_loop.cancel()
            await sandbox.webhooks.aclose()

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Mount("/_sandbox", routes=admin_routes(sandbox)),
            *[Mount(f"/{name}", routes=emulator.routes()) for name, emulator in sandbox.emulators.items()],
        ],
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    return app
