"""The diff-based sync engine (docs/sync-engine.md) against an in-memory destination on a tmp DuckDB warehouse."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest

from activations.engine import Change, Outcome, SyncObject, sync
from activations.runs import Rejection
from activations.state import migrate

CONTACTS = SyncObject(model="sync.contacts", keys=("email",))
MEMBERS = SyncObject(model="sync.list_members", keys=("email", "list_name"), remove_missing=True,
                     batch_by="list_name")


class MemoryDestination:
    """A destination that holds records in memory, applies writes like an upsert API and records its calls.

    While `strict`, it rejects a row whose phone is not all digits with a reason of its own, as an API's
    validation would; `fail_on_call` makes that call raise, like a connection lost mid-run.
    """

    def __init__(self, batch_size: int = 10, object_name: str = "contacts") -> None:
        self.name = "memory"
        self.object = object_name
        self.batch_size = batch_size
        self.records: dict[str, dict[str, Any]] = {}
        self.calls: list[list[Change]] = []
        self.strict = True
        self.fail_on_call: int | None = None

    def write(self, changes: Sequence[Change]) -> list[Outcome]:
        self.calls.append(list(changes))
        if len(changes) > self.batch_size:
            raise AssertionError(f"batch of {len(changes)} over the limit of {self.batch_size}")
        if len({change.action == "remove" for change in changes}) != 1:
            raise AssertionError("a batch mixes removals with upserts")
        if len(self.calls) == self.fail_on_call:
            raise ConnectionError("connection reset by peer")
        return [self._apply(change) for change in changes]

    def _apply(self, change: Change) -> Outcome:
        phone = change.fields.get("phone")
        if self.strict and phone is not None and not str(phone).isdigit():
            return Outcome(change.key, False, f"INVALID_PHONE: '{phone}' is not a valid phone number")
        if change.action == "add":
            if change.key in self.records:
                raise AssertionError(f"add of an existing record {change.key}")
            self.records[change.key] = dict(change.fields)
        elif change.action == "change":
            self.records[change.key].update(change.fields)
        else:
            del self.records[change.key]
        return Outcome(change.key, True)

    def api_calls(self) -> Mapping[str, int]:
        return {"POST /records/batch": len(self.calls)} if self.calls else {}

    def sent(self) -> list[Change]:
        return [change for call in self.calls for change in call]


@pytest.fixture()
def warehouse(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("create schema sync")
    con.execute('create table sync.contacts '
                '(email varchar, firstname varchar, phone varchar, "IS_CLIENT" boolean)')
    yield con
    con.close()


def add_contacts(con: duckdb.DuckDBPyConnection, count: int, start: int = 0) -> None:
    con.execute("""
        insert into sync.contacts
        select 'c' || i || '@example.com', 'Name' || i, case when i % 2 = 0 then '555' || i end, i % 3 = 0
        from range(?, ?) as r(i)
    """, [start, start + count])


def state(con: duckdb.DuckDBPyConnection, object_name: str = "contacts") -> dict[str, dict[str, Any]]:
    rows = con.execute("select key, payload from activations.sync_state where destination = 'memory' "
                       "and object = ?", [object_name]).fetchall()
    return {key: json.loads(payload) for key, payload in rows}


def log(con: duckdb.DuckDBPyConnection, run_id: str) -> list[tuple[Any, ...]]:
    return con.execute("select key, action, outcome, reason, fields from activations.sync_log "
                       "where run_id = ? order by key", [run_id]).fetchall()


def desired(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """The model as the destination should hold it: non-null columns only."""
    rows = con.execute('select email, firstname, phone, "IS_CLIENT" from sync.contacts').fetchall()
    return {email: {name: value for name, value in
                    {"firstname": first, "phone": phone, "IS_CLIENT": client}.items() if value is not None}
            for email, first, phone, client in rows}


def test_first_run_adds_every_row_in_the_fewest_batches_and_records_the_run(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    add_contacts(warehouse, 25)
    destination = MemoryDestination(batch_size=10)

    result = sync(warehouse, CONTACTS, destination)

    assert len(destination.calls) == math.ceil(25 / 10)
    assert destination.records == desired(warehouse)
    assert {change.action for change in destination.sent()} == {"add"}
    counts = (result.considered, result.added, result.changed, result.sent, result.accepted, result.rejected)
    assert counts == (25, 25, 25, 25, 25, 0)
    assert result.status == "ok"
    assert result.api_calls == {"POST /records/batch": 3}
    assert result.metadata()["write_calls"] == 3
    assert state(warehouse) == desired(warehouse)
    run = warehouse.execute("""
        select destination, object, dry_run, considered, changed, sent, rejected, api_calls, status,
               finished_at >= started_at
        from activations.sync_runs where run_id = ?""", [result.run_id]).fetchone()
    assert run == ("memory", "contacts", False, 25, 25, 25, 0, '{"POST /records/batch":3}', "ok", True)
    entries = log(warehouse, result.run_id)
    assert len(entries) == 25
    assert {(action, outcome) for _, action, outcome, _, _ in entries} == {("add", "accepted")}


def test_a_run_with_nothing_changed_makes_no_write_call(warehouse: duckdb.DuckDBPyConnection) -> None:
    add_contacts(warehouse, 25)
    destination = MemoryDestination(batch_size=10)
    sync(warehouse, CONTACTS, destination)
    destination.calls.clear()

    result = sync(warehouse, CONTACTS, destination)

    assert destination.calls == []
    assert (result.considered, result.changed, result.sent) == (25, 0, 0)
    assert result.api_calls == {}
    assert log(warehouse, result.run_id) == []


def test_changing_one_field_sends_only_that_field(warehouse: duckdb.DuckDBPyConnection) -> None:
    add_contacts(warehouse, 25)
    destination = MemoryDestination(batch_size=10)
    sync(warehouse, CONTACTS, destination)
    destination.calls.clear()
    warehouse.execute("update sync.contacts set firstname = 'Renamed' where email = 'c7@example.com'")

    result = sync(warehouse, CONTACTS, destination)

    assert destination.calls == [[Change("c7@example.com", {"email": "c7@example.com"}, "change",
                                         {"firstname": "Renamed"})]]
    assert (result.updated, result.added, result.sent) == (1, 0, 1)
    assert destination.records == desired(warehouse)
    assert state(warehouse)["c7@example.com"]["firstname"] == "Renamed"
    assert log(warehouse, result.run_id) == [
        ("c7@example.com", "change", "accepted", None, '{"firstname":"Renamed"}')]
    assert sync(warehouse, CONTACTS, destination).sent == 0


def test_null_fields_are_omitted_and_never_clear_a_value(warehouse: duckdb.DuckDBPyConnection) -> None:
    add_contacts(warehouse, 2)
    destination = MemoryDestination(batch_size=10)
    sync(warehouse, CONTACTS, destination)
    sent = {change.key: change.fields for change in destination.sent()}
    assert sent["c1@example.com"] == {"firstname": "Name1", "IS_CLIENT": False}, "c1 has no phone"
    assert "phone" not in destination.records["c1@example.com"]

    destination.calls.clear()
    warehouse.execute("update sync.contacts set phone = null where email = 'c0@example.com'")
    result = sync(warehouse, CONTACTS, destination)

    assert destination.calls == []
    assert destination.records["c0@example.com"]["phone"] == "5550"
    assert state(warehouse)["c0@example.com"]["phone"] == "5550", "the state is what the destination holds"
    rerun = sync(warehouse, CONTACTS, destination)
    assert (result.changed, rerun.changed, destination.calls) == (0, 0, [])

    warehouse.execute("update sync.contacts set phone = '5551' where email = 'c0@example.com'")
    sync(warehouse, CONTACTS, destination)
    assert [change.fields for change in destination.sent()] == [{"phone": "5551"}]


def test_a_rejected_row_is_logged_left_dirty_and_accepted_on_a_later_run(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    add_contacts(warehouse, 12)
    warehouse.execute("update sync.contacts set phone = 'call me' where email = 'c4@example.com'")
    destination = MemoryDestination(batch_size=10)

    first = sync(warehouse, CONTACTS, destination)

    reason = "INVALID_PHONE: 'call me' is not a valid phone number"
    assert (first.status, first.sent, first.accepted, first.rejected) == ("partial", 12, 11, 1)
    assert first.rejections == [Rejection("c4@example.com", reason)]
    assert first.rejection_reasons == {reason: 1}
    assert "c4@example.com" not in state(warehouse)
    assert "c4@example.com" not in destination.records
    assert ("c4@example.com", "add", "rejected", reason,
            '{"IS_CLIENT":false,"firstname":"Name4","phone":"call me"}') in log(warehouse, first.run_id)
    assert warehouse.execute("select status, rejected from activations.sync_runs where run_id = ?",
                             [first.run_id]).fetchone() == ("partial", 1)

    still_rejecting = sync(warehouse, CONTACTS, destination)
    assert [change.key for change in destination.calls[-1]] == ["c4@example.com"]
    assert still_rejecting.rejected == 1

    destination.strict = False
    destination.calls.clear()
    last = sync(warehouse, CONTACTS, destination)

    assert [[change.key for change in call] for call in destination.calls] == [["c4@example.com"]]
    assert (last.status, last.accepted, last.rejected) == ("ok", 1, 0)
    assert destination.records == desired(warehouse) == state(warehouse)


def test_a_crash_midway_keeps_accepted_batches_and_the_next_run_sends_only_the_rest(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    add_contacts(warehouse, 25)
    destination = MemoryDestination(batch_size=10)
    destination.fail_on_call = 2

    with pytest.raises(ConnectionError):
        sync(warehouse, CONTACTS, destination)

    first_batch = {change.key for change in destination.calls[0]}
    assert set(state(warehouse)) == first_batch == set(destination.records)
    assert warehouse.execute("select status, sent, error from activations.sync_runs").fetchone() == (
        "failed", 10, "ConnectionError: connection reset by peer")

    destination.fail_on_call = None
    destination.calls.clear()
    result = sync(warehouse, CONTACTS, destination)

    resent = [change.key for change in destination.sent()]
    assert sorted(resent) == sorted(set(desired(warehouse)) - first_batch)
    assert len(destination.calls) == 2
    assert result.status == "ok"
    assert destination.records == desired(warehouse) == state(warehouse)


def test_dry_run_reports_would_be_changes_and_changes_no_state_or_destination(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    add_contacts(warehouse, 5)
    destination = MemoryDestination(batch_size=10)
    sync(warehouse, CONTACTS, destination)
    destination.calls.clear()
    records_before = json.dumps(destination.records, sort_keys=True)
    state_before = warehouse.execute("select * from activations.sync_state order by key").fetchall()
    warehouse.execute("update sync.contacts set firstname = 'New' where email = 'c2@example.com'")
    add_contacts(warehouse, 1, start=5)

    result = sync(warehouse, CONTACTS, destination, dry_run=True)

    assert destination.calls == []
    assert json.dumps(destination.records, sort_keys=True) == records_before
    assert warehouse.execute("select * from activations.sync_state order by key").fetchall() == state_before
    assert sorted(result.preview, key=lambda change: change.key) == [
        Change("c2@example.com", {"email": "c2@example.com"}, "change", {"firstname": "New"}),
        Change("c5@example.com", {"email": "c5@example.com"}, "add",
               {"firstname": "Name5", "IS_CLIENT": False}),
    ]
    assert (result.added, result.updated, result.sent, result.status, result.dry_run) == (1, 1, 0, "ok", True)
    assert log(warehouse, result.run_id) == [
        ("c2@example.com", "change", "would_send", None, '{"firstname":"New"}'),
        ("c5@example.com", "add", "would_send", None, '{"IS_CLIENT":false,"firstname":"Name5"}'),
    ]
    assert warehouse.execute("select dry_run, changed, sent from activations.sync_runs where run_id = ?",
                             [result.run_id]).fetchone() == (True, 2, 0)

    real = sync(warehouse, CONTACTS, destination)
    assert (real.added, real.updated, real.sent) == (1, 1, 2)
    assert destination.records == desired(warehouse)


def test_dry_run_before_any_sync_creates_no_state(warehouse: duckdb.DuckDBPyConnection) -> None:
    add_contacts(warehouse, 3)
    destination = MemoryDestination()

    result = sync(warehouse, CONTACTS, destination, dry_run=True)

    assert (result.added, destination.calls) == (3, [])
    assert warehouse.execute("select count(*) from activations.sync_state").fetchone() == (0,)
    assert sync(warehouse, CONTACTS, destination).added == 3


def test_list_members_are_added_per_list_and_removed_when_they_leave_the_model(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    warehouse.execute("create table sync.list_members (email varchar, list_name varchar)")
    warehouse.execute("""
        insert into sync.list_members
        select 'm' || i || '@example.com', case when i % 2 = 0 then 'Webinar WB001' else 'Churned' end
        from range(7) as r(i)
    """)
    destination = MemoryDestination(batch_size=3, object_name="list_members")

    sync(warehouse, MEMBERS, destination)

    assert [len(call) for call in destination.calls] == [3, 3, 1], "3 Churned + 4 Webinar: never mixed"
    for call in destination.calls:
        assert len({change.key_values["list_name"] for change in call}) == 1
    assert destination.calls[0][0].fields == {}
    assert set(destination.records) == set(state(warehouse, "list_members"))
    assert '["m0@example.com","Webinar WB001"]' in destination.records

    destination.calls.clear()
    warehouse.execute("delete from sync.list_members where email in ('m1@example.com', 'm2@example.com')")
    result = sync(warehouse, MEMBERS, destination)

    removed = [change.key_values for change in destination.sent()]
    assert sorted(removed, key=lambda values: values["email"]) == [
        {"email": "m1@example.com", "list_name": "Churned"},
        {"email": "m2@example.com", "list_name": "Webinar WB001"}]
    assert len(destination.calls) == 2
    assert {change.action for change in destination.sent()} == {"remove"}
    assert (result.removed, result.added, result.accepted) == (2, 0, 2)
    assert len(state(warehouse, "list_members")) == 5 == len(destination.records)
    assert sync(warehouse, MEMBERS, destination).changed == 0


def test_create_only_objects_send_new_keys_and_never_changes(warehouse: duckdb.DuckDBPyConnection) -> None:
    add_contacts(warehouse, 3)
    notes = SyncObject(model="sync.contacts", keys=("email",), create_only=True)
    destination = MemoryDestination()
    sync(warehouse, notes, destination)
    warehouse.execute("update sync.contacts set firstname = 'Edited'")
    add_contacts(warehouse, 1, start=3)
    destination.calls.clear()

    result = sync(warehouse, notes, destination)

    assert [change.key for change in destination.sent()] == ["c3@example.com"]
    assert (result.added, result.updated) == (1, 0)


@pytest.mark.parametrize("bad_row", ["('c1@example.com', 'Dup', null, false)",
                                     "(null, 'Nobody', null, false)"])
def test_duplicate_or_null_keys_fail_the_run_before_any_write(warehouse: duckdb.DuckDBPyConnection,
                                                               bad_row: str) -> None:
    add_contacts(warehouse, 3)
    warehouse.execute(f"insert into sync.contacts values {bad_row}")
    destination = MemoryDestination()

    with pytest.raises(ValueError, match="nothing was synced"):
        sync(warehouse, CONTACTS, destination)

    assert destination.calls == []
    assert warehouse.execute("select status from activations.sync_runs").fetchall() == [("failed",)]


def test_rows_stream_through_more_reads_than_one_chunk(warehouse: duckdb.DuckDBPyConnection,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("activations.engine.READ_ROWS", 7)
    add_contacts(warehouse, 50)
    destination = MemoryDestination(batch_size=20)

    result = sync(warehouse, CONTACTS, destination)

    assert [len(call) for call in destination.calls] == [20, 20, 10]
    assert result.accepted == 50
    assert destination.records == desired(warehouse)


def test_tables_are_created_and_a_dbt_created_sync_state_gains_the_payload_column(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema activations")
    con.execute("create table activations.sync_state (destination varchar, object varchar, key varchar, "
                "payload_hash varchar, synced_at timestamp)")
    con.execute("insert into activations.sync_state "
                "values ('memory', 'contacts', 'c0@example.com', 'x', now())")

    migrate(con)
    migrate(con)

    columns = {table: [row[0] for row in con.execute(
        "select column_name from information_schema.columns where table_schema = 'activations' "
        "and table_name = ? order by ordinal_position", [table]).fetchall()]
        for table in ("sync_state", "sync_runs", "sync_log")}
    assert columns["sync_state"] == ["destination", "object", "key", "payload_hash", "synced_at", "payload"]
    assert columns["sync_log"] == ["run_id", "destination", "object", "key", "action", "outcome", "reason",
                                   "fields", "at"]
    assert {"run_id", "started_at", "finished_at", "dry_run", "considered", "changed", "sent", "rejected",
            "api_calls", "status"} <= set(columns["sync_runs"])
    rows = con.execute("select key, payload from activations.sync_state").fetchall()
    assert rows == [("c0@example.com", None)]
    con.close()


def test_state_without_a_payload_resends_every_field_of_that_row(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    add_contacts(warehouse, 1)
    migrate(warehouse)
    warehouse.execute("insert into activations.sync_state (destination, object, key, payload_hash) "
                      "values ('memory', 'contacts', 'c0@example.com', 'an older hash')")
    destination = MemoryDestination()
    destination.records["c0@example.com"] = {}

    sync(warehouse, CONTACTS, destination)

    assert destination.sent() == [Change("c0@example.com", {"email": "c0@example.com"}, "change",
                                         {"firstname": "Name0", "phone": "5550", "IS_CLIENT": True})]
