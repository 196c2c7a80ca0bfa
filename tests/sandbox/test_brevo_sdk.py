"""The emulated Brevo API driven by Brevo's official Python SDK (brevo-python 5.x), so drift shows in CI.

Every endpoint the product calls (activations/brevo.py, the list-member look-up in activations/destinations.py,
ingestion/sources/brevo.py) and the ones the sandbox emulates beyond them (processes, contact delete, unknown
routes) go through the SDK's own request building and parsing; each answer must parse into the SDK's models
with the values we sent coming back. The SDK parses leniently (its models are built without validation), so
each answer is also validated strictly against the same model: a required field missing or of the wrong type
fails here.

brevo-python 1.x (the older generator's SDK) is published under the same PyPI name, so one virtualenv holds
one of them; this suite covers 5.x, the current one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pydantic
import pytest
from brevo import Brevo
from brevo.contacts.types import (
    GetAttributesResponse,
    GetContactInfoResponse,
    GetFoldersResponse,
    GetListResponse,
    GetListsResponse,
    ImportContactsRequestJsonBodyItem,
)
from brevo.contacts.types.add_contact_to_list_request_body_emails import AddContactToListRequestBodyEmails
from brevo.contacts.types.remove_contact_from_list_request_body_emails import (
    RemoveContactFromListRequestBodyEmails,
)
from brevo.core.api_error import ApiError
from brevo.errors import BadRequestError, NotFoundError
from brevo.process.types import GetProcessesResponse, GetProcessResponse
from brevo.transactional_emails.types import GetEmailEventReportResponse, SendTransacEmailResponse
from brevo.transactional_emails.types.send_transac_email_request_message_versions_item import (
    SendTransacEmailRequestMessageVersionsItem,
)
from brevo.transactional_emails.types.send_transac_email_request_message_versions_item_to_item import (
    SendTransacEmailRequestMessageVersionsItemToItem,
)
from brevo.transactional_emails.types.send_transac_email_request_to_item import SendTransacEmailRequestToItem
from brevo.types import GetContacts, PostContactInfo

KEY = "xkeysib-sandbox"
PROCESS_STATUSES = {"queued", "in_process", "processing", "completed", "failed", "cancelled"}


@pytest.fixture()
def sdk(sandbox_url: str) -> Iterator[Brevo]:
    httpx.post(f"{sandbox_url}/_sandbox/limits", json={"service": "brevo", "off": True}).raise_for_status()
    with httpx.Client(timeout=10) as http:
        yield Brevo(api_key=KEY, base_url=f"{sandbox_url}/brevo/v3", max_retries=0, httpx_client=http)


def strict(model: type[pydantic.BaseModel], answer: Any) -> Any:
    """The raw JSON of an SDK call (``with_raw_response``), validated against the SDK's model."""
    model.model_validate(answer.response.json())
    return answer.data


def wait_for_import(sdk: Brevo, process_id: int) -> Any:
    deadline = time.monotonic() + 30
    while True:
        process = strict(GetProcessResponse, sdk.process.with_raw_response.get_process(process_id))
        assert process.status in PROCESS_STATUSES
        if process.status not in ("queued", "in_process", "processing") or time.monotonic() > deadline:
            return process
        time.sleep(0.05)


def test_attributes_folders_and_lists(sdk: Brevo) -> None:
    sdk.contacts.create_attribute("normal", "DEMO_BOOKED", type="boolean")
    sdk.contacts.create_attribute("normal", "DEMO_DATE", type="date")
    attributes = strict(GetAttributesResponse, sdk.contacts.with_raw_response.get_attributes())
    types = {a.name: (a.category, a.type) for a in attributes.attributes}
    assert types["DEMO_BOOKED"] == ("normal", "boolean") and types["DEMO_DATE"] == ("normal", "date")
    with pytest.raises(BadRequestError) as duplicate:
        sdk.contacts.create_attribute("normal", "DEMO_BOOKED", type="boolean")
    assert duplicate.value.body["code"] == "duplicate_parameter"

    folder = sdk.contacts.create_folder(name="Lifecycle")
    folders = strict(GetFoldersResponse, sdk.contacts.with_raw_response.get_folders(limit=50, offset=0))
    assert [(f.id, f.name) for f in folders.folders or []][-1] == (folder.id, "Lifecycle")
    assert folders.count == 2

    created = sdk.contacts.create_list(folder_id=folder.id, name="Demo nurture")
    lists = strict(GetListsResponse, sdk.contacts.with_raw_response.get_lists(limit=50, offset=0, sort="asc"))
    assert [(item.id, item.name, item.folder_id) for item in lists.lists or []] == [
        (created.id, "Demo nurture", folder.id)]
    assert lists.count == 1
    detail = strict(GetListResponse, sdk.contacts.with_raw_response.get_list(created.id))
    assert (detail.name, detail.folder_id, detail.unique_subscribers) == ("Demo nurture", folder.id, 0)


