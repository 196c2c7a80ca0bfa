"""The emulated HubSpot driven with HubSpot's official Python SDK (hubspot-api-client 12).

The SDK is generated from HubSpot's OpenAPI specs: it checks the status code each endpoint documents and
builds its models with client-side validation on, so a missing required field, a value outside an enum or
an unexpected status surfaces here as an error (or as ``None`` for an undocumented status). Every HubSpot
endpoint the product calls is covered, plus the contact archive, property groups and v4 associations, and
the SDK's error types must carry the status and HubSpot's own error body. When the sandbox drifts from
the real API's shapes, this suite is where it shows.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import httpx
import pytest
from hubspot import Client
from hubspot.crm.associations.v4 import (
    BatchInputPublicDefaultAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicDefaultAssociationMultiPost,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.associations.v4 import PublicObjectId as AssociationObjectId
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException, NotFoundException
from hubspot.crm.objects.notes import AssociationSpec, PublicAssociationsForObject
from hubspot.crm.objects.notes import BatchInputSimplePublicObjectBatchInputForCreate as NotesBatchCreate
from hubspot.crm.objects.notes import PublicObjectId as NoteTarget
from hubspot.crm.objects.notes import SimplePublicObjectInputForCreate as NoteInput
from hubspot.crm.properties import (
    BatchInputPropertyCreate,
    OptionInput,
    PropertyCreate,
    PropertyGroupCreate,
    PropertyGroupUpdate,
    PropertyUpdate,
)
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException

TOKEN = "pat-sandbox"


@pytest.fixture()
def client(sandbox_url: str) -> Client:
    """The SDK pointed at the sandbox, with the rate limits lifted (they have their own tests)."""
    httpx.post(sandbox_url + "/_sandbox/limits", json={"service": "hubspot", "off": True}).raise_for_status()
    return Client.create(access_token=TOKEN, host=sandbox_url + "/hubspot")


def hubspot_body(error: Exception) -> dict:
    """The error body an SDK exception carries, which must be HubSpot's JSON error."""
    body = json.loads(error.body)  # type: ignore[attr-defined]
    uuid.UUID(body["correlationId"])
    assert body["status"] == "error" and body["message"]
    return body


def contact(client: Client, email: str, **properties: str) -> str:
    created = client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": email, **properties}))
    return created.id


def note_on(contact_id: str, body: str) -> NoteInput:
    return NoteInput(
        properties={"hs_timestamp": "2026-09-01T10:00:00.000Z", "hs_note_body": body},
        associations=[PublicAssociationsForObject(
            to=NoteTarget(id=contact_id),
            types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=202)])])


# ----- contacts -----------------------------------------------------------------------------------------


def test_a_contact_round_trips_through_create_get_by_id_and_get_by_email(client: Client) -> None:
    contacts = client.crm.contacts.basic_api
    created = contacts.create(SimplePublicObjectInputForCreate(
        properties={"email": "Ada@Example.com", "firstname": "Ada", "hs_lead_status": "OPEN"}))
    assert created.properties["email"] == "ada@example.com"
    assert isinstance(created.created_at, datetime) and created.archived is False

    by_id = contacts.get_by_id(created.id, properties=["firstname", "hs_lead_status", "company"])
    by_email = contacts.get_by_id("ada@example.com", id_property="email", properties=["firstname"])

    assert by_id.id == by_email.id == created.id
    assert by_id.properties["firstname"] == "Ada" and by_id.properties["hs_lead_status"] == "OPEN"
    assert by_id.properties["company"] is None
    assert by_email.properties["firstname"] == "Ada"
    updated = contacts.update(created.id, SimplePublicObjectInput(properties={"company": "Analytical"}))
    assert updated.properties["company"] == "Analytical"


