"""The whole pipeline against the sandbox, through `lifecycle run`: a small world is ingested, transformed and
synced to HubSpot and Brevo over real HTTP; then nothing changed means no write call, and a dry run after a
change reports it and writes nothing. The world tests run in order on one world: each starts where the last
ended."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import httpx
import pytest

from activations.brevo import BrevoClient
from activations.destinations import BrevoContacts, BrevoListMembers, HubSpotContacts, HubSpotNotes
from activations.engine import Change, SyncObject, sync
from activations.hubspot import HubSpotClient
from ingestion.collector.app import create_collector_app
from ingestion.landing import LandingZone
from orchestration import cli, demo
from sandbox.app import Sandbox
from settings import Settings, sandbox_environment
from tests.servers import fresh_sandbox, serve

WORLD_CONTACTS = 60
WORLD_SEED = 5
NEW_LEAD = "fresh.lead@example.org"
READ_ONLY = (" GET ", "/search", "/batch/read")
"""Sandbox call keys ("service METHOD path") that read: the only ones a run with nothing to write may make."""


def note_change(key: str, email: str, at_ms: int, body: str) -> Change:
    fields = {"email": email, "hs_timestamp": str(at_ms), "hs_note_body": body}
    return Change(key, {"note_key": key}, "add", fields)


def member_change(email: str, list_name: str, action: str) -> Change:
    return Change(f'["{email}", "{list_name}"]', {"email": email, "list_name": list_name}, action, {})


def test_notes_sent_before_are_looked_for_not_created_twice(sandbox_url: str) -> None:
    attempted: list[str] = []
    with HubSpotClient("pat-sandbox", f"{sandbox_url}/hubspot") as client:
        HubSpotContacts(client).write([Change("ann@example.com", {"email": "ann@example.com"}, "add", {})])
        first = note_change("booking-1", "ann@example.com", 1786863733000, "Demo booked.")
        second = note_change("booking-2", "ann@example.com", 1787020112000, "Demo rescheduled.")
        assert [o.accepted for o in HubSpotNotes(client, lambda keys: set(), attempted.extend).write([first])] == [True]

        # booking-1's answer was "lost": it is found on the contact; booking-2 was never created, so it is
        outcomes = HubSpotNotes(client, lambda keys: set(keys), attempted.extend).write(
            [first, second, note_change("orphan", "nobody@example.com", 1786863733000, "Demo booked.")])

    assert [(o.key, o.accepted) for o in outcomes] == [
        ("booking-1", True), ("booking-2", True), ("orphan", False)]
    assert attempted == ["booking-1", "booking-2"], "only the notes actually created are recorded as attempted"
    assert "nobody@example.com" in (outcomes[2].reason or "")
    notes = httpx.get(f"{sandbox_url}/_sandbox/hubspot/contacts/ann@example.com").json()["notes"]
    assert [note["hs_note_body"] for note in notes] == ["Demo booked.", "Demo rescheduled."]


def test_list_members_already_as_desired_are_accepted(sandbox_url: str) -> None:
    with BrevoClient("xkeysib-sandbox", f"{sandbox_url}/brevo/v3") as client:
        client.ensure_attributes()
        client.upsert_contacts([{"email": "bo@example.com"}, {"email": "cy@example.com"}])
        members = BrevoListMembers(client)
        added = members.write([member_change("bo@example.com", "Churned", "add")])
        again = members.write([member_change("bo@example.com", "Churned", "add"),
                               member_change("nobody@example.com", "Churned", "add")])
        removed = members.write([member_change("bo@example.com", "Churned", "remove"),
                                 member_change("cy@example.com", "Churned", "remove")])

    assert [o.accepted for o in added] == [True]
    assert [o.accepted for o in again] == [True, False]
    assert [o.accepted for o in removed] == [True, True]
    assert "Churned" not in httpx.get(f"{sandbox_url}/_sandbox/brevo/contacts/bo@example.com").json()["lists"]


def test_a_contact_brevo_skips_in_an_import_is_rejected_and_sent_again_next_run(sandbox_url: str,
                                                                              tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("create schema sync")
    con.execute('create table sync.marketing_contacts (email varchar, "FIRSTNAME" varchar)')
    con.execute("insert into sync.marketing_contacts values ('ada@example.com', 'Ada'), "
                "('ann!ops@example.com', 'Ann'), ('bob@example.com', 'Bob')")
    source = SyncObject("sync.marketing_contacts", ("email",))
    with BrevoClient("xkeysib-sandbox", f"{sandbox_url}/brevo/v3") as client:
        first = sync(con, source, BrevoContacts(client))
        second = sync(con, source, BrevoContacts(client))

    assert (first.sent, first.accepted, first.rejected, first.status) == (3, 2, 1, "partial")
    [refused] = first.rejections
    assert refused.key == "ann!ops@example.com"
    assert (refused.reason or "").startswith("invalid_emails: Brevo skipped the row in import process")
    synced = con.execute("select key from activations.sync_state where destination = 'brevo' "
                         "and object = 'contacts' order by key").fetchall()
    assert synced == [("ada@example.com",), ("bob@example.com",)]
    logged = con.execute("select run_id, key, outcome, reason from activations.sync_log "
                         "where outcome = 'rejected' order by \"at\"").fetchall()
    assert [(run, key, outcome) for run, key, outcome, _ in logged] == [
        (first.run_id, "ann!ops@example.com", "rejected"), (second.run_id, "ann!ops@example.com", "rejected")]
    assert "local part" in logged[0][3], "Brevo's own reason is in the log"
    assert (second.sent, second.accepted, second.rejected) == (1, 0, 1), "only the refused row goes again"
    for email in ("ada@example.com", "bob@example.com"):
        assert httpx.get(f"{sandbox_url}/_sandbox/brevo/contacts/{email}").json()["lists"] == ["Lifecycle contacts"]
    assert httpx.get(f"{sandbox_url}/_sandbox/brevo/contacts/ann!ops@example.com").status_code == 404
    con.close()


@dataclass
class World:
    home: Path
    sandbox_url: str
    collector_url: str
    crm_before: dict[str, dict]

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            return con.execute(sql).fetchall()

    def calls(self) -> dict[str, int]:
        return httpx.get(f"{self.sandbox_url}/_sandbox/calls").json()

    def hubspot(self, email: str) -> dict:
        response = httpx.get(f"{self.sandbox_url}/_sandbox/hubspot/contacts/{email}")
        response.raise_for_status()
        return response.json()

    def brevo(self, email: str) -> dict:
        response = httpx.get(f"{self.sandbox_url}/_sandbox/brevo/contacts/{email}")
        response.raise_for_status()
        return response.json()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["run", *args])
    return code, capsys.readouterr().out


def crm_contacts(sandbox_url: str) -> dict[str, dict]:
    """Every HubSpot contact's properties as the CRM holds them, through the public list endpoint."""
    found: dict[str, dict] = {}
    params = {"limit": 100, "properties": "email,hubspot_owner_id,original_touch_source,hs_analytics_source"}
    while True:
        body = httpx.get(f"{sandbox_url}/hubspot/crm/v3/objects/contacts", params=params,
                         headers={"Authorization": "Bearer pat-sandbox"}).json()
        for result in body["results"]:
            found[result["properties"]["email"]] = result["properties"]
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return found
        params["after"] = after


