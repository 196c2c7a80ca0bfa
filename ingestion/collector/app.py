"""The collector: the intake service for web forms and Calendly / Stripe / Brevo webhooks.

Every accepted request is appended durably (written, flushed, fsynced) to the landing zone before the
answer goes out, so a 2xx means the record survives a crash; every rejected request lands nothing and is
logged in one line (reason and path, never a secret or a body). dlt loads the landing zone later.

A body is accepted only if every reader of the landing zone can take it again: UTF-8, strict JSON (no
``NaN`` or ``Infinity``, no unpaired surrogate escapes) and at most ``MAX_JSON_DEPTH`` levels deep;
anything else is a 4xx with a JSON reason, never a 500.

Brevo signs nothing: its marketing webhook carries the bearer token it was registered with, compared in
constant time. A batched delivery (a JSON array) lands one record per event, in one durable write.

Replays: a signed webhook is refused when its signature was already accepted within the tolerance window,
also across restarts. The landed record itself carries the signature's timestamp and digest, and a new
collector refills its guard from the records of the last few windows, so the record and its "seen" mark
are one atomic line: a crash before the line is complete leaves neither (the vendor's retry is accepted),
a crash after it leaves both (a replay is refused).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import stripe
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingestion.collector.signatures import (
    ReplayGuard,
    SignatureError,
    hmac_sha256_hex,
    signature_digest,
    verify_calendly,
)
from ingestion.forms import KNOWN_FIELDS, FieldError, check_email, parse_fields
from ingestion.landing import LandingZone, utc_now_iso

logger = logging.getLogger("ingestion.collector")

DEFAULT_FORM_IDS = frozenset({"contact", "newsletter", "webinar", "download"})
MAX_FORM_BYTES = 64 * 1024
# Vendor events (a Stripe invoice with many lines) can be much larger than a form post.
MAX_WEBHOOK_BYTES = 1024 * 1024
STRIPE_TOLERANCE_SECONDS = stripe.Webhook.DEFAULT_TOLERANCE
FORM_CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded")
# Form posts and vendor events are a few levels deep; far deeper nesting is an attack on the parser (and on
# every later reader of the landing zone), never data.
MAX_JSON_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


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
        if not (declared.strip().isascii() and declared.strip().isdigit()):
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


def _refuse_constant(name: str) -> None:
    raise Rejected(400, f"body is not valid JSON: {name} is not a JSON number")


def _parse_json(body: bytes) -> object:
    """The body as JSON, or ``Rejected`` with the reason (a byte order mark is tolerated)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Rejected(400, "body is not valid UTF-8") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise Rejected(400, f"body is not valid JSON: {exc.msg} at {where}") from None
    except RecursionError:
        raise Rejected(400, f"body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:  # the only other one: an integer of more digits than Python converts
        raise Rejected(400, "body is not valid JSON: a number has too many digits") from None
    _check_json_values(data)
    return data


def _parse_json_object(body: bytes) -> dict:
    """The body as a JSON object, or ``Rejected`` with the reason."""
    data = _parse_json(body)
    if not isinstance(data, dict):
        raise Rejected(400, "body must be a JSON object")
    return data


def _parse_json_events(body: bytes) -> list[dict]:
    """A single event object or a batch (a non-empty array of them), as a list, or ``Rejected``."""
    data = _parse_json(body)
    events = [data] if isinstance(data, dict) else data
    if not isinstance(events, list) or not events or not all(isinstance(e, dict) for e in events):
        raise Rejected(400, "body must be a JSON object or a non-empty array of them")
    return events


def _bearer_token_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization: Bearer <token>`` header carries ``token`` (compared in constant time)."""
    scheme, _, presented = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


def _check_json_values(data: object) -> None:
    """Refuse what ``json.loads`` takes but the landing file or a strict reader cannot: nesting deeper than
    ``MAX_JSON_DEPTH``, unpaired surrogates (not encodable as UTF-8) and numbers beyond a float's range."""
    pending: list[tuple[object, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise Rejected(400, f"body is nested deeper than {MAX_JSON_DEPTH} levels")
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            pending.extend((item, depth + 1) for item in items)
        elif isinstance(value, str):
            if _SURROGATE.search(value):
                raise Rejected(400, "body has an unpaired UTF-16 surrogate escape (\\ud800-\\udfff)")
        elif isinstance(value, float) and not math.isfinite(value):
            raise Rejected(400, "body has a number beyond the range of a double")


def _parse_urlencoded(body: bytes) -> dict[str, object]:
    """Form fields of an HTML form post. A known field given twice is ambiguous and refused; an unknown
    one given twice (a checkbox group) is kept as a list."""
    try:
        # errors="strict": a percent-escape that is not UTF-8 must not become U+FFFD silently.
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise Rejected(400, "form body is not valid UTF-8 (also after percent-decoding)") from None
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
    brevo_webhook_token: str = "",
    known_form_ids: frozenset[str] = DEFAULT_FORM_IDS,
    calendly_tolerance_seconds: int = 180,
) -> Starlette:
    """The collector's ASGI app. An empty signing key, secret or token disables that webhook (503), since an
    empty HMAC key would let anyone forge signatures (and an empty token admit anyone)."""
    calendly_replays = _restored_guard(landing, "calendly", calendly_tolerance_seconds)
    stripe_replays = _restored_guard(landing, "stripe", STRIPE_TOLERANCE_SECONDS)

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
        digest = signature_digest(signature)
        if not calendly_replays.reserve(timestamp, digest):
            raise Rejected(401, "invalid webhook signature: already received (replay)")
        return await land_webhook("calendly", event, calendly_replays, timestamp, digest)

    @_guarded
    async def stripe_webhook(request: Request) -> Response:
        if not stripe_webhook_secret:
            raise Rejected(503, "stripe webhooks are not configured on this collector")
        header = request.headers.get("stripe-signature")
        if not header:
            raise Rejected(400, "missing Stripe-Signature header")
        body = await _read_body(request, MAX_WEBHOOK_BYTES)
        try:
            # The library's check alone; the body is parsed by our own strict parser below.
            stripe.WebhookSignature.verify_header(body, header, stripe_webhook_secret,
                                                  tolerance=STRIPE_TOLERANCE_SECONDS)
        except stripe.SignatureVerificationError as exc:
            raise Rejected(400, f"invalid webhook signature: {exc.user_message}") from None
        except UnicodeDecodeError:
            raise Rejected(400, "body is not valid UTF-8") from None
        timestamp = _stripe_timestamp(header)
        # The library lets any future timestamp pass; one beyond the tolerance is no clock skew, and refusing
        # it keeps every replay-guard entry within a few windows of its arrival.
        if timestamp > time.time() + STRIPE_TOLERANCE_SECONDS:
            raise Rejected(400, "invalid webhook signature: timestamp is in the future")
        event = _parse_json_object(body)
        digest = signature_digest(hmac_sha256_hex(stripe_webhook_secret, timestamp, body))
        if not stripe_replays.reserve(timestamp, digest):
            raise Rejected(400, "invalid webhook signature: already received (replay)")
        return await land_webhook("stripe", event, stripe_replays, timestamp, digest)

    @_guarded
    async def brevo_webhook(request: Request) -> Response:
        if not brevo_webhook_token:
            raise Rejected(503, "brevo webhooks are not configured on this collector")
        if not _bearer_token_matches(request.headers.get("authorization"), brevo_webhook_token):
            raise Rejected(401, "missing or wrong bearer token")
        events = _parse_json_events(await _read_body(request, MAX_WEBHOOK_BYTES))
        received_at = utc_now_iso()
        records = [{"id": f"bre_{uuid.uuid4().hex}", "received_at": received_at, "event": event}
                   for event in events]
        await run_in_threadpool(landing.append_many, "brevo", records)
        return JSONResponse({"ids": [record["id"] for record in records]})

    async def land_webhook(stream: str, event: dict, replays: ReplayGuard, timestamp: int,
                           digest: str) -> Response:
        record = {"id": f"{stream[:3]}_{uuid.uuid4().hex}", "received_at": utc_now_iso(),
                  "signed_at": timestamp, "signature_sha256": digest, "event": event}
        try:
            await land(stream, record)
        except BaseException:
            replays.release(timestamp, digest)
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
            Route("/webhooks/brevo", brevo_webhook, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error},
    )


def _restored_guard(landing: LandingZone, stream: str, tolerance_seconds: int) -> ReplayGuard:
    """A replay guard holding the signatures of the webhooks landed within the last few tolerance windows.

    An entry lives until ``max(t, received) + tolerance``, at most two windows after its arrival (a ``t``
    beyond one window in the future is refused); a third window is margin for appends landing slightly out
    of their ``received_at`` order.
    """
    guard = ReplayGuard(tolerance_seconds)
    since = datetime.now(UTC) - timedelta(seconds=3 * tolerance_seconds)
    for record in landing.records_since(stream, since):
        timestamp, digest = record.get("signed_at"), record.get("signature_sha256")
        if isinstance(timestamp, int) and isinstance(digest, str):
            received_at = datetime.fromisoformat(record["received_at"]).timestamp()
            guard.restore(timestamp, digest, received_at)
    return guard


def _stripe_timestamp(header: str) -> int:
    """The ``t`` of a Stripe-Signature header the library has already accepted (the first ``t``, as there)."""
    pairs = (part.partition("=") for part in header.split(","))
    return int(next(value for key, _, value in pairs if key == "t"))