def test_the_contact_list_pages_through_every_contact_once(client: Client) -> None:
    emails = [f"p{i}@example.com" for i in range(5)]
    for email in emails:
        contact(client, email)
    seen, after = [], None
    while True:
        page = client.crm.contacts.basic_api.get_page(limit=2, after=after, properties=["email"])
        seen.extend(c.properties["email"] for c in page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert seen == emails


def test_batch_upsert_reports_new_then_existing_and_batch_read_reports_the_missing(client: Client) -> None:
    batch = client.crm.contacts.batch_api

    def upsert(firstname: str) -> list:
        answer = batch.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
            SimplePublicObjectBatchInputUpsert(id=f"u{i}@example.com", id_property="email",
                                               properties={"firstname": f"{firstname}{i}"})
            for i in range(2)]))
        assert answer.status == "COMPLETE" and isinstance(answer.completed_at, datetime)
        return sorted(answer.results, key=lambda r: r.properties["email"])

    first, second = upsert("A"), upsert("B")
    assert [r.new for r in first] == [True, True] and [r.new for r in second] == [False, False]
    assert [r.id for r in first] == [r.id for r in second]

    read = batch.read(BatchReadInputSimplePublicObjectId(
        id_property="email", properties=["firstname"], properties_with_history=[],
        inputs=[SimplePublicObjectId(id="u1@example.com"), SimplePublicObjectId(id="nobody@example.com")]))

    assert [r.properties["firstname"] for r in read.results] == ["B1"]
    assert read.num_errors == 1
    assert read.errors[0].category == "OBJECT_NOT_FOUND"
    assert read.errors[0].context["ids"] == ["nobody@example.com"]


def test_search_filters_sorts_and_pages(client: Client) -> None:
    for i, segment in enumerate(["lead", "customer", "lead", "lead"]):
        contact(client, f"s{i}@example.com", lifecyclestage=segment)
    request = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(property_name="lifecyclestage", operator="EQ", value="lead")])],
        sorts=["email"], properties=["email", "lifecyclestage"], limit=2)

    first = client.crm.contacts.search_api.do_search(request)
    request.after = first.paging.next.after
    rest = client.crm.contacts.search_api.do_search(request)

    assert first.total == 3
    assert [c.properties["email"] for c in first.results + rest.results] == [
        "s0@example.com", "s2@example.com", "s3@example.com"]
    assert rest.paging is None


def test_an_archived_contact_leaves_get_list_search_and_batch_read(client: Client) -> None:
    contacts = client.crm.contacts
    kept, gone, also_gone = (contact(client, f"{name}@example.com") for name in ("kept", "gone", "also"))

    assert contacts.basic_api.archive(gone) is None
    contacts.batch_api.archive(BatchInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=also_gone)]))

    with pytest.raises(NotFoundException) as missing:
        contacts.basic_api.get_by_id(gone)
    assert missing.value.status == 404 and hubspot_body(missing.value)["category"] == "OBJECT_NOT_FOUND"
    assert [c.id for c in contacts.basic_api.get_page().results] == [kept]
    archived = contacts.basic_api.get_page(archived=True).results
    assert [c.id for c in archived] == [gone, also_gone]
    assert all(c.archived and isinstance(c.archived_at, datetime) for c in archived)
    assert contacts.basic_api.get_by_id(gone, archived=True).archived is True
    found = contacts.search_api.do_search(PublicObjectSearchRequest(filter_groups=[], limit=10))
    assert [c.id for c in found.results] == [kept]
    read = contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
        properties=["email"], properties_with_history=[], inputs=[SimplePublicObjectId(id=gone)]))
    assert read.results == [] and read.errors[0].context["ids"] == [gone]
    assert contact(client, "gone@example.com") not in (kept, gone, also_gone)


# ----- properties and property groups -------------------------------------------------------------------


