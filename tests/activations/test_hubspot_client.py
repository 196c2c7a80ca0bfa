"""HubSpotClient against the live sandbox (and, for what the emulator does not model, a mock HubSpot)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from activations.http import ApiError, RetryPolicy
from activations.hubspot import LIFECYCLE_PROPERTIES, HubSpotClient, Note
from tests.leaks import leaks

TOKEN = "pat-sandbox"
FAST = RetryPolicy(base_delay=0.01, max_delay=5.0, timeout=10.0)


@pytest.fixture()
def admin(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url + "/_sandbox") as client:
        yield client


@pytest.fixture()
def hubspot(sandbox_url: str) -> Iterator[HubSpotClient]:
    with HubSpotClient(TOKEN, sandbox_url + "/hubspot", policy=FAST) as client:
        yield client


def calls(admin: httpx.Client, method: str, path: str) -> int:
    return admin.get("/calls").json().get(f"hubspot {method} {path}", 0)


def write_calls(admin: httpx.Client) -> dict[str, int]:
    return {k: n for k, n in admin.get("/calls").json().items() if k.startswith("hubspot ") and " GET " not in k}


def rows(n: int, **extra: str) -> list[dict]:
    return [{"email": f"Person{i}@Example.com", "firstname": f"P{i}", **extra} for i in range(n)]


def test_properties_and_the_demo_scheduled_option_are_created_once(hubspot: HubSpotClient, admin: httpx.Client,
                                                                   sandbox_url: str) -> None:
    changes = hubspot.ensure_properties()
    custom = [d["name"] for d in LIFECYCLE_PROPERTIES if "type" in d]
    assert sorted(changes.created) == sorted(custom)
    assert changes.options_added == {"hs_lead_status": ["DEMO_SCHEDULED"]}
    registry = {p["name"]: p for p in httpx.get(
        f"{sandbox_url}/hubspot/crm/v3/properties/contacts",
        headers={"Authorization": f"Bearer {TOKEN}"}).json()["results"]}
    assert registry["engagement_tier"]["groupName"] == "lifecycle"
    group = httpx.get(f"{sandbox_url}/hubspot/crm/v3/properties/contacts/groups/lifecycle",
                      headers={"Authorization": f"Bearer {TOKEN}"})
    assert group.status_code == 200 and group.json()["label"] == "Lifecycle"
    assert registry["original_touch_at"]["type"] == "datetime"
    lead_statuses = [o["value"] for o in registry["hs_lead_status"]["options"]]
    assert lead_statuses[:8] == ["NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED",
                                 "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING"]
    assert lead_statuses[8:] == ["DEMO_SCHEDULED"]
    before = write_calls(admin)

    again = hubspot.ensure_properties()

    assert again.created == [] and again.options_added == {}
    assert write_calls(admin) == before


def test_a_property_group_that_cannot_be_created_stops_before_any_property() -> None:
    """Only 409 (the group exists) is fine: a 404 means a wrong base URL or path, and must not be taken
    for "this API has no groups" and hidden behind a failure of every property after it."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/groups"):
            return httpx.Response(404, json={"status": "error", "message": "resource not found",
                                             "correlationId": "c"})
        return httpx.Response(200, json={"results": []})

    with HubSpotClient(TOKEN, "https://hubspot.test", transport=httpx.MockTransport(handler)) as client, \
            pytest.raises(ApiError) as caught:
        client.ensure_properties()

    assert caught.value.status == 404 and caught.value.path.endswith("/groups")
    assert not any(s.endswith("/batch/create") for s in sent)


