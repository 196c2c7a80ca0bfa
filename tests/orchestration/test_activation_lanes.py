"""HubSpot's and Brevo's activations run side by side: the two vendors limit calls separately, so neither half
waits for the other's quota, and the rebuild after the emails shares the warehouse with the HubSpot half
that is writing it meanwhile.

The lanes' order is checked against the asset graph; the side by side run uses a small world (ingested and
built by ``lifecycle run``), whose activations run in-process with HubSpot's first write held until Brevo's
half has sent its emails and rebuilt what reads the ledger. Run one after the other, that write would wait
for a rebuild that never comes (the test fails at the deadline), or the rebuild would find HubSpot not
started.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from activations.destinations import HubSpotContacts
from activations.engine import Change, Outcome
from orchestration import demo
from orchestration.definitions import defs
from orchestration.defs import activate
from orchestration.defs.activate import ACTIVATE_GROUP, LANES, activate_destinations
from orchestration.resources import LifecycleSettings
from settings import Settings, sandbox_environment
from tests.orchestration.cli_process import lifecycle_env, run_lifecycle

CONTACTS = 40
DEADLINE_SECONDS = 300
"""How long HubSpot's first write waits for Brevo's rebuild before the test gives up (it never should)."""


def test_each_activation_runs_in_one_lane_after_what_it_depends_on() -> None:
    graph = defs.resolve_asset_graph()
    activations = dg.AssetSelection.groups(ACTIVATE_GROUP).resolve(graph)
    in_lanes = [key for lane in LANES for key in lane]
    assert sorted(in_lanes) == sorted(activations), "every activation asset in exactly one lane"
    lane_of = {key: n for n, lane in enumerate(LANES) for key in lane}
    for lane in LANES:
        for position, key in enumerate(lane):
            upstream = graph.get(key).parent_keys & activations
            assert all(lane_of[parent] == lane_of[key] for parent in upstream), f"{key} waits on another lane"
            assert upstream <= set(lane[:position]), f"{key} runs before what it depends on"


@pytest.mark.timeout(900)
def test_brevo_sends_and_rebuilds_while_hubspot_writes(
        sandbox_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    env = sandbox_environment(sandbox_url, home)
    demo.generate_world(Settings.from_env(env), contacts=CONTACTS, seed=5, sandbox_url=sandbox_url,
                        collector_url=None)
    as_of = datetime.now(UTC).replace(microsecond=0).isoformat()
    for stage in ("ingest", "transform"):
        completed = run_lifecycle(lifecycle_env(sandbox_url, home), "run", "--select", stage, "--as-of", as_of,
                                  "--skip-dbt-tests")
        assert completed.returncode == 0, completed.stdout + completed.stderr
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    hubspot_writing, hubspot_resumed, rebuilt = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, Any] = {}
    write, rebuild = HubSpotContacts.write, activate.rebuild_after_sends

    def held_write(self: HubSpotContacts, changes: Sequence[Change]) -> Sequence[Outcome]:
        if not hubspot_writing.is_set():
            hubspot_writing.set()
            seen["rebuilt_before_write_ended"] = rebuilt.wait(DEADLINE_SECONDS)
            hubspot_resumed.set()
        return write(self, changes)

    def watched_rebuild(settings: Settings, as_of: str | None) -> None:
        seen["hubspot_in_its_write"] = hubspot_writing.is_set() and not hubspot_resumed.is_set()
        rebuild(settings, as_of)
        rebuilt.set()

    monkeypatch.setattr(HubSpotContacts, "write", held_write)
    monkeypatch.setattr(activate, "rebuild_after_sends", watched_rebuild)

    result = dg.materialize([activate_destinations], resources={"lifecycle": LifecycleSettings()},
                            tags={"lifecycle/as_of": as_of})

    assert result.success
    assert seen == {"hubspot_in_its_write": True, "rebuilt_before_write_ended": True}
    metadata = {event.asset_key.to_user_string(): {name: value.value for name, value in
                                                    event.step_materialization_data.materialization.metadata.items()}
                for event in result.get_asset_materialization_events()}
    assert sorted(metadata) == sorted(key.to_user_string() for lane in LANES for key in lane)
    assert metadata["brevo_email_sends"]["sent"] > 0 and metadata["brevo_email_sends"]["settled"] is True
    assert metadata["hubspot_contacts_sync"]["accepted"] > 0
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        [(sent_in_ledger,)] = con.execute("select count(*) from activations.send_ledger where status = 'sent'"
                                          ).fetchall()
        [(sent_in_marts,)] = con.execute("select count(*) from marts.fct_messages where status = 'sent'").fetchall()
        statuses = con.execute("select destination, object, status from activations.sync_runs order by all"
                               ).fetchall()
    assert sent_in_marts == sent_in_ledger == metadata["brevo_email_sends"]["sent"]
    assert statuses == sorted((d, o, "ok") for d, o in {("hubspot", "contacts"), ("hubspot", "notes"),
                                                        ("brevo", "contacts"), ("brevo", "list_members"),
                                                        ("brevo", "emails")})


def test_a_failed_lane_stops_only_what_follows_it_there(
        sandbox_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HubSpot's token is not set: its contacts fail and its notes are not tried; Brevo's contacts go out, and the
    step fails naming the HubSpot asset with its reason."""
    for name, value in sandbox_environment(sandbox_url, tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HUBSPOT_TOKEN")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("create schema sync")
        con.execute("create table sync.sync_crm__contacts as select 'ada@example.com' as email, 'Ada' as firstname")
        con.execute("create table sync.sync_crm__notes as select 'n-1' as note_key, 'ada@example.com' as email")
        con.execute("create table sync.sync_marketing__contacts as select 'ada@example.com' as email, "
                    "'Ada' as FIRSTNAME")
    selection = [activate.HUBSPOT_CONTACTS_KEY, activate.HUBSPOT_NOTES_KEY, activate.BREVO_CONTACTS_KEY]

    result = dg.materialize([activate_destinations], selection=selection, resources={"lifecycle": LifecycleSettings()},
                            raise_on_error=False)

    materialized = [event.asset_key for event in result.get_asset_materialization_events()]
    assert materialized == [activate.BREVO_CONTACTS_KEY]
    [failure] = [event.step_failure_data for event in result.all_events if event.is_step_failure]
    lines = failure.user_failure_data.metadata[activate.FAILED_ASSETS].value
    assert list(lines) == ["hubspot_contacts_sync"]
    assert lines["hubspot_contacts_sync"].startswith("HUBSPOT_TOKEN is not set")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select destination, object, status from activations.sync_runs").fetchall() == [
            ("brevo", "contacts", "ok")]
