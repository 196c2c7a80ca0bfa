"""Property-based tests of the collector over real HTTP: whatever arrives, the service answers 4xx with a
JSON reason or lands the record, never a 5xx, and keeps landing good records around the bad ones.

One real ``lifecycle collector`` process serves the whole module. Every example sends one or more random,
malformed, oversized, deeply nested, mis-typed or badly signed requests, then checks:

- no answer is a 5xx; every 4xx is a JSON object with an ``error`` reason;
- the records that landed during the example are exactly those answered 2xx, each once, with the content
  that was sent (the bad ones land nothing);
- a good form post and correctly signed Calendly and Stripe webhooks still land and ``/healthz`` answers;
- the collector's log has one warning line per rejection, and no error or traceback.

Examples per test: ``LIFECYCLE_TEST_HYPOTHESIS_EXAMPLES`` (default 40; e.g. 2000 for a long run).
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.forms import KNOWN_FIELDS
from tests.ingestion.collector_helpers import (
    CollectorProcess,
    LandingWatcher,
    calendly_headers,
    collector_process,
    stripe_headers,
)

EXAMPLES = int(os.environ.get("LIFECYCLE_TEST_HYPOTHESIS_EXAMPLES", "40"))
PROPERTY_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

FORM_LIMIT = 64 * 1024
WEBHOOK_LIMIT = 1024 * 1024
FORM_IDS = ("contact", "newsletter", "webinar", "download")
JSON = "application/json"
URLENCODED = "application/x-www-form-urlencoded"


@dataclass
class Probe:
    """The live collector and what the suite has seen of it so far."""

    collector: CollectorProcess
    http: httpx.Client
    watcher: LandingWatcher
    log_offset: int = 0
    serial: Iterator[int] = field(default_factory=itertools.count)

    def begin(self) -> None:
        """Start an example afresh, whatever a failed one before it left behind."""
        self.watcher.new_records()
        self.log_offset = len(self.collector.log())

    def settle(self, responses: list[httpx.Response], sent: dict[str, bytes] | None = None) -> None:
        """Check one example's answers and what landed, then that good traffic still lands."""
        for response in responses:
            assert response.status_code < 500, (response.status_code, response.text)
            if response.status_code >= 400:
                assert isinstance(response.json().get("error"), str) and response.json()["error"]
        accepted = [r for r in responses if r.status_code < 300]
        new = self.watcher.new_records()
        landed_ids = sorted(record["id"] for records in new.values() for record in records)
        assert landed_ids == sorted(r.json()["id"] for r in accepted)
        for records in new.values():
            for record in records:
                if sent and record["id"] in sent:
                    assert_landed_as_sent(record, sent[record["id"]])
        self.good_traffic_lands()
        log = self.collector.log()[self.log_offset:]
        assert "Traceback" not in log and "failed " not in log and "ERROR" not in log
        assert log.count("rejected ") == sum(400 <= r.status_code < 500 for r in responses)

    def good_traffic_lands(self) -> None:
        n = next(self.serial)
        form = self.http.post("/forms/contact", json={"email": f"good{n}@example.com", "first_name": "Ada"})
        calendly_event = json.dumps({"event": "invitee.created", "payload": {"n": n}}).encode()
        calendly = self.http.post("/webhooks/calendly", content=calendly_event,
                                  headers=calendly_headers(calendly_event))
        stripe_event = json.dumps({"id": f"evt_good_{n}", "object": "event"}).encode()
        stripe_response = self.http.post("/webhooks/stripe", content=stripe_event,
                                         headers=stripe_headers(stripe_event))
        assert (form.status_code, calendly.status_code, stripe_response.status_code) == (202, 200, 200)
        assert self.http.get("/healthz").json() == {"ok": True}
        new = self.watcher.new_records()
        assert [r["fields"]["email"] for r in new["forms"]] == [f"good{n}@example.com"]
        assert [r["event"]["payload"]["n"] for r in new["calendly"]] == [n]
        assert [r["event"]["id"] for r in new["stripe"]] == [f"evt_good_{n}"]


def assert_landed_as_sent(record: dict, body: bytes) -> None:
    """An accepted JSON body lands unaltered: known fields as sent (consent aside: it lands as a boolean),
    the rest in extra; a webhook's body as its event."""
    data = json.loads(body)
    if "event" in record:
        assert record["event"] == data
        return
    fields = record["fields"]
    for key, value in data.items():
        if key == "consent":
            continue
        assert (fields[key] if key in KNOWN_FIELDS else fields["extra"][key]) == value


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    with collector_process(tmp_path_factory.mktemp("collector-properties")) as collector, \
            httpx.Client(base_url=collector.url, timeout=60) as http:
        yield Probe(collector, http, LandingWatcher(collector.landing))


# --- strategies -------------------------------------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=20)

