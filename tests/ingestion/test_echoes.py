"""Our own writes read back are not loaded again: the canonical comparison, the filter, and both vendors'
contacts through the sandbox, written by the real sync engine and read back by the real dlt sources."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import httpx
import pytest

from activations.brevo import BrevoClient
from activations.destinations import (
    BrevoContacts,
    BrevoListMembers,
    HubSpotContacts,
    brevo_written_contacts_sql,
    hubspot_written_contacts_sql,
)
from activations.engine import SyncObject, sync
from activations.hubspot import HubSpotClient
from ingestion.echoes import EchoFilter, canonical, digest
from ingestion.pipelines import make_pipeline, run_ingestion
from ingestion.sources import parse_timestamp
from settings import Settings, sandbox_environment

HUBSPOT = {"Authorization": "Bearer pat-sandbox"}
BREVO = {"api-key": "xkeysib-sandbox"}


def test_one_value_in_any_of_its_forms_has_one_canonical_text() -> None:
    instant = datetime(2026, 12, 2, 0, 17, 45, tzinfo=UTC)
    assert canonical("1796170665000") == canonical("2026-12-02T00:17:45.000Z") == canonical(instant)
    assert canonical(date(2026, 12, 2)) == canonical("2026-12-02") == canonical(datetime(2026, 12, 2, tzinfo=UTC))
    assert canonical(5) == canonical("5") == canonical(5.0)
    assert canonical("") is canonical(None) is canonical([]) is None
    assert canonical([3, 1]) == canonical(["1", "3"])
    assert canonical(True) == canonical("true") != canonical(False)
    assert canonical("Ann") != canonical("ann")
    assert canonical("5555550100") != canonical("5555550101"), "digits that are not an instant stay text"


def echo_filter_of(landed: dict) -> EchoFilter:
    compared = tuple(sorted(set(landed) - {"id", "modified_at"}))
    return EchoFilter(key="id", compared=compared, ignored=frozenset({"id", "modified_at"}),
                      expected={str(landed["id"]): digest(landed, compared)})


def test_the_filter_drops_only_records_that_hold_what_we_expect() -> None:
    landed = {"id": 7, "email": "a@example.com", "attributes__segment": "B2B", "modified_at": "2026-12-01T00:00:00Z"}
    echoes = echo_filter_of(landed)

    assert not echoes({**landed, "modified_at": "2026-12-02T00:00:00Z"}), "a new modification time is no news"
    assert not echoes({"id": 7, "email": "a@example.com", "attributes": {"SEGMENT": "B2B"}}), "nested, as read"
    assert echoes({**landed, "attributes__segment": "B2C"}), "a changed field lands"
    assert echoes({**landed, "attributes__tier": "engaged"}), "a field the warehouse never held lands"
    assert echoes({**landed, "id": 8}), "a record the warehouse does not hold lands"
    assert echoes.skipped == 2


OWN_WRITES = {"crm": hubspot_written_contacts_sql(), "marketing": brevo_written_contacts_sql()}


@pytest.fixture()
def config(tmp_path: Path, sandbox_url: str) -> Settings:
    return Settings.from_env(sandbox_environment(sandbox_url, tmp_path))


def sync_rows(config: Settings, table: str, columns: str, rows: list[tuple]) -> SyncObject:
    """The desired rows of a sync model, as dbt would build them."""
    with duckdb.connect(str(config.warehouse_path)) as con:
        con.execute("create schema if not exists sync")
        con.execute(f"create or replace table sync.{table} ({columns})")
        con.executemany(f"insert into sync.{table} values ({', '.join('?' * len(rows[0]))})", rows)
    return SyncObject(f"sync.{table}", ("email",))


def synced(config: Settings, source: SyncObject, destination) -> None:
    with duckdb.connect(str(config.warehouse_path)) as con:
        result = sync(con, source, destination)
    assert result.rejected == 0 and result.accepted > 0


def ingest(config: Settings, source: str) -> dict[str, int]:
    """Rows loaded per table, recognising what the syncs wrote (as the orchestration's ingestion does)."""
    return run_ingestion(config, only=[source], own_writes=OWN_WRITES)[source]


def query(config: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_hubspot_contacts_holding_only_our_writes_are_not_loaded_again(
    config: Settings, sandbox_url: str
) -> None:
    httpx.post(f"{sandbox_url}/_sandbox/hubspot/contacts", json=[
        {"properties": {"email": f"crm{n}@example.com", "firstname": f"C{n}", "lifecyclestage": "lead"}}
        for n in range(3)]).raise_for_status()
    assert ingest(config, "crm")["raw_crm.contacts"] == 3
    columns = "email varchar, customer_segment varchar, latest_touch_at varchar"
    source = sync_rows(config, "crm_contacts", columns, [
        (f"crm{n}@example.com", "B2B", "1796170665000") for n in range(3)] + [("new@example.com", "B2C", None)])
    with HubSpotClient("pat-sandbox", f"{sandbox_url}/hubspot") as client:
        synced(config, source, HubSpotContacts(client))
        ids = {email: contact.id for email, contact in
               client.read_contacts(["crm1@example.com", "crm2@example.com"], ["email"]).items()}
    # someone changes crm1 after our write, and sets crm2's segment to another value
    for email, properties in (("crm1@example.com", {"lastname": "Changed"}),
                              ("crm2@example.com", {"customer_segment": "B2C"})):
        httpx.patch(f"{sandbox_url}/hubspot/crm/v3/objects/contacts/{ids[email]}", headers=HUBSPOT,
                    json={"properties": properties}).raise_for_status()

    # and our next sync writes crm0 again: its echo is the newest change HubSpot holds
    source = sync_rows(config, "crm_contacts", columns, [("crm0@example.com", "B2C", "1796170665000")])
    with HubSpotClient("pat-sandbox", f"{sandbox_url}/hubspot") as client:
        synced(config, source, HubSpotContacts(client))
        newest = client.read_contacts(["crm0@example.com"], ["lastmodifieddate"])["crm0@example.com"]

    assert ingest(config, "crm") == {"raw_crm.contacts": 3}, "crm0 held only our writes"
    assert query(config, "select email, lastname, customer_segment from raw_crm.contacts order by email") == [
        ("crm0@example.com", None, None), ("crm1@example.com", "Changed", "B2B"),
        ("crm2@example.com", None, "B2C"), ("new@example.com", None, "B2C")]
    cursor = make_pipeline("crm", config).state["sources"]["hubspot"]["resources"]["contacts"]["incremental"]
    assert parse_timestamp(cursor["lastmodifieddate"]["last_value"]) == parse_timestamp(
        newest.properties["lastmodifieddate"]), "the skipped echo moved the cursor: it is not read again"


def test_brevo_contacts_holding_only_our_writes_are_not_loaded_again(
    config: Settings, sandbox_url: str
) -> None:
    newsletter = httpx.post(f"{sandbox_url}/brevo/v3/contacts/lists", headers=BREVO,
                            json={"name": "Newsletter", "folderId": 1}).json()["id"]
    for n in range(3):
        httpx.post(f"{sandbox_url}/brevo/v3/contacts", headers=BREVO, json={
            "email": f"sub{n}@example.com", "attributes": {"FIRSTNAME": f"S{n}"},
            "listIds": [newsletter] if n == 2 else []}).raise_for_status()
    ingest(config, "marketing")
    columns = 'email varchar, "SEGMENT" varchar, "DEMO_BOOKED" boolean'
    with BrevoClient("xkeysib-sandbox", f"{sandbox_url}/brevo/v3") as client:
        first = sync_rows(config, "marketing_contacts", columns, [(f"sub{n}@example.com", "B2B", False) for n in range(3)])
        synced(config, first, BrevoContacts(client))  # every synced contact also joins "Lifecycle contacts"
        assert ingest(config, "marketing")["raw_marketing.contacts"] == 3, (
            "attributes the warehouse never held land")

        again = sync_rows(config, "marketing_contacts", columns, [(f"sub{n}@example.com", "B2C", True) for n in range(3)])
        synced(config, again, BrevoContacts(client))
        members = sync_rows(config, "marketing_list_members", "email varchar, list_name varchar",
                            [("sub0@example.com", "B2C customers")])
        synced(config, SyncObject(members.model, ("email", "list_name"), batch_by="list_name"), BrevoListMembers(client))
    httpx.put(f"{sandbox_url}/brevo/v3/contacts/sub1%40example.com", headers=BREVO,
              json={"attributes": {"FIRSTNAME": "Renamed"}}).raise_for_status()

    loaded = ingest(config, "marketing")

    assert loaded["raw_marketing.contacts"] == 1, "sub0 and sub2 came back holding only our writes, lists included"
    landed = """
        select email, attributes__firstname, attributes__segment, count(list_ids.value)
        from raw_marketing.contacts as contacts
        left join raw_marketing.contacts__list_ids as list_ids on list_ids._dlt_parent_id = contacts._dlt_id
        group by all order by email"""
    assert query(config, landed) == [
        ("sub0@example.com", "S0", "B2B", 1), ("sub1@example.com", "Renamed", "B2C", 1),
        ("sub2@example.com", "S2", "B2B", 2)]

    with BrevoClient("xkeysib-sandbox", f"{sandbox_url}/brevo/v3") as client:
        client.remove_from_list(newsletter, ["sub2@example.com"])  # someone else's list: news
    assert ingest(config, "marketing")["raw_marketing.contacts"] == 1
    assert query(config, landed)[2] == ("sub2@example.com", "S2", "B2C", 1)