def test_property_groups_create_list_get_update_and_archive(client: Client) -> None:
    groups = client.crm.properties.groups_api
    created = groups.create("contacts", PropertyGroupCreate(name="lifecycle", label="Lifecycle", display_order=3))
    assert (created.name, created.label, created.display_order, created.archived) == ("lifecycle", "Lifecycle",
                                                                                     3, False)
    assert "lifecycle" in [g.name for g in groups.get_all("contacts").results]
    assert "contactinformation" in [g.name for g in groups.get_all("contacts").results]

    updated = groups.update("contacts", "lifecycle", PropertyGroupUpdate(label="Lifecycle marketing"))

    assert updated.label == "Lifecycle marketing" and updated.display_order == 3
    assert groups.get_by_name("contacts", "lifecycle").label == "Lifecycle marketing"
    with pytest.raises(PropertiesApiException) as duplicate:
        groups.create("contacts", PropertyGroupCreate(name="lifecycle", label="Again"))
    assert duplicate.value.status == 409 and hubspot_body(duplicate.value)["category"] == "CONFLICT"
    assert groups.archive("contacts", "lifecycle") is None
    with pytest.raises(PropertiesApiException) as gone:
        groups.get_by_name("contacts", "lifecycle")
    assert gone.value.status == 404 and hubspot_body(gone.value)["category"] == "OBJECT_NOT_FOUND"


def test_properties_create_get_update_options_and_batch_create(client: Client) -> None:
    properties = client.crm.properties
    properties.groups_api.create("contacts", PropertyGroupCreate(name="lifecycle", label="Lifecycle"))
    segment = PropertyCreate(
        name="customer_segment", label="Customer segment", type="enumeration", field_type="select",
        group_name="lifecycle", options=[OptionInput(label="B2B", value="B2B", hidden=False, display_order=0)])

    created = properties.core_api.create("contacts", segment)
    assert (created.name, created.group_name, [o.value for o in created.options]) == (
        "customer_segment", "lifecycle", ["B2B"])
    updated = properties.core_api.update("contacts", "customer_segment", PropertyUpdate(options=[
        OptionInput(label="B2B", value="B2B", hidden=False, display_order=0),
        OptionInput(label="B2C", value="B2C", hidden=False, display_order=1)]))
    assert [o.value for o in updated.options] == ["B2B", "B2C"]
    fetched = properties.core_api.get_by_name("contacts", "hs_lead_status")
    assert fetched.modification_metadata.read_only_value is False
    assert "customer_segment" in [p.name for p in properties.core_api.get_all("contacts").results]

    batch = properties.batch_api.create("contacts", BatchInputPropertyCreate(inputs=[
        PropertyCreate(name="form_source", label="Form source", type="string", field_type="text",
                       group_name="lifecycle"),
        segment]))

    assert [p.name for p in batch.results] == ["form_source"]
    assert batch.num_errors == 1 and batch.errors[0].category == "CONFLICT"


def test_a_property_in_a_group_that_does_not_exist_is_refused(client: Client) -> None:
    with pytest.raises(PropertiesApiException) as refused:
        client.crm.properties.core_api.create("contacts", PropertyCreate(
            name="primary_audience", label="Primary audience", type="string", field_type="text",
            group_name="no_such_group"))
    assert refused.value.status == 400
    body = hubspot_body(refused.value)
    assert body["category"] == "VALIDATION_ERROR" and "no_such_group" in body["message"]


# ----- notes, associations, owners -------------------------------------------------------------------------


def test_notes_are_created_with_associations_and_read_back_from_both_sides(client: Client) -> None:
    contact_id = contact(client, "ada@example.com")
    notes = client.crm.objects.notes
    single = notes.basic_api.create(note_on(contact_id, "Booked a demo"))
    batch = notes.batch_api.create(NotesBatchCreate(inputs=[note_on(contact_id, "Rescheduled")]))
    assert batch.status == "COMPLETE" and batch.results[0].properties["hs_note_body"] == "Rescheduled"

    fetched = notes.basic_api.get_by_id(single.id, properties=["hs_note_body", "hs_timestamp"],
                                        associations=["contacts"])
    assert fetched.properties["hs_note_body"] == "Booked a demo"
    assert datetime.fromisoformat(fetched.properties["hs_timestamp"]) == datetime.fromisoformat(
        "2026-09-01T10:00:00+00:00")
    assert [a.id for a in fetched.associations["contacts"].results] == [contact_id]
    with_notes = client.crm.contacts.basic_api.get_by_id(contact_id, associations=["notes"])
    assert [a.id for a in with_notes.associations["notes"].results] == [single.id, batch.results[0].id]


