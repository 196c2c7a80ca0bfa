"""Exactly-once lifecycle emails (activations/sends.py) against the sandbox's Brevo, on a small tmp warehouse
whose sync model (sync.sync_marketing__emails) is written here directly; and the notes' write-ahead
attempt record, which keeps a note from being created twice when a run dies before its state commit."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import httpx
import pytest

from activations import engine
from activations.brevo import BrevoClient
from activations.destinations import CRM_NOTES, HubSpotContacts, HubSpotNotes, attempt_log, maybe_applied_keys
from activations.engine import Change, sync
from activations.http import ApiError, MaybeApplied, RetryPolicy
from activations.hubspot import HubSpotClient
from activations.sends import NOT_A_MESSAGE, send_due
from activations.state import migrate
from orchestration.defs.activate import EMAILS_KEY, activate_destinations
from orchestration.resources import LifecycleSettings
from settings import sandbox_environment
from tests.activations.test_tables import OLD_LAYOUT

KEY = "xkeysib-sandbox"
FAST = RetryPolicy(base_delay=0.01, max_delay=0.05, timeout=5.0)
AS_OF = datetime(2026, 9, 1, 10, 0, 0)
SEND = "brevo POST /v3/smtp/email"
LOOKUP = "brevo GET /v3/smtp/statistics/events"


@pytest.fixture()
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        create_marts(connection)
        yield connection


def create_marts(connection: duckdb.DuckDBPyConnection) -> None:
    """The sync model the sends read, as dbt builds it (dbt_project/models/sync/sync_marketing__emails.sql)."""
    connection.execute("create schema sync")
    connection.execute("""create table sync.sync_marketing__emails (message_key varchar, email varchar,
        sequence varchar, step integer, template_id integer, params varchar, due_at timestamp, status varchar,
        may_send boolean, reason varchar, recipient_name varchar)""")


def add_message(connection: duckdb.DuckDBPyConnection, key: str, email: str, sequence: str = "demo_nurture",
                step: int = 1, template_id: int = 11, due: bool = True, name: str | None = None,
                **extra: Any) -> dict:
    """A message due (planned), or in flight (sending) when not `due`, as dbt would have it."""
    params = {"sequence": sequence, "step": step, **extra}
    connection.execute("insert into sync.sync_marketing__emails values (?, ?, ?, ?, ?, ?, ?, ?, true, null, ?)",
                       [key, email, sequence, step, template_id, json.dumps(params), AS_OF - timedelta(hours=1),
                        "planned" if due else "sending", name])
    return params


def ledger(connection: duckdb.DuckDBPyConnection) -> list[tuple]:
    return connection.execute("select message_key, status, sent_at, provider_message_id "
                              "from activations.send_ledger order by message_key").fetchall()


def tags(connection: duckdb.DuckDBPyConnection) -> dict[str, str | None]:
    """The ledger's send_tag per message key."""
    return dict(connection.execute("select message_key, send_tag from activations.send_ledger").fetchall())


def log(connection: duckdb.DuckDBPyConnection) -> list[tuple]:
    return connection.execute("select key, action, outcome, reason from activations.sync_log "
                              "where object = 'emails' order by \"at\", key").fetchall()


@pytest.fixture()
def admin(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url + "/_sandbox") as client:
        yield client


@pytest.fixture()
def brevo(sandbox_url: str) -> Iterator[BrevoClient]:
    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST) as client:
        yield client


def emails(admin: httpx.Client) -> list[dict]:
    return admin.get("/brevo/emails").json()


def sends(admin: httpx.Client) -> int:
    return admin.get("/calls").json().get(SEND, 0)


def lookups(admin: httpx.Client) -> int:
    return admin.get("/calls").json().get(LOOKUP, 0)


def recipients(admin: httpx.Client) -> list[str]:
    return sorted(email["to"][0]["email"] for email in emails(admin))


class ClearFaultsAfterFirstAnswer(httpx.HTTPTransport):
    """The sandbox's injected faults hit the first request only: the transport clears them once it answers."""

    def __init__(self, admin_url: str) -> None:
        super().__init__()
        self.admin_url = admin_url
        self.cleared = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not self.cleared:
            httpx.post(self.admin_url + "/faults", json={}).raise_for_status()
            self.cleared = True
        return response