def test_250_rows_take_three_upsert_calls_and_report_ids(hubspot: HubSpotClient, admin: httpx.Client) -> None:
    hubspot.ensure_properties()
    outcomes = hubspot.upsert_contacts(rows(250))

    assert calls(admin, "POST", "/crm/v3/objects/contacts/batch/upsert") == 3
    assert [o.key for o in outcomes] == [f"person{i}@example.com" for i in range(250)]
    assert all(o.accepted and o.created and o.id for o in outcomes)
    assert len({o.id for o in outcomes}) == 250
    stored = admin.get("/hubspot/contacts/person7@example.com").json()
    assert stored["id"] == outcomes[7].id
    assert stored["properties"]["firstname"] == "P7"

    updated = hubspot.upsert_contacts([{"email": "person7@example.com", "lastname": "Seven", "firstname": None}])

    assert updated[0].accepted and updated[0].created is False and updated[0].id == outcomes[7].id
    properties = admin.get("/hubspot/contacts/person7@example.com").json()["properties"]
    assert properties["lastname"] == "Seven" and "firstname" not in properties


def test_a_bad_row_is_rejected_with_hubspots_reason_and_the_others_applied(hubspot: HubSpotClient,
                                                                             admin: httpx.Client) -> None:
    hubspot.ensure_properties()
    batch = rows(5)
    batch[2]["hs_lead_status"] = "NOT_A_STATUS"
    batch.append({"email": "person0@example.com", "firstname": "again"})
    batch.append({"firstname": "no email"})

    outcomes = hubspot.upsert_contacts(batch)

    assert [o.status for o in outcomes] == ["accepted", "accepted", "rejected", "accepted", "accepted",
                                            "rejected", "rejected"]
    assert outcomes[2].code == "INVALID_OPTION" and "NOT_A_STATUS" in outcomes[2].error
    assert [outcomes[5].code, outcomes[6].code] == ["DUPLICATE_ROW", "MISSING_EMAIL"]
    assert calls(admin, "POST", "/crm/v3/objects/contacts/batch/upsert") == 1
    assert admin.get("/hubspot/contacts/person3@example.com").status_code == 200
    assert admin.get("/hubspot/contacts/person2@example.com").status_code == 404


def test_a_batch_refused_as_a_whole_is_bisected_down_to_the_bad_row() -> None:
    """Real HubSpot can refuse a whole batch with 400 VALIDATION_ERROR for one bad row; the sandbox answers
    207 instead, so this plays that HubSpot with a mock transport."""
    sent: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        sent.append(len(inputs))
        bad = [i["id"] for i in inputs if i["properties"].get("company") == "\x00"]
        if bad:
            return httpx.Response(400, json={"status": "error", "category": "VALIDATION_ERROR",
                                             "message": f"Property values were not valid: {bad[0]}",
                                             "correlationId": "c"})
        results = [{"id": str(1000 + n), "new": True, "properties": {"email": i["id"]}}
                   for n, i in enumerate(inputs)]
        return httpx.Response(200, json={"status": "COMPLETE", "results": results, "errors": []})

    batch = rows(8)
    batch[5]["company"] = "\x00"
    with HubSpotClient(TOKEN, "https://hubspot.test", transport=httpx.MockTransport(handler)) as client:
        outcomes = client.upsert_contacts(batch)

    assert [o.accepted for o in outcomes] == [True] * 5 + [False] + [True] * 2
    assert outcomes[5].code == "VALIDATION_ERROR" and "person5@example.com" in outcomes[5].error
    assert sent == [8, 4, 4, 2, 1, 1, 2]


def test_read_contacts_by_email(hubspot: HubSpotClient) -> None:
    hubspot.ensure_properties()
    accepted = hubspot.upsert_contacts(rows(3, customer_segment="B2B"))

    found = hubspot.read_contacts(["PERSON1@example.com", "nobody@example.com"], ["firstname", "customer_segment"])

    assert list(found) == ["person1@example.com"]
    assert found["person1@example.com"].id == accepted[1].id
    assert found["person1@example.com"].properties["customer_segment"] == "B2B"


