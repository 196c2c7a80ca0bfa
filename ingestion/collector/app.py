"""The collector (SPEC §5.2): the intake service for web forms and Calendly / Stripe webhooks.

Every accepted request is appended durably (written, flushed, fsynced) to the landing zone before the
answer goes out, so a 2xx means the record survives a crash; every rejected request lands nothing and is
logged in one line (reason and path, never a secret or a body). dlt loads the landing zone later.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

import stripe
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingestion.collector.signatures import ReplayGuard, SignatureError, hmac_sha256_hex, verify_calendly
from ingestion.forms import KNOWN_FIELDS, FieldError, check_email, parse_fields
from ingestion.landing import LandingZone, utc_now_iso

logger = logging.getLogger("ingestion.collector")

DEFAULT_FORM_IDS = frozenset({"contact", "newsletter", "webinar", "download"})
MAX_FORM_BYTES = 64 * 1024
# Vendor events (a Stripe invoice with many lines) can be much larger than a form post.
MAX_WEBHOOK_BYTES = 1024 * 1024
STRIPE_TOLERANCE_SECONDS = stripe.Webhook.DEFAULT_TOLERANCE
FORM_CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded")


class Rejected(Exception):
    """A request answered with a client error; nothing of it is landed."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body = {"error": message} if field is None else {"error": message, "field": field}
    return JSONResponse(body, status_code=status)


def _guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Turn rejections into JSON errors and unexpected failures into a 500, logging each one line."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except Rejected as exc:
            logger.warning("rejected %s %r: %d %s", request.method, request.url.path, exc.status, exc.message)
            return _error(exc.status, exc.message, exc.field)
        except ClientDisconnect:
            logger.warning("rejected %s %r: client disconnected", request.method, request.url.path)
            return _error(400, "client disconnected")
        except Exception as exc:
            logger.error("failed %s %r: unexpected %s", request.method, request.url.path, type(exc).__name__,
                         exc_info=exc)
            return _error(500, "internal error; nothing was recorded, retry later")

    endpoint.__name__ = handler.__name__
    return endpoint


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 past ``limit`` bytes.

    Content-Length is checked first (cheap), and the limit is enforced again while reading, since a
    chunked body has no length and a client may lie about it.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise Rejected(400, "invalid Content-Length header")
        if int(declared) > limit:
            raise Rejected(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _parse_json_object(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except ValueError:
        raise Rejected(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Rejected(400, "body must be a JSON object")
    return data


def _parse_urlencoded(body: bytes) -> dict[str, object]:
    """Form fields of an HTML form post. A known field given twice is ambiguous and refused; an unknown
    one given twice (a checkbox group) is kept as a list."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise Rejected(400, "form body is not valid UTF-8") from None
    data: dict[str, object] = {}
    for key, value in pairs:
        if key not in data:
            data[key] = value
        elif key in KNOWN_FIELDS:
            raise Rejected(422, f"{key} given more than once", key)
        else:
            previous = data[key]
            data[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
    return data


def create_collector_app(
    landing: LandingZone,
    *,
    calendly_signing_key: str,
    stripe_webhook_secret: str,
    known_form_ids: frozenset[str] = DEFAULT_FORM_IDS,
    calendly_tolerance_seconds: int = 180,
) -> Starlette:
    """The collector's ASGI app. An empty signing key or secret disables that webhook (503), since an
    empty HMAC key would let anyone forge signatures."""
    calendly_replays = ReplayGuard(calendly_tolerance_seconds)
    stripe_replays = ReplayGuard(STRIPE_TOLERANCE_SECONDS)

    async def land(stream: str, record: dict) -> None:
        await run_in_threadpool(landing.append, stream, record)

    @_guarded
    async def submit_form(request: Request) -> Response:
        form_id: str = request.path_params["form_id"]
        media_type = _media_type(request)
        if media_type not in FORM_CONTENT_TYPES:
            raise Rejected(415, "content type must be application/json or application/x-www-form-urlencoded")
        body = await _read_body(request, MAX_FORM_BYTES)
        data = _parse_json_object(body) if media_type == "application/json" else _parse_urlencoded(body)
        try:
            fields = parse_fields(data)
            check_email(fields)
        except FieldError as exc:
            raise Rejected(422, exc.message, exc.field) from None
        if form_id not in known_form_ids:
            # Accepted all the same: a lead must never be lost because a form went live before the config.
            logger.warning("accepted a submission for unknown form id %r", form_id[:100])
        now = utc_now_iso()
        record = {"id": f"frm_{uuid.uuid4().hex}", "form_id": form_id, "submitted_at": now,
                  "received_at": now, "origin": "collector", "fields": fields}
        await land("forms", record)
        return JSONResponse({"id": record["id"]}, status_code=202)

    @_guarded
    async def calendly_webhook(request: Request) -> Response:
        if not calendly_signing_key:
            raise Rejected(503, "calendly webhooks are not configured on this collector")
        body = await _read_body(request, MAX_WEBHOOK_BYTES)
        try:
            timestamp, signature = verify_calendly(body, request.headers.get("calendly-webhook-signature"),
                                                   calendly_signing_key, calendly_tolerance_seconds)
        except SignatureError as exc:
            raise Rejected(401, f"invalid webhook signature: {exc}") from None
        event = _parse_json_object(body)
        if not calendly_replays.reserve(timestamp, signature):
            raise Rejected(401, "invalid webhook signature: already received (replay)")
        return await land_webhook("calendly", event, calendly_replays, timestamp, signature)

    @_guarded
    async def stripe_webhook(request: Request) -> Response:
        if not stripe_webhook_secret:
            raise Rejected(503, "stripe webhooks are not configured on this collector")
        header = request.headers.get("stripe-signature")
        if not header:
            raise Rejected(400, "missing Stripe-Signature header")
        body = await _read_body(request, MAX_WEBHOOK_BYTES)
        try:
            stripe.Webhook.construct_event(body, header, stripe_webhook_secret)
        except stripe.SignatureVerificationError:
            raise Rejected(400, "invalid webhook signature") from None
        except (ValueError, AttributeError):
            # ValueError: not UTF-8 or not JSON. AttributeError: JSON but not an object (the library
            # builds its Event by calling .get on the parsed body).
            raise Rejected(400, "body must be a JSON object") from None
        event = _parse_json_object(body)
        timestamp = _stripe_timestamp(header)
        signature = hmac_sha256_hex(stripe_webhook_secret, timestamp, body)
        if not stripe_replays.reserve(timestamp, signature):
            raise Rejected(400, "invalid webhook signature: already received (replay)")
        return await land_webhook("stripe", event, stripe_replays, timestamp, signature)

    async def land_webhook(stream: str, event: dict, replays: ReplayGuard, timestamp: int,
                           signature: str) -> Response:
        record = {"id": f"{stream[:3]}_{uuid.uuid4().hex}", "received_at": utc_now_iso(), "event": event}
        try:
            await land(stream, record)
        except BaseException:
            replays.release(timestamp, signature)
            raise
        return JSONResponse({"id": record["id"]})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        logger.warning("rejected %s %r: %d %s", request.method, request.url.path, exc.status_code, exc.detail)
        return _error(exc.status_code, str(exc.detail))

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/forms/{form_id}", submit_form, methods=["POST"]),
            Route("/webhooks/calendly", calendly_webhook, methods=["POST"]),
            Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error},
    )


def _stripe_timestamp(header: str) -> int:
    """The ``t`` of a Stripe-Signature header the library has already accepted (the first ``t``, as there)."""
    pairs = (part.partition("=") for part in header.split(","))
    return int(next(value for key, _, value in pairs if key == "t"))