def test_each_due_message_is_sent_once_with_its_params_and_tags(con: duckdb.DuckDBPyConnection,
                                                                 brevo: BrevoClient, admin: httpx.Client) -> None:
    ada = add_message(con, "k-ada", "ada@example.com", "demo_nurture", 2, template_id=12, name="Ada Lovelace")
    bob = add_message(con, "k-bob", "bob@example.com", "webinar_reminder", 1, template_id=31, webinar_code="WB003")

    result = send_due(con, brevo, as_of=AS_OF)

    received = {email["to"][0]["email"]: email for email in emails(admin)}
    assert sorted(received) == ["ada@example.com", "bob@example.com"]
    ada_email, bob_email = received["ada@example.com"], received["bob@example.com"]
    assert ada_email["to"] == [{"email": "ada@example.com", "name": "Ada Lovelace"}]
    assert (ada_email["templateId"], ada_email["params"]) == (12, ada)
    assert bob_email["to"] == [{"email": "bob@example.com", "name": None}]
    assert (bob_email["templateId"], bob_email["params"]) == (31, bob)
    assert ledger(con) == [("k-ada", "sent", AS_OF, ada_email["messageId"]),
                           ("k-bob", "sent", AS_OF, bob_email["messageId"])]
    assert ada_email["tags"] == [tags(con)["k-ada"], "demo_nurture"]
    assert bob_email["tags"] == [tags(con)["k-bob"], "webinar_reminder"]
    assert tags(con)["k-ada"].startswith("lifecycle:") and tags(con)["k-ada"] != tags(con)["k-bob"]
    assert (result.status, result.considered, result.sent, result.rejected) == ("ok", 2, 2, 0)
    assert dict(result.per_step) == {"demo_nurture/2": 1, "webinar_reminder/1": 1}
    assert result.api_calls == {"POST /smtp/email": 2}
    assert [(key, outcome) for key, _, outcome, _ in log(con)] == [("k-ada", "sent"), ("k-bob", "sent")]
    assert con.execute("select destination, object, considered, sent, rejected, status, api_calls "
                       "from activations.sync_runs").fetchall() == [
        ("brevo", "emails", 2, 2, 0, "ok", '{"POST /smtp/email":2}')]


def test_a_second_run_sends_nothing_even_before_dbt_runs_again(con: duckdb.DuckDBPyConnection,
                                                               brevo: BrevoClient, admin: httpx.Client) -> None:
    add_message(con, "k-1", "ada@example.com")
    send_due(con, brevo, as_of=AS_OF)

    again = send_due(con, brevo, as_of=AS_OF + timedelta(hours=1))  # messages_due still lists k-1

    assert (again.considered, again.sent, again.api_calls) == (0, 0, {})
    assert len(emails(admin)) == 1 and sends(admin) == 1


def test_a_ledger_of_the_older_layout_is_migrated_and_the_due_emails_go_out_tagged(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    con.execute(OLD_LAYOUT)
    con.execute("insert into activations.send_ledger values "
                "('k-old', 'bob@example.com', 'demo_nurture', 1, 'sent', ?, 'msg-old')", [AS_OF - timedelta(days=1)])
    add_message(con, "k-new", "ada@example.com")

    result = send_due(con, brevo, as_of=AS_OF)

    assert (result.sent, result.status) == (1, "ok")
    assert recipients(admin) == ["ada@example.com"]
    assert [(key, status) for key, status, _, _ in ledger(con)] == [("k-new", "sent"), ("k-old", "sent")]
    assert tags(con)["k-old"] is None
    assert (tags(con)["k-new"] or "").startswith("lifecycle:")
    assert emails(admin)[0]["tags"][0] == tags(con)["k-new"]


def test_the_sent_at_is_the_runs_clock_in_utc(con: duckdb.DuckDBPyConnection, brevo: BrevoClient) -> None:
    add_message(con, "k-1", "ada@example.com")

    send_due(con, brevo, as_of=datetime(2026, 9, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))))

    assert [sent_at for _, _, sent_at, _ in ledger(con)] == [datetime(2026, 9, 1, 10, 30)]


def crashed_mid_send(connection: duckdb.DuckDBPyConnection, key: str, email: str, at: datetime) -> None:
    """What a process of the per-message version killed during the API call leaves, in a ledger created
    before batching (no send_tag column): a `sending` row, which takes the key out of messages_due at the
    next dbt run (fct_messages shows it `sending`); its email, if sent, carries the key as first tag."""
    migrate(connection)
    connection.execute("insert into activations.send_ledger (message_key, email, sequence, step, status, "
                       "sent_at, provider_message_id) values (?, ?, 'demo_nurture', 1, 'sending', ?, null)",
                       [key, email, at])


