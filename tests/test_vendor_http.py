"""What reads and writes share about vendors (``vendor_http``): how long a vendor asks us to wait, where it puts
its message, and masking."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from vendor_http import ApiError, scrub, vendor_message, wait_seconds


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after": "3", "x-hubspot-ratelimit-interval-milliseconds": "10000"}, 3.0),
    ({"x-hubspot-ratelimit-interval-milliseconds": "10000"}, 10.0),
    ({"x-sib-ratelimit-reset": "4"}, 4.0),
    ({"x-ratelimit-reset": "7"}, 7.0),
    ({"retry-after": "soon", "x-sib-ratelimit-reset": "2"}, 2.0),
    ({"content-type": "application/json"}, None),
])
def test_the_wait_comes_from_the_first_header_the_vendor_sent(headers: dict, seconds: float | None) -> None:
    assert wait_seconds(headers) == seconds


def test_a_retry_after_date_is_the_time_left_until_it() -> None:
    assert 28 <= wait_seconds({"retry-after": formatdate(time.time() + 30, usegmt=True)}) <= 30
    assert wait_seconds({"retry-after": formatdate(time.time() - 30, usegmt=True)}) == 0.0


@pytest.mark.parametrize(("body", "message"), [
    ({"error": {"message": "No such customer", "type": "invalid_request_error"}}, "No such customer"),
    ({"title": "Unauthenticated", "message": "The access token is invalid"},
     "Unauthenticated: The access token is invalid"),
    ({"status": "error", "category": "VALIDATION_ERROR", "message": "bad email"}, "VALIDATION_ERROR: bad email"),
    ({"code": "unauthorized", "message": "Key not found"}, "unauthorized: Key not found"),
    ({"message": "invalid", "details": [{"field": "email"}]}, "invalid: [{'field': 'email'}]"),
    ({"unexpected": 1}, '{"unexpected": 1}'),
    (None, "Bad Gateway"),
])
def test_the_vendors_message_is_found_wherever_it_puts_it(body: object, message: str) -> None:
    assert vendor_message(body, "", "Bad Gateway", ()) == message


def test_secrets_are_masked_at_any_depth_and_before_the_text_is_cut() -> None:
    secret = "sk_test_abcdef"
    assert scrub({"a": [f"x {secret}"], secret: 1}, [secret, ""]) == {"a": ["x ***"], "***": 1}
    assert scrub("key sk_test_abcdef_longer", [secret, secret + "_longer"]) == "key ***"
    text = "x" * 495 + secret
    assert vendor_message(None, text, "", [secret]) == "x" * 495 + "***"


def test_an_api_error_names_the_call_and_keeps_the_vendors_kind() -> None:
    error = ApiError("brevo", "POST", "/contacts/import", 400, "bad", {"code": "invalid_parameter"})

    assert str(error) == "brevo POST /contacts/import failed (HTTP 400): bad"
    assert error.category == "invalid_parameter"
    assert str(ApiError("hubspot", "GET", "/x", None, "ReadTimeout")) == (
        "hubspot GET /x failed (no response): ReadTimeout")
