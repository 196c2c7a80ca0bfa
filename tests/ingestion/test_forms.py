"""Email syntax shared by the collector and the backfill: one table of valid and invalid addresses.

The same table goes through the real collector (which answers 422) and the backfill (which lands the row
and counts it as flagged), so the two paths can never disagree on what an invalid email is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ingestion.backfill import import_forms
from ingestion.collector import create_collector_app
from ingestion.forms import FieldError, check_email, is_valid_email
from ingestion.landing import LandingZone

LOCAL_64 = "l" * 64
DOMAIN_189 = f"{'a' * 63}.{'b' * 63}.{'c' * 57}.com"

VALID = [
    "ada@example.com",
    "Ada.Lovelace@Example.COM",                    # case is normalized downstream
    " ada@example.com ",                           # padding typed into a form is trimmed downstream
    "\u00a0ada@example.com\u2003",                 # so are no-break and other Unicode spaces
    "ada+newsletter@example.com",
    "o'brien@example.ie",
    "first_last-1@mail.example.co.uk",
    "a@b.co",
    "x@123.example.com",                           # an all-digit label below the top level
    "!#$%&'*+/=?^_`{|}~-@example.org",             # every special character a dot-atom allows
    "user@xn--bcher-kva.de",                       # an IDN domain in its ASCII form
    "user@example.xn--p1ai",                       # an IDN top-level domain in its ASCII form
    f"{LOCAL_64}@example.com",                     # local part at its 64-character limit
    f"{LOCAL_64}@{DOMAIN_189}",                    # 254 characters in all
    f"ada@{'d' * 63}.com",                         # a label at its 63-character limit
]

INVALID = [
    "",
    "   ",
    "not-an-email",
    "ada.at.example.com",
    "ada@",
    "@example.com",
    "two@@example.com",
    "a@b@example.com",
    "ada@example",                                 # no top-level domain
    "ad a@example.com",
    "ada@exa mple.com",
    "ada,bo@example.com",
    "ada@example.com,bo@example.com",
    "ada@example.com;",
    "Ada Lovelace <ada@example.com>",
    "<ada@example.com>",
    "ada(work)@example.com",
    '"ada lovelace"@example.com',                  # quoted local parts are not supported
    "ada..lovelace@example.com",
    ".ada@example.com",
    "ada.@example.com",
    "ada@example..com",
    "ada@.example.com",
    "ada@example.com.",
    "ada@-example.com",
    "ada@example-.com",
    "ada@exam_ple.com",
    "ada@example.c",                               # a one-letter top-level domain
    "ada@example.123",                             # a numeric top-level domain
    "ada@127.0.0.1",
    "ada@[127.0.0.1]",
    "ada@bücher.de",                               # a Unicode domain: give its xn-- form
    "josé@example.com",                            # a Unicode local part
    "ada@example.com\n",                           # the warehouse trims spaces, not line breaks
    "\tada@example.com",
    f"{LOCAL_64}l@example.com",                    # local part of 65 characters
    f"{LOCAL_64}@{DOMAIN_189[:-4]}c.com",          # 255 characters in all
    f"ada@{'d' * 64}.com",                         # a label of 64 characters
]


@pytest.mark.parametrize("email", VALID)
def test_valid_addresses_pass(email: str) -> None:
    assert is_valid_email(email)
    check_email({"email": email})


@pytest.mark.parametrize("email", INVALID)
def test_invalid_addresses_are_refused(email: str) -> None:
    assert not is_valid_email(email)
    with pytest.raises(FieldError) as refused:
        check_email({"email": email})
    assert refused.value.field == "email"


def test_table_lengths_are_what_they_claim() -> None:
    assert len(f"{LOCAL_64}@{DOMAIN_189}") == 254
    assert len(f"{LOCAL_64}@{DOMAIN_189[:-4]}c.com") == 255


def test_the_collector_refuses_exactly_what_the_backfill_flags(tmp_path: Path) -> None:
    addresses = [email for email in VALID + INVALID if email.strip()]
    app = create_collector_app(LandingZone(tmp_path / "live", "collector"), calendly_signing_key="k",
                               stripe_webhook_secret="s")
    with TestClient(app) as client:
        refused = {email for email in addresses
                   if client.post("/forms/contact", json={"email": email}).status_code == 422}

    source = tmp_path / "history.jsonl"
    source.write_text("".join(json.dumps({"form_id": "contact", "email": email, "seq": i,
                                          "submitted_at": "2023-01-01T00:00:00Z"}) + "\n"
                              for i, email in enumerate(addresses)), encoding="utf-8")
    landing_root = tmp_path / "import"
    report = import_forms(source, LandingZone(landing_root, "import-1"))
    landed = [json.loads(line)["fields"]["email"]
              for path in (landing_root / "forms").glob("*.jsonl") for line in path.read_text().splitlines()]

    assert refused == set(addresses) - set(VALID)
    assert (report.landed, report.flagged, report.rejected) == (len(addresses), len(refused), [])
    assert landed == addresses  # invalid ones too, as typed: raw data is kept and flagged downstream
