"""Contract tests of the emulated HubSpot CRM v3 (as https://developers.hubspot.com documents it), over real HTTP."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

AUTH = {"Authorization": "Bearer pat-sandbox"}
RATE_HEADERS = (
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    "X-HubSpot-RateLimit-Daily",
    "X-HubSpot-RateLimit-Daily-Remaining",
)


@pytest.fixture()
def admin(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url + "/_sandbox") as client:
        yield client


@pytest.fixture()
def limited(sandbox_url: str) -> Iterator[httpx.Client]:
    """A HubSpot client with the realistic rate limits on."""
    with httpx.Client(base_url=sandbox_url + "/hubspot", headers=AUTH) as client:
        yield client


@pytest.fixture()
def hs(limited: httpx.Client, admin: httpx.Client) -> httpx.Client:
    """A HubSpot client with the limits lifted, for tests that are not about them."""
    admin.post("/limits", json={"service": "hubspot", "off": True}).raise_for_status()
    return limited


def upsert(hs: httpx.Client, contacts: dict[str, dict]) -> httpx.Response:
    inputs = [{"idProperty": "email", "id": email, "properties": props} for email, props in contacts.items()]
    return hs.post("/crm/v3/objects/contacts/batch/upsert", json={"inputs": inputs})


def contact(hs: httpx.Client, email: str, properties: str = "") -> dict:
    params = {"idProperty": "email", **({"properties": properties} if properties else {})}
    response = hs.get(f"/crm/v3/objects/contacts/{email}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def search(hs: httpx.Client, **body) -> httpx.Response:
    return hs.post("/crm/v3/objects/contacts/search", json=body)


def emails(response: httpx.Response) -> list[str]:
    return [r["properties"]["email"] for r in response.json()["results"]]


def lifecycle_group(hs: httpx.Client) -> None:
    """The property group our own properties go in; HubSpot refuses a property whose group is missing."""
    hs.post("/crm/v3/properties/contacts/groups", json={"name": "lifecycle", "label": "Lifecycle"}).raise_for_status()


# ----- authentication, faults, call counts --------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer pat-wrong"}, {"Authorization": "pat-sandbox"}]
)
def test_missing_or_wrong_token_is_401_invalid_authentication(sandbox_url: str, headers: dict) -> None:
    response = httpx.get(sandbox_url + "/hubspot/crm/v3/objects/contacts", headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "error"
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith("Authentication credentials not found")
    uuid.UUID(body["correlationId"])
    assert "pat-wrong" not in response.text


def test_injected_500_uses_hubspot_error_format_and_clearing_restores(
    hs: httpx.Client, admin: httpx.Client
) -> None:
    admin.post("/faults", json={"service": "hubspot", "rate_500": 1}).raise_for_status()
    failed = hs.get("/crm/v3/owners")
    assert failed.status_code == 500
    assert failed.json()["status"] == "error"
    assert {"message", "correlationId", "category"} <= failed.json().keys()
    admin.post("/faults", json={}).raise_for_status()
    assert hs.get("/crm/v3/owners").status_code == 200


def test_calls_are_counted_by_method_and_path_template(hs: httpx.Client, admin: httpx.Client) -> None:
    upsert(hs, {"a@example.com": {}})
    upsert(hs, {"b@example.com": {}})
    contact(hs, "a@example.com")
    hs.get("/crm/v3/objects/contacts/999999")
    calls = admin.get("/calls").json()
    assert calls["hubspot POST /crm/v3/objects/contacts/batch/upsert"] == 2
    assert calls["hubspot GET /crm/v3/objects/contacts/{contact_id}"] == 2


# ----- rate limits --------------------------------------------------------------------------------------


def test_ten_secondly_bucket_sends_headers_then_429_with_retry_after(
    limited: httpx.Client, admin: httpx.Client
) -> None:
    admin.post("/limits", json={"service": "hubspot", "per_10s": 3}).raise_for_status()
    remaining = []
    for _ in range(3):
        response = limited.get("/crm/v3/owners")
        assert response.status_code == 200
        assert response.headers["X-HubSpot-RateLimit-Max"] == "3"
        assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert response.headers["X-HubSpot-RateLimit-Daily"] == "250000"
        remaining.append(int(response.headers["X-HubSpot-RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]
    rejected = limited.get("/crm/v3/owners")
    assert rejected.status_code == 429
    body = rejected.json()
    assert body["status"] == "error"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    uuid.UUID(body["correlationId"])
    uuid.UUID(body["requestId"])
    assert 1 <= int(rejected.headers["Retry-After"]) <= 10
    assert rejected.headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_the_professional_tier_limit_is_configurable(limited: httpx.Client, admin: httpx.Client) -> None:
    assert limited.get("/crm/v3/owners").headers["X-HubSpot-RateLimit-Max"] == "100"
    admin.post("/limits", json={"service": "hubspot", "per_10s": 190}).raise_for_status()
    response = limited.get("/crm/v3/owners")
    assert response.headers["X-HubSpot-RateLimit-Max"] == "190"
    assert response.headers["X-HubSpot-RateLimit-Remaining"] == "189"


def test_search_has_no_rate_limit_headers_and_spares_the_ten_second_bucket(limited: httpx.Client) -> None:
    for _ in range(3):
        response = search(limited)
        assert response.status_code == 200
        assert not any(h in response.headers for h in RATE_HEADERS)
    assert limited.get("/crm/v3/owners").headers["X-HubSpot-RateLimit-Remaining"] == "99"


def test_search_over_its_per_second_limit_is_429_secondly(limited: httpx.Client) -> None:
    responses = [search(limited) for _ in range(12)]
    rejected = [r for r in responses if r.status_code == 429]
    assert rejected, "12 searches in a row must exceed 5 per second"
    assert all(r.status_code == 200 for r in responses[:5])
    body = rejected[0].json()
    assert body["policyName"] == "SECONDLY"
    assert body["errorType"] == "RATE_LIMIT"
    assert int(rejected[0].headers["Retry-After"]) >= 1
    assert not any(h in rejected[0].headers for h in RATE_HEADERS)


# ----- contacts -----------------------------------------------------------------------------------------


def test_list_pages_with_after_return_every_contact_exactly_once(hs: httpx.Client) -> None:
    created = {f"user{i:02d}@example.com": {"firstname": f"U{i}"} for i in range(23)}
    assert upsert(hs, created).status_code == 200
    seen, after, pages = [], None, 0
    while True:
        params = {"limit": 7, "properties": "email,firstname,not_a_property"}
        if after:
            params["after"] = after
        body = hs.get("/crm/v3/objects/contacts", params=params).json()
        pages += 1
        seen += [r["properties"]["email"] for r in body["results"]]
        assert all("not_a_property" not in r["properties"] for r in body["results"])
        if "paging" not in body:
            break
        after = body["paging"]["next"]["after"]
        assert body["paging"]["next"]["link"].endswith(after)
    assert pages == 4
    assert sorted(seen) == sorted(created)


def test_list_returns_default_properties_and_rejects_limit_above_100(hs: httpx.Client) -> None:
    upsert(hs, {"ada@example.com": {"firstname": "Ada", "company": "Acme"}})
    body = hs.get("/crm/v3/objects/contacts").json()
    assert set(body["results"][0]["properties"]) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }
    assert "paging" not in body
    too_big = hs.get("/crm/v3/objects/contacts", params={"limit": 101})
    assert too_big.status_code == 400
    assert too_big.json()["category"] == "VALIDATION_ERROR"


def test_create_get_and_conflict_on_existing_email(hs: httpx.Client) -> None:
    created = hs.post(
        "/crm/v3/objects/contacts", json={"properties": {"email": "Ada@Example.com", "firstname": "Ada"}}
    )
    assert created.status_code == 201
    body = created.json()
    assert body["properties"]["email"] == "ada@example.com"
    assert body["properties"]["hs_object_id"] == body["id"]
    assert body["archived"] is False and body["createdAt"].endswith("Z")
    by_id = hs.get(f"/crm/v3/objects/contacts/{body['id']}", params={"properties": "firstname"}).json()
    assert by_id["properties"]["firstname"] == "Ada"
    assert contact(hs, "ADA@example.com")["id"] == body["id"]
    again = hs.post("/crm/v3/objects/contacts", json={"properties": {"email": "ada@example.com"}})
    assert again.status_code == 409
    assert again.json()["category"] == "CONFLICT"
    assert again.json()["message"] == f"Contact already exists. Existing ID: {body['id']}"
    missing = hs.get("/crm/v3/objects/contacts/nobody@example.com", params={"idProperty": "email"})
    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"


def test_batch_upsert_reports_new_and_maintains_system_properties(hs: httpx.Client) -> None:
    first = upsert(hs, {"Ada@Example.com": {"firstname": "Ada"}})
    assert first.status_code == 200
    body = first.json()
    assert body["status"] == "COMPLETE" and body["numErrors"] == 0
    assert {"requestedAt", "startedAt", "completedAt"} <= body.keys()
    created = body["results"][0]
    assert created["new"] is True
    assert created["properties"]["email"] == "ada@example.com"
    unchanged = upsert(hs, {"ada@example.com": {"firstname": "Ada"}}).json()["results"][0]
    assert unchanged["new"] is False
    assert unchanged["properties"]["lastmodifieddate"] == created["properties"]["lastmodifieddate"]
    changed = upsert(hs, {"ada@example.com": {"firstname": "Adeline"}}).json()["results"][0]
    assert changed["id"] == created["id"]
    assert changed["properties"]["lastmodifieddate"] >= created["properties"]["lastmodifieddate"]
    stored = contact(hs, "ada@example.com", "firstname,createdate")
    assert stored["properties"]["firstname"] == "Adeline"
    assert stored["properties"]["createdate"] == created["properties"]["createdate"]


def test_batch_upsert_over_100_inputs_is_400_and_writes_nothing(hs: httpx.Client) -> None:
    response = upsert(hs, {f"u{i}@example.com": {} for i in range(101)})
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert hs.get("/crm/v3/objects/contacts").json()["results"] == []
    assert upsert(hs, {f"u{i}@example.com": {} for i in range(100)}).status_code == 200


def test_batch_upsert_with_the_same_id_twice_is_400(hs: httpx.Client) -> None:
    inputs = [
        {"idProperty": "email", "id": "ada@example.com", "properties": {}},
        {"idProperty": "email", "id": "ADA@example.com", "properties": {"firstname": "A"}},
    ]
    response = hs.post("/crm/v3/objects/contacts/batch/upsert", json={"inputs": inputs})
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_batch_upsert_partial_failure_is_207_and_applies_the_good_inputs(hs: httpx.Client) -> None:
    response = upsert(
        hs,
        {
            "good1@example.com": {"firstname": "One"},
            "bad@example.com": {"firstname": "Bad", "favourite_colour": "blue"},
            "good2@example.com": {"lifecyclestage": "lead"},
        },
    )
    assert response.status_code == 207
    body = response.json()
    assert body["numErrors"] == 1
    assert sorted(r["properties"]["email"] for r in body["results"]) == [
        "good1@example.com",
        "good2@example.com",
    ]
    error = body["errors"][0]
    assert error["status"] == "error"
    assert error["category"] == "VALIDATION_ERROR"
    assert error["context"] == {"ids": ["bad@example.com"]}
    assert [e["code"] for e in error["errors"]] == ["PROPERTY_DOESNT_EXIST"]
    assert {"message", "links"} <= error.keys()
    assert contact(hs, "good1@example.com")["properties"]["firstname"] == "One"
    assert (
        hs.get("/crm/v3/objects/contacts/bad@example.com", params={"idProperty": "email"}).status_code == 404
    )


def test_an_update_to_another_contacts_email_is_a_conflict(hs: httpx.Client) -> None:
    upsert(hs, {"ada@example.com": {}, "bob@example.com": {}})
    ada, bob = contact(hs, "ada@example.com")["id"], contact(hs, "bob@example.com")["id"]
    taken = hs.patch(f"/crm/v3/objects/contacts/{bob}", json={"properties": {"email": "ADA@example.com"}})
    assert taken.status_code == 409
    assert taken.json()["message"] == f"Contact already exists. Existing ID: {ada}"
    assert contact(hs, "bob@example.com")["id"] == bob
    not_an_object = hs.patch(f"/crm/v3/objects/contacts/{bob}", json=["email"])
    assert not_an_object.status_code == 400 and not_an_object.json()["category"] == "VALIDATION_ERROR"
    own = hs.patch(f"/crm/v3/objects/contacts/{bob}", json={"properties": {"email": "bob@example.com"}})
    assert own.status_code == 200


def test_empty_string_clears_a_value(hs: httpx.Client) -> None:
    upsert(hs, {"ada@example.com": {"company": "Acme", "phone": "+44 1"}})
    contact_id = contact(hs, "ada@example.com")["id"]
    patched = hs.patch(f"/crm/v3/objects/contacts/{contact_id}", json={"properties": {"company": ""}})
    assert patched.status_code == 200
    stored = contact(hs, "ada@example.com", "company,phone")["properties"]
    assert stored["company"] is None
    assert stored["phone"] == "+44 1"
    # JSON null is taken as a clear too, so a client that sends None for "unknown" sees the damage here.
    hs.patch(
        f"/crm/v3/objects/contacts/{contact_id}", json={"properties": {"phone": None}}
    ).raise_for_status()
    assert contact(hs, "ada@example.com", "phone")["properties"]["phone"] is None


def test_read_only_and_unknown_properties_are_rejected_on_write(hs: httpx.Client) -> None:
    contact_id = hs.post("/crm/v3/objects/contacts", json={"properties": {"email": "a@example.com"}}).json()[
        "id"
    ]
    for name, code in [
        ("hs_object_id", "READ_ONLY_VALUE"),
        ("hs_analytics_source_data_1", "READ_ONLY_VALUE"),
        ("lastmodifieddate", "READ_ONLY_VALUE"),
        ("no_such_property", "PROPERTY_DOESNT_EXIST"),
    ]:
        response = hs.patch(f"/crm/v3/objects/contacts/{contact_id}", json={"properties": {name: "1"}})
        assert response.status_code == 400, name
        body = response.json()
        assert body["category"] == "VALIDATION_ERROR"
        assert body["message"].startswith("Property values were not valid")
        assert [e["code"] for e in body["errors"]] == [code]
    created = hs.post(
        "/crm/v3/objects/contacts", json={"properties": {"email": "b@example.com", "nope": "x"}}
    )
    assert created.status_code == 400
    assert hs.get("/crm/v3/objects/contacts/b@example.com", params={"idProperty": "email"}).status_code == 404


def test_enumeration_options_are_validated_and_an_option_can_be_added(hs: httpx.Client) -> None:
    upsert(hs, {"ada@example.com": {}})
    rejected = upsert(hs, {"ada@example.com": {"hs_lead_status": "DEMO_SCHEDULED"}})
    assert rejected.status_code == 207
    assert [e["code"] for e in rejected.json()["errors"][0]["errors"]] == ["INVALID_OPTION"]
    prop = hs.get("/crm/v3/properties/contacts/hs_lead_status").json()
    values = [o["value"] for o in prop["options"]]
    assert "DEMO_SCHEDULED" not in values and "OPEN" in values
    options = prop["options"] + [{"label": "Demo scheduled", "value": "DEMO_SCHEDULED", "hidden": False}]
    patched = hs.patch("/crm/v3/properties/contacts/hs_lead_status", json={"options": options})
    assert patched.status_code == 200
    assert "DEMO_SCHEDULED" in [o["value"] for o in patched.json()["options"]]
    assert upsert(hs, {"ada@example.com": {"hs_lead_status": "DEMO_SCHEDULED"}}).status_code == 200
    assert (
        contact(hs, "ada@example.com", "hs_lead_status")["properties"]["hs_lead_status"] == "DEMO_SCHEDULED"
    )
    invalid_stage = upsert(hs, {"ada@example.com": {"lifecyclestage": "prospect"}})
    assert [e["code"] for e in invalid_stage.json()["errors"][0]["errors"]] == ["INVALID_OPTION"]


def test_owner_ids_must_exist(hs: httpx.Client) -> None:
    response = upsert(
        hs, {"a@example.com": {"hubspot_owner_id": "999"}, "b@example.com": {"hubspot_owner_id": "102"}}
    )
    assert response.status_code == 207
    assert [e["code"] for e in response.json()["errors"][0]["errors"]] == ["INVALID_OWNER_ID"]
    assert contact(hs, "b@example.com", "hubspot_owner_id")["properties"]["hubspot_owner_id"] == "102"


def test_date_properties_need_midnight_and_datetimes_are_normalised(hs: httpx.Client) -> None:
    for definition in (
        {"name": "demo_day", "type": "date", "fieldType": "date"},
        {"name": "demo_booked_at", "type": "datetime", "fieldType": "date"},
    ):
        hs.post(
            "/crm/v3/properties/contacts",
            json={**definition, "label": definition["name"], "groupName": "contactinformation"},
        ).raise_for_status()
    not_midnight = upsert(hs, {"ada@example.com": {"demo_day": "2024-05-01T10:00:00Z"}})
    assert [e["code"] for e in not_midnight.json()["errors"][0]["errors"]] == ["INVALID_DATE"]
    ok = upsert(
        hs, {"ada@example.com": {"demo_day": "1714521600000", "demo_booked_at": "2024-05-01T12:30:00+02:00"}}
    )
    assert ok.status_code == 200
    stored = contact(hs, "ada@example.com", "demo_day,demo_booked_at")["properties"]
    assert stored["demo_day"] == "2024-05-01"
    assert stored["demo_booked_at"] == "2024-05-01T10:30:00.000Z"


def test_batch_read_by_email_reports_missing_ids_with_207(hs: httpx.Client) -> None:
    upsert(hs, {"a@example.com": {"firstname": "A"}, "b@example.com": {"firstname": "B"}})
    body = {
        "idProperty": "email",
        "properties": ["firstname", "not_a_property"],
        "inputs": [{"id": "a@example.com"}, {"id": "B@example.com"}, {"id": "ghost@example.com"}],
    }
    response = hs.post("/crm/v3/objects/contacts/batch/read", json=body)
    assert response.status_code == 207
    result = response.json()
    assert sorted(r["properties"]["firstname"] for r in result["results"]) == ["A", "B"]
    assert result["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert result["errors"][0]["context"]["ids"] == ["ghost@example.com"]
    body["inputs"] = body["inputs"][:2]
    assert hs.post("/crm/v3/objects/contacts/batch/read", json=body).status_code == 200
    body["inputs"] = [{"id": f"x{i}@example.com"} for i in range(101)]
    assert hs.post("/crm/v3/objects/contacts/batch/read", json=body).status_code == 400


def test_changing_the_original_source_clears_its_drill_downs(hs: httpx.Client, admin: httpx.Client) -> None:
    admin.post(
        "/hubspot/contacts",
        json={
            "properties": {
                "email": "ada@example.com",
                "hs_analytics_source": "PAID_SEARCH",
                "hs_analytics_source_data_1": "google",
                "hs_analytics_source_data_2": "spring",
            }
        },
    ).raise_for_status()
    upsert(hs, {"ada@example.com": {"firstname": "Ada"}})
    kept = admin.get("/hubspot/contacts/ada@example.com").json()["properties"]
    assert kept["hs_analytics_source_data_1"] == "google"
    upsert(hs, {"ada@example.com": {"hs_analytics_source": "REFERRALS"}})
    changed = admin.get("/hubspot/contacts/ada@example.com").json()["properties"]
    assert changed["hs_analytics_source"] == "REFERRALS"
    assert "hs_analytics_source_data_1" not in changed and "hs_analytics_source_data_2" not in changed


# ----- properties ---------------------------------------------------------------------------------------


def test_property_create_201_then_409_and_validation(hs: httpx.Client) -> None:
    lifecycle_group(hs)
    definition = {
        "name": "lead_summary",
        "label": "Lead summary",
        "groupName": "lifecycle",
        "type": "string",
        "fieldType": "textarea",
    }
    created = hs.post("/crm/v3/properties/contacts", json=definition)
    assert created.status_code == 201
    assert created.json()["modificationMetadata"]["readOnlyValue"] is False
    assert {"archivable", "readOnlyDefinition"} <= created.json()["modificationMetadata"].keys()
    duplicate = hs.post("/crm/v3/properties/contacts", json=definition)
    assert duplicate.status_code == 409
    assert duplicate.json()["category"] == "CONFLICT"
    for bad in (
        {**definition, "name": "Lead-Summary"},
        {**definition, "name": "x2", "type": "number", "fieldType": "text"},
        {**definition, "name": "x3", "type": "colour"},
        {"name": "x4", "type": "string"},
    ):
        response = hs.post("/crm/v3/properties/contacts", json=bad)
        assert response.status_code == 400, bad
        assert response.json()["category"] == "VALIDATION_ERROR"
    assert hs.get("/crm/v3/properties/contacts/lead_summary").json()["fieldType"] == "textarea"
    assert "lead_summary" in [p["name"] for p in hs.get("/crm/v3/properties/contacts").json()["results"]]
    assert hs.get("/crm/v3/properties/contacts/nothing_here").status_code == 404
    assert upsert(hs, {"ada@example.com": {"lead_summary": "booked a demo"}}).status_code == 200


def test_property_batch_create_reports_conflicts(hs: httpx.Client) -> None:
    lifecycle_group(hs)
    inputs = [
        {
            "name": "customer_segment",
            "label": "Segment",
            "groupName": "lifecycle",
            "type": "enumeration",
            "fieldType": "select",
            "options": [{"label": "B2B", "value": "B2B"}, {"label": "B2C", "value": "B2C"}],
        },
        {
            "name": "email",
            "label": "Email",
            "groupName": "contactinformation",
            "type": "string",
            "fieldType": "text",
        },
    ]
    response = hs.post("/crm/v3/properties/contacts/batch/create", json={"inputs": inputs})
    assert response.status_code == 207
    body = response.json()
    assert [r["name"] for r in body["results"]] == ["customer_segment"]
    assert body["errors"][0]["category"] == "CONFLICT"
    rejected = upsert(hs, {"ada@example.com": {"customer_segment": "B2X"}})
    assert [e["code"] for e in rejected.json()["errors"][0]["errors"]] == ["INVALID_OPTION"]


def test_property_groups_create_get_update_and_archive(hs: httpx.Client) -> None:
    groups = "/crm/v3/properties/contacts/groups"
    builtin = [g["name"] for g in hs.get(groups).json()["results"]]
    assert "contactinformation" in builtin and "lifecycle" not in builtin
    created = hs.post(groups, json={"name": "lifecycle", "label": "Lifecycle", "displayOrder": 4})
    assert created.status_code == 201
    assert created.json() == {"name": "lifecycle", "label": "Lifecycle", "displayOrder": 4, "archived": False}
    assert hs.post(groups, json={"name": "defaults", "label": "Defaults"}).json()["displayOrder"] == -1
    duplicate = hs.post(groups, json={"name": "lifecycle", "label": "Again"})
    assert duplicate.status_code == 409 and duplicate.json()["category"] == "CONFLICT"
    for bad in ({"name": "Life-Cycle", "label": "x"}, {"name": "nolabel"}, {"name": "x", "label": "x",
                                                                             "displayOrder": "first"}):
        refused = hs.post(groups, json=bad)
        assert refused.status_code == 400 and refused.json()["category"] == "VALIDATION_ERROR", bad
    updated = hs.patch(f"{groups}/lifecycle", json={"label": "Lifecycle marketing"})
    assert updated.json()["label"] == "Lifecycle marketing" and updated.json()["displayOrder"] == 4
    assert hs.get(f"{groups}/lifecycle").json()["label"] == "Lifecycle marketing"
    for method in ("GET", "PATCH", "DELETE"):
        missing = hs.request(method, f"{groups}/nothing_here", json={"label": "x"})
        assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND", method
    hs.post("/crm/v3/properties/contacts", json={"name": "form_source", "label": "Form source", "type": "string",
                                                 "fieldType": "text", "groupName": "lifecycle"}).raise_for_status()
    in_use = hs.delete(f"{groups}/lifecycle")
    assert in_use.status_code == 400 and "form_source" in in_use.json()["message"]
    assert hs.delete(f"{groups}/defaults").status_code == 204
    assert hs.get(f"{groups}/defaults").status_code == 404
    assert "defaults" not in [g["name"] for g in hs.get(groups).json()["results"]]


def test_a_property_must_name_an_existing_group(hs: httpx.Client) -> None:
    definition = {"name": "primary_audience", "label": "Audience", "type": "string", "fieldType": "text",
                  "groupName": "lifecycle"}
    refused = hs.post("/crm/v3/properties/contacts", json=definition)
    assert refused.status_code == 400
    assert refused.json()["category"] == "VALIDATION_ERROR" and "lifecycle" in refused.json()["message"]
    batch = hs.post("/crm/v3/properties/contacts/batch/create", json={"inputs": [definition]})
    assert batch.status_code == 207 and batch.json()["errors"][0]["category"] == "VALIDATION_ERROR"
    assert hs.get("/crm/v3/properties/contacts/primary_audience").status_code == 404
    moved = hs.patch("/crm/v3/properties/contacts/hs_lead_status", json={"groupName": "lifecycle"})
    assert moved.status_code == 400
    lifecycle_group(hs)
    assert hs.post("/crm/v3/properties/contacts", json=definition).status_code == 201


# ----- search -------------------------------------------------------------------------------------------


@pytest.fixture()
def people(hs: httpx.Client, admin: httpx.Client) -> httpx.Client:
    admin.post(
        "/hubspot/contacts",
        json=[
            {
                "properties": {
                    "email": "ann@acme.com",
                    "firstname": "Ann",
                    "lifecyclestage": "lead",
                    "company": "Acme Care",
                },
                "createdate": "2024-01-10T09:00:00Z",
            },
            {
                "properties": {"email": "bob@acme.com", "firstname": "Bob", "lifecyclestage": "customer"},
                "createdate": "2024-02-10T09:00:00Z",
            },
            {
                "properties": {"email": "cy@other.org", "lifecyclestage": "subscriber", "company": "Other"},
                "createdate": "2024-03-10T09:00:00Z",
            },
            {
                "properties": {"email": "di@other.org", "firstname": "Di"},
                "createdate": "2024-04-10T09:00:00Z",
            },
        ],
    ).raise_for_status()
    return hs


def one_filter(**item) -> list[dict]:
    return [{"filters": [item]}]


def test_search_operators(people: httpx.Client) -> None:
    hs = people

    def found(groups: list[dict]) -> list[str]:
        response = search(
            hs, filterGroups=groups, sorts=[{"propertyName": "email", "direction": "ASCENDING"}]
        )
        assert response.status_code == 200, response.text
        return emails(response)

    assert found(one_filter(propertyName="lifecyclestage", operator="EQ", value="lead")) == ["ann@acme.com"]
    assert found(one_filter(propertyName="lifecyclestage", operator="NEQ", value="lead")) == [
        "bob@acme.com",
        "cy@other.org",
        "di@other.org",
    ]
    assert found(one_filter(propertyName="lifecyclestage", operator="IN", values=["lead", "customer"])) == [
        "ann@acme.com",
        "bob@acme.com",
    ]
    assert found(
        one_filter(propertyName="lifecyclestage", operator="NOT_IN", values=["lead", "customer"])
    ) == ["cy@other.org", "di@other.org"]
    assert found(one_filter(propertyName="firstname", operator="HAS_PROPERTY")) == [
        "ann@acme.com",
        "bob@acme.com",
        "di@other.org",
    ]
    assert found(one_filter(propertyName="firstname", operator="NOT_HAS_PROPERTY")) == ["cy@other.org"]
    assert found(one_filter(propertyName="email", operator="CONTAINS_TOKEN", value="*@acme.com")) == [
        "ann@acme.com",
        "bob@acme.com",
    ]
    assert found(one_filter(propertyName="company", operator="CONTAINS_TOKEN", value="care")) == [
        "ann@acme.com"
    ]
    feb = int(datetime(2024, 2, 1, tzinfo=UTC).timestamp() * 1000)
    assert found(one_filter(propertyName="createdate", operator="GTE", value=str(feb))) == [
        "bob@acme.com",
        "cy@other.org",
        "di@other.org",
    ]
    assert found(one_filter(propertyName="createdate", operator="LT", value="2024-03-10T09:00:00Z")) == [
        "ann@acme.com",
        "bob@acme.com",
    ]
    assert found(one_filter(propertyName="createdate", operator="LTE", value="2024-03-10T09:00:00.000Z")) == [
        "ann@acme.com",
        "bob@acme.com",
        "cy@other.org",
    ]
    assert found(one_filter(propertyName="createdate", operator="GT", value=str(feb))) == [
        "bob@acme.com",
        "cy@other.org",
        "di@other.org",
    ]
    assert found(
        one_filter(
            propertyName="createdate",
            operator="BETWEEN",
            value="2024-02-01T00:00:00Z",
            highValue="2024-03-31T00:00:00Z",
        )
    ) == ["bob@acme.com", "cy@other.org"]
    and_group = [
        {
            "filters": [
                {"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@acme.com"},
                {"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"},
            ]
        }
    ]
    assert found(and_group) == ["bob@acme.com"]
    or_groups = one_filter(propertyName="lifecyclestage", operator="EQ", value="lead") + one_filter(
        propertyName="firstname", operator="EQ", value="di"
    )
    assert found(or_groups) == ["ann@acme.com", "di@other.org"]


def test_search_sorts_projects_and_validates(people: httpx.Client) -> None:
    hs = people
    response = search(
        hs,
        sorts=[{"propertyName": "createdate", "direction": "DESCENDING"}],
        properties=["email", "lifecyclestage", "not_a_property"],
    )
    assert emails(response) == ["di@other.org", "cy@other.org", "bob@acme.com", "ann@acme.com"]
    first = response.json()["results"][0]["properties"]
    assert first["lifecyclestage"] is None and "not_a_property" not in first
    assert {"hs_object_id", "createdate", "lastmodifieddate"} <= first.keys()
    default = search(hs).json()["results"][0]["properties"]
    assert set(default) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }
    too_many_groups = [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}] * 6
    too_many_in_group = [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}] * 7}]
    too_many_total = [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}] * 5}] * 4
    for body in (
        {"filterGroups": too_many_groups},
        {"filterGroups": too_many_in_group},
        {"filterGroups": too_many_total},
        {"limit": 201},
        {"filterGroups": one_filter(propertyName="email", operator="LIKE", value="x")},
        {"after": "not-a-number"},
    ):
        rejected = search(hs, **body)
        assert rejected.status_code == 400, body
        assert rejected.json()["category"] == "VALIDATION_ERROR"
    assert (
        search(
            hs, filterGroups=[{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}] * 6}] * 3
        ).status_code
        == 200
    )


def test_search_pages_by_numeric_offset_with_total(hs: httpx.Client) -> None:
    upsert(hs, {f"p{i:02d}@example.com": {"firstname": "P"} for i in range(25)})
    seen, after, totals = [], None, set()
    while True:
        body = {"limit": 10, "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]}
        if after is not None:
            body["after"] = after
        page = search(hs, **body).json()
        totals.add(page["total"])
        seen += [r["properties"]["email"] for r in page["results"]]
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
        assert after == str(len(seen))
    assert totals == {25}
    assert seen == [f"p{i:02d}@example.com" for i in range(25)]


def test_search_cannot_page_past_10000_results(hs: httpx.Client, admin: httpx.Client) -> None:
    seeded = [{"properties": {"email": f"bulk{i}@example.com"}} for i in range(10_050)]
    admin.post("/hubspot/contacts", json=seeded).raise_for_status()
    near_the_end = search(hs, limit=20, after="9990").json()
    assert near_the_end["total"] == 10_050
    assert len(near_the_end["results"]) == 10
    assert near_the_end["paging"]["next"]["after"] == "10010"
    beyond = search(hs, limit=10, after="10000")
    assert beyond.status_code == 400
    assert beyond.json()["category"] == "VALIDATION_ERROR"


def test_search_sees_writes_through_lastmodifieddate(people: httpx.Client) -> None:
    hs = people
    before = search(
        hs,
        filterGroups=one_filter(
            propertyName="lastmodifieddate", operator="GTE", value="2030-01-01T00:00:00Z"
        ),
    ).json()["total"]
    upsert(hs, {"ann@acme.com": {"firstname": "Annie"}})
    changed_at = contact(hs, "ann@acme.com", "lastmodifieddate")["properties"]["lastmodifieddate"]
    after = search(
        hs, filterGroups=one_filter(propertyName="lastmodifieddate", operator="GTE", value=changed_at)
    )
    assert before == 0
    assert emails(after) == ["ann@acme.com"]


# ----- notes and owners ---------------------------------------------------------------------------------


def note(contact_id: str, body: str, timestamp: str = "2024-05-01T10:00:00.000Z", type_id: int = 202) -> dict:
    return {
        "properties": {"hs_timestamp": timestamp, "hs_note_body": body},
        "associations": [
            {
                "to": {"id": contact_id},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
            }
        ],
    }


def test_notes_are_associated_with_their_contact(hs: httpx.Client, admin: httpx.Client) -> None:
    contact_id = upsert(hs, {"ada@example.com": {}}).json()["results"][0]["id"]
    created = hs.post("/crm/v3/objects/notes", json=note(contact_id, "Booked a demo (utm_source=google)"))
    assert created.status_code == 201
    note_id = created.json()["id"]
    assert created.json()["properties"]["hs_note_body"] == "Booked a demo (utm_source=google)"
    second = hs.post("/crm/v3/objects/notes", json=note(contact_id, "Rescheduled", "1714640400000"))
    assert second.status_code == 201
    with_notes = hs.get(f"/crm/v3/objects/contacts/{contact_id}", params={"associations": "notes"}).json()
    assert with_notes["associations"]["notes"]["results"] == [
        {"id": note_id, "type": "contact_to_note"},
        {"id": second.json()["id"], "type": "contact_to_note"},
    ]
    fetched = hs.get(
        f"/crm/v3/objects/notes/{note_id}",
        params={"associations": "contacts", "properties": "hs_note_body,hs_timestamp"},
    ).json()
    assert fetched["associations"]["contacts"]["results"] == [{"id": contact_id, "type": "note_to_contact"}]
    assert fetched["properties"]["hs_timestamp"] == "2024-05-01T10:00:00.000Z"
    stored = admin.get("/hubspot/contacts/ada@example.com").json()
    assert [(n["hs_note_body"], n["hs_timestamp"]) for n in stored["notes"]] == [
        ("Booked a demo (utm_source=google)", "2024-05-01T10:00:00.000Z"),
        ("Rescheduled", "2024-05-02T09:00:00.000Z"),
    ]


def test_notes_are_validated(hs: httpx.Client) -> None:
    contact_id = upsert(hs, {"ada@example.com": {}}).json()["results"][0]["id"]
    no_timestamp = {"properties": {"hs_note_body": "x"}}
    too_long = note(contact_id, "x" * 65_537)
    unknown_contact = note("987654321", "x")
    wrong_type = note(contact_id, "x", type_id=1)
    for body in (no_timestamp, too_long, unknown_contact, wrong_type):
        response = hs.post("/crm/v3/objects/notes", json=body)
        assert response.status_code == 400
        assert response.json()["category"] == "VALIDATION_ERROR"
    assert hs.post("/crm/v3/objects/notes", json=note(contact_id, "x" * 65_536)).status_code == 201
    assert hs.get("/crm/v3/objects/notes/424242").status_code == 404


def test_notes_batch_create_is_capped_at_100(hs: httpx.Client) -> None:
    contact_id = upsert(hs, {"ada@example.com": {}}).json()["results"][0]["id"]
    created = hs.post(
        "/crm/v3/objects/notes/batch/create",
        json={"inputs": [note(contact_id, "one"), note(contact_id, "two")]},
    )
    assert created.status_code == 201
    assert [r["properties"]["hs_note_body"] for r in created.json()["results"]] == ["one", "two"]
    too_many = hs.post("/crm/v3/objects/notes/batch/create", json={"inputs": [note(contact_id, "n")] * 101})
    assert too_many.status_code == 400
    notes = hs.get(f"/crm/v3/objects/contacts/{contact_id}", params={"associations": "notes"}).json()
    assert len(notes["associations"]["notes"]["results"]) == 2


def test_owners_list_and_paging(hs: httpx.Client) -> None:
    body = hs.get("/crm/v3/owners").json()
    assert [o["id"] for o in body["results"]] == ["101", "102", "103"]
    assert {"id", "email", "firstName", "lastName", "userId", "createdAt", "updatedAt", "archived"} <= set(
        body["results"][0]
    )
    first = hs.get("/crm/v3/owners", params={"limit": 2}).json()
    assert [o["id"] for o in first["results"]] == ["101", "102"]
    rest = hs.get("/crm/v3/owners", params={"limit": 2, "after": first["paging"]["next"]["after"]}).json()
    assert [o["id"] for o in rest["results"]] == ["103"] and "paging" not in rest


# ----- admin --------------------------------------------------------------------------------------------


def test_seeded_contacts_keep_owner_source_and_history(hs: httpx.Client, admin: httpx.Client) -> None:
    response = admin.post(
        "/hubspot/contacts",
        json=[
            {
                "properties": {
                    "email": "Old@Example.com",
                    "hubspot_owner_id": "101",
                    "hs_analytics_source": "PAID_SEARCH",
                    "hs_analytics_source_data_1": "google",
                    "lifecyclestage": "customer",
                    "original_touch_source": "google",
                },
                "createdate": "2023-06-01T08:00:00Z",
            }
        ],
    )
    assert response.status_code == 201
    [contact_id] = response.json()["ids"]
    stored = contact(
        hs, "old@example.com", "createdate,hubspot_owner_id,hs_analytics_source,original_touch_source"
    )
    assert stored["id"] == contact_id
    assert stored["properties"]["createdate"] == "2023-06-01T08:00:00.000Z"
    assert stored["createdAt"] == "2023-06-01T08:00:00.000Z"
    assert stored["properties"]["hubspot_owner_id"] == "101"
    assert stored["properties"]["original_touch_source"] == "google"
    assert hs.get("/crm/v3/properties/contacts/original_touch_source").status_code == 200
    assert hs.get("/crm/v3/properties/contacts/groups/lifecycle").status_code == 200
    assert (
        admin.post("/hubspot/contacts", json={"properties": {"email": "old@example.com"}}).status_code == 409
    )
    assert admin.post("/hubspot/contacts", json={"properties": {"hubspot_owner_id": "7"}}).status_code == 400
    api_created = upsert(hs, {"new@example.com": {}}).json()["results"][0]["id"]
    assert (
        contact(hs, "new@example.com", "hs_analytics_source")["properties"]["hs_analytics_source"]
        == "OFFLINE"
    )
    assert api_created != contact_id


def test_admin_contact_view_has_every_property(hs: httpx.Client, admin: httpx.Client) -> None:
    upsert(hs, {"ada@example.com": {"firstname": "Ada", "company": "Acme"}})
    stored = admin.get("/hubspot/contacts/ADA@example.com").json()
    assert stored["properties"]["company"] == "Acme"
    assert stored["properties"]["email"] == "ada@example.com"
    assert stored["notes"] == []
    assert admin.get("/hubspot/contacts/ghost@example.com").status_code == 404


def test_after_cursor_is_opaque_and_validated(hs: httpx.Client) -> None:
    upsert(hs, {f"c{i}@example.com": {} for i in range(3)})
    page = hs.get("/crm/v3/objects/contacts", params={"limit": 1}).json()
    cursor = page["paging"]["next"]["after"]
    assert not cursor.isdigit()
    bogus = base64.urlsafe_b64encode(b"not-an-id").decode()
    assert hs.get("/crm/v3/objects/contacts", params={"after": bogus}).status_code == 400


def test_search_takes_sorts_as_property_names_too(people: httpx.Client) -> None:
    by_name = search(people, sorts=["firstname"], properties=["email", "firstname"], limit=200)
    by_object = search(people, sorts=[{"propertyName": "firstname", "direction": "ASCENDING"}],
                       properties=["email", "firstname"], limit=200)
    assert by_name.status_code == 200 and emails(by_name) == emails(by_object)
    assert search(people, sorts=["no_such_property"]).status_code == 400


# ----- archive ------------------------------------------------------------------------------------------


def test_an_archived_contact_leaves_every_read_and_frees_its_email(hs: httpx.Client) -> None:
    ids = {r["properties"]["email"]: r["id"] for r in upsert(
        hs, {"kept@example.com": {}, "gone@example.com": {"firstname": "Gone"}}).json()["results"]}
    gone = ids["gone@example.com"]
    note_id = hs.post("/crm/v3/objects/notes", json=note(gone, "before the archive")).json()["id"]

    assert hs.delete(f"/crm/v3/objects/contacts/{gone}").status_code == 204

    missing = hs.get(f"/crm/v3/objects/contacts/{gone}")
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"
    assert hs.get("/crm/v3/objects/contacts/gone@example.com", params={"idProperty": "email"}).status_code == 404
    assert emails(hs.get("/crm/v3/objects/contacts")) == ["kept@example.com"]
    assert emails(search(hs, limit=10)) == ["kept@example.com"]
    read = hs.post("/crm/v3/objects/contacts/batch/read", json={"inputs": [{"id": gone}]})
    assert read.status_code == 207 and read.json()["errors"][0]["context"]["ids"] == [gone]
    assert hs.patch(f"/crm/v3/objects/contacts/{gone}", json={"properties": {}}).status_code == 404
    assert "associations" not in hs.get(f"/crm/v3/objects/notes/{note_id}",
                                        params={"associations": "contacts"}).json()
    assert hs.post("/crm/v3/objects/notes", json=note(gone, "after")).status_code == 400

    archived = hs.get("/crm/v3/objects/contacts", params={"archived": "true", "properties": "firstname"}).json()
    [shown] = archived["results"]
    assert (shown["id"], shown["archived"], shown["properties"]["firstname"]) == (gone, True, "Gone")
    assert datetime.fromisoformat(shown["archivedAt"]) <= datetime.now(UTC)
    assert hs.get(f"/crm/v3/objects/contacts/{gone}", params={"archived": "true"}).json()["archived"] is True
    again = upsert(hs, {"gone@example.com": {}}).json()["results"][0]
    assert again["new"] is True and again["id"] not in ids.values()


def test_archiving_is_idempotent_and_batched(hs: httpx.Client) -> None:
    ids = [r["id"] for r in upsert(hs, {f"b{i}@example.com": {} for i in range(3)}).json()["results"]]
    assert hs.delete("/crm/v3/objects/contacts/987654321").status_code == 204
    not_numeric = hs.delete("/crm/v3/objects/contacts/not-an-id")
    assert not_numeric.status_code == 404 and not_numeric.json()["category"] == "OBJECT_NOT_FOUND"

    batch = hs.post("/crm/v3/objects/contacts/batch/archive", json={"inputs": [{"id": i} for i in ids[:2]]})

    assert batch.status_code == 204 and batch.content == b""
    assert hs.post("/crm/v3/objects/contacts/batch/archive", json={"inputs": [{"id": ids[0]}]}).status_code == 204
    assert [c["id"] for c in hs.get("/crm/v3/objects/contacts").json()["results"]] == ids[2:]
    too_many = hs.post("/crm/v3/objects/contacts/batch/archive", json={"inputs": [{"id": "1"}] * 101})
    assert too_many.status_code == 400


# ----- associations (v4) --------------------------------------------------------------------------------


def note_without_contact(hs: httpx.Client, body: str) -> str:
    created = hs.post("/crm/v3/objects/notes", json={"properties": {"hs_timestamp": "1714640400000",
                                                                     "hs_note_body": body}})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def test_a_default_association_links_both_ways_and_shows_in_v3(hs: httpx.Client) -> None:
    contact_id = upsert(hs, {"ada@example.com": {}}).json()["results"][0]["id"]
    note_id = note_without_contact(hs, "called")

    made = hs.put(f"/crm/v4/objects/notes/{note_id}/associations/default/contacts/{contact_id}")

    assert made.status_code == 200 and made.json()["status"] == "COMPLETE"
    assert sorted((r["from"]["id"], r["to"]["id"], r["associationSpec"]["associationTypeId"])
                  for r in made.json()["results"]) == sorted([(note_id, contact_id, 202), (contact_id, note_id, 201)])
    again = hs.put(f"/crm/v4/objects/0-1/{contact_id}/associations/default/0-46/{note_id}")
    assert again.status_code == 200
    v3_contact = hs.get(f"/crm/v3/objects/contacts/{contact_id}", params={"associations": "notes"}).json()
    assert v3_contact["associations"]["notes"]["results"] == [{"id": note_id, "type": "contact_to_note"}]
    v3_note = hs.get(f"/crm/v3/objects/notes/{note_id}", params={"associations": "contacts"}).json()
    assert v3_note["associations"]["contacts"]["results"] == [{"id": contact_id, "type": "note_to_contact"}]
    listed = hs.get(f"/crm/v4/objects/notes/{note_id}/associations/contacts").json()
    assert listed == {"results": [{"toObjectId": int(contact_id), "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": 202, "label": None}]}]}


def test_associations_are_validated(hs: httpx.Client) -> None:
    contact_id = upsert(hs, {"ada@example.com": {}}).json()["results"][0]["id"]
    note_id = note_without_contact(hs, "x")
    unknown_type = hs.put(f"/crm/v4/objects/butterflies/1/associations/default/contacts/{contact_id}")
    assert unknown_type.status_code == 400
    assert unknown_type.json()["message"] == "Unable to infer object type from: butterflies"
    for path in (f"notes/{note_id}/associations/default/contacts/987654",
                 f"notes/987654/associations/default/contacts/{contact_id}",
                 f"contacts/{contact_id}/associations/default/contacts/{contact_id}"):
        refused = hs.put(f"/crm/v4/objects/{path}")
        assert refused.status_code == 400 and refused.json()["category"] == "VALIDATION_ERROR", path
    batch = hs.post("/crm/v4/associations/notes/contacts/batch/associate/default", json={"inputs": [
        {"from": {"id": note_id}, "to": {"id": contact_id}}, {"from": {"id": note_id}, "to": {"id": "987654"}}]})
    assert batch.status_code == 400
    assert hs.get(f"/crm/v4/objects/notes/{note_id}/associations/contacts").json()["results"] == []
    missing = hs.get("/crm/v4/objects/contacts/987654/associations/notes")
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"
    for limit in (0, 501, "many"):
        assert hs.get(f"/crm/v4/objects/notes/{note_id}/associations/contacts",
                      params={"limit": limit}).status_code == 400


def test_associations_page_and_batch(hs: httpx.Client) -> None:
    ada, lonely = (r["id"] for r in sorted(upsert(hs, {"ada@example.com": {}, "lonely@example.com": {}}).json()[
        "results"], key=lambda r: r["properties"]["email"]))
    notes = [note_without_contact(hs, f"n{i}") for i in range(3)]
    linked = hs.post("/crm/v4/associations/notes/contacts/batch/associate/default",
                     json={"inputs": [{"from": {"id": n}, "to": {"id": ada}} for n in notes]})
    assert linked.status_code == 200 and len(linked.json()["results"]) == 6

    pages, after = [], None
    while True:
        page = hs.get(f"/crm/v4/objects/contacts/{ada}/associations/notes",
                      params={"limit": 2, **({"after": after} if after else {})}).json()
        pages.append([str(r["toObjectId"]) for r in page["results"]])
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
    assert pages == [notes[:2], notes[2:]]

    read = hs.post("/crm/v4/associations/contacts/notes/batch/read",
                   json={"inputs": [{"id": ada}, {"id": lonely}, {"id": "987654"}]})
    assert read.status_code == 207
    [result] = read.json()["results"]
    assert result["from"] == {"id": ada} and [str(t["toObjectId"]) for t in result["to"]] == notes
    assert result["to"][0]["associationTypes"][0]["typeId"] == 201
    assert [e["context"]["fromObjectId"] for e in read.json()["errors"]] == [[lonely], ["987654"]]
    assert {e["subCategory"] for e in read.json()["errors"]} == {"crm.associations.NO_ASSOCIATIONS_FOUND"}


# ----- unknown routes -----------------------------------------------------------------------------------


def test_unknown_paths_and_methods_answer_hubspots_json_errors(hs: httpx.Client) -> None:
    for path in ("/crm/v3/no/such/thing", "/", "/crm/v3/objects/contacts/1001/nope"):
        unknown = hs.get(path)
        assert unknown.status_code == 404, path
        assert unknown.headers["content-type"] == "application/json"
        assert unknown.json()["status"] == "error" and unknown.json()["message"] == "resource not found"
        uuid.UUID(unknown.json()["correlationId"])
    wrong = hs.put("/crm/v3/owners", json={})
    assert wrong.status_code == 405 and wrong.json()["message"] == "HTTP 405 Method Not Allowed"
    assert wrong.headers["allow"] == "GET, HEAD"
    upsert_by_get = hs.get("/crm/v3/objects/contacts/batch/upsert")
    assert upsert_by_get.status_code == 405 and upsert_by_get.headers["allow"] == "POST"
    assert hs.get("/crm/v3/owners/").json()["results"][0]["id"] == "101"
