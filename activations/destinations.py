"""The engine's `Destination`s for HubSpot and Brevo, and the sync objects (dbt models) they are fed from.

Each adapter turns the engine's changes into one client call and the client's per-row answers into
`Outcome`s, keyed as the engine keyed the changes. Destination objects the rows need (HubSpot properties,
Brevo attributes and lists) are created on the first write, so a run with nothing to send calls nothing and
a dry run (which never writes) leaves the destination untouched.

Order matters: notes need their contact in HubSpot and list members their contact in Brevo, so the contacts
are synced first (the Dagster assets depend on each other in that order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

import duckdb

from activations.brevo import ALL_CONTACTS_LIST, IMPORT_MAX_ROWS, LIST_CHANGE_LIMIT, BrevoClient
from activations.engine import Change, Outcome, SyncObject
from activations.http import RowOutcome
from activations.hubspot import BATCH_LIMIT, HubSpotClient, Note
from activations.state import SCHEMA, LogRow, insert_log, sql_literal, transaction, written_payloads_sql
from vendor_http import ApiError

CRM_CONTACTS = SyncObject("sync.sync_crm__contacts", ("email",))
CRM_NOTES = SyncObject("sync.sync_crm__notes", ("note_key",), create_only=True)
MARKETING_CONTACTS = SyncObject("sync.sync_marketing__contacts", ("email",))
MARKETING_LIST_MEMBERS = SyncObject("sync.sync_marketing__list_members", ("email", "list_name"),
                                    remove_missing=True, batch_by="list_name")

MAYBE_APPLIED = "maybe_applied"
"""Prefix of the reason given for a row whose answer was lost: such notes are looked for before a resend."""

ATTEMPTED = "attempted"
"""sync_log outcome committed for each note just before its create call (a write-ahead record)."""

PreviouslySent = Callable[[Sequence[str]], set[str]]
"""Which of these keys an earlier run sent without learning the outcome (they may exist already)."""

Attempting = Callable[[Sequence[str]], None]
"""Durably record that these keys are about to be sent, before the call that creates them."""


def maybe_applied_keys(con: duckdb.DuckDBPyConnection, destination: str, object_: str) -> PreviouslySent:
    """`PreviouslySent` from the sync log: keys with an `attempted` row (a process that died between the
    destination's answer and the state commit leaves only that) or logged as maybe applied."""

    def lookup(keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        cursor = con.cursor()
        try:
            rows = cursor.execute(
                f"select distinct key from {SCHEMA}.sync_log where destination = ? and object = ? "
                "and (outcome = ? or (outcome = 'rejected' and starts_with(reason, ?))) "
                "and list_contains(?, key)",
                [destination, object_, ATTEMPTED, MAYBE_APPLIED, list(keys)],
            ).fetchall()
        finally:
            cursor.close()
        return {key for (key,) in rows}

    return lookup


def attempt_log(con: duckdb.DuckDBPyConnection, destination: str, object_: str) -> Attempting:
    """`Attempting` into the sync log: one `attempted` row per key, committed before the call returns.

    The rows carry no run id (the engine's run is not known to a destination); the run's own row for the
    key (accepted or rejected) follows when the state is committed.
    """

    def record(keys: Sequence[str]) -> None:
        if not keys:
            return
        rows = [LogRow(key, "add", ATTEMPTED, "create sent; the outcome follows in the run's log", None)
                for key in keys]
        with transaction(con):
            insert_log(con, None, destination, object_, rows, datetime.now(UTC).replace(tzinfo=None))

    return record


def _outcome(key: str, row: RowOutcome) -> Outcome:
    if row.accepted:
        return Outcome(key, True)
    if row.status == "maybe_applied":
        return Outcome(key, False, f"{MAYBE_APPLIED}: {row.error or 'the answer was lost'}")
    reason = row.error or "rejected without a reason"
    return Outcome(key, False, f"{row.code}: {reason}" if row.code else reason)


def _upserts_only(changes: Sequence[Change], what: str) -> None:
    if any(change.action == "remove" for change in changes):
        raise ValueError(f"{what} are never removed by a sync")


class _ContactsByEmail:
    """Contacts upserted by email; the destination's own fields (properties, attributes) are ensured once,
    on the first real write, so a run with nothing to send calls nothing."""

    name: str
    object = "contacts"
    batch_size: int
    label: str
    """How errors name the object, e.g. "HubSpot contacts"."""

    def __init__(self, client: HubSpotClient | BrevoClient) -> None:
        self.client = client
        self._ready = False

    def _ensure_fields(self) -> None:
        raise NotImplementedError

    def write(self, changes: Sequence[Change]) -> Sequence[Outcome]:
        _upserts_only(changes, self.label)
        if not self._ready:
            self._ensure_fields()
            self._ready = True
        rows = [{**change.fields, "email": change.key_values["email"]} for change in changes]
        return [_outcome(change.key, row) for change, row in zip(changes, self.client.upsert_contacts(rows),
                                                                  strict=True)]

    def api_calls(self) -> Mapping[str, int]:
        return self.client.stats.calls


class HubSpotContacts(_ContactsByEmail):
    """HubSpot contacts by email (batch upsert, 100 per call); the lifecycle properties are ensured first."""

    name = "hubspot"
    batch_size = BATCH_LIMIT
    label = "HubSpot contacts"

    def _ensure_fields(self) -> None:
        self.client.ensure_properties()


class HubSpotNotes:
    """HubSpot notes on their contacts, created once (batch create, 100 per call).

    Creating a note is not idempotent. Each note's attempt is committed (`attempting`) before the create
    call; a note attempted before, or whose answer was lost (`previously_sent`), is first looked for on its
    contact (same body and timestamp) and only created when it is not there. So neither a lost answer nor a
    process killed between HubSpot's answer and the state commit makes a duplicate on the timeline.
    """

    name = "hubspot"
    object = "notes"
    batch_size = BATCH_LIMIT

    def __init__(self, client: HubSpotClient, previously_sent: PreviouslySent, attempting: Attempting) -> None:
        self.client = client
        self.previously_sent = previously_sent
        self.attempting = attempting

    def write(self, changes: Sequence[Change]) -> Sequence[Outcome]:
        _upserts_only(changes, "HubSpot notes")
        outcomes: dict[str, Outcome] = {}
        contacts = self.client.read_contacts((str(c.fields.get("email") or "") for c in changes), [])
        notes: list[Note] = []
        for change in changes:
            email = str(change.fields.get("email") or "").strip().lower()
            contact = contacts.get(email)
            if contact is None:
                reason = f"no HubSpot contact with the email {email!r}"
                outcomes[change.key] = Outcome(change.key, False, reason)
                continue
            # sent as an instant, not the model's epoch milliseconds: the client matches HubSpot's ISO echo
            # to the input by timestamp, and reads a bare digit string as a compact ISO date
            timestamp = str(change.fields.get("hs_timestamp") or "")
            notes.append(Note(change.key, contact.id, str(change.fields.get("hs_note_body") or ""),
                              _instant(timestamp) or timestamp))
        suspects = self.previously_sent([note.key for note in notes])
        found = self._existing(note for note in notes if note.key in suspects)
        for key in found:
            outcomes[key] = Outcome(key, True)
        to_create = [note for note in notes if note.key not in found]
        if to_create:
            self.attempting([note.key for note in to_create])
            for note, row in zip(to_create, self.client.create_notes(to_create), strict=True):
                outcomes[note.key] = _outcome(note.key, row)
        return [outcomes[change.key] for change in changes]

    def _existing(self, notes: Iterable[Note]) -> set[str]:
        """Keys of the notes already on their contact (same body and instant), one look per contact."""
        by_contact: dict[str, list[Note]] = {}
        for note in notes:
            by_contact.setdefault(note.contact_id, []).append(note)
        found: set[str] = set()
        for contact_id, wanted in by_contact.items():
            stored = [(_instant(s.timestamp), s.body) for s in self.client.find_notes(contact_id)]
            for note in wanted:
                identity = (_instant(note.timestamp), note.body)
                if identity in stored:
                    stored.remove(identity)
                    found.add(note.key)
        return found

    def api_calls(self) -> Mapping[str, int]:
        return self.client.stats.calls


class BrevoContacts(_ContactsByEmail):
    """Brevo contacts by email (JSON import); the lifecycle attributes are ensured first."""

    name = "brevo"
    label = "Brevo contacts"
    batch_size = IMPORT_MAX_ROWS
    """One import per batch, as large as Brevo takes: each import is polled on /processes, whose quota is
    hourly (100 requests), so fewer, larger imports."""

    def _ensure_fields(self) -> None:
        self.client.ensure_attributes()


class BrevoListMembers:
    """Brevo list memberships, keyed (email, list_name): one list per batch, 150 addresses per call.

    Brevo reports a failed address without saying why; such an address is looked up, and an add whose
    contact is already in the list, or a removal whose contact is not (or no longer exists), is accepted:
    the list already is as desired.
    """

    name = "brevo"
    object = "list_members"
    batch_size = LIST_CHANGE_LIMIT

    def __init__(self, client: BrevoClient) -> None:
        self.client = client

    def write(self, changes: Sequence[Change]) -> Sequence[Outcome]:
        names = {change.key_values["list_name"] for change in changes}
        actions = {change.action for change in changes}
        if len(names) != 1 or not (actions <= {"add", "change"} or actions == {"remove"}):
            raise ValueError("a list-member batch holds one list and either additions or removals")
        list_name = names.pop()
        list_id = self.client.ensure_lists([list_name])[list_name]
        emails = [change.key_values["email"].strip().lower() for change in changes]
        removing = actions == {"remove"}
        change_members = self.client.remove_from_list if removing else self.client.add_to_list
        rows = {row.key: row for row in change_members(list_id, emails)}
        outcomes = []
        for change, email in zip(changes, emails, strict=True):
            row = rows.get(email) or RowOutcome(
                email, "rejected", error="Brevo gave no answer for this address")
            if not row.accepted and self._already_done(email, list_id, removing):
                row = RowOutcome(email, "accepted")
            outcomes.append(_outcome(change.key, row))
        return outcomes

    def _already_done(self, email: str, list_id: int, removing: bool) -> bool:
        try:
            _, contact = self.client.http.request("GET", "/contacts/{identifier}", path={"identifier": email},
                                                  bucket="contacts")
        except ApiError as error:
            if error.status != 404:
                raise
            return removing
        member = list_id in [int(i) for i in (contact or {}).get("listIds") or []]
        return member != removing

    def api_calls(self) -> Mapping[str, int]:
        return self.client.stats.calls


def hubspot_written_contacts_sql() -> str:
    """What our syncs last wrote to each HubSpot contact (``written_payloads_sql``)."""
    return written_payloads_sql(HubSpotContacts.name, HubSpotContacts.object)


def brevo_written_contacts_sql() -> str:
    """What our syncs last wrote to each Brevo contact (``written_payloads_sql``), lists included: the payload
    gains ``lists``, the lists our syncs keep the contact in (every synced contact joins ``Lifecycle
    contacts``; then its list memberships), and ``managed_lists``, every list they manage; ``written_at``
    counts a list change too."""
    members = (f"from {SCHEMA}.sync_state where destination = {sql_literal(BrevoListMembers.name)} "
               f"and object = {sql_literal(BrevoListMembers.object)}")
    every_contact = f"[{sql_literal(ALL_CONTACTS_LIST)}]"
    return f"""
        with members as (
            select lower(json_extract_string(key, '$[0]')) as email,
                list(json_extract_string(key, '$[1]')) as lists, max(synced_at) as written_at
            {members}
            group by all
        ),
        managed as (
            select {every_contact} || coalesce(list(distinct json_extract_string(key, '$[1]')), []) as lists
            {members}
        )
        select contacts.email,
            json_merge_patch(contacts.payload, json_object(
                'lists', {every_contact} || coalesce(members.lists, []), 'managed_lists', managed.lists)) as payload,
            greatest(contacts.written_at, members.written_at) as written_at
        from ({written_payloads_sql(BrevoContacts.name, BrevoContacts.object)}) as contacts
        left join members on contacts.email = members.email
        cross join managed"""


def _instant(value: str | datetime | None) -> datetime | None:
    """A note timestamp (epoch milliseconds or ISO 8601, as HubSpot echoes it) as a comparable instant."""
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