def test_a_crashed_send_that_reached_brevo_is_reconciled_without_a_second_email(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    params = add_message(con, "k-crash", "ada@example.com", due=False)
    crashed_mid_send(con, "k-crash", "ada@example.com", AS_OF)
    message_id = brevo.send_transactional("ada@example.com", 11, params, tags=["k-crash", "demo_nurture"])

    waits: list[float] = []
    result = send_due(con, brevo, as_of=AS_OF + timedelta(days=1), settle_seconds=30, sleep=waits.append)

    assert len(waits) == 1 and 0 < waits[0] <= 30, "Brevo's event log is given time before the look-up"
    assert len(emails(admin)) == 1 and sends(admin) == 1 and lookups(admin) == 1
    assert ledger(con) == [("k-crash", "sent", AS_OF, message_id)]
    assert tags(con) == {"k-crash": None}
    assert (result.reconciled, result.sent, result.status) == (1, 0, "ok")
    assert [(key, outcome) for key, _, outcome, _ in log(con)] == [("k-crash", "reconciled")]


def test_a_crashed_send_that_never_left_is_sent_once_from_fct_messages(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    params = add_message(con, "k-crash", "ada@example.com", template_id=14, due=False, note="from fct_messages")
    crashed_mid_send(con, "k-crash", "ada@example.com", AS_OF)
    later = AS_OF + timedelta(days=1)

    result = send_due(con, brevo, as_of=later, settle_seconds=0)
    again = send_due(con, brevo, as_of=later, settle_seconds=0)

    [email] = emails(admin)
    assert (email["templateId"], email["params"], email["to"][0]["email"]) == (14, params, "ada@example.com")
    assert email["tags"][0] == tags(con)["k-crash"] and email["tags"][0].startswith("lifecycle:")
    assert ledger(con) == [("k-crash", "sent", later, email["messageId"])]
    assert (result.sent, result.reconciled, again.sent, again.considered) == (1, 0, 0, 0)


def test_a_lost_answer_to_a_delivered_email_ends_with_exactly_one_email(
        con: duckdb.DuckDBPyConnection, sandbox_url: str, admin: httpx.Client) -> None:
    add_message(con, "k-lost", "ada@example.com")
    admin.post("/faults", json={"service": "brevo", "rate_timeout": 1.0, "timeout_seconds": 0.2})
    transport = ClearFaultsAfterFirstAnswer(sandbox_url + "/_sandbox")

    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST, transport=transport) as client:
        result = send_due(con, client, as_of=AS_OF, settle_seconds=0)

    [email] = emails(admin)
    assert transport.cleared and sends(admin) == 1
    assert ledger(con) == [("k-lost", "sent", AS_OF, email["messageId"])]
    assert (result.sent, result.reconciled, result.unconfirmed, result.status) == (0, 1, 0, "ok")


def test_a_lost_answer_to_an_email_that_never_went_is_sent_again_once(
        con: duckdb.DuckDBPyConnection, sandbox_url: str, admin: httpx.Client) -> None:
    add_message(con, "k-500", "ada@example.com")
    admin.post("/faults", json={"service": "brevo", "rate_500": 1.0})  # answered 500, nothing applied

    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST,
                     transport=ClearFaultsAfterFirstAnswer(sandbox_url + "/_sandbox")) as client:
        result = send_due(con, client, as_of=AS_OF, settle_seconds=0)

    [email] = emails(admin)
    assert sends(admin) == 2
    assert ledger(con) == [("k-500", "sent", AS_OF, email["messageId"])]
    assert (result.sent, result.reconciled, result.status) == (1, 0, "ok")