def test_v4_default_associations_are_consistent_with_the_v3_view(client: Client) -> None:
    ada, bob = contact(client, "ada@example.com"), contact(client, "bob@example.com")
    first = client.crm.objects.notes.basic_api.create(note_on(ada, "one")).id
    second = client.crm.objects.notes.basic_api.create(note_on(ada, "two")).id
    v4 = client.crm.associations.v4

    made = v4.basic_api.create_default("notes", second, "contacts", bob)

    assert made.status == "COMPLETE"
    assert {(r._from.id, r.to.id, r.association_spec.association_type_id) for r in made.results} == {
        (second, bob, 202), (bob, second, 201)}
    page = v4.basic_api.get_page("contacts", ada, "notes", limit=1)
    assert [(str(r.to_object_id), r.association_types[0].type_id) for r in page.results] == [(first, 201)]
    rest = v4.basic_api.get_page("contacts", ada, "notes", after=page.paging.next.after)
    assert [str(r.to_object_id) for r in rest.results] == [second] and rest.paging is None
    v3 = client.crm.contacts.basic_api.get_by_id(bob, associations=["notes"])
    assert [a.id for a in v3.associations["notes"].results] == [second]

    third = client.crm.objects.notes.basic_api.create(NoteInput(
        properties={"hs_timestamp": "2026-09-02T10:00:00.000Z", "hs_note_body": "three"})).id
    batch = v4.batch_api.create_default("notes", "contacts", BatchInputPublicDefaultAssociationMultiPost(
        inputs=[PublicDefaultAssociationMultiPost(_from=AssociationObjectId(id=third),
                                                  to=AssociationObjectId(id=bob))]))
    assert {(r._from.id, r.to.id) for r in batch.results} == {(third, bob), (bob, third)}
    lonely = contact(client, "lonely@example.com")
    read = v4.batch_api.get_page("contacts", "notes", BatchInputPublicFetchAssociationsBatchRequest(inputs=[
        PublicFetchAssociationsBatchRequest(id=bob), PublicFetchAssociationsBatchRequest(id=lonely)]))
    assert [(r._from.id, sorted(str(t.to_object_id) for t in r.to)) for r in read.results] == [
        (bob, sorted([second, third]))]
    assert read.num_errors == 1 and read.errors[0].context["fromObjectId"] == [lonely]


def test_owners_list_and_page(client: Client) -> None:
    owners = client.crm.owners.owners_api
    first = owners.get_page(limit=2)
    rest = owners.get_page(limit=2, after=first.paging.next.after)
    assert [o.id for o in first.results + rest.results] == ["101", "102", "103"]
    assert first.results[0].type == "PERSON" and isinstance(first.results[0].created_at, datetime)
    assert owners.get_page(email="priya.shah@sandbox-crm.example").results[0].id == "102"


# ----- errors ------------------------------------------------------------------------------------------------


def test_sdk_errors_carry_the_status_and_hubspots_error_body(client: Client) -> None:
    contacts = client.crm.contacts.basic_api
    contact(client, "ada@example.com")
    with pytest.raises(NotFoundException) as not_found:
        contacts.get_by_id("nobody@example.com", id_property="email")
    with pytest.raises(ApiException) as conflict:
        contact(client, "ada@example.com")
    with pytest.raises(ApiException) as invalid:
        contact(client, "bob@example.com", hs_lead_status="NOT_A_STATUS")

    assert not_found.value.status == 404 and hubspot_body(not_found.value)["category"] == "OBJECT_NOT_FOUND"
    assert conflict.value.status == 409 and hubspot_body(conflict.value)["category"] == "CONFLICT"
    assert invalid.value.status == 400
    body = hubspot_body(invalid.value)
    assert body["category"] == "VALIDATION_ERROR" and body["errors"][0]["code"] == "INVALID_OPTION"
