"""Contract tests of the emulated Brevo API v3 (as https://developers.brevo.com documents it), over real HTTP."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.servers import serve

KEY = {"api-key": "xkeysib-sandbox"}
IMPORT_REPORTS = ("invalid_emails", "duplicate_contact_id", "duplicate_ext_id", "duplicate_email_id",
                  "duplicate_phone_id", "duplicate_whatsapp_id", "duplicate_landline_number_id")
"""The keys of a completed import's ``info.import`` in Brevo's spec: a report URL each, or null."""


@pytest.fixture()
def admin(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url + "/_sandbox") as client:
        yield client


@pytest.fixture()
def limited(sandbox_url: str) -> Iterator[httpx.Client]:
    """A Brevo client (base URL ends in /v3, like BREVO_BASE_URL) with the realistic limits on."""
    with httpx.Client(base_url=sandbox_url + "/brevo/v3", headers=KEY) as client:
        yield client


@pytest.fixture()
def brevo(limited: httpx.Client, admin: httpx.Client) -> httpx.Client:
    """A Brevo client with the limits lifted, for tests that are not about them."""
    admin.post("/limits", json={"service": "brevo", "off": True}).raise_for_status()
    return limited


def new_list(brevo: httpx.Client, name: str = "Newsletter") -> int:
    response = brevo.post("/contacts/lists", json={"name": name, "folderId": 1})
    assert response.status_code == 201
    return response.json()["id"]


def attribute(brevo: httpx.Client, name: str, type_: str) -> None:
    assert brevo.post(f"/contacts/attributes/normal/{name}", json={"type": type_}).status_code == 201


def stored(brevo: httpx.Client, identifier: str) -> dict:
    response = brevo.get(f"/contacts/{identifier}")
    assert response.status_code == 200, response.text
    return response.json()


def send(
    brevo: httpx.Client, email: str, template_id: int = 7, tags: list[str] | None = None, **extra
) -> httpx.Response:
    return brevo.post(
        "/smtp/email",
        json={
            "to": [{"email": email, "name": "Ada"}],
            "templateId": template_id,
            "params": {"sequence": "demo_nurture", "step": 1},
            "tags": tags or [],
            **extra,
        },
    )


def imported(brevo: httpx.Client, admin: httpx.Client, body: dict) -> dict:
    """Send an import and wait until the sandbox processed it; returns its process."""
    response = brevo.post("/contacts/import", json=body)
    assert response.status_code == 202, response.text
    admin.post("/brevo/imports/wait").raise_for_status()
    return brevo.get(f"/processes/{response.json()['processId']}").json()


def events(brevo: httpx.Client, **params) -> dict:
    response = brevo.get("/smtp/statistics/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()


# ----- authentication, faults, call counts, rate limits ------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"api-key": "xkeysib-wrong"}, {"Authorization": "Bearer xkeysib-sandbox"}]
)
def test_missing_or_wrong_key_is_401(sandbox_url: str, headers: dict) -> None:
    response = httpx.get(sandbox_url + "/brevo/v3/contacts", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"code": "unauthorized", "message": "Key not found"}


def test_injected_500_uses_brevo_error_format_and_clearing_restores(
    brevo: httpx.Client, admin: httpx.Client
) -> None:
    admin.post("/faults", json={"service": "brevo", "rate_500": 1}).raise_for_status()
    failed = brevo.get("/contacts")
    assert failed.status_code == 500
    assert set(failed.json()) == {"code", "message"}
    admin.post("/faults", json={}).raise_for_status()
    assert brevo.get("/contacts").status_code == 200


def test_calls_are_counted_by_method_and_path_template(brevo: httpx.Client, admin: httpx.Client) -> None:
    brevo.post("/contacts", json={"email": "a@example.com"})
    brevo.get("/contacts/a%40example.com")
    brevo.get("/contacts/b%40example.com")
    calls = admin.get("/calls").json()
    assert calls["brevo POST /v3/contacts"] == 1
    assert calls["brevo GET /v3/contacts/{identifier}"] == 2


def test_contacts_bucket_sends_headers_then_429(limited: httpx.Client, admin: httpx.Client) -> None:
    admin.post("/limits", json={"service": "brevo", "per_second": 2}).raise_for_status()
    responses = [limited.get("/contacts") for _ in range(6)]
    assert responses[0].status_code == 200
    assert responses[0].headers["x-sib-ratelimit-limit"] == "2"
    assert responses[0].headers["x-sib-ratelimit-remaining"] == "1"
    assert int(responses[0].headers["x-sib-ratelimit-reset"]) >= 0
    rejected = [r for r in responses if r.status_code == 429]
    assert rejected, "6 requests in a row must exceed 2 per second"
    assert rejected[0].json() == {"code": "too_many_requests", "message": "Too many requests"}
    assert rejected[0].headers["x-sib-ratelimit-remaining"] == "0"
    assert rejected[0].headers["x-sib-ratelimit-limit"] == "2"
    assert int(rejected[0].headers["Retry-After"]) >= 1
    other_bucket = send(limited, "ada@example.com")
    assert other_bucket.status_code == 201
    assert other_bucket.headers["x-sib-ratelimit-limit"] == "1000"


def test_default_contacts_limit_is_ten_per_second(limited: httpx.Client) -> None:
    response = limited.get("/contacts/attributes")
    assert response.headers["x-sib-ratelimit-limit"] == "10"
    assert response.headers["x-sib-ratelimit-remaining"] == "9"
    statistics = limited.get("/smtp/statistics/events")
    assert statistics.headers["x-sib-ratelimit-limit"] == "300"
    assert 3000 < int(statistics.headers["x-sib-ratelimit-reset"]) <= 3600


# ----- attributes ---------------------------------------------------------------------------------------


def test_attribute_registry(brevo: httpx.Client) -> None:
    names = {a["name"]: a for a in brevo.get("/contacts/attributes").json()["attributes"]}
    assert {"FIRSTNAME", "LASTNAME", "SMS"} <= names.keys()
    assert names["FIRSTNAME"] == {"name": "FIRSTNAME", "category": "normal", "type": "text"}
    created = brevo.post("/contacts/attributes/normal/demo_booked", json={"type": "boolean"})
    assert created.status_code == 201 and created.content == b""
    assert {"name": "DEMO_BOOKED", "category": "normal", "type": "boolean"} in brevo.get(
        "/contacts/attributes"
    ).json()["attributes"]
    duplicate = brevo.post("/contacts/attributes/normal/DEMO_BOOKED", json={"type": "boolean"})
    assert duplicate.status_code == 400 and duplicate.json()["code"] == "duplicate_parameter"
    assert brevo.post("/contacts/attributes/weird/X", json={"type": "text"}).status_code == 400
    assert brevo.post("/contacts/attributes/normal/Y", json={"type": "colour"}).status_code == 400
    assert (
        brevo.post(
            "/contacts/attributes/category/TIER",
            json={"type": "category", "enumeration": [{"value": 1, "label": "Hot"}]},
        ).status_code
        == 201
    )


def test_unknown_and_wrong_typed_attributes_are_silently_dropped(brevo: httpx.Client) -> None:
    attribute(brevo, "IS_CLIENT", "boolean")
    attribute(brevo, "DEMO_DATE", "date")
    attribute(brevo, "SCORE", "float")
    response = brevo.post(
        "/contacts",
        json={
            "email": "ada@example.com",
            "attributes": {
                "FIRSTNAME": "Ada",
                "UNKNOWN_THING": "x",
                "IS_CLIENT": "true",
                "DEMO_DATE": "next tuesday",
                "SCORE": "12",
                "LASTNAME": 42,
            },
        },
    )
    assert response.status_code == 201
    assert stored(brevo, "ada@example.com")["attributes"] == {"FIRSTNAME": "Ada"}
    brevo.put(
        "/contacts/ada%40example.com",
        json={"attributes": {"IS_CLIENT": True, "DEMO_DATE": "2024-05-03", "SCORE": 12.5}},
    ).raise_for_status()
    assert stored(brevo, "ada@example.com")["attributes"] == {
        "FIRSTNAME": "Ada",
        "IS_CLIENT": True,
        "DEMO_DATE": "2024-05-03",
        "SCORE": 12.5,
    }


# ----- contacts -----------------------------------------------------------------------------------------


def test_create_contact_201_204_and_duplicate_400(brevo: httpx.Client) -> None:
    created = brevo.post("/contacts", json={"email": "Ada@Example.com", "attributes": {"FIRSTNAME": "Ada"}})
    assert created.status_code == 201
    contact_id = created.json()["id"]
    assert isinstance(contact_id, int)
    duplicate = brevo.post("/contacts", json={"email": "ada@example.com", "attributes": {"FIRSTNAME": "Eve"}})
    assert duplicate.status_code == 400
    assert duplicate.json() == {"code": "duplicate_parameter", "message": "Contact already exist"}
    updated = brevo.post(
        "/contacts",
        json={"email": "ada@example.com", "updateEnabled": True, "attributes": {"LASTNAME": "Lovelace"}},
    )
    assert updated.status_code == 204
    body = stored(brevo, "ada@example.com")
    assert body["id"] == contact_id
    assert body["attributes"] == {"FIRSTNAME": "Ada", "LASTNAME": "Lovelace"}
    assert {
        "id",
        "email",
        "emailBlacklisted",
        "smsBlacklisted",
        "createdAt",
        "modifiedAt",
        "listIds",
        "attributes",
    } <= body.keys()
    missing = brevo.post("/contacts", json={"attributes": {"FIRSTNAME": "Nobody"}})
    assert missing.status_code == 400 and missing.json()["code"] == "missing_parameter"
    assert brevo.post("/contacts", json={"email": "not-an-email"}).status_code == 400


def test_get_contact_by_email_id_and_ext_id(brevo: httpx.Client) -> None:
    contact_id = brevo.post("/contacts", json={"email": "ada@example.com", "ext_id": "crm-1001"}).json()["id"]
    assert stored(brevo, "ada%40example.com")["id"] == contact_id
    assert stored(brevo, str(contact_id))["email"] == "ada@example.com"
    by_ext = brevo.get("/contacts/crm-1001", params={"identifierType": "ext_id"})
    assert by_ext.json()["id"] == contact_id
    missing = brevo.get("/contacts/ghost%40example.com")
    assert missing.status_code == 404
    assert missing.json() == {"code": "document_not_found", "message": "Contact does not exist"}
    assert brevo.get("/contacts/x", params={"identifierType": "nonsense"}).status_code == 400


def test_put_updates_204_clears_with_empty_string_and_404_for_unknown(brevo: httpx.Client) -> None:
    attribute(brevo, "SEGMENT", "text")
    list_a, list_b = new_list(brevo, "A"), new_list(brevo, "B")
    brevo.post(
        "/contacts",
        json={
            "email": "ada@example.com",
            "listIds": [list_a],
            "attributes": {"FIRSTNAME": "Ada", "SEGMENT": "B2B"},
        },
    ).raise_for_status()
    before = stored(brevo, "ada@example.com")["modifiedAt"]
    time.sleep(0.005)
    response = brevo.put(
        "/contacts/ada%40example.com",
        json={
            "attributes": {"SEGMENT": ""},
            "listIds": [list_b],
            "unlinkListIds": [list_a],
            "emailBlacklisted": True,
        },
    )
    assert response.status_code == 204 and response.content == b""
    after = stored(brevo, "ada@example.com")
    assert after["attributes"] == {"FIRSTNAME": "Ada"}
    assert after["listIds"] == [list_b]
    assert after["emailBlacklisted"] is True
    assert after["modifiedAt"] > before
    missing = brevo.put("/contacts/ghost%40example.com", json={"attributes": {"FIRSTNAME": "G"}})
    assert missing.status_code == 404 and missing.json()["code"] == "document_not_found"


def test_list_contacts_with_modified_since_count_and_pagination(brevo: httpx.Client) -> None:
    for i in range(5):
        brevo.post("/contacts", json={"email": f"c{i}@example.com"}).raise_for_status()
    everyone = brevo.get("/contacts", params={"sort": "asc"}).json()
    assert everyone["count"] == 5
    assert [c["email"] for c in everyone["contacts"]] == [f"c{i}@example.com" for i in range(5)]
    newest_first = brevo.get("/contacts").json()["contacts"]
    assert newest_first[0]["email"] == "c4@example.com"
    latest = max(datetime.fromisoformat(c["modifiedAt"]) for c in everyone["contacts"])
    cursor = (
        (latest + timedelta(milliseconds=1))
        .astimezone(timezone(timedelta(hours=2)))
        .isoformat(timespec="milliseconds")
    )
    time.sleep(0.005)
    for i in (1, 3):
        brevo.put(
            f"/contacts/c{i}%40example.com", json={"attributes": {"FIRSTNAME": f"C{i}"}}
        ).raise_for_status()
    changed = brevo.get("/contacts", params={"modifiedSince": cursor, "sort": "asc"}).json()
    assert changed["count"] == 2
    assert [c["email"] for c in changed["contacts"]] == ["c1@example.com", "c3@example.com"]
    pages = [
        brevo.get("/contacts", params={"limit": 2, "offset": offset, "sort": "asc"}).json()
        for offset in (0, 2, 4)
    ]
    assert [c["email"] for page in pages for c in page["contacts"]] == [f"c{i}@example.com" for i in range(5)]
    assert {page["count"] for page in pages} == {5}
    too_many = brevo.get("/contacts", params={"limit": 1001})
    assert too_many.status_code == 400 and too_many.json()["code"] == "out_of_range"
    assert brevo.get("/contacts", params={"modifiedSince": "yesterday"}).status_code == 400


# ----- import and batch ---------------------------------------------------------------------------------


def test_import_is_202_then_queued_in_process_and_completed_in_the_background(
    brevo: httpx.Client, admin: httpx.Client
) -> None:
    admin.post("/brevo/import_delay", json={"seconds": 1.0}).raise_for_status()
    list_id = new_list(brevo)
    attribute(brevo, "IS_CLIENT", "boolean")
    response = brevo.post(
        "/contacts/import",
        json={
            "listIds": [list_id],
            "jsonBody": [
                {
                    "email": "Ada@Example.com",
                    "attributes": {"FIRSTNAME": "Ada", "IS_CLIENT": "true", "NOPE": "x"},
                },
                {"email": "bob@example.com", "attributes": {"FIRSTNAME": "Bob"}},
            ],
        },
    )
    assert response.status_code == 202
    process_id = response.json()["processId"]
    statuses, visible_before_completion = [], False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        process = brevo.get(f"/processes/{process_id}").json()
        if process["status"] == "completed":
            break
        if not statuses or statuses[-1] != process["status"]:
            statuses.append(process["status"])
        visible_before_completion |= brevo.get("/contacts/ada%40example.com").status_code != 404
        time.sleep(0.05)
    assert statuses == ["queued", "in_process"], "the 202 comes before the work, which then takes its time"
    assert not visible_before_completion, "an import's contacts appear only once it completed"
    assert (process["id"], process["name"], process["status"]) == (process_id, "IMPORTUSER", "completed")
    assert process["info"]["import"] == dict.fromkeys(IMPORT_REPORTS), "a clean import reports nothing"
    ada = stored(brevo, "ada@example.com")
    assert ada["attributes"] == {"FIRSTNAME": "Ada", "IS_CLIENT": True}
    assert ada["listIds"] == [list_id]
    assert brevo.get(f"/contacts/lists/{list_id}/contacts").json()["count"] == 2
    missing = brevo.get("/processes/999")
    assert missing.status_code == 404 and missing.json()["code"] == "document_not_found"


def test_a_completed_import_reports_each_row_it_skipped_in_csv_files(
    brevo: httpx.Client, admin: httpx.Client, sandbox_url: str
) -> None:
    list_id = new_list(brevo)
    brevo.post("/contacts", json={"email": "owner@example.com", "ext_id": "crm-7"}).raise_for_status()
    refused = {
        "broken": "not of the form",
        "ada..lovelace@example.com": "misplaced dot",
        ".ada@example.com": "misplaced dot",
        "ada!@example.com": "character",
        "zoë@example.com": "character",
        '"ada lovelace"@example.com': "character",
        ("a" * 65) + "@example.com": "longer than 64",
        "ada@localhost": "host name",
        "ada@-acme.com": "host name",
        "ada@acme..com": "host name",
        "ada@[192.0.2.1]": "host name",
        "ada@acme.c0m": "top-level domain",
        "ada@acme.c": "top-level domain",
        "": "no email",
    }
    rows = [
        {"email": "good@example.com", "attributes": {"FIRSTNAME": "Good"}},
        *({"email": email} for email in refused),
        {"email": "Good@Example.com", "attributes": {"FIRSTNAME": "Again"}},
        {"email": "taken@example.com", "ext_id": "crm-7"},
        {"email": "o'brien+news@mail.example.co.uk", "ext_id": "crm-8"},
    ]
    process = imported(brevo, admin, {"listIds": [list_id], "jsonBody": rows})

    urls = process["info"]["import"]
    assert set(urls) == set(IMPORT_REPORTS)
    assert {kind for kind, url in urls.items() if url} == {"invalid_emails", "duplicate_email_id",
                                                          "duplicate_ext_id"}
    reports = {}
    for kind, url in urls.items():
        if url:
            assert url.startswith(sandbox_url + "/brevo/")
            download = httpx.get(url)  # no api-key: a report URL is a download link of its own
            assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
            reports[kind] = list(csv.DictReader(io.StringIO(download.text), delimiter=";"))
    invalid = {row["EMAIL"]: row["REASON"] for row in reports["invalid_emails"]}
    assert set(invalid) == set(refused)
    for email, reason in refused.items():
        assert reason in invalid[email], (email, invalid[email])
    assert [row["EMAIL"] for row in reports["duplicate_email_id"]] == ["good@example.com"]
    assert [row["EMAIL"] for row in reports["duplicate_ext_id"]] == ["taken@example.com"]
    assert "crm-7" in reports["duplicate_ext_id"][0]["REASON"]

    members = brevo.get(f"/contacts/lists/{list_id}/contacts").json()
    assert sorted(c["email"] for c in members["contacts"]) == ["good@example.com", "o'brien+news@mail.example.co.uk"]
    assert stored(brevo, "good@example.com")["attributes"] == {"FIRSTNAME": "Good"}, "the first row is taken"
    assert brevo.get("/contacts/taken%40example.com").status_code == 404
    assert httpx.get(urls["invalid_emails"].replace("invalid_emails", "duplicate_phone_id")).status_code == 404


def test_the_stricter_email_rule_holds_for_single_contacts_and_recipients(brevo: httpx.Client) -> None:
    for email in ("ada..lovelace@example.com", "ada!@example.com", "ada@acme.c0m"):
        created = brevo.post("/contacts", json={"email": email})
        assert created.status_code == 400 and created.json()["code"] == "invalid_parameter", email
        assert send(brevo, email).status_code == 400, email
    assert brevo.post("/contacts", json={"email": "ada@xn--bcher-kva.example"}).status_code == 201


def test_processes_are_listed_with_paging_and_sort(brevo: httpx.Client, admin: httpx.Client) -> None:
    list_id = new_list(brevo)
    ids = [
        imported(brevo, admin, {"listIds": [list_id], "jsonBody": [{"email": f"p{i}@example.com"}]})["id"]
        for i in range(3)
    ]
    removal = brevo.post(f"/contacts/lists/{list_id}/contacts/remove", json={"all": True}).json()
    ids.append(removal["contacts"]["processId"])

    newest_first = brevo.get("/processes").json()
    assert newest_first["count"] == 4
    assert [p["id"] for p in newest_first["processes"]] == ids[::-1]
    assert all(p["status"] == "completed" for p in newest_first["processes"])
    assert [p["name"] for p in newest_first["processes"][1:]] == ["IMPORTUSER"] * 3
    assert set(newest_first["processes"][1]["info"]["import"]) == set(IMPORT_REPORTS)
    page = brevo.get("/processes", params={"limit": 2, "offset": 1, "sort": "asc"}).json()
    assert [p["id"] for p in page["processes"]] == ids[1:3] and page["count"] == 4
    for params in ({"limit": 51}, {"offset": -1}, {"sort": "sideways"}):
        response = brevo.get("/processes", params=params)
        assert response.status_code == 400 and set(response.json()) == {"code", "message"}, params


def test_import_empty_contacts_attributes_semantics(brevo: httpx.Client, admin: httpx.Client) -> None:
    list_id = new_list(brevo)
    imported(
        brevo,
        admin,
        {
            "listIds": [list_id],
            "jsonBody": [
                {"email": "ada@example.com", "attributes": {"FIRSTNAME": "Ada", "LASTNAME": "Lovelace"}}
            ],
        },
    )
    imported(
        brevo,
        admin,
        {
            "listIds": [list_id],
            "jsonBody": [
                {"email": "ada@example.com", "attributes": {"FIRSTNAME": "Augusta", "LASTNAME": ""}}
            ],
        },
    )
    assert stored(brevo, "ada@example.com")["attributes"] == {"FIRSTNAME": "Augusta", "LASTNAME": "Lovelace"}
    imported(
        brevo,
        admin,
        {
            "listIds": [list_id],
            "emptyContactsAttributes": True,
            "jsonBody": [{"email": "ada@example.com", "attributes": {"LASTNAME": ""}}],
        },
    )
    assert stored(brevo, "ada@example.com")["attributes"] == {"FIRSTNAME": "Augusta"}
    imported(
        brevo,
        admin,
        {
            "listIds": [list_id],
            "updateExistingContacts": False,
            "jsonBody": [{"email": "ada@example.com", "attributes": {"FIRSTNAME": "Changed"}}],
        },
    )
    assert stored(brevo, "ada@example.com")["attributes"] == {"FIRSTNAME": "Augusta"}


def test_import_from_csv_file_body_and_url_into_a_new_list(brevo: httpx.Client, admin: httpx.Client) -> None:
    attribute(brevo, "SCORE", "float")
    csv_body = "EMAIL;FIRSTNAME;SCORE\nada@example.com;Ada;12.5\nbob@example.com;Bob;\n"
    imported(brevo, admin, {"fileBody": csv_body, "newList": {"listName": "Imported", "folderId": 1}})
    assert stored(brevo, "ada@example.com")["attributes"] == {"FIRSTNAME": "Ada", "SCORE": 12.5}
    lists = brevo.get("/contacts/lists").json()["lists"]
    assert [(item["name"], item["uniqueSubscribers"]) for item in lists] == [("Imported", 2)]

    async def contacts_csv(request: Request) -> Response:
        return PlainTextResponse("EMAIL;LASTNAME\ncy@example.com;Young\n")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    files = Starlette(routes=[Route("/healthz", healthz), Route("/contacts.csv", contacts_csv)])
    with serve(files) as files_url:
        imported(brevo, admin, {"fileUrl": f"{files_url}/contacts.csv", "listIds": [lists[0]["id"]]})
    assert stored(brevo, "cy@example.com")["attributes"] == {"LASTNAME": "Young"}


def test_import_request_validation(brevo: httpx.Client) -> None:
    list_id = new_list(brevo)
    rows = [{"email": "ada@example.com"}]
    for body in (
        {"jsonBody": rows},
        {"listIds": [list_id]},
        {"listIds": [list_id], "jsonBody": rows, "fileBody": "EMAIL\nada@example.com"},
        {"listIds": [999], "jsonBody": rows},
        {"listIds": [list_id], "fileBody": "NAME\nAda"},
    ):
        response = brevo.post("/contacts/import", json=body)
        assert response.status_code == 400, body
        assert set(response.json()) == {"code", "message"}
    assert brevo.get("/contacts").json()["count"] == 0


def test_batch_update_204_then_207_with_failures(brevo: httpx.Client) -> None:
    ids = [brevo.post("/contacts", json={"email": f"b{i}@example.com"}).json()["id"] for i in range(2)]
    all_good = brevo.post(
        "/contacts/batch",
        json={
            "contacts": [
                {"email": "b0@example.com", "attributes": {"FIRSTNAME": "Zero"}},
                {"id": ids[1], "attributes": {"FIRSTNAME": "One"}},
            ]
        },
    )
    assert all_good.status_code == 204
    assert stored(brevo, "b1@example.com")["attributes"] == {"FIRSTNAME": "One"}
    partial = brevo.post(
        "/contacts/batch",
        json={
            "contacts": [
                {"email": "b0@example.com", "attributes": {"LASTNAME": "Z"}},
                {"email": "ghost@example.com", "attributes": {"FIRSTNAME": "G"}},
            ]
        },
    )
    assert partial.status_code == 207
    assert partial.json() == {"successIds": [ids[0]], "failureIds": ["ghost@example.com"]}
    assert stored(brevo, "b0@example.com")["attributes"] == {"FIRSTNAME": "Zero", "LASTNAME": "Z"}
    assert brevo.get("/contacts/ghost%40example.com").status_code == 404
    too_many = brevo.post("/contacts/batch", json={"contacts": [{"email": "b0@example.com"}] * 101})
    assert too_many.status_code == 400


# ----- folders and lists --------------------------------------------------------------------------------


def test_folders_and_lists(brevo: httpx.Client) -> None:
    folders = brevo.get("/contacts/folders").json()
    assert [f["id"] for f in folders["folders"]] == [1] and folders["count"] == 1
    folder_id = brevo.post("/contacts/folders", json={"name": "Lifecycle"}).json()["id"]
    list_id = brevo.post("/contacts/lists", json={"name": "Webinar WB003", "folderId": folder_id}).json()[
        "id"
    ]
    assert brevo.post("/contacts/lists", json={"name": "No folder"}).status_code == 400
    assert brevo.post("/contacts/lists", json={"name": "Bad folder", "folderId": 99}).status_code == 400
    body = brevo.get(f"/contacts/lists/{list_id}").json()
    assert (body["name"], body["folderId"], body["uniqueSubscribers"]) == ("Webinar WB003", folder_id, 0)
    listing = brevo.get("/contacts/lists").json()
    assert listing["count"] == 1 and listing["lists"][0]["id"] == list_id
    assert brevo.get("/contacts/lists", params={"limit": 51}).status_code == 400
    missing = brevo.get("/contacts/lists/999")
    assert missing.status_code == 404 and missing.json()["code"] == "document_not_found"


def test_list_add_is_capped_at_150_and_reports_success_and_failure(brevo: httpx.Client) -> None:
    list_id = new_list(brevo)
    brevo.post("/contacts", json={"email": "ada@example.com"}).raise_for_status()
    bob_id = brevo.post("/contacts", json={"email": "bob@example.com"}).json()["id"]
    added = brevo.post(
        f"/contacts/lists/{list_id}/contacts/add", json={"emails": ["ada@example.com", "ghost@example.com"]}
    )
    assert added.status_code == 201
    assert added.json() == {"contacts": {"success": ["ada@example.com"], "failure": ["ghost@example.com"]}}
    by_id = brevo.post(f"/contacts/lists/{list_id}/contacts/add", json={"ids": [bob_id]})
    assert by_id.json() == {"contacts": {"success": [bob_id], "failure": []}}
    nothing_new = brevo.post(f"/contacts/lists/{list_id}/contacts/add", json={"emails": ["ada@example.com"]})
    assert nothing_new.status_code == 400
    assert nothing_new.json() == {
        "code": "invalid_parameter",
        "message": "Contact is already present in the selected list or contact does not exist in account",
    }
    too_many = brevo.post(
        f"/contacts/lists/{list_id}/contacts/add", json={"emails": [f"x{i}@example.com" for i in range(151)]}
    )
    assert too_many.status_code == 400
    assert (
        brevo.post("/contacts/lists/999/contacts/add", json={"emails": ["ada@example.com"]}).status_code
        == 404
    )
    members = brevo.get(f"/contacts/lists/{list_id}/contacts").json()
    assert members["count"] == 2
    assert sorted(c["email"] for c in members["contacts"]) == ["ada@example.com", "bob@example.com"]
    assert stored(brevo, "ada@example.com")["listIds"] == [list_id]
    assert brevo.get(f"/contacts/lists/{list_id}/contacts", params={"limit": 501}).status_code == 400


def test_list_members_since_and_removal(brevo: httpx.Client) -> None:
    list_id = new_list(brevo)
    for name in ("ada", "bob", "cy"):
        time.sleep(0.005)  # distinct millisecond timestamps, so the modifiedSince cursor below is exact
        brevo.post(
            "/contacts", json={"email": f"{name}@example.com", "listIds": [list_id]}
        ).raise_for_status()
    removed = brevo.post(
        f"/contacts/lists/{list_id}/contacts/remove",
        json={"emails": ["ada@example.com", "ghost@example.com"]},
    )
    assert removed.status_code == 201
    assert removed.json() == {"contacts": {"success": ["ada@example.com"], "failure": ["ghost@example.com"]}}
    assert stored(brevo, "ada@example.com")["listIds"] == []
    cursor = stored(brevo, "cy@example.com")["modifiedAt"]
    since = brevo.get(f"/contacts/lists/{list_id}/contacts", params={"modifiedSince": cursor}).json()
    assert [c["email"] for c in since["contacts"]] == ["cy@example.com"] and since["count"] == 1
    everyone = brevo.post(f"/contacts/lists/{list_id}/contacts/remove", json={"all": True})
    assert everyone.status_code == 201
    assert everyone.json()["contacts"]["total"] == 2
    assert isinstance(everyone.json()["contacts"]["processId"], int)
    assert brevo.get(f"/contacts/lists/{list_id}").json()["uniqueSubscribers"] == 0


# ----- transactional email and statistics ---------------------------------------------------------------


def test_send_email_is_201_recorded_and_logged_as_events(brevo: httpx.Client, admin: httpx.Client) -> None:
    response = send(
        brevo,
        "Ada@Example.com",
        tags=["msg:ada:demo_nurture:1:1", "demo_nurture"],
        headers={"X-Mailin-custom": "key:1"},
    )
    assert response.status_code == 201
    message_id = response.json()["messageId"]
    assert message_id.startswith("<") and message_id.endswith("@smtp-relay.sandbox>")
    [email] = admin.get("/brevo/emails").json()
    assert email["to"] == [{"email": "ada@example.com", "name": "Ada"}]
    assert email["templateId"] == 7
    assert email["params"] == {"sequence": "demo_nurture", "step": 1}
    assert email["tags"] == ["msg:ada:demo_nurture:1:1", "demo_nurture"]
    assert datetime.fromisoformat(email["received_at"]).tzinfo is not None
    logged = events(brevo, messageId=message_id, sort="asc")["events"]
    assert [e["event"] for e in logged] == ["requests", "delivered"]
    assert all(
        e["email"] == "ada@example.com" and e["templateId"] == 7 and e["messageId"] == message_id
        for e in logged
    )
    assert logged[0]["tag"] == "msg:ada:demo_nurture:1:1"
    assert datetime.fromisoformat(logged[0]["date"]).utcoffset() is not None


def test_statistics_filters_are_exact(brevo: httpx.Client) -> None:
    first = send(brevo, "ada@example.com", tags=["key-1"]).json()["messageId"]
    second = send(brevo, "bob@example.com", template_id=8, tags=["key-10", "other"]).json()["messageId"]
    by_tag = events(brevo, tags="key-1")["events"]
    assert {e["messageId"] for e in by_tag} == {first}
    assert {e["messageId"] for e in events(brevo, tags="other")["events"]} == {second}
    assert {e["messageId"] for e in events(brevo, messageId=second)["events"]} == {second}
    assert events(brevo, messageId="<nope@smtp-relay.sandbox>") == {}
    assert {e["email"] for e in events(brevo, email="BOB@example.com")["events"]} == {"bob@example.com"}
    assert {e["messageId"] for e in events(brevo, templateId=7)["events"]} == {first}
    assert len(events(brevo, event="delivered")["events"]) == 2
    today = datetime.now(UTC).date()
    assert len(events(brevo, startDate=str(today), endDate=str(today))["events"]) == 4
    assert events(brevo, startDate="2020-01-01", endDate="2020-01-31") == {}
    assert len(events(brevo, days=1)["events"]) == 4
    assert len(events(brevo, limit=1, offset=3)["events"]) == 1


def test_statistics_request_validation(brevo: httpx.Client) -> None:
    for params in (
        {"limit": 5001},
        {"startDate": "2024-05-01"},
        {"days": 7, "startDate": "2024-05-01", "endDate": "2024-05-02"},
        {"event": "exploded"},
        {"sort": "sideways"},
    ):
        response = brevo.get("/smtp/statistics/events", params=params)
        assert response.status_code == 400, params
        assert set(response.json()) == {"code", "message"}
    assert brevo.get("/smtp/statistics/events", params={"limit": 5000}).status_code == 200


def test_send_email_validation(brevo: httpx.Client, admin: httpx.Client) -> None:
    for body in (
        {"templateId": 1},
        {"to": [], "templateId": 1},
        {"to": [{"email": "not-an-email"}], "templateId": 1},
        {"to": [{"email": "a@example.com"}]},
        {"to": [{"email": "a@example.com"}], "htmlContent": "<p>x</p>", "subject": "Hi"},
        {"to": [{"email": "a@example.com"}], "templateId": 1, "tags": "demo"},
        {"to": [{"email": "a@example.com"}], "templateId": 1, "params": ["x"]},
    ):
        response = brevo.post("/smtp/email", json=body)
        assert response.status_code == 400, body
        assert set(response.json()) == {"code", "message"}
    assert admin.get("/brevo/emails").json() == []
    raw = brevo.post(
        "/smtp/email",
        json={
            "to": [{"email": "a@example.com"}],
            "htmlContent": "<p>x</p>",
            "subject": "Hi",
            "sender": {"email": "hello@acme.com", "name": "Acme"},
        },
    )
    assert raw.status_code == 201


def test_message_versions_send_one_message_per_version(brevo: httpx.Client, admin: httpx.Client) -> None:
    response = brevo.post(
        "/smtp/email",
        json={
            "templateId": 3,
            "params": {"step": 1},
            "messageVersions": [
                {"to": [{"email": "a@example.com"}], "params": {"name": "A"}},
                {"to": [{"email": "b@example.com"}], "params": {"name": "B"}},
            ],
        },
    )
    assert response.status_code == 201
    assert len(response.json()["messageIds"]) == 2
    assert [e["params"] for e in admin.get("/brevo/emails").json()] == [
        {"step": 1, "name": "A"},
        {"step": 1, "name": "B"},
    ]


# ----- admin --------------------------------------------------------------------------------------------


def test_admin_events_map_to_statistics_and_blocklist(brevo: httpx.Client, admin: httpx.Client) -> None:
    brevo.post("/contacts", json={"email": "ada@example.com"}).raise_for_status()
    brevo.post("/contacts", json={"email": "bob@example.com"}).raise_for_status()
    message_id = send(brevo, "ada@example.com", template_id=9, tags=["t"]).json()["messageId"]
    before = stored(brevo, "ada@example.com")["modifiedAt"]
    time.sleep(0.005)
    recorded = admin.post(
        "/brevo/events",
        json=[
            {"email": "ada@example.com", "event": "opened", "at": "2024-05-02T08:00:00Z"},
            {
                "email": "ada@example.com",
                "event": "clicked",
                "at": "2024-05-02T08:01:00Z",
                "link": "https://acme.com/demo",
                "template_id": 9,
            },
            {"email": "ada@example.com", "event": "unsubscribed", "at": "2024-05-03T08:00:00Z"},
            {"email": "bob@example.com", "event": "hard_bounce", "at": "2024-05-03T09:00:00Z"},
            {"email": "stranger@example.com", "event": "opened", "at": "2024-05-04T09:00:00Z"},
        ],
    )
    assert recorded.status_code == 200
    in_may = events(brevo, startDate="2024-05-01", endDate="2024-05-31", sort="asc")["events"]
    assert [(e["email"], e["event"]) for e in in_may] == [
        ("ada@example.com", "opened"),
        ("ada@example.com", "clicks"),
        ("ada@example.com", "unsubscribed"),
        ("bob@example.com", "hardBounces"),
        ("stranger@example.com", "opened"),
    ]
    assert in_may[0]["date"].startswith("2024-05-02T08:00:00")
    assert in_may[1]["link"] == "https://acme.com/demo"
    assert in_may[1]["messageId"] == message_id and in_may[1]["templateId"] == 9
    assert events(brevo, event="bounces")["events"][0]["email"] == "bob@example.com"
    ada = stored(brevo, "ada@example.com")
    assert ada["emailBlacklisted"] is True and ada["modifiedAt"] > before
    assert stored(brevo, "bob@example.com")["emailBlacklisted"] is True
    assert (
        admin.post(
            "/brevo/events",
            json={"email": "a@example.com", "event": "exploded", "at": "2024-05-01T00:00:00Z"},
        ).status_code
        == 400
    )
    assert brevo.get("/contacts/stranger%40example.com").status_code == 404


def test_admin_contact_view_has_attributes_and_list_names(brevo: httpx.Client, admin: httpx.Client) -> None:
    list_id = new_list(brevo, "Demo nurture")
    brevo.post(
        "/contacts",
        json={"email": "ada@example.com", "attributes": {"FIRSTNAME": "Ada"}, "listIds": [list_id]},
    ).raise_for_status()
    body = admin.get("/brevo/contacts/ADA@example.com").json()
    assert body["attributes"] == {"FIRSTNAME": "Ada"}
    assert body["lists"] == ["Demo nurture"]
    assert admin.get("/brevo/contacts/ghost@example.com").status_code == 404


# ----- contact statistics, deletion, unknown routes, event lag ------------------------------------------


def test_contact_reads_carry_campaign_statistics(brevo: httpx.Client, admin: httpx.Client) -> None:
    brevo.post("/contacts", json={"email": "ada@example.com"}).raise_for_status()
    empty = stored(brevo, "ada@example.com")["statistics"]
    assert empty == {
        "messagesSent": [], "hardBounces": [], "softBounces": [], "complaints": [],
        "unsubscriptions": {"userUnsubscription": [], "adminUnsubscription": []},
        "opened": [], "clicked": [], "transacAttributes": [], "delivered": [],
    }
    send(brevo, "ada@example.com").raise_for_status()
    admin.post("/brevo/events", json=[
        {"email": "ada@example.com", "event": "opened", "at": "2026-05-02T08:00:00Z", "campaign_id": 12},
        {"email": "ada@example.com", "event": "opened", "at": "2026-05-02T09:00:00Z", "campaign_id": 12},
        {"email": "ada@example.com", "event": "clicked", "at": "2026-05-02T08:01:00Z", "campaign_id": 12,
         "link": "https://acme.example/demo"},
        {"email": "ada@example.com", "event": "unsubscribed", "at": "2026-05-03T08:00:00Z", "campaign_id": 13},
        {"email": "ada@example.com", "event": "opened", "at": "2026-05-04T08:00:00Z"},
    ]).raise_for_status()
    statistics = stored(brevo, "ada@example.com")["statistics"]
    assert statistics["opened"] == [
        {"campaignId": 12, "count": 2, "eventTime": "2026-05-02T08:00:00.000+00:00", "ip": "198.51.100.7"}]
    assert statistics["clicked"] == [{"campaignId": 12, "links": [
        {"url": "https://acme.example/demo", "count": 1, "eventTime": "2026-05-02T08:01:00.000+00:00",
         "ip": "198.51.100.7"}]}]
    assert [u["campaignId"] for u in statistics["unsubscriptions"]["userUnsubscription"]] == [13]
    assert statistics["messagesSent"] == [] and statistics["delivered"] == [], "transactional email is not there"
    assert "statistics" not in brevo.get("/contacts").json()["contacts"][0]
    bad = admin.post("/brevo/events", json={"email": "ada@example.com", "event": "opened", "campaign_id": "x"})
    assert bad.status_code == 400


def test_delete_contact_204_then_404_by_any_identifier(brevo: httpx.Client) -> None:
    list_id = new_list(brevo)
    ids = [
        brevo.post("/contacts", json={"email": f"d{i}@example.com", "ext_id": f"crm-{i}", "listIds": [list_id]})
        .json()["id"]
        for i in range(3)
    ]
    by_email = brevo.delete("/contacts/d0%40example.com")
    assert by_email.status_code == 204 and by_email.content == b""
    assert brevo.delete(f"/contacts/{ids[1]}", params={"identifierType": "contact_id"}).status_code == 204
    assert brevo.delete("/contacts/crm-2", params={"identifierType": "ext_id"}).status_code == 204
    for identifier in ("d0%40example.com", str(ids[1]), "d2%40example.com"):
        assert brevo.get(f"/contacts/{identifier}").status_code == 404
    again = brevo.delete("/contacts/d0%40example.com")
    assert again.status_code == 404
    assert again.json() == {"code": "document_not_found", "message": "Contact does not exist"}
    assert brevo.delete("/contacts/x", params={"identifierType": "nonsense"}).status_code == 400
    assert brevo.get(f"/contacts/lists/{list_id}").json()["uniqueSubscribers"] == 0
    assert brevo.get("/contacts").json()["count"] == 0
    recreated = brevo.post("/contacts", json={"email": "d0@example.com", "ext_id": "crm-0"})
    assert recreated.status_code == 201 and recreated.json()["id"] not in ids


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v3/no/such/route", 404, "document_not_found"),
        ("POST", "/v3", 404, "document_not_found"),
        ("GET", "/v2/contacts", 404, "document_not_found"),
        ("PATCH", "/v3/contacts", 405, "method_not_allowed"),
        ("PUT", "/v3/smtp/email", 405, "method_not_allowed"),
    ],
)
def test_unknown_routes_answer_brevo_json_errors(
    sandbox_url: str, method: str, path: str, status: int, code: str
) -> None:
    response = httpx.request(method, f"{sandbox_url}/brevo{path}", headers=KEY)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == code and response.json()["message"]


def test_event_lag_delays_the_event_log_but_not_the_received_emails(
    brevo: httpx.Client, admin: httpx.Client
) -> None:
    admin.post("/brevo/events", json={"email": "old@example.com", "event": "opened",
                                      "at": "2024-05-02T08:00:00Z"}).raise_for_status()
    assert admin.post("/brevo/event_lag", json={"seconds": 1.5}).json() == {"event_lag_seconds": 1.5}
    message_id = send(brevo, "ada@example.com", tags=["lag-1"]).json()["messageId"]

    assert events(brevo, messageId=message_id) == {}, "the requests event is not in the log yet"
    assert [e["messageId"] for e in admin.get("/brevo/emails").json()] == [message_id]
    assert [e["email"] for e in events(brevo, event="opened")["events"]] == ["old@example.com"]
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = [e["event"] for e in events(brevo, messageId=message_id, sort="asc").get("events", [])]
    assert seen == ["requests", "delivered"], "the events show once the lag has passed"

    second = send(brevo, "bob@example.com").json()["messageId"]
    assert events(brevo, messageId=second) == {}
    assert admin.post("/brevo/event_lag", json={"seconds": 0}).status_code == 200
    assert len(events(brevo, messageId=second)["events"]) == 2
    admin.post("/brevo/event_lag", json={"seconds": 60}).raise_for_status()
    admin.post("/reset").raise_for_status()
    third = send(brevo, "cy@example.com").json()["messageId"]
    assert len(events(brevo, messageId=third)["events"]) == 2, "a reset clears the lag"
    for body in ({"seconds": -1}, {"seconds": "5"}, {}, [1]):
        assert admin.post("/brevo/event_lag", json=body).status_code == 400, body
