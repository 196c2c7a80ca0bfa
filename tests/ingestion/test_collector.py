"""The collector: durable form intake, signed (or bearer-authenticated) webhooks, and bad input that lands
nothing."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from ingestion.collector import create_collector_app
from ingestion.collector.signatures import ReplayGuard
from ingestion.landing import LandingZone
from tests.ingestion.collector_helpers import (
    CALENDLY_KEY,
    STRIPE_SECRET,
    calendly_headers,
    collector_process,
    landed,
    stripe_headers,
)
from tests.servers import serve


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture()
def client(root: Path) -> Iterator[TestClient]:
    app = create_collector_app(LandingZone(root, "collector"), calendly_signing_key=CALENDLY_KEY,
                               stripe_webhook_secret=STRIPE_SECRET, brevo_webhook_token=BREVO_TOKEN)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


BREVO_TOKEN = "brevo-test-token"
BREVO_AUTH = {"Authorization": f"Bearer {BREVO_TOKEN}", "Content-Type": "application/json"}
BREVO_OPEN = {"id": 9, "camp_id": 4, "email": "ada@example.com", "campaign name": "August news",
              "date_sent": "2026-08-01 15:00:00", "date_event": "2026-08-02 08:00:00", "event": "opened",
              "tag": "", "segment_ids": [], "ts_sent": 1785596400, "ts_event": 1785657600, "ts": 1785657600}


CALENDLY_EVENT = json.dumps({"event": "invitee.created", "created_at": "2025-08-13T07:45:00.000000Z",
                             "payload": {"uri": "https://api.calendly.com/scheduled_events/E/invitees/I",
                                         "email": "ada@example.com"}}).encode()
STRIPE_EVENT = json.dumps({"id": "evt_1", "object": "event", "type": "checkout.session.completed",
                           "created": 1700000000, "data": {"object": {"id": "cs_test_1"}}}).encode()


# --- forms -------------------------------------------------------------------------------------------

def test_json_submission_is_on_disk_when_202_returns(client: TestClient, root: Path) -> None:
    before = datetime.now(UTC)
    response = client.post("/forms/contact", json={
        "email": "Ada@Example.com ", "first_name": "Ada", "org_type": "YMCA", "consent": True,
        "utm_source": "google", "submitted_at": "1999-01-01T00:00:00Z", "gclid": "abc",
    })
    after = datetime.now(UTC)
    assert response.status_code == 202
    [record] = landed(root, "forms")
    assert record["id"] == response.json()["id"]
    assert record["form_id"] == "contact" and record["origin"] == "collector"
    submitted = datetime.fromisoformat(record["submitted_at"])
    assert record["submitted_at"].endswith("Z") and before <= submitted <= after  # server time, not the body's
    fields = record["fields"]
    assert fields["email"] == "Ada@Example.com "  # stored as submitted; normalized downstream
    assert fields["first_name"] == "Ada" and fields["consent"] is True and fields["last_name"] is None
    assert fields["extra"] == {"submitted_at": "1999-01-01T00:00:00Z", "gclid": "abc"}


def test_form_encoded_submission_lands(client: TestClient, root: Path) -> None:
    response = client.post("/forms/newsletter",
                           content=b"email=bo%40example.org&consent=on&interest=a&interest=b&last_name=",
                           headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    assert response.status_code == 202
    [record] = landed(root, "forms")
    assert record["fields"]["email"] == "bo@example.org"
    assert record["fields"]["consent"] is True
    assert record["fields"]["last_name"] == ""
    assert record["fields"]["extra"] == {"interest": ["a", "b"]}


@pytest.mark.parametrize(("payload", "field"), [
    ({"first_name": "Ada"}, "email"),
    ({"email": ""}, "email"),
    ({"email": "not-an-email"}, "email"),
    ({"email": "two@@example.com"}, "email"),
    ({"email": "ada@example"}, "email"),
    ({"email": "ad a@example.com"}, "email"),
    ({"email": "a" * 250 + "@x.com"}, "email"),
    ({"email": ["ada@example.com"]}, "email"),
    ({"email": "ada@example.com", "consent": "maybe"}, "consent"),
    ({"email": "ada@example.com", "consent": 2}, "consent"),
    ({"email": "ada@example.com", "first_name": {"nested": True}}, "first_name"),
    ({"email": "ada@example.com", "utm_source": 7}, "utm_source"),
    ({"email": "ada@example.com", **{f"x{i}": i for i in range(51)}}, "extra"),
])
def test_invalid_fields_get_422_naming_the_field(client: TestClient, root: Path, payload: dict,
                                                 field: str) -> None:
    response = client.post("/forms/contact", json=payload)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert response.json()["error"]
    assert landed(root, "forms") == []


def test_form_encoded_bad_consent_and_duplicate_known_field(client: TestClient, root: Path) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    bad_consent = client.post("/forms/contact", content=b"email=a%40b.co&consent=perhaps", headers=form)
    twice = client.post("/forms/contact", content=b"email=a%40b.co&email=c%40d.co", headers=form)
    assert (bad_consent.status_code, bad_consent.json()["field"]) == (422, "consent")
    assert (twice.status_code, twice.json()["field"]) == (422, "email")
    assert landed(root, "forms") == []


@pytest.mark.parametrize("value", ["false", "off", "no", "0", "FALSE"])
def test_consent_false_words(client: TestClient, root: Path, value: str) -> None:
    response = client.post("/forms/contact", json={"email": "ada@example.com", "consent": value})
    assert response.status_code == 202
    assert landed(root, "forms")[0]["fields"]["consent"] is False


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"ada@example.com"', b"\xff\xfe"])
def test_malformed_or_non_object_json_is_400(client: TestClient, root: Path, body: bytes) -> None:
    response = client.post("/forms/contact", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "error" in response.json()
    assert landed(root, "forms") == []


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data; boundary=x", None])
def test_other_content_types_are_415(client: TestClient, root: Path, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/forms/contact", content=b'{"email": "ada@example.com"}', headers=headers)
    assert response.status_code == 415
    assert "error" in response.json()
    assert landed(root, "forms") == []


def test_unknown_form_id_is_accepted_and_landed(client: TestClient, root: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ingestion.collector"):
        response = client.post("/forms/spring-promo", json={"email": "ada@example.com"})
    assert response.status_code == 202
    assert [r["form_id"] for r in landed(root, "forms")] == ["spring-promo"]
    assert "spring-promo" in caplog.text


def test_each_accepted_record_is_fsynced(client: TestClient, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fsync = os.fsync
    synced_files: list[int] = []

    def counting_fsync(fd: int) -> None:
        real_fsync(fd)
        if stat.S_ISREG(os.fstat(fd).st_mode):
            synced_files.append(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    assert client.post("/forms/contact", json={"email": "a@example.com"}).status_code == 202
    assert client.post("/forms/contact", json={"email": "nope"}).status_code == 422
    assert client.post("/forms/webinar", json={"email": "b@example.com"}).status_code == 202
    assert len(synced_files) == 2
    assert [r["fields"]["email"] for r in landed(root, "forms")] == ["a@example.com", "b@example.com"]


def test_a_failed_append_is_a_500_and_the_service_stays_up(root: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    landing = LandingZone(root, "collector")
    app = create_collector_app(landing, calendly_signing_key=CALENDLY_KEY, stripe_webhook_secret=STRIPE_SECRET)
    with TestClient(app, raise_server_exceptions=False) as client:
        def disk_full(stream: str, record: dict) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(landing, "append", disk_full)
        with caplog.at_level(logging.ERROR, logger="ingestion.collector"):
            failed = client.post("/forms/contact", json={"email": "a@example.com"})
            body = CALENDLY_EVENT
            headers = calendly_headers(body)
            webhook_failed = client.post("/webhooks/calendly", content=body, headers=headers)
        assert failed.status_code == 500 and "error" in failed.json()
        assert webhook_failed.status_code == 500
        monkeypatch.undo()
        assert client.post("/forms/contact", json={"email": "a@example.com"}).status_code == 202
        # The vendor's retry of the very same signed request is not refused as a replay: it never landed.
        assert client.post("/webhooks/calendly", content=body, headers=headers).status_code == 200
    assert len(landed(root, "forms")) == 1 and len(landed(root, "calendly")) == 1
    assert "OSError" in caplog.text


def test_unknown_paths_and_methods_get_json_errors(client: TestClient) -> None:
    assert client.get("/forms/contact").status_code == 405
    assert client.get("/nowhere").json() == {"error": "Not Found"}
    assert client.get("/healthz").status_code == 200


# --- bodies the parser cannot take --------------------------------------------------------------------

def nested(depth: int) -> bytes:
    """A form body whose deepest value sits ``depth`` levels down (the top-level object is level 1)."""
    return b'{"email": "ada@example.com", "x": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


UNTAKEABLE_BODIES = {
    "60,000 [": b"[" * 60_000,
    "60,000 [ inside an object": b'{"email": "ada@example.com", "x": ' + b"[" * 60_000,
    "65 levels": nested(65),
    "1,000 levels, all closed": nested(1_000),
    "NaN": b'{"email": "ada@example.com", "x": NaN}',
    "Infinity": b'{"email": "ada@example.com", "x": Infinity}',
    "-Infinity": b'{"email": "ada@example.com", "x": -Infinity}',
    "a number beyond a double": b'{"email": "ada@example.com", "x": 1e999}',
    "5,000 digits": b'{"email": "ada@example.com", "x": ' + b"7" * 5_000 + b"}",
    "unpaired high surrogate": b'{"email": "ada@example.com", "x": "\\ud800"}',
    "unpaired low surrogate in a key": b'{"email": "ada@example.com", "\\udc00": 1}',
    "invalid UTF-8": b'{"email": "ada@example.com", "x": "\xff\xfe"}',
    "UTF-16": '{"email": "ada@example.com"}'.encode("utf-16"),
}


def _post_signed(client: TestClient, endpoint: str, body: bytes) -> httpx.Response:
    if endpoint == "/forms/contact":
        return client.post(endpoint, content=body, headers={"Content-Type": "application/json"})
    if endpoint == "/webhooks/brevo":
        return client.post(endpoint, content=body, headers=BREVO_AUTH)
    headers = calendly_headers(body) if endpoint == "/webhooks/calendly" else stripe_headers(body)
    return client.post(endpoint, content=body, headers=headers)


@pytest.mark.parametrize("endpoint", ["/forms/contact", "/webhooks/calendly", "/webhooks/stripe", "/webhooks/brevo"])
@pytest.mark.parametrize("body", UNTAKEABLE_BODIES.values(), ids=UNTAKEABLE_BODIES.keys())
def test_bodies_the_parser_cannot_take_are_400_with_a_reason(client: TestClient, root: Path, endpoint: str,
                                                             body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        response = _post_signed(client, endpoint, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("body ")
    assert all(landed(root, stream) == [] for stream in ("forms", "calendly", "stripe", "brevo"))
    # One warning line, no error and no traceback.
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.WARNING, None)]
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("endpoint", ["/forms/contact", "/webhooks/calendly", "/webhooks/stripe", "/webhooks/brevo"])
def test_64_levels_and_paired_surrogates_are_accepted(client: TestClient, root: Path, endpoint: str) -> None:
    body = nested(64)[:-1] + b', "smile": "\\ud83d\\ude00", "object": "event"}'
    response = _post_signed(client, endpoint, body)
    assert response.status_code in (200, 202), response.text
    [record] = [r for stream in ("forms", "calendly", "stripe", "brevo") for r in landed(root, stream)]
    value = record["fields"]["extra"] if endpoint == "/forms/contact" else record["event"]
    assert value["smile"] == "\N{GRINNING FACE}"
    assert value["x"] == json.loads(nested(64))["x"]


def test_form_encoded_percent_escapes_must_be_utf8(client: TestClient, root: Path) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    latin1 = client.post("/forms/contact", content=b"email=ada%40example.com&first_name=Ren%E9", headers=form)
    assert latin1.status_code == 400 and "UTF-8" in latin1.json()["error"]
    assert landed(root, "forms") == []
    utf8 = client.post("/forms/contact", content=b"email=ada%40example.com&first_name=Ren%C3%A9", headers=form)
    assert utf8.status_code == 202
    assert [r["fields"]["first_name"] for r in landed(root, "forms")] == ["René"]


# --- body size ---------------------------------------------------------------------------------------

@pytest.fixture()
def live(root: Path) -> Iterator[str]:
    app = create_collector_app(LandingZone(root, "collector"), calendly_signing_key=CALENDLY_KEY,
                               stripe_webhook_secret=STRIPE_SECRET)
    with serve(app) as base_url:
        yield base_url


def oversized_json() -> bytes:
    body = json.dumps({"email": "ada@example.com", "note": "x" * (64 * 1024)}).encode()
    assert len(body) > 64 * 1024
    return body


def test_body_over_64_kib_with_honest_content_length_is_413(live: str, root: Path) -> None:
    response = httpx.post(f"{live}/forms/contact", content=oversized_json(),
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert landed(root, "forms") == []
    assert httpx.post(f"{live}/forms/contact", json={"email": "a@example.com"}).status_code == 202


def test_declared_length_over_64_kib_is_refused_before_reading(client: TestClient, root: Path) -> None:
    response = client.post("/forms/contact", content=b'{"email": "ada@example.com"}',
                           headers={"Content-Type": "application/json", "Content-Length": str(64 * 1024 + 1)})
    assert response.status_code == 413
    assert landed(root, "forms") == []


def test_chunked_body_over_64_kib_is_413(live: str, root: Path) -> None:
    body = oversized_json()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start:start + 4096]

    response = httpx.post(f"{live}/forms/contact", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert landed(root, "forms") == []
    assert httpx.get(f"{live}/healthz").status_code == 200


def test_chunked_body_under_the_limit_is_accepted(live: str, root: Path) -> None:
    body = json.dumps({"email": "ada@example.com", "note": "x" * 60_000}).encode()
    response = httpx.post(f"{live}/forms/contact", content=iter([body[:30_000], body[30_000:]]),
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 202
    assert landed(root, "forms")[0]["fields"]["extra"]["note"] == "x" * 60_000


# --- Calendly ----------------------------------------------------------------------------------------

def test_calendly_valid_signature_lands_the_event(client: TestClient, root: Path) -> None:
    response = client.post("/webhooks/calendly", content=CALENDLY_EVENT, headers=calendly_headers(CALENDLY_EVENT))
    assert response.status_code == 200
    [record] = landed(root, "calendly")
    assert record["id"] == response.json()["id"]
    assert record["event"] == json.loads(CALENDLY_EVENT)
    assert record["received_at"].endswith("Z")


def _forged(body: bytes) -> dict[str, str]:
    return calendly_headers(body, key="someone-elses-key")


def _tampered(body: bytes) -> dict[str, str]:
    return calendly_headers(body.replace(b"ada@", b"eve@"))


def _missing(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json"}


def _malformed(body: bytes) -> dict[str, str]:
    return {"Calendly-Webhook-Signature": "v1=abc,t=soon", "Content-Type": "application/json"}


def _no_v1(body: bytes) -> dict[str, str]:
    return {"Calendly-Webhook-Signature": f"t={int(time.time())}", "Content-Type": "application/json"}


def _stale(body: bytes) -> dict[str, str]:
    return calendly_headers(body, t=int(time.time()) - 600)


def _future(body: bytes) -> dict[str, str]:
    return calendly_headers(body, t=int(time.time()) + 600)


@pytest.mark.parametrize("make_headers", [_forged, _tampered, _missing, _malformed, _no_v1, _stale, _future])
def test_calendly_bad_signatures_are_401_and_land_nothing(client: TestClient, root: Path, make_headers,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ingestion.collector"):
        response = client.post("/webhooks/calendly", content=CALENDLY_EVENT, headers=make_headers(CALENDLY_EVENT))
    assert response.status_code == 401
    assert "error" in response.json()
    assert landed(root, "calendly") == []
    assert "/webhooks/calendly" in caplog.text
    assert CALENDLY_KEY not in caplog.text and CALENDLY_KEY not in response.text
    assert "ada@example.com" not in caplog.text  # no bodies in the logs


def test_calendly_timestamp_of_thousands_of_digits_is_401(client: TestClient, root: Path) -> None:
    header = f"t={'1' * 5_000},v1={'a' * 64}"
    response = client.post("/webhooks/calendly", content=CALENDLY_EVENT,
                           headers={"Calendly-Webhook-Signature": header, "Content-Type": "application/json"})
    assert response.status_code == 401 and "numeric t" in response.json()["error"]
    assert landed(root, "calendly") == []


def test_calendly_replayed_signature_is_401(client: TestClient, root: Path) -> None:
    headers = calendly_headers(CALENDLY_EVENT)
    assert client.post("/webhooks/calendly", content=CALENDLY_EVENT, headers=headers).status_code == 200
    replay = client.post("/webhooks/calendly", content=CALENDLY_EVENT, headers=headers)
    assert replay.status_code == 401
    assert "replay" in replay.json()["error"]
    # Re-formatting the header does not get the same signature past the guard either.
    t, v1 = headers["Calendly-Webhook-Signature"].split(",")
    reordered = {**headers, "Calendly-Webhook-Signature": f"{v1}, {t}"}
    assert client.post("/webhooks/calendly", content=CALENDLY_EVENT, headers=reordered).status_code == 401
    assert len(landed(root, "calendly")) == 1


def test_calendly_valid_signature_on_invalid_json_is_400(client: TestClient, root: Path) -> None:
    body = b"{oops"
    assert client.post("/webhooks/calendly", content=body, headers=calendly_headers(body)).status_code == 400
    assert landed(root, "calendly") == []


def test_webhooks_without_a_configured_secret_refuse_everything(root: Path) -> None:
    app = create_collector_app(LandingZone(root, "collector"), calendly_signing_key="", stripe_webhook_secret="")
    with TestClient(app) as client:
        calendly = client.post("/webhooks/calendly", content=CALENDLY_EVENT,
                               headers=calendly_headers(CALENDLY_EVENT, key=""))
        stripe_response = client.post("/webhooks/stripe", content=STRIPE_EVENT,
                                      headers=stripe_headers(STRIPE_EVENT, secret="x"))
        brevo = client.post("/webhooks/brevo", json=BREVO_OPEN, headers={"Authorization": "Bearer "})
    assert calendly.status_code == 503 and stripe_response.status_code == 503 and brevo.status_code == 503
    assert landed(root, "calendly") == [] and landed(root, "stripe") == [] and landed(root, "brevo") == []


# --- Brevo -------------------------------------------------------------------------------------------

def test_brevo_event_with_the_bearer_token_lands(client: TestClient, root: Path) -> None:
    response = client.post("/webhooks/brevo", json=BREVO_OPEN, headers=BREVO_AUTH)
    assert response.status_code == 200, response.text
    [record] = landed(root, "brevo")
    assert response.json() == {"ids": [record["id"]]}
    assert record["event"] == BREVO_OPEN and record["id"].startswith("bre_")


def test_a_brevo_batch_lands_one_record_per_event_in_one_write(client: TestClient, root: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    client.post("/webhooks/brevo", json=BREVO_OPEN, headers=BREVO_AUTH)  # the file and its folders first
    fsyncs.clear()
    batch = [BREVO_OPEN, {**BREVO_OPEN, "event": "click", "URL": "https://x.example/a"},
             {**BREVO_OPEN, "email": "bo@example.com", "event": "unsubscribe", "list_id": [3]}]
    response = client.post("/webhooks/brevo", json=batch, headers=BREVO_AUTH)
    assert response.status_code == 200
    records = landed(root, "brevo")[1:]
    assert [r["event"] for r in records] == batch
    assert response.json() == {"ids": [r["id"] for r in records]} and len(set(response.json()["ids"])) == 3
    assert len(fsyncs) == 1


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer wrong-token", f"Basic {BREVO_TOKEN}",
                                           f"Bearer {BREVO_TOKEN}x", f"bearer {BREVO_TOKEN[:-1]}"])
def test_brevo_without_the_right_bearer_token_is_401_and_lands_nothing(
        client: TestClient, root: Path, authorization: str | None, caplog: pytest.LogCaptureFixture) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with caplog.at_level(logging.WARNING):
        response = client.post("/webhooks/brevo", json=BREVO_OPEN, headers=headers)
    assert response.status_code == 401
    assert landed(root, "brevo") == []
    assert BREVO_TOKEN not in response.text and BREVO_TOKEN not in caplog.text


def test_brevo_token_scheme_is_case_insensitive(client: TestClient, root: Path) -> None:
    response = client.post("/webhooks/brevo", json=BREVO_OPEN, headers={"Authorization": f"bearer {BREVO_TOKEN}"})
    assert response.status_code == 200 and len(landed(root, "brevo")) == 1


@pytest.mark.parametrize("body", [b"[]", b'[{"event": "opened"}, 3]', b'"opened"', b"17"])
def test_brevo_bodies_that_are_not_events_are_400(client: TestClient, root: Path, body: bytes) -> None:
    response = client.post("/webhooks/brevo", content=body, headers=BREVO_AUTH)
    assert response.status_code == 400 and "array" in response.json()["error"]
    assert landed(root, "brevo") == []


# --- Stripe ------------------------------------------------------------------------------------------

def test_stripe_signed_event_lands(client: TestClient, root: Path) -> None:
    response = client.post("/webhooks/stripe", content=STRIPE_EVENT, headers=stripe_headers(STRIPE_EVENT))
    assert response.status_code == 200
    [record] = landed(root, "stripe")
    assert record["id"] == response.json()["id"]
    assert record["event"] == json.loads(STRIPE_EVENT)


def _stripe_wrong_secret(body: bytes) -> dict[str, str]:
    return stripe_headers(body, secret="whsec_other")


def _stripe_tampered(body: bytes) -> dict[str, str]:
    return stripe_headers(body.replace(b"cs_test_1", b"cs_test_2"))


def _stripe_stale(body: bytes) -> dict[str, str]:
    return stripe_headers(body, t=int(time.time()) - 301)


def _stripe_missing(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json"}


def _stripe_garbage(body: bytes) -> dict[str, str]:
    return {"Stripe-Signature": "nonsense", "Content-Type": "application/json"}


@pytest.mark.parametrize("make_headers",
                         [_stripe_wrong_secret, _stripe_tampered, _stripe_stale, _stripe_missing, _stripe_garbage])
def test_stripe_bad_signatures_are_400_and_land_nothing(client: TestClient, root: Path, make_headers,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ingestion.collector"):
        response = client.post("/webhooks/stripe", content=STRIPE_EVENT, headers=make_headers(STRIPE_EVENT))
    assert response.status_code == 400
    assert landed(root, "stripe") == []
    assert "/webhooks/stripe" in caplog.text
    assert STRIPE_SECRET not in caplog.text and STRIPE_SECRET not in response.text


def test_stripe_replayed_signature_is_400(client: TestClient, root: Path) -> None:
    headers = stripe_headers(STRIPE_EVENT)
    assert client.post("/webhooks/stripe", content=STRIPE_EVENT, headers=headers).status_code == 200
    replay = client.post("/webhooks/stripe", content=STRIPE_EVENT, headers=headers)
    assert replay.status_code == 400 and "replay" in replay.json()["error"]
    # Stripe's own retry is re-signed with a fresh timestamp, and that one is accepted.
    fresh = stripe_headers(STRIPE_EVENT, t=int(time.time()) + 1)
    assert client.post("/webhooks/stripe", content=STRIPE_EVENT, headers=fresh).status_code == 200
    assert len(landed(root, "stripe")) == 2


def test_stripe_timestamp_beyond_the_tolerance_in_the_future_is_400(client: TestClient, root: Path) -> None:
    skewed = client.post("/webhooks/stripe", content=STRIPE_EVENT,
                         headers=stripe_headers(STRIPE_EVENT, t=int(time.time()) + 60))
    assert skewed.status_code == 200  # a minute of clock skew is normal
    future = client.post("/webhooks/stripe", content=STRIPE_EVENT,
                         headers=stripe_headers(STRIPE_EVENT, t=int(time.time()) + 600))
    assert future.status_code == 400 and "future" in future.json()["error"]
    assert len(landed(root, "stripe")) == 1


@pytest.mark.parametrize("body", [b"{oops", b"[1]", b'"evt"'])
def test_stripe_signed_invalid_json_is_400(client: TestClient, root: Path, body: bytes) -> None:
    assert client.post("/webhooks/stripe", content=body, headers=stripe_headers(body)).status_code == 400
    assert landed(root, "stripe") == []


# --- good records around bad ones ---------------------------------------------------------------------

def test_good_records_around_bad_ones_are_untouched(live: str, root: Path) -> None:
    with httpx.Client(base_url=live) as http:
        for i in range(5):
            assert http.post("/forms/contact", json={"email": f"lead{i}@example.com"}).status_code == 202
            bad_requests = [
                http.post("/forms/contact", content=b"{broken", headers={"Content-Type": "application/json"}),
                http.post("/forms/contact", json={"email": "nope"}),
                http.post("/forms/contact", content=oversized_json(), headers={"Content-Type": "application/json"}),
                http.post("/webhooks/calendly", content=CALENDLY_EVENT, headers=_forged(CALENDLY_EVENT)),
                http.post("/webhooks/stripe", content=STRIPE_EVENT, headers=_stripe_wrong_secret(STRIPE_EVENT)),
            ]
            assert [r.status_code for r in bad_requests] == [400, 422, 413, 401, 400]
            assert http.get("/healthz").status_code == 200
            event = json.dumps({"event": "invitee.created", "n": i}).encode()
            assert http.post("/webhooks/calendly", content=event, headers=calendly_headers(event)).status_code == 200
            stripe_event = json.dumps({"id": f"evt_{i}", "object": "event"}).encode()
            assert http.post("/webhooks/stripe", content=stripe_event,
                             headers=stripe_headers(stripe_event)).status_code == 200
    assert [r["fields"]["email"] for r in landed(root, "forms")] == [f"lead{i}@example.com" for i in range(5)]
    assert [r["event"]["n"] for r in landed(root, "calendly")] == list(range(5))
    assert [r["event"]["id"] for r in landed(root, "stripe")] == [f"evt_{i}" for i in range(5)]


# --- replay guard ------------------------------------------------------------------------------------

def test_replay_guard_expires_entries_and_stays_bounded() -> None:
    guard = ReplayGuard(tolerance_seconds=180, max_entries=3)
    now = 1_000_000.0
    assert guard.reserve(int(now), "a", now=now)
    assert not guard.reserve(int(now), "a", now=now + 179)
    assert guard.reserve(int(now), "a", now=now + 181)  # expired: the freshness check guards it from here
    for name in "bcde":
        assert guard.reserve(int(now) + 200, name, now=now + 200)
    assert len(guard) == 3
    guard.release(int(now) + 200, "e")
    assert guard.reserve(int(now) + 200, "e", now=now + 201)


def test_calendly_tolerance_is_configurable(root: Path) -> None:
    app = create_collector_app(LandingZone(root, "collector"), calendly_signing_key=CALENDLY_KEY,
                               stripe_webhook_secret=STRIPE_SECRET, calendly_tolerance_seconds=30)
    old = int((datetime.now(UTC) - timedelta(seconds=60)).timestamp())
    with TestClient(app) as client:
        response = client.post("/webhooks/calendly", content=CALENDLY_EVENT,
                               headers=calendly_headers(CALENDLY_EVENT, t=old))
    assert response.status_code == 401


# --- replay guard across restarts -----------------------------------------------------------------------

def test_a_new_app_on_the_same_landing_zone_refuses_replays(root: Path) -> None:
    calendly, stripe_signed = calendly_headers(CALENDLY_EVENT), stripe_headers(STRIPE_EVENT)
    with TestClient(create_collector_app(LandingZone(root, "collector"), calendly_signing_key=CALENDLY_KEY,
                                         stripe_webhook_secret=STRIPE_SECRET)) as before:
        assert before.post("/webhooks/calendly", content=CALENDLY_EVENT, headers=calendly).status_code == 200
        assert before.post("/webhooks/stripe", content=STRIPE_EVENT, headers=stripe_signed).status_code == 200
    with TestClient(create_collector_app(LandingZone(root, "collector"), calendly_signing_key=CALENDLY_KEY,
                                         stripe_webhook_secret=STRIPE_SECRET)) as after:
        assert after.post("/webhooks/calendly", content=CALENDLY_EVENT, headers=calendly).status_code == 401
        assert after.post("/webhooks/stripe", content=STRIPE_EVENT, headers=stripe_signed).status_code == 400
    assert len(landed(root, "calendly")) == 1 and len(landed(root, "stripe")) == 1
    [record] = landed(root, "calendly")
    t, v1 = (part.split("=")[1] for part in calendly["Calendly-Webhook-Signature"].split(","))
    assert record["signed_at"] == int(t)
    assert v1 not in json.dumps(record)  # a digest of the signature is kept, not the signature


@pytest.mark.parametrize("endpoint", ["/webhooks/calendly", "/webhooks/stripe"])
def test_concurrent_deliveries_of_one_signed_request_land_once(live: str, root: Path, endpoint: str) -> None:
    body = CALENDLY_EVENT if endpoint == "/webhooks/calendly" else STRIPE_EVENT
    headers = calendly_headers(body) if endpoint == "/webhooks/calendly" else stripe_headers(body)
    with httpx.Client(base_url=live) as http, ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: http.post(endpoint, content=body, headers=headers).status_code,
                                 range(16)))
    assert statuses.count(200) == 1 and len(statuses) == 16
    assert set(statuses) == {200, 401 if endpoint == "/webhooks/calendly" else 400}
    assert len(landed(root, endpoint.rsplit("/", 1)[1])) == 1


def test_a_signature_accepted_before_a_crash_is_refused_after_the_restart(tmp_path: Path) -> None:
    """Two real collector processes on one LIFECYCLE_HOME; the first is killed with SIGKILL."""
    home = tmp_path / "home"
    calendly, stripe_signed = calendly_headers(CALENDLY_EVENT), stripe_headers(STRIPE_EVENT)
    with collector_process(home) as first:
        assert httpx.post(f"{first.url}/webhooks/calendly", content=CALENDLY_EVENT,
                          headers=calendly).status_code == 200
        assert httpx.post(f"{first.url}/webhooks/stripe", content=STRIPE_EVENT,
                          headers=stripe_signed).status_code == 200
        first.process.send_signal(signal.SIGKILL)
        assert first.process.wait(timeout=10) == -signal.SIGKILL
    with collector_process(home) as second:
        calendly_replay = httpx.post(f"{second.url}/webhooks/calendly", content=CALENDLY_EVENT, headers=calendly)
        stripe_replay = httpx.post(f"{second.url}/webhooks/stripe", content=STRIPE_EVENT, headers=stripe_signed)
        assert (calendly_replay.status_code, stripe_replay.status_code) == (401, 400)
        assert "replay" in calendly_replay.json()["error"] and "replay" in stripe_replay.json()["error"]
        # A vendor's retry is signed anew, and a new signature of the same body is accepted.
        later = int(time.time()) + 1
        assert httpx.post(f"{second.url}/webhooks/calendly", content=CALENDLY_EVENT,
                          headers=calendly_headers(CALENDLY_EVENT, t=later)).status_code == 200
    assert len(landed(second.landing, "calendly")) == 2 and len(landed(second.landing, "stripe")) == 1


def test_a_delivery_torn_by_a_crash_is_accepted_once_after_the_restart(tmp_path: Path) -> None:
    """A crash in the middle of landing leaves a torn line and no answer: the retry of the same signed
    request must land (once), not be refused as a replay of something that never landed."""
    home = tmp_path / "home"
    headers = calendly_headers(CALENDLY_EVENT)
    with collector_process(home) as first:
        event = json.dumps({"event": "invitee.created", "n": 0}).encode()
        assert httpx.post(f"{first.url}/webhooks/calendly", content=event,
                          headers=calendly_headers(event)).status_code == 200
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    (path,) = (home / "landing" / "calendly").glob("*.jsonl")
    complete = path.read_bytes()
    # The torn line is what the first process would have written for ``headers``, cut short.
    with TestClient(create_collector_app(LandingZone(tmp_path / "scratch", "collector"),
                                         calendly_signing_key=CALENDLY_KEY, stripe_webhook_secret="")) as scratch:
        assert scratch.post("/webhooks/calendly", content=CALENDLY_EVENT, headers=headers).status_code == 200
    [would_have_landed] = (tmp_path / "scratch" / "calendly").glob("*.jsonl")
    with open(path, "ab") as handle:
        handle.write(would_have_landed.read_bytes()[:-20])
    with collector_process(home) as second:
        assert httpx.post(f"{second.url}/webhooks/calendly", content=CALENDLY_EVENT,
                          headers=headers).status_code == 200
        assert httpx.post(f"{second.url}/webhooks/calendly", content=CALENDLY_EVENT,
                          headers=headers).status_code == 401
    assert path.read_bytes().startswith(complete)
    assert [r["event"] for r in landed(second.landing, "calendly")] == [{"event": "invitee.created", "n": 0},
                                                                        json.loads(CALENDLY_EVENT)]
    assert "torn last line" in second.log()
