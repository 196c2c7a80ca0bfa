"""BrevoClient against the live sandbox."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from activations.brevo import LIFECYCLE_ATTRIBUTES, BrevoClient
from activations.http import ApiError, MaybeApplied, RetryPolicy
from tests.leaks import leaks

KEY = "xkeysib-sandbox"
FAST = RetryPolicy(base_delay=0.01, max_delay=5.0, timeout=10.0)


@pytest.fixture()
def admin(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url + "/_sandbox") as client:
        yield client


@pytest.fixture()
def brevo(sandbox_url: str) -> Iterator[BrevoClient]:
    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST) as client:
        yield client


def calls(admin: httpx.Client, method: str, path: str) -> int:
    return admin.get("/calls").json().get(f"brevo {method} /v3{path}", 0)


def write_calls(admin: httpx.Client) -> dict[str, int]:
    return {k: n for k, n in admin.get("/calls").json().items() if k.startswith("brevo ") and " GET " not in k}


def stored(admin: httpx.Client, email: str) -> dict:
    response = admin.get(f"/brevo/contacts/{email}")
    assert response.status_code == 200, response.text
    return response.json()


def test_attributes_are_created_once_with_their_types(brevo: BrevoClient, admin: httpx.Client,
                                                      sandbox_url: str) -> None:
    created = brevo.ensure_attributes()

    assert sorted(created) == sorted(set(LIFECYCLE_ATTRIBUTES) - {"FIRSTNAME", "LASTNAME"})
    types = {a["name"]: a["type"] for a in httpx.get(
        sandbox_url + "/brevo/v3/contacts/attributes", headers={"api-key": KEY}).json()["attributes"]}
    assert {types[n] for n in ("IS_CLIENT", "DEMO_BOOKED")} == {"boolean"}
    assert types["DEMO_DATE"] == "date" and types["SEGMENT"] == "text"
    before = write_calls(admin)

    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST) as fresh:
        assert fresh.ensure_attributes() == []
    assert write_calls(admin) == before


def test_lists_are_found_across_pages_or_created_once_in_the_lifecycle_folder(
        brevo: BrevoClient, admin: httpx.Client, sandbox_url: str) -> None:
    admin.post("/limits", json={"service": "brevo", "off": True}).raise_for_status()
    with httpx.Client(base_url=sandbox_url + "/brevo/v3", headers={"api-key": KEY}) as raw:
        for n in range(55):
            raw.post("/contacts/lists", json={"name": f"Old list {n}", "folderId": 1}).raise_for_status()
        existing = raw.post("/contacts/lists", json={"name": "Churned", "folderId": 1}).json()["id"]

        ids = brevo.ensure_lists(["Churned", "Webinar WB003", "Demo nurture"])

        assert ids["Churned"] == existing
        folders = raw.get("/contacts/folders", params={"limit": 50}).json()["folders"]
        lifecycle = [f["id"] for f in folders if f["name"] == "Lifecycle"]
        assert len(lifecycle) == 1
        for name in ("Webinar WB003", "Demo nurture"):
            assert raw.get(f"/contacts/lists/{ids[name]}").json()["folderId"] == lifecycle[0]
    before = write_calls(admin)

    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST) as fresh:
        assert fresh.ensure_lists(["Demo nurture", "Webinar WB003", "Churned"]) == ids
    assert write_calls(admin) == before


def test_contacts_are_upserted_with_typed_attributes_and_bad_rows_rejected(brevo: BrevoClient,
                                                                            admin: httpx.Client) -> None:
    brevo.ensure_attributes()
    outcomes = brevo.upsert_contacts([
        {"email": "Ada@Example.com", "FIRSTNAME": "Ada", "DEMO_BOOKED": True, "DEMO_DATE": "2026-03-04T15:00:00Z",
         "SEGMENT": "B2B"},
        {"email": "bob@example.com", "FIRSTNAME": "Bob", "IS_CLIENT": False},
        {"email": "not-an-email", "FIRSTNAME": "X"},
        {"email": "carl@example.com", "NO_SUCH_ATTRIBUTE": "x"},
        {"email": "dora@example.com", "DEMO_BOOKED": "maybe"},
        {"email": "ada@example.com", "FIRSTNAME": "Twice"},
    ])

    assert [o.status for o in outcomes] == ["accepted", "accepted", "rejected", "rejected", "rejected",
                                            "rejected"]
    assert [o.code for o in outcomes[2:]] == ["INVALID_EMAIL", "UNKNOWN_ATTRIBUTE", "INVALID_VALUE",
                                              "DUPLICATE_ROW"]
    assert calls(admin, "POST", "/contacts/import") == 1
    ada = stored(admin, "ada@example.com")
    assert ada["attributes"] == {"FIRSTNAME": "Ada", "DEMO_BOOKED": True, "DEMO_DATE": "2026-03-04",
                                 "SEGMENT": "B2B"}
    assert ada["lists"] == ["Lifecycle contacts"]
    assert stored(admin, "bob@example.com")["attributes"] == {"FIRSTNAME": "Bob", "IS_CLIENT": False}
    assert admin.get("/brevo/contacts/carl@example.com").status_code == 404

    again = brevo.upsert_contacts([{"email": "ada@example.com", "DEMO_BOOKED": False, "DEMO_DATE": None},
                                   {"email": "bob@example.com", "LASTNAME": "Byrne"}])

    assert all(o.accepted for o in again)
    assert stored(admin, "ada@example.com")["attributes"] == {"FIRSTNAME": "Ada", "DEMO_BOOKED": False,
                                                              "SEGMENT": "B2B"}
    assert stored(admin, "bob@example.com")["attributes"] == {"FIRSTNAME": "Bob", "LASTNAME": "Byrne",
                                                              "IS_CLIENT": False}


def test_list_changes_go_150_per_call_with_per_email_outcomes(brevo: BrevoClient, admin: httpx.Client) -> None:
    admin.post("/limits", json={"service": "brevo", "off": True}).raise_for_status()
    emails = [f"member{i}@example.com" for i in range(400)]
    assert all(o.accepted for o in brevo.upsert_contacts([{"email": e} for e in emails]))
    list_id = brevo.ensure_lists(["Re-engagement"])["Re-engagement"]

    added = brevo.add_to_list(list_id, [*emails, "stranger@example.com"])

    assert calls(admin, "POST", "/contacts/lists/{list_id}/contacts/add") == 3
    assert [o.key for o in added] == [*emails, "stranger@example.com"]
    assert all(o.accepted for o in added[:400]) and added[400].status == "rejected"
    assert "Re-engagement" in stored(admin, "member399@example.com")["lists"]

    removed = brevo.remove_from_list(list_id, ["member0@example.com", "member1@example.com"])
    repeated = brevo.add_to_list(list_id, ["member5@example.com"])

    assert all(o.accepted for o in removed)
    assert "Re-engagement" not in stored(admin, "member0@example.com")["lists"]
    assert repeated[0].status == "rejected" and repeated[0].code == "invalid_parameter"


def test_a_realistic_contacts_limit_is_not_overrun(brevo: BrevoClient, admin: httpx.Client) -> None:
    emails = [f"member{i}@example.com" for i in range(3000)]
    brevo.upsert_contacts([{"email": e} for e in emails])
    list_id = brevo.ensure_lists(["Churned"])["Churned"]

    added = brevo.add_to_list(list_id, emails)

    assert all(o.accepted for o in added)
    received = calls(admin, "POST", "/contacts/lists/{list_id}/contacts/add")
    assert received - 20 == brevo.stats.rate_limited <= 1
    assert brevo.stats.paced_waits >= 1


def test_injected_429s_and_500s_on_imports_are_retried(sandbox_url: str, admin: httpx.Client) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        """Recorded, and cut short: an import polled without any pause would never see it complete."""
        slept.append(seconds)
        time.sleep(min(seconds, 0.05))

    admin.post("/limits", json={"service": "brevo", "off": True}).raise_for_status()  # sleeps are not real
    admin.post("/brevo/import_delay", json={"seconds": 0}).raise_for_status()
    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST, sleep=sleep) as client:
        client.ensure_lists(["Lifecycle contacts"])
        admin.post("/faults", json={"service": "brevo", "rate_429": 0.3, "rate_500": 0.2, "seed": 5})
        outcomes = [client.upsert_contacts([{"email": f"p{i}@example.com"}]) for i in range(6)]
        admin.post("/faults", json={})

    assert all(o[0].accepted for o in outcomes)
    assert client.stats.rate_limited >= 1 and client.stats.retries > client.stats.rate_limited
    assert any(s >= 1.0 for s in slept)
    assert stored(admin, "p5@example.com")["lists"] == ["Lifecycle contacts"]


def test_send_transactional_returns_the_message_id(brevo: BrevoClient, admin: httpx.Client) -> None:
    message_id = brevo.send_transactional({"email": "ada@example.com", "name": "Ada"}, 12,
                                          {"sequence": "demo_confirmation", "step": 1}, tags=["msg-1"])

    emails = admin.get("/brevo/emails").json()
    assert [(e["templateId"], e["params"], e["tags"]) for e in emails] == [
        (12, {"sequence": "demo_confirmation", "step": 1}, ["msg-1"])]
    assert brevo.find_sent("msg-1") == [message_id]
    assert brevo.find_sent("msg-2") == []


def test_a_send_timeout_raises_maybe_applied_and_find_sent_finds_the_email(sandbox_url: str,
                                                                         admin: httpx.Client) -> None:
    policy = RetryPolicy(base_delay=0.01, timeout=0.3)
    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=policy) as client:
        admin.post("/faults", json={"service": "brevo", "rate_timeout": 1, "timeout_seconds": 1.0})
        with pytest.raises(MaybeApplied):
            client.send_transactional("ada@example.com", 7, {"step": 1}, tags=["key-abc"])
        admin.post("/faults", json={})

        found = client.find_sent("key-abc")

    emails = admin.get("/brevo/emails").json()
    assert len(emails) == 1 and calls(admin, "POST", "/smtp/email") == 1
    assert found == [emails[0]["messageId"]]


def test_a_send_answered_with_500_is_not_resent_blindly(brevo: BrevoClient, admin: httpx.Client) -> None:
    admin.post("/faults", json={"service": "brevo", "rate_500": 1})
    with pytest.raises(MaybeApplied):
        brevo.send_transactional("ada@example.com", 7, tags=["key-500"])
    admin.post("/faults", json={})

    assert calls(admin, "POST", "/smtp/email") == 1
    assert brevo.find_sent("key-500") == []


def test_a_vendor_echoing_the_key_never_gets_it_logged_raised_or_stored(
        sandbox_url: str, admin: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    """The sandbox's echo mode repeats the request's api-key in every error message, as a careless vendor
    would: in the retried 429s and 500s of imports (logged), in the reason of a rejected list change
    (stored in sync_log), and in the 401 that is raised. None of them shows the key."""
    admin.post("/limits", json={"service": "brevo", "off": True}).raise_for_status()  # sleeps are not real
    admin.post("/brevo/import_delay", json={"seconds": 0}).raise_for_status()
    admin.post("/echo_credentials", json={"on": True, "service": "brevo"}).raise_for_status()
    with caplog.at_level(logging.INFO, logger="activations"), \
            BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST, sleep=lambda s: time.sleep(min(s, 0.05))
                        ) as client:
        list_id = client.ensure_lists(["Churned"])["Churned"]
        admin.post("/faults", json={"service": "brevo", "rate_429": 0.3, "rate_500": 0.2, "seed": 5})
        imported = [client.upsert_contacts([{"email": f"p{i}@example.com"}]) for i in range(6)]
        admin.post("/faults", json={})
        client.add_to_list(list_id, ["p0@example.com"])
        repeated = client.add_to_list(list_id, ["p0@example.com"])
    wrong = "xkeysib-0123456789abcdef-secret"
    with BrevoClient(wrong, sandbox_url + "/brevo/v3", policy=FAST) as bad_client, \
            pytest.raises(ApiError) as caught:
        bad_client.ensure_attributes()

    retried = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert client.stats.rate_limited >= 1 and client.stats.retries > client.stats.rate_limited
    assert retried and all("credential presented: ***" in r.getMessage() for r in retried)
    assert all(o[0].accepted for o in imported)
    assert repeated[0].status == "rejected" and "credential presented: ***" in repeated[0].error
    assert caught.value.status == 401 and "unauthorized" in str(caught.value)
    assert "credential presented: ***" in caught.value.body["message"]
    assert leaks(KEY, caplog.records, *imported, *repeated) == []
    assert leaks(wrong, caplog.records, caught.value) == []


class Recording(httpx.HTTPTransport):
    """Real HTTP, with every request kept; ``drop_reports`` fails the download of import reports, as a
    network that loses the connection to the file host would."""

    def __init__(self, drop_reports: bool = False) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []
        self.drop_reports = drop_reports

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.drop_reports and "/import-reports/" in request.url.path:
            raise httpx.ConnectError("connection refused", request=request)
        return super().handle_request(request)


def test_the_own_email_check_refuses_what_no_mail_system_takes(brevo: BrevoClient, admin: httpx.Client) -> None:
    bad = ["ada..lovelace@example.com", ".ada@example.com", "ada@-acme.com", "ada@acme..com", "ada@acme.c",
           "ada@acme.c0m", "ada@localhost", "ada lovelace@example.com", '"ada"@example.com',
           "zoë@example.com", ("a" * 65) + "@example.com", "ada@[192.0.2.1]"]

    outcomes = brevo.upsert_contacts([{"email": email} for email in bad])

    assert [(o.status, o.code) for o in outcomes] == [("rejected", "INVALID_EMAIL")] * len(bad)
    assert calls(admin, "POST", "/contacts/import") == 0
    assert [o.accepted for o in brevo.upsert_contacts([{"email": "o'brien+news@mail.example.co.uk"},
                                                       {"email": "ada@xn--bcher-kva.example"}])] == [True, True]


def test_rows_brevo_skips_in_an_import_are_rejected_with_its_reason(sandbox_url: str, admin: httpx.Client) -> None:
    recording = Recording()
    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST, transport=recording) as client:
        outcomes = client.upsert_contacts([
            {"email": "ada@example.com", "FIRSTNAME": "Ada"},
            {"email": "ann!ops@example.com", "FIRSTNAME": "Ann"},
            {"email": "bob@example.com", "FIRSTNAME": "Bob"},
        ])

    assert [o.status for o in outcomes] == ["accepted", "rejected", "accepted"]
    assert outcomes[1].code == "invalid_emails"
    assert "Brevo skipped the row in import process" in (outcomes[1].error or "")
    assert "local part" in (outcomes[1].error or ""), "Brevo's own reason is kept"
    assert admin.get("/brevo/contacts/ann!ops@example.com").status_code == 404
    assert stored(admin, "bob@example.com")["attributes"] == {"FIRSTNAME": "Bob"}
    downloads = [r for r in recording.requests if "/import-reports/" in r.url.path]
    assert [r.url.path.rsplit("/", 1)[-1] for r in downloads] == ["invalid_emails.csv"]
    assert all("api-key" not in r.headers for r in downloads), "the API key never goes to a report link"
    assert client.stats.calls["GET import report"] == 1


def test_an_import_whose_report_cannot_be_read_leaves_every_row_unconfirmed(sandbox_url: str,
                                                                            admin: httpx.Client) -> None:
    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST,
                     transport=Recording(drop_reports=True)) as client:
        outcomes = client.upsert_contacts([{"email": "ada@example.com"}, {"email": "ann!ops@example.com"}])

    assert [o.status for o in outcomes] == ["maybe_applied", "maybe_applied"]
    assert "could not be read" in (outcomes[0].error or "") and "sent again next run" in (outcomes[0].error or "")


def test_an_import_polled_past_its_budget_leaves_its_rows_for_the_next_run(sandbox_url: str,
                                                                          admin: httpx.Client) -> None:
    admin.post("/brevo/import_delay", json={"seconds": 3}).raise_for_status()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST, sleep=sleep, import_poll_seconds=0.5) as client:
        client.ensure_lists(["Lifecycle contacts"])
        outcomes = client.upsert_contacts([{"email": "ada@example.com", "FIRSTNAME": "Ada"}])

        assert [o.status for o in outcomes] == ["maybe_applied"]
        assert "still queued" in (outcomes[0].error or "")
        assert slept == [0.25, 0.5], "the pauses between looks start short and grow"
        assert calls(admin, "GET", "/processes/{process_id}") == 2
        assert admin.get("/brevo/contacts/ada@example.com").status_code == 404, "imported, not visible yet"

        admin.post("/brevo/import_delay", json={"seconds": 0.1}).raise_for_status()
        admin.post("/brevo/imports/wait").raise_for_status()
        assert stored(admin, "ada@example.com")["attributes"] == {"FIRSTNAME": "Ada"}
        client.import_poll_seconds = 600
        again = client.upsert_contacts([{"email": "ada@example.com", "FIRSTNAME": "Ada"}])
    assert [o.status for o in again] == ["accepted"]
