"""Lifecycle emails through Brevo's transactional API, each message key sent at most once, ever (SPEC §3.9.2,
§6.2): the rows of `marts.messages_due`, up to 1,000 emails per `POST /smtp/email`.

Batches: Brevo's `messageVersions` sends one email per version (its own recipient and params) in a single
call, at most 1,000 versions; the tags belong to the call. Messages are grouped by template and sequence
into batches of at most BATCH_SIZE, never the same recipient twice in one batch (a second message to an
address goes to a later batch of its group), and each batch gets a tag of its own, `lifecycle:<32 hex>`,
sent as its first tag, then the sequence name: (batch tag, recipient) identifies one email. A first run
therefore costs about one call per template per 1,000 recipients. Brevo rejects a whole call when one
version is bad (HTTP 400), so a rejected batch is split in halves, each sent under a new tag, until the bad
message is alone and rejected by itself: about 2·log2(batch size) extra calls per bad message, and a
template Brevo refuses outright costs about two calls per message of it.

The ledger (`activations.send_ledger`) is written ahead of each call: the batch's rows are committed
`sending` with the batch's tag in `send_tag` (sent_at = the run's clock, the simulated `as_of` when there is
one: dbt compares it with cancellations; a send again re-stamps it); Brevo's 201 turns them all `sent` with
their messageIds, in one transaction. A definitive rejection of a message alone (a 4xx other than 429 and the
account-level 401/402/403) deletes its row, so the message stays planned and is retried next run like a
rejected sync row, and its reason goes to `activations.sync_log`. An account-level refusal, or a batch that
never left, deletes the rows of what was not sent and stops the run (status failed). A lost answer (timeout,
dropped connection, 5xx, an answer without one messageId per version: `MaybeApplied`) leaves the batch's rows
`sending`, and so does a process killed during the call. dbt counts any ledger row as handled, so a
`sending` key is never planned again; this module alone settles it. A `sending` row whose send_tag is null
was written by the earlier one-call-per-message version, whose emails carry their message key as first tag.

Reconciliation: at the start of a run (rows a crashed run left `sending`) and at its end (this run's lost
answers), each distinct tag of the `sending` rows is looked up once in Brevo's event log (`find_sent_to`):
a row whose recipient got an email with that tag -> `sent` with that messageId (outcome `reconciled`); the
others are sent again in new batches (new tag, written ahead), with their template and params from
`marts.fct_messages` (messages_due no longer lists a key that has a ledger row). Each key gets at most
`rounds` look-ups per run and the last one is never followed by a send; a key still unknown stays `sending`
(outcome `unconfirmed`, run status `partial`) for the next run to look up again.

What a user should know about Brevo's event log, which this relies on:
- It lags. Brevo records an accepted email's `requests` event asynchronously, usually within seconds but
  sometimes later. A look-up that comes too early reads "not found", and the email goes out a second time.
  So each round of look-ups first waits until `settle_seconds` have passed since the last lost answer (for
  rows left by an earlier process: since this run started). Raise it if your account's log lags more; a
  duplicate needs both a lost answer and an event that is still missing after that time.
- Look-ups count against the quota of "other /smtp/*" endpoints (300 requests per hour on the general
  plan), so a run looks up at most `lookup_budget` tags (one per batch, however many emails it holds; a tag
  with more than 2,500 events, e.g. opens and clicks of an old batch, takes a request per 2,500); rows
  beyond it stay `sending` until a later run.
- Brevo documents no idempotency key for `/smtp/email` (api_contracts.md §2.10 has none), so the ledger and
  the tag look-up are the whole protection against a second copy. Brevo's `messageVersions` docs give no
  per-version outcome: a call is accepted or refused as a whole.

Dry run: no API call and no ledger write; the run is recorded in `sync_runs` (dry_run = true), each message
it would send is logged `would_send` in `sync_log`, and the result carries the counts per sequence and step
and a preview. Messages are streamed from DuckDB a batch at a time.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import duckdb

from activations.brevo import MESSAGE_VERSIONS_MAX
from activations.http import ApiError, MaybeApplied, TransportStats
from activations.state import SCHEMA, LogRow, ensure_tables, finish_run, insert_log, start_run, transaction

DESTINATION = "brevo"
OBJECT = "emails"
MESSAGES_DUE = "marts.messages_due"
MESSAGES = "marts.fct_messages"
CONTACTS = "marts.dim_contacts"

BATCH_SIZE = MESSAGE_VERSIONS_MAX
"""Emails per call (Brevo's cap on messageVersions); also the messages fetched from DuckDB at a time."""
TAG_PREFIX = "lifecycle:"
ROUNDS = 3
"""Look-ups of one uncertain key per run (with a send between two look-ups when it was not found)."""
SETTLE_SECONDS = 5.0
"""How long Brevo's event log is given to show an email whose answer was lost before it is looked for."""
LOOKUP_BUDGET = 250
"""Event-log tag look-ups per run: under the hourly quota of Brevo's "other /smtp/*" endpoints (300)."""
PREVIEW_ROWS = 1000
REJECTION_SAMPLE = 100
ACCOUNT_ERRORS = (401, 402, 403)
"""Bad key, no credits, no permission: nothing can be sent, so the run stops instead of rejecting each message."""

Recipient = str | Mapping[str, str]


class Mailer(Protocol):
    """What sending needs from the Brevo client (activations.brevo.BrevoClient)."""

    @property
    def stats(self) -> TransportStats: ...

    def send_batch(self, template_id: int, versions: Sequence[tuple[Recipient, Mapping[str, Any]]],
                   tags: Sequence[str] = ()) -> list[str]: ...

    def find_sent_to(self, tag: str) -> list[tuple[str, str]]: ...


@dataclass(frozen=True)
class Message:
    """One email: `template_id` is None for a `sending` key that is no longer in marts.fct_messages (it can
    be looked up, not sent again). `send_tag`: the tag of the call it was last handed to Brevo in (None
    before its first send, and for a row of the per-message version, whose tag was its key)."""

    key: str
    email: str
    sequence: str
    step: int
    template_id: int | None
    params: Mapping[str, Any]
    name: str | None = None
    send_tag: str | None = None

    @property
    def recipient(self) -> str | dict[str, str]:
        return {"email": self.email, "name": self.name} if self.name else self.email

    @property
    def address(self) -> str:
        """The recipient as Brevo keys it (and reports it in events): trimmed, lowercase."""
        return self.email.strip().lower()

    @property
    def lookup_tag(self) -> str:
        return self.send_tag or self.key

    @property
    def step_label(self) -> str:
        return f"{self.sequence}/{self.step}"

    def fields(self) -> dict[str, Any]:
        return {"email": self.email, "sequence": self.sequence, "step": self.step,
                "template_id": self.template_id, "params": dict(self.params)}


@dataclass
class SendResult:
    """What a run did (also in activations.sync_runs and sync_log).

    considered: messages due that had no ledger row, plus `sending` keys taken up from earlier runs.
    sent: emails Brevo accepted in this run (a dry run: would send). reconciled: lost answers found in
    Brevo's event log. unconfirmed: keys still `sending` at the end (a dry run: those it would look up).
    """

    run_id: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"
    considered: int = 0
    sent: int = 0
    rejected: int = 0
    reconciled: int = 0
    unconfirmed: int = 0
    per_step: Counter[str] = field(default_factory=Counter)
    """Emails sent (a dry run: that would be sent) per "sequence/step"."""
    rejection_reasons: Counter[str] = field(default_factory=Counter)
    rejections: list[tuple[str, str]] = field(default_factory=list)
    unconfirmed_keys: list[str] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)
    preview: list[Message] = field(default_factory=list)

    @property
    def duration_seconds(self) -> float:
        return ((self.finished_at or _now()) - self.started_at).total_seconds()

    def metadata(self) -> dict[str, Any]:
        """Plain JSON-ready values for a Dagster materialization."""
        return {
            "run_id": self.run_id,
            "destination": DESTINATION,
            "object": OBJECT,
            "dry_run": self.dry_run,
            "status": self.status,
            "considered": self.considered,
            "sent": self.sent,
            "rejected": self.rejected,
            "reconciled": self.reconciled,
            "unconfirmed": self.unconfirmed,
            "per_step": dict(sorted(self.per_step.items())),
            "rejection_reasons": dict(self.rejection_reasons),
            "api_calls": dict(self.api_calls),
            "duration_seconds": round(self.duration_seconds, 3),
        }