@pytest.fixture(scope="module")
def world(sandbox_server: tuple[str, Sandbox], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sandbox_url, _ = sandbox_server
    fresh_sandbox(sandbox_url)
    home = tmp_path_factory.mktemp("sync-world")
    env = {**sandbox_environment(sandbox_url, home), "DAGSTER_HOME": str(home / "dagster")}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        settings = Settings.from_env()
        collector = create_collector_app(LandingZone(settings.landing_dir, writer="collector"),
                                         calendly_signing_key=env["CALENDLY_WEBHOOK_SIGNING_KEY"],
                                         stripe_webhook_secret=env["STRIPE_WEBHOOK_SECRET"],
                                         brevo_webhook_token=env["BREVO_WEBHOOK_TOKEN"])
        with serve(collector) as collector_url:
            demo.generate_world(settings, contacts=WORLD_CONTACTS, seed=WORLD_SEED, sandbox_url=sandbox_url,
                               collector_url=collector_url)
            yield World(home, sandbox_url, collector_url, crm_contacts(sandbox_url))


def test_first_run_syncs_contacts_notes_and_lists(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "--select", "all")
    assert code == 0, out

    synced = world.query("select email, customer_segment, form_source, latest_touch_source "
                         "from sync.sync_crm__contacts order by email")
    assert len(synced) > WORLD_CONTACTS / 2
    for email, segment, form_source, latest_source in synced[:5]:
        properties = world.hubspot(email)["properties"]
        assert properties["customer_segment"] == segment
        assert properties.get("form_source") == form_source
        assert properties.get("latest_touch_source") == latest_source

    kept = [(email, before) for email, before in world.crm_before.items()
            if before.get("hubspot_owner_id") and before.get("original_touch_source")]
    assert kept, "the world has CRM contacts with an owner and an original touch of their own"
    for email, before in kept:
        after = world.hubspot(email)["properties"]
        assert after["hubspot_owner_id"] == before["hubspot_owner_id"]
        assert after["original_touch_source"] == before["original_touch_source"]
        assert after.get("hs_analytics_source") == before.get("hs_analytics_source")

    (email, note_count), *_ = world.query(
        "select email, count(*) from sync.sync_crm__notes group by email order by count(*) desc, email")
    bodies = {body for (body,) in world.query(
        f"select hs_note_body from sync.sync_crm__notes where email = '{email}'")}
    notes = world.hubspot(email)["notes"]
    assert len(notes) == note_count
    assert {note["hs_note_body"] for note in notes} == bodies

    marketing = world.query('select email, "SEGMENT", "DEMO_BOOKED" from sync.sync_marketing__contacts '
                            "order by email limit 5")
    for email, segment, demo_booked in marketing:
        attributes = world.brevo(email)["attributes"]
        assert attributes["SEGMENT"] == segment
        assert attributes["DEMO_BOOKED"] is demo_booked
    members = world.query("select email, list(list_name) from sync.sync_marketing__list_members "
                          "group by email order by email limit 5")
    assert members
    for email, lists in members:
        assert set(lists) <= set(world.brevo(email)["lists"])

    ledger = world.query("select send_tag, lower(email), status, provider_message_id from activations.send_ledger")
    emails = httpx.get(f"{world.sandbox_url}/_sandbox/brevo/emails").json()
    assert ledger, "the world has lifecycle emails due"
    assert {status for _, _, status, _ in ledger} == {"sent"}
    assert sorted((email["tags"][0], email["to"][0]["email"], email["messageId"]) for email in emails) == sorted(
        (tag, address, message_id) for tag, address, _, message_id in ledger)

    statuses = world.query("select destination, object, status, dry_run from activations.sync_runs")
    assert sorted((d, o) for d, o, *_ in statuses) == [
        ("brevo", "contacts"), ("brevo", "emails"), ("brevo", "list_members"), ("hubspot", "contacts"),
        ("hubspot", "notes")]
    assert all(status in ("ok", "partial") and not dry_run for *_, status, dry_run in statuses)


def write_calls(world: World, before: dict[str, int]) -> dict[str, int]:
    """Destination calls made since `before` that write."""
    grown = {key: count - before.get(key, 0) for key, count in world.calls().items()
             if count > before.get(key, 0)}
    return {key: n for key, n in grown.items()
            if key.startswith(("hubspot", "brevo")) and not any(part in key for part in READ_ONLY)}


def latest_runs(world: World) -> list[tuple]:
    return sorted(world.query(
        "select destination, object, changed, sent from activations.sync_runs "
        "where started_at = (select max(started_at) from activations.sync_runs as r "
        "where r.destination = sync_runs.destination and r.object = sync_runs.object)"))


def test_second_run_only_applies_what_the_first_runs_emails_changed(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """The first run's emails are in the ledger only after its dbt build: a sequence whose last email went
    out ends (and leaves its marketing list) at the next build. Nothing else is written, no email resent.
    HubSpot returns every contact the first run wrote: only those it created land (they bring their ids);
    the ones the CRM already had come back holding only our writes, and are not loaded again."""
    before = world.calls()
    loads_before = {load for (load,) in world.query("select distinct _dlt_load_id from raw_crm.contacts")}
    code, out = run(capsys, "--select", "all")
    assert code == 0, out
    reloaded = {email for (email, load) in world.query("select lower(email), _dlt_load_id from raw_crm.contacts")
                if load not in loads_before}
    written = {email for (email,) in world.query("select key from activations.sync_state "
                                                 "where destination = 'hubspot' and object = 'contacts'")}
    already_there = {email.lower() for email in world.crm_before}
    assert written & already_there, "the first run wrote to contacts the CRM already had"
    assert reloaded == written - already_there
    assert set(write_calls(world, before)) <= {"brevo POST /v3/contacts/lists/{list_id}/contacts/remove"}
    runs = latest_runs(world)
    assert [row for row in runs if row[:2] != ("brevo", "list_members")] == [
        ("brevo", "contacts", 0, 0), ("brevo", "emails", 0, 0), ("hubspot", "contacts", 0, 0),
        ("hubspot", "notes", 0, 0)]


def test_a_run_with_nothing_changed_makes_no_write_call(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    before = world.calls()
    code, out = run(capsys, "--select", "all")
    assert code == 0, out
    assert write_calls(world, before) == {}
    assert latest_runs(world) == [
        ("brevo", "contacts", 0, 0), ("brevo", "emails", 0, 0), ("brevo", "list_members", 0, 0),
        ("hubspot", "contacts", 0, 0), ("hubspot", "notes", 0, 0)]


def test_dry_run_after_a_change_reports_it_and_writes_nothing(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    httpx.post(f"{world.collector_url}/forms/contact",
               json={"email": NEW_LEAD, "first_name": "Fresh", "last_name": "Lead"}).raise_for_status()
    state_before = world.query("select destination, object, key, payload_hash from activations.sync_state "
                               "order by all")
    calls_before = world.calls()
    emails_before = len(httpx.get(f"{world.sandbox_url}/_sandbox/brevo/emails").json())

    code, out = run(capsys, "--select", "all", "--dry-run")

    assert code == 0, out
    assert "dry run hubspot_contacts_sync: would add 1" in out
    assert "dry run brevo_contacts_sync: would add 1" in out
    assert "| add | fr***@example.org |" in out
    assert "dry run brevo_email_sends: would send 1 messages" in out
    assert "  demo_nurture/1: 1" in out
    assert "| demo_nurture/1 | fr***@example.org |" in out
    grown = {key for key, count in world.calls().items() if count > calls_before.get(key, 0)}
    assert not {key for key in grown if key.startswith(("hubspot", "brevo"))
                and not any(part in key for part in READ_ONLY)}
    assert httpx.get(f"{world.sandbox_url}/_sandbox/hubspot/contacts/{NEW_LEAD}").status_code == 404
    assert world.query("select destination, object, key, payload_hash from activations.sync_state "
                       "order by all") == state_before
    assert len(httpx.get(f"{world.sandbox_url}/_sandbox/brevo/emails").json()) == emails_before
    assert world.query(f"select count(*) from activations.send_ledger where email = '{NEW_LEAD}'") == [(0,)]
    assert world.query(f"select count(*) from activations.sync_log where key = '{NEW_LEAD}'") == [(0,)]
    listed_in = {tuple(path.stem.rsplit("-", 2)[1:]) for path in (world.home / "logs").glob("dry-run-*.csv")
                 if f"{NEW_LEAD},add," in path.read_text()}
    assert listed_in == {("brevo", "contacts"), ("hubspot", "contacts")}