# Tokens that json.loads takes or chokes on, but that must never reach the landing zone.
NASTY_TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b'"\\ud800"', b'"\\udfff x"', b'"\\x41"',
                b'"tab\there"', b"01", b"[1,]", b"{,}", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"}", b"]]",
                b'"' + b"9" * 5000 + b'"', b"9" * 5000, b"[" * 100, b"\xef\xbb\xbf"]


def nested_body(depth: int) -> bytes:
    """A form body ``depth`` levels deep (the top-level object is level 1, ``x`` holds the rest); depth >= 2."""
    return b'{"email": "ada@example.com", "x": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def padded_json(size: int) -> bytes:
    """A valid form body of exactly ``size`` bytes."""
    head = b'{"email": "ada@example.com", "pad": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


@st.composite
def form_like(draw: st.DrawFn) -> dict:
    """A submission: maybe an email (plainly valid, random or of a wrong type), known and unknown fields."""
    data: dict = {}
    email = draw(st.one_of(st.none(), st.just("ada@example.com"), st.emails(), st.text(max_size=40), json_values))
    if email is not None:
        data["email"] = email
    for name in draw(st.lists(st.sampled_from(sorted(KNOWN_FIELDS - {"email"})), max_size=4, unique=True)):
        data[name] = draw(st.one_of(st.text(max_size=40), json_scalars))
    data.update(draw(st.dictionaries(st.text(max_size=12).filter(lambda k: k not in KNOWN_FIELDS),
                                     json_values, max_size=6)))
    return data