def test_a_key_brevo_cannot_confirm_stays_sending_then_is_settled_next_run(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    add_message(con, "k-down", "ada@example.com")
    admin.post("/faults", json={"service": "brevo", "rate_500": 1.0})

    down = send_due(con, brevo, as_of=AS_OF, settle_seconds=0)
    assert (down.unconfirmed, down.status) == (1, "partial")
    assert [status for _, status, _, _ in ledger(con)] == ["sending"]
    assert [(key, outcome) for key, _, outcome, reason in log(con)] == [("k-down", "unconfirmed")]
    assert "look-up failed" in log(con)[0][3]

    admin.post("/faults", json={})
    con.execute("update sync.sync_marketing__emails set status = 'sending'")  # as dbt now shows it
    up = send_due(con, brevo, as_of=AS_OF, settle_seconds=0)

    assert len(emails(admin)) == 1
    assert [status for _, status, _, _ in ledger(con)] == ["sent"]
    assert (up.considered, up.sent, up.status) == (1, 1, "ok")


def test_a_rejected_message_leaves_no_ledger_row_and_logs_the_reason(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    add_message(con, "k-bad", "not-an-address")
    add_message(con, "k-good", "ada@example.com")

    result = send_due(con, brevo, as_of=AS_OF)

    assert recipients(admin) == ["ada@example.com"]
    assert sends(admin) == 3, "the batch of two is rejected, then each half is sent alone"
    assert [(key, status) for key, status, _, _ in ledger(con)] == [("k-good", "sent")]
    [(_, action, outcome, reason)] = [row for row in log(con) if row[0] == "k-bad"]
    assert (action, outcome) == ("send", "rejected")
    assert "HTTP 400" in reason and "valid email address" in reason
    assert (result.rejected, result.status) == (1, "partial")
    assert con.execute("select rejected, status from activations.sync_runs").fetchall() == [(1, "partial")]


def test_a_refused_account_stops_the_run_and_leaves_the_messages_planned(
        con: duckdb.DuckDBPyConnection, sandbox_url: str, admin: httpx.Client) -> None:
    add_message(con, "k-1", "ada@example.com")
    add_message(con, "k-2", "bob@example.com")

    with BrevoClient("xkeysib-wrong", sandbox_url + "/brevo/v3", policy=FAST) as client, \
            pytest.raises(ApiError) as caught:
        send_due(con, client, as_of=AS_OF)

    assert caught.value.status == 401
    assert emails(admin) == [] and sends(admin) == 1
    assert ledger(con) == [] and log(con) == []
    assert con.execute("select status from activations.sync_runs").fetchall() == [("failed",)]


def test_a_refused_account_during_a_look_up_stops_the_run_and_leaves_the_email_uncertain(
        con: duckdb.DuckDBPyConnection, sandbox_url: str, admin: httpx.Client) -> None:
    """A refused key says nothing about whether the email went: the message stays `sending`, neither sent
    again nor withdrawn, until a look-up with a good key can tell."""
    add_message(con, "k-crash", "ada@example.com", due=False)
    crashed_mid_send(con, "k-crash", "ada@example.com", AS_OF)

    with BrevoClient("xkeysib-wrong", sandbox_url + "/brevo/v3", policy=FAST) as client, \
            pytest.raises(ApiError) as caught:
        send_due(con, client, as_of=AS_OF + timedelta(days=1), settle_seconds=0)

    assert caught.value.status == 401
    assert emails(admin) == [] and sends(admin) == 0 and lookups(admin) == 1
    assert [(key, status) for key, status, _, _ in ledger(con)] == [("k-crash", "sending")]
    assert log(con) == []
    assert con.execute("select status from activations.sync_runs").fetchall() == [("failed",)]


def test_a_dry_run_sends_nothing_and_writes_no_ledger(con: duckdb.DuckDBPyConnection, brevo: BrevoClient,
                                                      admin: httpx.Client) -> None:
    add_message(con, "k-1", "ada@example.com", "demo_nurture", 1)
    add_message(con, "k-2", "bob@example.com", "demo_nurture", 1)
    add_message(con, "k-3", "cy@example.com", "winback", 2)

    result = send_due(con, brevo, as_of=AS_OF, dry_run=True)

    assert emails(admin) == [] and admin.get("/calls").json() == {}
    assert ledger(con) == []
    assert (result.dry_run, result.sent, dict(result.per_step)) == (
        True, 3, {"demo_nurture/1": 2, "winback/2": 1})
    assert [message.key for message in result.preview] == ["k-1", "k-2", "k-3"]
    assert {(key, outcome) for key, _, outcome, _ in log(con)} == {
        ("k-1", "would_send"), ("k-2", "would_send"), ("k-3", "would_send")}
    assert con.execute("select dry_run, status from activations.sync_runs").fetchall() == [(True, "ok")]


def test_the_emails_asset_reports_counts_and_warns_on_rejections(
        tmp_path: Path, sandbox_url: str, admin: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in sandbox_environment(sandbox_url, tmp_path).items():
        monkeypatch.setenv(name, value)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        create_marts(connection)
        add_message(connection, "k-good", "ada@example.com")
        add_message(connection, "k-bad", "not-an-address")

    result = dg.materialize([activate_destinations], selection=[EMAILS_KEY], resources={"lifecycle": LifecycleSettings()},
                            tags={"lifecycle/as_of": "2026-09-01T10:00:00Z"})

    [materialization] = result.asset_materializations_for_node("activate_destinations")
    metadata = {name: value.value for name, value in materialization.metadata.items()}
    assert (metadata["sent"], metadata["rejected"], metadata["status"]) == (1, 1, "partial")
    assert metadata["per_step"] == {"demo_nurture/1": 1}
    [check] = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed, check.severity) == ("no_rejections", False, dg.AssetCheckSeverity.WARN)
    assert recipients(admin) == ["ada@example.com"]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        assert [(key, status, sent_at) for key, status, sent_at, _ in ledger(connection)] == [
            ("k-good", "sent", AS_OF)]


def test_a_note_created_before_a_crash_is_found_not_created_twice(
        tmp_path: Path, sandbox_url: str, admin: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection, \
            HubSpotClient("pat-sandbox", f"{sandbox_url}/hubspot", policy=FAST) as client:
        HubSpotContacts(client).write([Change("ann@example.com", {"email": "ann@example.com"}, "add", {})])
        connection.execute("create schema sync")
        connection.execute("""create table sync.sync_crm__notes as select 'booking-1' as note_key,
            'ann@example.com' as email, '2026-08-13T09:02:13Z' as hs_timestamp, 'Demo booked.' as hs_note_body""")

        def notes() -> HubSpotNotes:
            return HubSpotNotes(client, maybe_applied_keys(connection, "hubspot", "notes"),
                                attempt_log(connection, "hubspot", "notes"))

        def killed(*args: Any, **kwargs: Any) -> None:
            raise KeyboardInterrupt("killed between HubSpot's answer and the state commit")

        with monkeypatch.context() as patch:
            patch.setattr(engine.StateStore, "commit", killed)
            with pytest.raises(KeyboardInterrupt):
                sync(connection, CRM_NOTES, notes())
        created_once = admin.get("/hubspot/contacts/ann@example.com").json()["notes"]
        assert connection.execute("select count(*) from activations.sync_state").fetchone() == (0,)

        second = sync(connection, CRM_NOTES, notes())

    assert [note["hs_note_body"] for note in created_once] == ["Demo booked."]
    assert [note["hs_note_body"] for note in admin.get("/hubspot/contacts/ann@example.com").json()["notes"]] == [
        "Demo booked."]
    assert (second.accepted, second.rejected) == (1, 0)


class DiesAfter:
    """A Brevo client whose process "dies" (an exception nothing handles) after `calls` batches went out; with
    `answered=False`, the last of them reaches Brevo and the process dies before reading its answer."""

    def __init__(self, client: BrevoClient, calls: int, *, answered: bool = True) -> None:
        self.client = client
        self.calls_left = calls
        self.answered = answered
        self.stats = client.stats

    def send_batch(self, *args: Any, **kwargs: Any) -> list[str]:
        if self.calls_left == 0:
            raise SystemExit("killed")
        self.calls_left -= 1
        message_ids = self.client.send_batch(*args, **kwargs)
        if self.calls_left == 0 and not self.answered:
            raise SystemExit("killed before the answer was recorded")
        return message_ids

    def find_sent_to(self, tag: str) -> list[tuple[str, str]]:
        return self.client.find_sent_to(tag)


def test_a_run_killed_between_batches_sends_each_message_once_after_the_next_run(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    """The second batch is written `sending` before its call: what went out before the kill is found in
    Brevo's log, what did not is sent, and nothing twice."""
    for n in range(5):
        add_message(con, f"k-{n}", f"p{n}@example.com", template_id=11 if n < 3 else 12)

    with pytest.raises(SystemExit):
        send_due(con, DiesAfter(brevo, 1), as_of=AS_OF, settle_seconds=0)
    statuses = [status for _, status, _, _ in ledger(con)]
    assert statuses == ["sent"] * 3 + ["sending"] * 2
    con.execute("update activations.send_ledger set status = 'sending' where status = 'sent'")  # a hard kill
    result = send_due(con, brevo, as_of=AS_OF, settle_seconds=0)

    assert recipients(admin) == [f"p{n}@example.com" for n in range(5)]
    assert [status for _, status, _, _ in ledger(con)] == ["sent"] * 5
    assert (result.reconciled, result.sent) == (3, 2)
    assert lookups(admin) == 2 and sends(admin) == 2


def add_many(connection: duckdb.DuckDBPyConnection, count: int, template_id: int, sequence: str,
             first: int = 0) -> None:
    """`count` due messages k-<n> to p<n>@example.com with params {"n": n}, in bulk."""
    rows = f"""select 'k-' || n, 'p' || n || '@example.com', '{sequence}', 'marketing', 'instance-' || n, 1,
                      {template_id}, ?::timestamp, json_object('n', n)::varchar
               from range({first}, {first + count}) as numbers(n)"""
    due_at = [AS_OF - timedelta(hours=1)]
    connection.execute(f"""insert into sync.sync_marketing__emails
        select key, email, sequence, step, template_id, params, due_at, 'planned', true, null, null
        from ({rows}) as due(key, email, sequence, kind, instance, step, template_id, due_at, params)""", due_at)


def test_due_messages_go_out_in_batches_of_a_thousand_per_template(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    add_many(con, 2100, 11, "demo_nurture")
    add_many(con, 400, 31, "webinar_reminder", first=2100)

    result = send_due(con, brevo, as_of=AS_OF)

    received = emails(admin)
    assert sends(admin) == 4, "ceil(2100 / 1000) + ceil(400 / 1000) calls"
    assert result.api_calls == {"POST /smtp/email": 4}
    assert len(received) == 2500
    for email in received:
        n = email["params"]["n"]
        assert email["to"][0]["email"] == f"p{n}@example.com"
        assert (email["templateId"], email["tags"][1]) == ((11, "demo_nurture") if n < 2100 else
                                                           (31, "webinar_reminder"))
    by_tag = Counter(email["tags"][0] for email in received)
    assert sorted(by_tag.values()) == [100, 400, 1000, 1000]
    assert {email["messageId"] for email in received} == {
        message_id for *_, message_id in ledger(con)}
    assert con.execute("select count(*), count(distinct send_tag) from activations.send_ledger "
                       "where status = 'sent'").fetchone() == (2500, 4)
    assert (result.sent, result.considered, dict(result.per_step)) == (
        2500, 2500, {"demo_nurture/1": 2100, "webinar_reminder/1": 400})


def test_two_messages_to_one_address_go_in_two_batches_each_delivered_once(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    first = add_message(con, "k-1", "ada@example.com", step=1)
    second = add_message(con, "k-2", "ada@example.com", step=2)
    add_message(con, "k-3", "bob@example.com", step=1)

    result = send_due(con, brevo, as_of=AS_OF)

    to_ada = [email for email in emails(admin) if email["to"][0]["email"] == "ada@example.com"]
    assert [email["params"] for email in to_ada] == [first, second]
    assert sends(admin) == 2 and recipients(admin) == ["ada@example.com", "ada@example.com", "bob@example.com"]
    assert tags(con)["k-1"] == tags(con)["k-3"] != tags(con)["k-2"]
    assert [message_id for *_, message_id in ledger(con)[:2]] == [email["messageId"] for email in to_ada]
    assert (result.sent, result.status) == (3, "ok")


def test_one_bad_version_is_isolated_by_halving_and_the_rest_are_sent(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    for n in range(8):
        add_message(con, f"k-{n}", "not-an-address" if n == 5 else f"p{n}@example.com")

    result = send_due(con, brevo, as_of=AS_OF)

    assert recipients(admin) == [f"p{n}@example.com" for n in range(8) if n != 5]
    assert sends(admin) == 7, "8 rejected, 4 + 4, 2 + 2, 1 + 1"
    assert [(key, status) for key, status, _, _ in ledger(con)] == [
        (f"k-{n}", "sent") for n in range(8) if n != 5]
    [(_, action, outcome, reason)] = [row for row in log(con) if row[2] != "sent"]
    assert (action, outcome) == ("send", "rejected")
    assert "HTTP 400" in reason and "valid email address" in reason
    assert sorted(key for key, _, outcome, _ in log(con) if outcome == "sent") == [
        f"k-{n}" for n in range(8) if n != 5]
    assert (result.sent, result.rejected, result.status) == (7, 1, "partial")
    assert result.rejections == [("k-5", reason)]


def test_a_lost_answer_to_a_batch_is_settled_by_one_look_up_of_its_tag(
        con: duckdb.DuckDBPyConnection, sandbox_url: str, admin: httpx.Client) -> None:
    for n in range(5):
        add_message(con, f"k-{n}", f"p{n}@example.com")
    admin.post("/faults", json={"service": "brevo", "rate_timeout": 1.0, "timeout_seconds": 0.2})
    transport = ClearFaultsAfterFirstAnswer(sandbox_url + "/_sandbox")

    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST, transport=transport) as client:
        result = send_due(con, client, as_of=AS_OF, settle_seconds=0)

    received = {email["to"][0]["email"]: email["messageId"] for email in emails(admin)}
    assert transport.cleared and sends(admin) == 1 and lookups(admin) == 1
    assert ledger(con) == [(f"k-{n}", "sent", AS_OF, received[f"p{n}@example.com"]) for n in range(5)]
    assert (result.sent, result.reconciled, result.unconfirmed, result.status) == (0, 5, 0, "ok")
    assert [outcome for _, _, outcome, _ in log(con)] == ["reconciled"] * 5


def test_a_crash_after_the_write_ahead_and_before_the_call_sends_each_once_next_run(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    for n in range(3):
        add_message(con, f"k-{n}", f"p{n}@example.com")

    with pytest.raises(SystemExit):
        send_due(con, DiesAfter(brevo, 0), as_of=AS_OF, settle_seconds=0)
    assert [status for _, status, _, _ in ledger(con)] == ["sending"] * 3 and len(set(tags(con).values())) == 1
    con.execute("update sync.sync_marketing__emails set status = 'sending'")  # as dbt now shows them
    result = send_due(con, brevo, as_of=AS_OF, settle_seconds=0)

    assert recipients(admin) == [f"p{n}@example.com" for n in range(3)]
    assert sends(admin) == 1 and lookups(admin) == 1
    assert [status for _, status, _, _ in ledger(con)] == ["sent"] * 3
    assert (result.considered, result.sent, result.reconciled) == (3, 3, 0)


def test_a_crash_after_the_call_is_reconciled_next_run_from_one_look_up(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    for n in range(3):
        add_message(con, f"k-{n}", f"p{n}@example.com")

    with pytest.raises(SystemExit):
        send_due(con, DiesAfter(brevo, 1, answered=False), as_of=AS_OF, settle_seconds=0)
    assert [status for _, status, _, _ in ledger(con)] == ["sending"] * 3
    result = send_due(con, brevo, as_of=AS_OF, settle_seconds=0)

    received = {email["to"][0]["email"]: email["messageId"] for email in emails(admin)}
    assert sends(admin) == 1 and lookups(admin) == 1
    assert ledger(con) == [(f"k-{n}", "sent", AS_OF, received[f"p{n}@example.com"]) for n in range(3)]
    assert (result.considered, result.sent, result.reconciled) == (3, 0, 3)


def test_the_look_up_budget_counts_tags_not_messages(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    for n in range(6):
        add_message(con, f"k-{n}", f"p{n}@example.com", template_id=11 if n < 3 else 12)
    with pytest.raises(SystemExit):
        send_due(con, DiesAfter(brevo, 2, answered=False), as_of=AS_OF, settle_seconds=0)
    con.execute("update activations.send_ledger set status = 'sending'")  # both batches' answers unrecorded

    first = send_due(con, brevo, as_of=AS_OF, settle_seconds=0, lookup_budget=1)
    second = send_due(con, brevo, as_of=AS_OF, settle_seconds=0, lookup_budget=1)

    assert (first.considered, first.reconciled, second.considered, second.reconciled) == (3, 3, 3, 3)
    assert sends(admin) == 2 and lookups(admin) == 2
    assert [status for _, status, _, _ in ledger(con)] == ["sent"] * 6


def test_an_answer_without_one_message_id_per_version_counts_as_lost() -> None:
    """Brevo accepted the call but the answer cannot be matched to the versions: the emails are looked up,
    not assumed sent or unsent."""
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"messageIds": ["<only-one@smtp-relay.sandbox>"]})

    with BrevoClient(KEY, "https://brevo.invalid/v3", policy=FAST, transport=httpx.MockTransport(answer)) as client, \
            pytest.raises(MaybeApplied):
        client.send_batch(11, [("ada@example.com", {}), ("bob@example.com", {})], tags=["lifecycle:t"])


def crashed_before_the_call(connection: duckdb.DuckDBPyConnection, brevo: BrevoClient, key: str, email: str,
                            *, reached_brevo: bool) -> None:
    """A run writes the message `sending` and dies before (or just after) its call; then dbt runs again and
    shows it `sending` in fct_messages, out of messages_due."""
    add_message(connection, key, email)
    with pytest.raises(SystemExit):
        send_due(connection, DiesAfter(brevo, 1 if reached_brevo else 0, answered=False), as_of=AS_OF,
                 settle_seconds=0)
    connection.execute("update sync.sync_marketing__emails set status = 'sending'")


def ledger_reasons(connection: duckdb.DuckDBPyConnection) -> list[tuple]:
    return connection.execute("select message_key, status, reason from activations.send_ledger "
                              "order by message_key").fetchall()


@pytest.mark.parametrize("hold", ["expired", "pause:demo_booked", "unsubscribed"])
def test_an_uncertain_email_the_rules_no_longer_allow_is_withdrawn_never_sent(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client, hold: str) -> None:
    """The 1 h webinar reminder after the webinar started, a nurture step after a booking, a marketing email
    after an unsubscribe: Brevo never got it, and dbt (may_send = false) says it must not go now."""
    crashed_before_the_call(con, brevo, "k-1", "ada@example.com", reached_brevo=False)
    con.execute("update sync.sync_marketing__emails set may_send = false, reason = ?", [hold])

    result = send_due(con, brevo, as_of=AS_OF + timedelta(hours=2), settle_seconds=0)

    assert emails(admin) == [] and sends(admin) == 0 and lookups(admin) == 1
    assert ledger_reasons(con) == [("k-1", "withdrawn", f"not sent again: {hold}")]
    assert [(key, outcome, reason) for key, _, outcome, reason in log(con)] == [
        ("k-1", "withdrawn", f"not sent again: {hold}")]
    assert (result.withdrawn, result.sent, result.resent, result.unconfirmed, result.status) == (
        1, 0, 0, 0, "ok")
    assert dict(result.withdrawal_reasons) == {hold: 1}


def test_an_uncertain_email_no_longer_in_the_marts_is_withdrawn(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    crashed_before_the_call(con, brevo, "k-1", "ada@example.com", reached_brevo=False)
    con.execute("delete from sync.sync_marketing__emails")

    result = send_due(con, brevo, as_of=AS_OF, settle_seconds=0)

    assert emails(admin) == [] and result.withdrawn == 1
    assert ledger_reasons(con) == [
        ("k-1", "withdrawn", f"not sent again: {NOT_A_MESSAGE}")]


def test_an_uncertain_email_that_reached_brevo_is_confirmed_even_if_the_rules_now_forbid_it(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    crashed_before_the_call(con, brevo, "k-1", "ada@example.com", reached_brevo=True)
    con.execute("update sync.sync_marketing__emails set may_send = false, reason = 'unsubscribed'")

    result = send_due(con, brevo, as_of=AS_OF, settle_seconds=0)

    [email] = emails(admin)
    assert ledger(con) == [("k-1", "sent", AS_OF, email["messageId"])]
    assert (result.reconciled, result.withdrawn) == (1, 0)


def test_a_withdrawn_message_planned_again_is_sent_once(
        con: duckdb.DuckDBPyConnection, brevo: BrevoClient, admin: httpx.Client) -> None:
    """A nurture step withdrawn while a demo was booked is planned again when the booking is canceled."""
    crashed_before_the_call(con, brevo, "k-1", "ada@example.com", reached_brevo=False)
    con.execute("update sync.sync_marketing__emails set may_send = false, reason = 'pause:demo_booked'")
    send_due(con, brevo, as_of=AS_OF, settle_seconds=0)
    con.execute("delete from sync.sync_marketing__emails")
    add_message(con, "k-1", "ada@example.com")

    resumed = AS_OF + timedelta(days=7)
    result = send_due(con, brevo, as_of=resumed)

    [email] = emails(admin)
    assert ledger(con) == [("k-1", "sent", resumed, email["messageId"])]
    assert (result.sent, result.status) == (1, "ok")


def scripted_send(script: list[str], request: httpx.Request,
                  forward: Callable[[httpx.Request], httpx.Response]) -> httpx.Response:
    """A transactional send fails as the script's next entry says: "lost" reaches Brevo and the answer is
    lost (a read timeout), "refused" never reaches it (a gateway's 500); other requests and sends past the
    script go through."""
    fate = script.pop(0) if request.url.path.endswith("/smtp/email") and script else "pass"
    if fate == "refused":
        return httpx.Response(500, json={"code": "internal_error", "message": "bad gateway"})
    response = forward(request)
    if fate == "lost":
        response.read()
        response.close()
        raise httpx.ReadTimeout("answer lost", request=request)
    return response


class LosesSends(httpx.HTTPTransport):
    """A real connection to the sandbox whose transactional sends fail as scripted (`scripted_send`)."""

    def __init__(self, *script: str) -> None:
        super().__init__()
        self.script = list(script)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return scripted_send(self.script, request, super().handle_request)


def test_every_tag_an_email_went_under_is_looked_up_before_it_goes_again(
        con: duckdb.DuckDBPyConnection, sandbox_url: str, admin: httpx.Client) -> None:
    """Brevo's log lags: the first send reached Brevo but its answer was lost, and the too-early look-up
    missed it; the send again never reached Brevo. Once the log shows the first email, the next run finds it
    under the first tag and sends nothing more."""
    add_message(con, "k-1", "ada@example.com")
    admin.post("/brevo/event_lag", json={"seconds": 3}).raise_for_status()

    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST,
                     transport=LosesSends("lost", "refused")) as client:
        first = send_due(con, client, as_of=AS_OF, settle_seconds=0, rounds=2)
    assert (first.resent, first.unconfirmed, first.status) == (1, 1, "partial")
    assert len(emails(admin)) == 1
    attempts = con.execute("select count(distinct send_tag) from activations.send_attempts").fetchone()[0]
    assert attempts == 2, "both tags are kept"

    time.sleep(3.5)  # the lag passes; the next hourly run comes
    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST) as client:
        second = send_due(con, client, as_of=AS_OF + timedelta(hours=1), settle_seconds=0)

    [email] = emails(admin)
    assert (second.reconciled, second.sent, second.resent) == (1, 0, 0)
    assert ledger(con) == [("k-1", "sent", AS_OF, email["messageId"])]


def test_a_send_again_after_a_lost_answer_is_counted_and_logged(
        con: duckdb.DuckDBPyConnection, sandbox_url: str, admin: httpx.Client) -> None:
    add_message(con, "k-1", "ada@example.com")

    with BrevoClient(KEY, sandbox_url + "/brevo/v3", policy=FAST, transport=LosesSends("refused")) as client:
        result = send_due(con, client, as_of=AS_OF, settle_seconds=0)

    assert len(emails(admin)) == 1
    assert (result.sent, result.resent, result.status) == (1, 1, "ok")
    assert result.metadata()["resent"] == 1
    [(_, _, outcome, reason)] = log(con)
    assert (outcome, reason) == ("sent", "sent again: no email under its earlier tags in Brevo's event log")


def test_the_operators_settle_time_outlasts_a_lagging_log(
        tmp_path: Path, sandbox_url: str, admin: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Brevo's log shows an email 6 s late and the operator set LIFECYCLE_BREVO_SETTLE_SECONDS=7: the email
    whose answer was lost is found, not sent twice."""
    for name, value in sandbox_environment(sandbox_url, tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LIFECYCLE_BREVO_SETTLE_SECONDS", "7")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        create_marts(connection)
        add_message(connection, "k-1", "ada@example.com")
    admin.post("/brevo/event_lag", json={"seconds": 6}).raise_for_status()
    script, connect = ["lost"], httpx.HTTPTransport.handle_request
    monkeypatch.setattr(httpx.HTTPTransport, "handle_request",  # the asset builds its own client
                        lambda transport, request: scripted_send(script, request,
                                                                 lambda sent: connect(transport, sent)))

    result = dg.materialize([activate_destinations], selection=[EMAILS_KEY], resources={"lifecycle": LifecycleSettings()},
                            tags={"lifecycle/as_of": "2026-09-01T10:00:00Z"})

    [materialization] = result.asset_materializations_for_node("activate_destinations")
    metadata = {name: value.value for name, value in materialization.metadata.items()}
    assert (metadata["reconciled"], metadata["resent"], metadata["sent"]) == (1, 0, 0)
    assert len(emails(admin)) == 1