def send_due(con: duckdb.DuckDBPyConnection, client: Mailer, *, as_of: datetime | None = None,
             dry_run: bool = False, preview_limit: int = PREVIEW_ROWS, rounds: int = ROUNDS,
             settle_seconds: float = SETTLE_SECONDS, lookup_budget: int = LOOKUP_BUDGET,
             sleep: Callable[[float], None] = time.sleep) -> SendResult:
    """Send the due messages and settle the uncertain ones; record the run (ok, partial when a message was
    rejected or is still unconfirmed, failed when an exception stopped it, re-raised)."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    ensure_ledger(con)
    result = SendResult(run_id=uuid.uuid4().hex, dry_run=dry_run, started_at=_now())
    start_run(con, result.run_id, DESTINATION, OBJECT, result.started_at, dry_run, as_of)
    calls_before = dict(client.stats.calls)
    error: str | None = None
    try:
        run = _Run(con, client, result, _clock_value(as_of), preview_limit, rounds, settle_seconds,
                   lookup_budget, sleep)
        run.execute()
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        raise
    finally:
        result.api_calls = {endpoint: count - calls_before.get(endpoint, 0)
                            for endpoint, count in sorted(client.stats.calls.items())
                            if count > calls_before.get(endpoint, 0)}
        result.finished_at = _now()
        result.status = "failed" if error else (
            "partial" if result.rejected or result.unconfirmed else "ok")
        finish_run(con, result.run_id, result.finished_at,
                   {"considered": result.considered, "changed": result.considered, "sent": result.sent,
                    "rejected": result.rejected},
                   result.api_calls, result.status, error)
    return result


def ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """The engine's tables, and the ledger's `send_tag` (the batch tag), which a ledger created before
    batching (by this module or by dbt) lacks; dbt's macro creates it with the column."""
    ensure_tables(con)
    con.execute(f'alter table "{SCHEMA}".send_ledger add column if not exists send_tag varchar')