def test_import_polled_to_completion_with_its_report(sdk: Brevo, sandbox_url: str) -> None:
    sdk.contacts.create_attribute("normal", "IS_CLIENT", type="boolean")
    list_id = sdk.contacts.create_list(folder_id=1, name="Lifecycle contacts").id
    answer = sdk.contacts.import_contacts(
        json_body=[
            ImportContactsRequestJsonBodyItem(email="ada@example.com", attributes={"FIRSTNAME": "Ada",
                                                                                  "IS_CLIENT": True}),
            ImportContactsRequestJsonBodyItem(email="ann!ops@example.com", attributes={"FIRSTNAME": "Ann"}),
        ],
        list_ids=[list_id],
        update_existing_contacts=True,
        empty_contacts_attributes=False,
        disable_notification=True,
    )
    assert isinstance(answer.process_id, int)

    process = wait_for_import(sdk, answer.process_id)

    assert (process.id, process.name, process.status) == (answer.process_id, "IMPORTUSER", "completed")
    report = process.info.import_
    assert report.invalid_emails is not None and report.duplicate_email_id is None
    assert "ann!ops@example.com" in httpx.get(report.invalid_emails).text
    ada = strict(GetContactInfoResponse, sdk.contacts.with_raw_response.get_contact_info("ada@example.com"))
    assert (ada.email, ada.list_ids, ada.attributes.model_dump()) == ("ada@example.com", [list_id],
                                                        {"FIRSTNAME": "Ada", "IS_CLIENT": True})
    listed = strict(GetProcessesResponse, sdk.process.with_raw_response.get_processes(limit=10, sort="desc"))
    assert listed.count == 1 and [p.id for p in listed.processes] == [answer.process_id]
    assert listed.processes[0].info.import_.invalid_emails == report.invalid_emails


def test_contact_create_read_update_list_batch_and_delete(sdk: Brevo, sandbox_url: str) -> None:
    list_id = sdk.contacts.create_list(folder_id=1, name="Churned").id
    created = sdk.contacts.create_contact(email="ada@example.com", attributes={"FIRSTNAME": "Ada"},
                                          ext_id="crm-1")
    assert isinstance(created.id, int)
    assert sdk.contacts.create_contact(email="ada@example.com", update_enabled=True,
                                       attributes={"LASTNAME": "Lovelace"}) is None
    sdk.contacts.update_contact("ada@example.com", attributes={"FIRSTNAME": "Augusta"}, list_ids=[list_id])
    sdk.contacts.update_batch_contacts(contacts=[{"email": "ada@example.com", "attributes": {"SMS": "+33612345678"}}])
    httpx.post(f"{sandbox_url}/_sandbox/brevo/events", json={
        "email": "ada@example.com", "event": "opened", "at": "2026-05-02T08:00:00Z", "campaign_id": 4,
    }).raise_for_status()

    contact = strict(GetContactInfoResponse, sdk.contacts.with_raw_response.get_contact_info(
        "crm-1", identifier_type="ext_id"))
    assert (contact.id, contact.email, contact.list_ids) == (created.id, "ada@example.com", [list_id])
    assert contact.attributes.model_dump() == {"FIRSTNAME": "Augusta", "LASTNAME": "Lovelace", "SMS": "+33612345678"}
    assert (contact.email_blacklisted, contact.sms_blacklisted, contact.whatsapp_blacklisted) == (
        False, False, False)
    [opened] = contact.statistics.opened
    assert (opened.campaign_id, opened.count, opened.event_time) == (4, 1, "2026-05-02T08:00:00.000+00:00")
    assert contact.statistics.messages_sent == [] and contact.statistics.unsubscriptions.user_unsubscription == []

    members = strict(GetContacts, sdk.contacts.with_raw_response.get_contacts_from_list(list_id, limit=50))
    assert [(c.id, c.email) for c in members.contacts] == [(created.id, "ada@example.com")]
    listed = strict(GetContacts, sdk.contacts.with_raw_response.get_contacts(
        limit=1000, offset=0, sort="asc", modified_since="2020-01-01T00:00:00.000Z"))
    assert listed.count == 1 and listed.contacts[0].modified_at == contact.modified_at

    sdk.contacts.delete_contact(str(created.id), identifier_type="contact_id")
    with pytest.raises(NotFoundError) as gone:
        sdk.contacts.get_contact_info("ada@example.com")
    assert gone.value.body == {"code": "document_not_found", "message": "Contact does not exist"}
    with pytest.raises(NotFoundError):
        sdk.contacts.delete_contact("ada@example.com")