def test_notes_are_associated_to_their_contacts_and_found_again(hubspot: HubSpotClient,
                                                                 admin: httpx.Client) -> None:
    ids = [o.id for o in hubspot.upsert_contacts(rows(2))]
    notes = [Note("booking-1", ids[0], "Demo booked: Intro call", "2026-03-02T10:00:00Z"),
             Note("booking-2", ids[1], "Demo booked: Deep dive", "2026-03-03T11:30:00Z"),
             Note("reschedule-1", ids[0], "Rescheduled from 2 March to 4 March", "2026-03-02T12:00:00Z")]

    outcomes = hubspot.create_notes(notes)

    assert [o.key for o in outcomes] == ["booking-1", "booking-2", "reschedule-1"]
    assert all(o.accepted and o.id for o in outcomes)
    assert calls(admin, "POST", "/crm/v3/objects/notes/batch/create") == 1
    stored = admin.get("/hubspot/contacts/person0@example.com").json()["notes"]
    assert [(n["id"], n["hs_note_body"]) for n in stored] == [
        (outcomes[0].id, "Demo booked: Intro call"), (outcomes[2].id, "Rescheduled from 2 March to 4 March")]
    found = hubspot.find_notes(ids[0])
    assert sorted((n.id, n.body) for n in found) == sorted(
        [(outcomes[0].id, "Demo booked: Intro call"), (outcomes[2].id, "Rescheduled from 2 March to 4 March")])


def test_a_note_batch_whose_answer_is_lost_is_reported_maybe_applied_not_resent(
        sandbox_url: str, admin: httpx.Client) -> None:
    policy = RetryPolicy(base_delay=0.01, timeout=0.3)
    with HubSpotClient(TOKEN, sandbox_url + "/hubspot", policy=policy) as client:
        contact_id = client.upsert_contacts(rows(1))[0].id
        admin.post("/faults", json={"service": "hubspot", "rate_timeout": 1, "timeout_seconds": 1.0})
        outcomes = client.create_notes([Note("n1", contact_id, "Demo canceled", "2026-03-05T09:00:00Z")])
        admin.post("/faults", json={})

        assert outcomes[0].status == "maybe_applied"
        assert calls(admin, "POST", "/crm/v3/objects/notes/batch/create") == 1
        assert [n.body for n in client.find_notes(contact_id)] == ["Demo canceled"]


def test_429s_from_a_realistic_limit_are_waited_out_without_overrunning_it(hubspot: HubSpotClient,
                                                                          admin: httpx.Client) -> None:
    admin.post("/limits", json={"service": "hubspot", "per_second": 4}).raise_for_status()

    outcomes = hubspot.upsert_contacts(rows(1000))

    assert all(o.accepted for o in outcomes)
    received = calls(admin, "POST", "/crm/v3/objects/contacts/batch/upsert")
    assert received - 10 == hubspot.stats.rate_limited <= 1
    assert hubspot.stats.paced_waits >= 1
    assert hubspot.stats.calls["POST /crm/v3/objects/contacts/batch/upsert"] == received


def test_injected_429s_honour_retry_after_and_are_not_failures(sandbox_url: str, admin: httpx.Client) -> None:
    slept: list[float] = []
    admin.post("/faults", json={"service": "hubspot", "rate_429": 0.5, "seed": 3}).raise_for_status()
    with HubSpotClient(TOKEN, sandbox_url + "/hubspot", policy=FAST, sleep=slept.append) as client:
        outcomes = client.upsert_contacts(rows(500))

    assert all(o.accepted for o in outcomes)
    assert client.stats.rate_limited >= 1
    assert calls(admin, "POST", "/crm/v3/objects/contacts/batch/upsert") == 5 + client.stats.rate_limited
    assert len([s for s in slept if s >= 1.0]) >= client.stats.rate_limited


def test_500s_are_retried(sandbox_url: str, admin: httpx.Client) -> None:
    admin.post("/faults", json={"service": "hubspot", "rate_500": 0.5, "seed": 1}).raise_for_status()
    with HubSpotClient(TOKEN, sandbox_url + "/hubspot", policy=FAST) as client:
        outcomes = client.upsert_contacts(rows(300))

    assert all(o.accepted for o in outcomes)
    assert client.stats.retries >= 1
    assert calls(admin, "POST", "/crm/v3/objects/contacts/batch/upsert") == 3 + client.stats.retries