@st.composite
def mutated(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` with a few random byte edits or nasty tokens spliced in."""
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(body)))
        edit = draw(st.sampled_from(["insert", "delete", "token"]))
        if edit == "insert":
            body = body[:at] + draw(st.binary(min_size=1, max_size=4)) + body[at:]
        elif edit == "delete":
            body = body[:at] + body[at + draw(st.integers(min_value=1, max_value=4)):]
        else:
            body = body[:at] + draw(st.sampled_from(NASTY_TOKENS)) + body[at:]
    return body


def json_bodies(valid: st.SearchStrategy[dict]) -> st.SearchStrategy[bytes]:
    """Valid bodies (unicode escaped or raw UTF-8), mutated ones, other JSON values, noise, deep nesting."""
    encoded = st.tuples(valid, st.booleans()).map(lambda pair: json.dumps(pair[0], ensure_ascii=pair[1]).encode())
    return st.one_of(
        encoded,
        encoded.flatmap(mutated),
        json_values.map(lambda value: json.dumps(value).encode()),  # valid JSON, often not an object
        st.binary(max_size=300),
        st.integers(min_value=2, max_value=120).map(nested_body),
        st.sampled_from([b"[" * 60_000, b'{"email": "ada@example.com", "x": ' + b"[" * 60_000]),
    )


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=60).map(lambda text: text.strip().encode("latin-1"))
content_types = st.one_of(
    st.sampled_from([JSON, f"{JSON}; charset=utf-8", "APPLICATION/JSON", URLENCODED, f"{URLENCODED}; charset=utf-8",
                     "text/plain", "multipart/form-data; boundary=x", "application/jsonx", None]),
    header_text)


# --- forms ------------------------------------------------------------------------------------------------

@st.composite
def form_requests(draw: st.DrawFn) -> tuple[str, str | bytes | None, bytes, bool]:
    """(form id, content type, body, chunked)."""
    form_id = draw(st.one_of(st.sampled_from(FORM_IDS), st.text(max_size=30)))
    content_type = draw(content_types)
    body = draw(st.one_of(
        json_bodies(form_like()),
        form_like().map(lambda data: urlencode({k: str(v) for k, v in data.items()}).encode()),
        st.binary(max_size=64).map(lambda raw: b"email=ada%40example.com&x=" + quote(raw).encode()),
        st.integers(min_value=-40, max_value=40).map(lambda delta: padded_json(FORM_LIMIT + delta)),
    ))
    return form_id, content_type, body, draw(st.booleans())


def _send(http: httpx.Client, path: str, body: bytes, headers: dict, chunked: bool) -> httpx.Response:
    content = iter([body[: len(body) // 2], body[len(body) // 2:]]) if chunked else body
    return http.post(path, content=content, headers=headers)


@PROPERTY_SETTINGS
@given(request=form_requests())
def test_form_posts_never_fail_and_land_only_what_is_accepted(probe: Probe, request: tuple) -> None:
    probe.begin()
    form_id, content_type, body, chunked = request
    headers = {} if content_type is None else {"Content-Type": content_type}
    path = "/forms/" + quote(form_id, safe="")
    response = _send(probe.http, path, body, headers, chunked)
    known_route = form_id in FORM_IDS
    raw_type = content_type.decode("latin-1") if isinstance(content_type, bytes) else content_type or ""
    media_type = raw_type.split(";")[0].strip().lower()
    if known_route and media_type not in (JSON, URLENCODED):
        assert response.status_code == 415
    elif known_route and len(body) > FORM_LIMIT:
        assert response.status_code == 413
    elif known_route:
        assert response.status_code in (202, 400, 422), response.text
    sent = {response.json()["id"]: body} if response.status_code == 202 and media_type == JSON else None
    probe.settle([response], sent)


@PROPERTY_SETTINGS
@given(depth=st.one_of(st.integers(min_value=2, max_value=200), st.integers(min_value=200, max_value=60_000)),
       content_type=st.sampled_from([JSON, f"{JSON}; charset=utf-8"]))
def test_nesting_is_accepted_to_64_levels_and_refused_beyond(probe: Probe, depth: int, content_type: str) -> None:
    probe.begin()
    body = nested_body(depth) if depth < 10_000 else b'{"email": "ada@example.com", "x": ' + b"[" * depth
    response = probe.http.post("/forms/contact", content=body, headers={"Content-Type": content_type})
    if depth <= 64:
        assert response.status_code == 202, response.text
    else:
        assert response.status_code == 400 and "nested deeper than 64" in response.json()["error"]
    probe.settle([response], {response.json()["id"]: body} if depth <= 64 else None)


# --- webhooks ---------------------------------------------------------------------------------------------

SIGNINGS = ("valid", "forged", "tampered", "stale", "future", "garbage", "missing", "replayed",
            "replayed-reformatted")


@st.composite
def webhook_requests(draw: st.DrawFn) -> tuple[str, bytes, bool, str, bytes]:
    """(endpoint, body, whether the body is a valid event, signing, garbage header)."""
    endpoint = draw(st.sampled_from(["/webhooks/calendly", "/webhooks/stripe"]))
    events = st.dictionaries(st.text(max_size=12), json_values, max_size=6).map(
        lambda data: {**data, "id": "evt_x", "object": "event"})
    valid = draw(st.booleans())
    if valid:
        body = json.dumps(draw(events), ensure_ascii=draw(st.booleans())).encode()
    else:
        body = draw(st.one_of(json_bodies(events), st.integers(min_value=-40, max_value=40).map(
            lambda delta: padded_json(WEBHOOK_LIMIT + delta))))
    return endpoint, body, valid, draw(st.sampled_from(SIGNINGS)), draw(header_text)


def _signed(endpoint: str, body: bytes, t: int | None = None, secret: str | None = None) -> dict[str, str]:
    if endpoint == "/webhooks/calendly":
        return calendly_headers(body, t=t) if secret is None else calendly_headers(body, key=secret, t=t)
    return stripe_headers(body, t=t) if secret is None else stripe_headers(body, secret=secret, t=t)


@PROPERTY_SETTINGS
@given(request=webhook_requests())
def test_webhooks_never_fail_and_land_only_correctly_signed_fresh_events(probe: Probe, request: tuple) -> None:
    probe.begin()
    endpoint, body, valid, signing, garbage = request
    if valid:  # hypothesis may draw the same event twice within a second: that would be a true replay
        body = body.replace(b'"evt_x"', json.dumps(f"evt_{uuid.uuid4().hex}").encode(), 1)
    http, now = probe.http, int(time.time())
    refused = 401 if endpoint == "/webhooks/calendly" else 400
    header_name = "Calendly-Webhook-Signature" if endpoint == "/webhooks/calendly" else "Stripe-Signature"
    responses: list[httpx.Response] = []
    if signing in ("valid", "replayed", "replayed-reformatted"):
        headers = _signed(endpoint, body)
        responses.append(http.post(endpoint, content=body, headers=headers))
        if signing == "replayed-reformatted":  # same signature, parts in another order (Calendly: and spaced)
            parts = headers[header_name].split(",")
            separator = ", " if endpoint == "/webhooks/calendly" else ","
            headers = {**headers, header_name: separator.join(reversed(parts))}
        if signing != "valid":
            responses.append(http.post(endpoint, content=body, headers=headers))
            assert responses[-1].status_code in (refused, 400, 413)
            if responses[0].status_code == 200:
                assert responses[-1].status_code == refused and "replay" in responses[-1].json()["error"]
    else:
        if signing == "forged":
            headers = _signed(endpoint, body, secret="whsec_someone_else")
        elif signing == "tampered":
            headers = _signed(endpoint, body + b" ")
        elif signing == "stale":
            headers = _signed(endpoint, body, t=now - 3600)
        elif signing == "future":
            headers = _signed(endpoint, body, t=now + 3600)
        elif signing == "garbage":
            headers = {header_name: garbage, "Content-Type": JSON}
        else:
            headers = {"Content-Type": JSON}
        responses.append(http.post(endpoint, content=body, headers=headers))
        assert responses[0].status_code in (refused, 413), responses[0].text
    first = responses[0]
    if len(body) > WEBHOOK_LIMIT:
        # Stripe refuses a request without a signature before reading its body.
        assert first.status_code == 413 or (header_name == "Stripe-Signature" and not headers.get(header_name))
    elif valid and signing in ("valid", "replayed", "replayed-reformatted"):
        assert first.status_code == 200, first.text
    probe.settle(responses, {first.json()["id"]: body} if first.status_code == 200 else None)