class _Batches:
    """Open batches per (template, sequence): at most BATCH_SIZE messages, each recipient at most once."""

    def __init__(self) -> None:
        self.groups: dict[tuple[int | None, str], list[dict[str, Message]]] = {}

    def add(self, message: Message) -> list[Message] | None:
        """Put the message in the first batch of its group without its recipient; returns that batch when
        it is full (it leaves the group)."""
        group = self.groups.setdefault((message.template_id, message.sequence), [])
        batch = next((batch for batch in group if message.address not in batch), None)
        if batch is None:
            batch = {}
            group.append(batch)
        batch[message.address] = message
        if len(batch) < BATCH_SIZE:
            return None
        group.remove(batch)
        return list(batch.values())

    def drain(self) -> Iterator[list[Message]]:
        """The remaining batches, group by group, oldest first."""
        groups, self.groups = self.groups, {}
        for group in groups.values():
            for batch in group:
                yield list(batch.values())


class _Run:
    def __init__(self, con: duckdb.DuckDBPyConnection, client: Mailer, result: SendResult, sent_at: datetime,
                 preview_limit: int, rounds: int, settle_seconds: float, lookup_budget: int,
                 sleep: Callable[[float], None]) -> None:
        self.con = con
        self.client = client
        self.result = result
        self.sent_at = sent_at
        self.preview_limit = preview_limit
        self.rounds = rounds
        self.settle_seconds = settle_seconds
        self.lookups_left = lookup_budget
        self.sleep = sleep
        self.last_uncertain = time.monotonic()

    def execute(self) -> None:
        if self.result.dry_run:
            self._dry_run()
            return
        leftovers = self._leftovers()
        self.result.considered += len(leftovers)
        self._reconcile(leftovers)
        batches = _Batches()
        lost: list[Message] = []
        for message in self._due():
            self.result.considered += 1
            if message.template_id is None:
                raise ValueError(f"due message {message.key} has no template to send")
            full = batches.add(message)
            if full is not None:
                lost += self._send(full, new=True)
        for batch in batches.drain():
            lost += self._send(batch, new=True)
        self._reconcile(lost)

    # ----- reading -----------------------------------------------------------------------------------

    def _due(self) -> Iterator[Message]:
        """messages_due without the keys the ledger already has (messages_due is stale when dbt did not
        run since the last send), oldest first."""
        yield from self._stream(f"""
            select due.message_key, due.email, due.sequence, due.step, due.template_id, due.params,
                   {_NAME_SQL}, cast(null as varchar) as send_tag
            from {MESSAGES_DUE} as due
            left join {CONTACTS} as contacts on contacts.email = due.email
            where not exists (select 1 from {SCHEMA}.send_ledger as ledger
                              where ledger.message_key = due.message_key)
            order by due.due_at, due.message_key
        """, [])

    def _leftovers(self) -> list[Message]:
        """Rows an earlier run left `sending`, of as many tags as this run may look up, oldest first."""
        return list(self._stream(f"""
            with tags as (
                select coalesce(send_tag, message_key) as tag, min(sent_at) as first_sent_at
                from {SCHEMA}.send_ledger
                where status = 'sending'
                group by 1
                order by first_sent_at, tag
                limit ?
            )
            select ledger.message_key, ledger.email, ledger.sequence, ledger.step, messages.template_id,
                   messages.params, {_NAME_SQL}, ledger.send_tag
            from tags
            join {SCHEMA}.send_ledger as ledger
                on coalesce(ledger.send_tag, ledger.message_key) = tags.tag and ledger.status = 'sending'
            left join {MESSAGES} as messages on messages.message_key = ledger.message_key
            left join {CONTACTS} as contacts on contacts.email = ledger.email
            order by tags.first_sent_at, tags.tag, ledger.message_key
        """, [max(self.lookups_left, 0)]))

    def _stream(self, sql: str, parameters: list[Any]) -> Iterator[Message]:
        cursor = self.con.cursor()
        try:
            rows = cursor.execute(sql, parameters)
            while chunk := rows.fetchmany(BATCH_SIZE):
                for key, email, sequence, step, template_id, params, name, send_tag in chunk:
                    yield Message(key, email, sequence, int(step),
                                  None if template_id is None else int(template_id),
                                  json.loads(params) if params else {}, name, send_tag)
        finally:
            cursor.close()

    # ----- sending -----------------------------------------------------------------------------------

    def _send(self, batch: Sequence[Message], *, new: bool) -> list[Message]:
        """Send one batch under the ledger protocol, halving it while Brevo rejects it; returns the messages
        whose answer was lost, with the tag they went out under.

        new: first sends, whose rows are inserted; else `sending` keys sent again, whose rows are re-tagged
        and re-stamped. Every call is written ahead under a tag of its own, halves included, so a process
        killed anywhere leaves each row with the tag of the last call that may have carried it."""
        parts = [list(batch)]
        insert = new
        lost: list[Message] = []
        while parts:
            tag = f"{TAG_PREFIX}{uuid.uuid4().hex}"
            part = [replace(message, send_tag=tag) for message in parts.pop(0)]
            template_id = part[0].template_id
            if template_id is None:
                raise ValueError(f"message {part[0].key} has no template to send")
            self._write_ahead(part, tag, insert)
            insert = False
            try:
                message_ids = self.client.send_batch(template_id, [(m.recipient, m.params) for m in part],
                                                     tags=[tag, part[0].sequence])
            except MaybeApplied:
                self.last_uncertain = time.monotonic()
                lost += part
                continue
            except ApiError as error:
                if not _rejects_message(error):
                    # Not sent: the account is refused, rate limited past the retries, or the request never
                    # left; neither this call nor the parts after it went out.
                    self._settle([], [], part + [message for rest in parts for message in rest])
                    raise
                if len(part) == 1:
                    self._settle([], [(part[0], str(error))], [])
                else:
                    half = len(part) // 2
                    parts[:0] = [part[:half], part[half:]]
                continue
            self._settle(list(zip(part, message_ids, strict=True)), [], [])
        return lost

    def _write_ahead(self, part: Sequence[Message], tag: str, insert: bool) -> None:
        """Commit the call's rows `sending` under its tag before it is made."""
        with transaction(self.con):
            if insert:
                self.con.execute(
                    f"""insert into {SCHEMA}.send_ledger (message_key, email, sequence, step, status, sent_at,
                            provider_message_id, send_tag)
                    select unnest(?::varchar[]), unnest(?::varchar[]), unnest(?::varchar[]),
                           unnest(?::integer[]), 'sending', ?, null, ?""",
                    [[m.key for m in part], [m.email for m in part], [m.sequence for m in part],
                     [m.step for m in part], self.sent_at, tag])
            else:
                self.con.execute(
                    f"""update {SCHEMA}.send_ledger set send_tag = ?, sent_at = ?
                    where status = 'sending' and message_key in (select unnest(?::varchar[]))""",
                    [tag, self.sent_at, [m.key for m in part]])

    def _settle(self, sent: Sequence[tuple[Message, str]], rejected: Sequence[tuple[Message, str]],
                not_sent: Sequence[Message]) -> None:
        """One transaction: sent keys -> `sent` with their messageIds, rejected and unsent keys out of the
        ledger (planned again next run), and the log rows."""
        with transaction(self.con):
            if sent:
                self._mark_sent([(m, message_id) for m, message_id in sent])
            gone = [m.key for m, _ in rejected] + [m.key for m in not_sent]
            if gone:
                self.con.execute(f"delete from {SCHEMA}.send_ledger where status = 'sending' "
                                 "and message_key in (select unnest(?::varchar[]))", [gone])
            self._log([LogRow(m.key, "send", "sent", None, m.fields()) for m, _ in sent]
                      + [LogRow(m.key, "send", "rejected", reason, m.fields()) for m, reason in rejected])
        for message, _ in sent:
            self._count_sent(message)
        for message, reason in rejected:
            self._count_rejected(message, reason)

    def _mark_sent(self, rows: Sequence[tuple[Message, str]]) -> None:
        self.con.execute(
            f"""update {SCHEMA}.send_ledger as ledger
            set status = 'sent', provider_message_id = answers.message_id
            from (select unnest(?::varchar[]) as message_key, unnest(?::varchar[]) as message_id) as answers
            where ledger.message_key = answers.message_key""",
            [[m.key for m, _ in rows], [message_id for _, message_id in rows]])

    def _count_sent(self, message: Message) -> None:
        self.result.sent += 1
        self.result.per_step[message.step_label] += 1
        if len(self.result.preview) < self.preview_limit:
            self.result.preview.append(message)

    def _count_rejected(self, message: Message, reason: str) -> None:
        self.result.rejected += 1
        self.result.rejection_reasons[reason] += 1
        if len(self.result.rejections) < REJECTION_SAMPLE:
            self.result.rejections.append((message.key, reason))

    # ----- reconciliation ----------------------------------------------------------------------------

    def _reconcile(self, messages: Sequence[Message]) -> None:
        """Look each uncertain tag up once per round in Brevo's event log; send again, in new batches, the
        messages not found there (see module doc)."""
        pending = list(messages)
        reasons: dict[str, str] = {}
        for round_number in range(1, self.rounds + 1):
            if not pending:
                return
            wait = self.settle_seconds - (time.monotonic() - self.last_uncertain)
            if wait > 0:
                self.sleep(wait)
            last_round = round_number == self.rounds
            by_tag: dict[str, list[Message]] = {}
            for message in pending:
                by_tag.setdefault(message.lookup_tag, []).append(message)
            still: list[Message] = []
            again: list[Message] = []
            groups = list(by_tag.items())
            for index, (tag, group) in enumerate(groups):
                found, problem = self._find(tag)
                if found is None:
                    rest = [message for _, later in groups[index:] for message in later]
                    reasons.update((m.key, problem) for m in rest)
                    stopped = "not in Brevo's event log, and not sent again: this run stopped looking up"
                    reasons.update((m.key, stopped) for m in again)
                    self._unconfirmed(still + again + rest, reasons)
                    return
                for message in self._confirm_found(group, found):
                    if message.template_id is None:
                        reasons[message.key] = (f"not in Brevo's event log, and no longer in {MESSAGES} "
                                                "to be sent again")
                        still.append(message)
                    elif last_round:
                        reasons[message.key] = f"not in Brevo's event log after {self.rounds} look-ups"
                        still.append(message)
                    else:
                        again.append(message)
            lost = self._send_again(again)
            reasons.update((m.key, "the answer to a new send was lost too") for m in lost)
            pending = still + lost
        if pending:
            self._unconfirmed(pending, reasons)

    def _find(self, tag: str) -> tuple[list[tuple[str, str]] | None, str]:
        """(messageId, email) of the emails carrying the tag, or None and why this run must stop looking."""
        if self.lookups_left <= 0:
            return None, "not looked up: this run's budget of event-log look-ups is spent"
        self.lookups_left -= 1
        try:
            return self.client.find_sent_to(tag), ""
        except ApiError as error:
            return None, f"not looked up: the event-log look-up failed: {error}"

    def _confirm_found(self, group: Sequence[Message], found: Sequence[tuple[str, str]]) -> list[Message]:
        """Mark `sent` (outcome `reconciled`) the messages of one tag whose email Brevo has, in one
        transaction; returns the others. A batch tag is matched by recipient; a message-key tag (the
        per-message version) by any email."""
        by_address: dict[str, list[str]] = {}
        for message_id, address in found:
            by_address.setdefault(address, []).append(message_id)
        any_email = list(dict.fromkeys(message_id for message_id, _ in found))
        confirmed: list[tuple[Message, str]] = []
        log: list[LogRow] = []
        missing: list[Message] = []
        for message in group:
            ids = any_email if message.send_tag is None else by_address.get(message.address, [])
            if not ids:
                missing.append(message)
                continue
            confirmed.append((message, ids[0]))
            copies = f"{len(ids)} emails carry its tag" if len(ids) > 1 else None
            log.append(LogRow(message.key, "send", "reconciled", copies, message.fields()))
        if confirmed:
            with transaction(self.con):
                self._mark_sent(confirmed)
                self._log(log)
            self.result.reconciled += len(confirmed)
        return missing

    def _send_again(self, messages: Sequence[Message]) -> list[Message]:
        """Send keys that were looked for and not found, in new batches; returns those lost again."""
        batches = _Batches()
        lost: list[Message] = []
        for message in messages:
            full = batches.add(message)
            if full is not None:
                lost += self._send(full, new=False)
        for batch in batches.drain():
            lost += self._send(batch, new=False)
        return lost

    # ----- ledger and log ----------------------------------------------------------------------------

    def _log(self, rows: Sequence[LogRow]) -> None:
        insert_log(self.con, self.result.run_id, DESTINATION, OBJECT, rows, _now())

    def _unconfirmed(self, messages: Sequence[Message], reasons: Mapping[str, str]) -> None:
        with transaction(self.con):
            self._log([LogRow(m.key, "send", "unconfirmed", reasons.get(m.key, "answer lost"), m.fields())
                       for m in messages])
        self.result.unconfirmed += len(messages)
        self.result.unconfirmed_keys.extend(m.key for m in messages[:REJECTION_SAMPLE])

    # ----- dry run -----------------------------------------------------------------------------------

    def _dry_run(self) -> None:
        self.result.unconfirmed = self.con.execute(
            f"select count(*) from {SCHEMA}.send_ledger where status = 'sending'").fetchone()[0]
        batch: list[LogRow] = []
        for message in self._due():
            self.result.considered += 1
            self.result.sent += 1
            self.result.per_step[message.step_label] += 1
            if len(self.result.preview) < self.preview_limit:
                self.result.preview.append(message)
            batch.append(LogRow(message.key, "send", "would_send", None, message.fields()))
            if len(batch) >= BATCH_SIZE:
                self._commit_log(batch)
                batch = []
        self._commit_log(batch)

    def _commit_log(self, rows: Sequence[LogRow]) -> None:
        if rows:
            with transaction(self.con):
                self._log(rows)


def _rejects_message(error: ApiError) -> bool:
    """A 4xx about the call's content (bad address, template, params), not about the account or the rate."""
    return error.status is not None and 400 <= error.status < 500 and error.status not in (429, *ACCOUNT_ERRORS)


_NAME_SQL = "nullif(trim(concat_ws(' ', contacts.first_name, contacts.last_name)), '') as name"


def _clock_value(as_of: datetime | None) -> datetime:
    """The run's clock as DuckDB stores it: UTC without a zone (a naive `as_of` is taken as UTC)."""
    if as_of is None:
        return _now()
    return as_of.astimezone(UTC).replace(tzinfo=None) if as_of.tzinfo else as_of


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