def test_list_members_added_and_removed(sdk: Brevo) -> None:
    list_id = sdk.contacts.create_list(folder_id=1, name="Re-engagement").id
    sdk.contacts.create_contact(email="bo@example.com")

    added = strict(PostContactInfo, sdk.contacts.with_raw_response.add_contact_to_list(
        list_id, request=AddContactToListRequestBodyEmails(emails=["bo@example.com", "ghost@example.com"])))
    assert (added.contacts.success, added.contacts.failure) == (["bo@example.com"], ["ghost@example.com"])
    with pytest.raises(BadRequestError) as nothing_new:
        sdk.contacts.add_contact_to_list(list_id, request=AddContactToListRequestBodyEmails(emails=["bo@example.com"]))
    assert nothing_new.value.body["code"] == "invalid_parameter"
    removed = strict(PostContactInfo, sdk.contacts.with_raw_response.remove_contact_from_list(
        list_id, request=RemoveContactFromListRequestBodyEmails(emails=["bo@example.com"])))
    assert removed.contacts.success == ["bo@example.com"]


def test_transactional_email_and_its_event_log(sdk: Brevo) -> None:
    single = strict(SendTransacEmailResponse, sdk.transactional_emails.with_raw_response.send_transac_email(
        to=[SendTransacEmailRequestToItem(email="ada@example.com", name="Ada")], template_id=7,
        params={"step": 1}, tags=["msg-1"]))
    batch = strict(SendTransacEmailResponse, sdk.transactional_emails.with_raw_response.send_transac_email(
        template_id=8, tags=["batch-1"], message_versions=[
            SendTransacEmailRequestMessageVersionsItem(
                to=[SendTransacEmailRequestMessageVersionsItemToItem(email=email)], params={"n": n})
            for n, email in enumerate(("bo@example.com", "cy@example.com"))]))
    assert single.message_id and len(batch.message_ids or []) == 2

    tagged = strict(GetEmailEventReportResponse, sdk.transactional_emails.with_raw_response.get_email_event_report(
        tags='["msg-1"]', limit=2500, offset=0, sort="asc"))
    assert [(e.event, e.email, e.message_id, e.template_id, e.tag) for e in tagged.events or []] == [
        ("requests", "ada@example.com", single.message_id, 7, "msg-1"),
        ("delivered", "ada@example.com", single.message_id, 7, "msg-1")]
    today = tagged.events[0].date[:10]
    by_day = sdk.transactional_emails.get_email_event_report(start_date=today, end_date=today, limit=5000,
                                                             event="requests", sort="asc")
    assert [e.message_id for e in by_day.events or []] == [single.message_id, *batch.message_ids]
    nothing = sdk.transactional_emails.get_email_event_report(message_id="<none@smtp-relay.sandbox>")
    assert nothing.events is None


def test_errors_parse_as_brevo_errors(sdk: Brevo, sandbox_url: str) -> None:
    with pytest.raises(NotFoundError) as no_process:
        sdk.process.get_process(999)
    assert no_process.value.body["code"] == "document_not_found"
    with httpx.Client(timeout=10) as http:
        wrong_path = Brevo(api_key=KEY, base_url=f"{sandbox_url}/brevo/v2", max_retries=0, httpx_client=http)
        with pytest.raises(ApiError) as unknown:
            wrong_path.contacts.get_attributes()
    assert unknown.value.status_code == 404
    assert unknown.value.body["code"] == "document_not_found" and unknown.value.body["message"]
    with httpx.Client(timeout=10) as http:
        wrong_key = Brevo(api_key="xkeysib-wrong", base_url=f"{sandbox_url}/brevo/v3", max_retries=0,
                          httpx_client=http)
        with pytest.raises(ApiError) as unauthorized:
            wrong_key.contacts.get_attributes()
    assert unauthorized.value.status_code == 401
    assert unauthorized.value.body == {"code": "unauthorized", "message": "Key not found"}