def test_500s_give_up_after_the_attempt_budget(sandbox_url: str, admin: httpx.Client) -> None:
    admin.post("/faults", json={"service": "hubspot", "rate_500": 1}).raise_for_status()
    policy = RetryPolicy(max_attempts=3, base_delay=0.01)
    with HubSpotClient(TOKEN, sandbox_url + "/hubspot", policy=policy) as client, pytest.raises(ApiError) as caught:
        client.upsert_contacts(rows(1))

    assert caught.value.status == 500
    assert calls(admin, "POST", "/crm/v3/objects/contacts/batch/upsert") == 3


def test_a_vendor_echoing_the_token_never_gets_it_logged_raised_or_stored(
        sandbox_url: str, admin: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    """The sandbox's echo mode repeats the request's credential in every error message, as a careless vendor
    would: in the 429s and 500s that are retried (and logged), in a row's rejection reason (stored in
    sync_log), and in the 401 that is raised. None of them shows the token; each shows the mask instead."""
    admin.post("/echo_credentials", json={"on": True}).raise_for_status()
    admin.post("/faults", json={"service": "hubspot", "rate_429": 0.3, "rate_500": 0.3, "seed": 1}).raise_for_status()
    with caplog.at_level(logging.INFO, logger="activations"), \
            HubSpotClient(TOKEN, sandbox_url + "/hubspot", policy=FAST, sleep=lambda _: None) as client:
        client.ensure_properties()
        outcomes = client.upsert_contacts([*rows(3), {"email": "bad@example.com", "hs_lead_status": "NOT_A_STATUS"}])
    admin.post("/faults", json={}).raise_for_status()
    wrong = "pat-na1-this-is-a-secret-token"
    with HubSpotClient(wrong, sandbox_url + "/hubspot", policy=FAST) as bad_client, \
            pytest.raises(ApiError) as caught:
        bad_client.upsert_contacts(rows(1))

    retried = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert client.stats.rate_limited >= 1 and client.stats.retries > client.stats.rate_limited
    assert retried and all("credential presented: ***" in r.getMessage() for r in retried)
    assert [o.status for o in outcomes] == ["accepted"] * 3 + ["rejected"]
    assert "credential presented: ***" in outcomes[3].error
    assert caught.value.status == 401 and "INVALID_AUTHENTICATION" in str(caught.value)
    assert "credential presented: ***" in caught.value.body["message"]
    assert leaks(TOKEN, caplog.records, *outcomes) == []
    assert leaks(wrong, caplog.records, caught.value) == []


def test_any_configured_secret_a_vendor_echoes_is_masked_not_only_the_token() -> None:
    other = "xkeysib-configured-for-brevo"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"status": "error", "category": "VALIDATION_ERROR",
                                         "message": f"we also know {other}", "correlationId": "c"})

    with HubSpotClient(TOKEN, "https://api.example.test", mask=(other,), transport=httpx.MockTransport(handler)
                       ) as client, pytest.raises(ApiError) as caught:
        client.ensure_properties()

    assert "we also know ***" in str(caught.value)
    assert leaks(other, [], caught.value) == []


def test_note_timestamps_in_epoch_milliseconds_are_read_as_instants() -> None:
    """HubSpot echoes hs_timestamp reformatted; 13 digits must not parse as a compact ISO date (year 1787)."""
    from datetime import UTC, datetime

    from activations.hubspot import _instant

    assert _instant("1787020112000") == datetime.fromtimestamp(1787020112, tz=UTC)
    assert _instant("2026-08-18T10:28:32.000Z") == datetime(2026, 8, 18, 10, 28, 32, tzinfo=UTC)
    assert _instant("not a time") is None
