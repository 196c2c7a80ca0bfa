"""Lifecycle emails through Brevo's transactional API, each message key sent at most once, ever: the planned
rows of `sync.sync_marketing__emails` (the emails dbt says are due), up to 1,000 emails per `POST /smtp/email`.

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
`sending` with the batch's tag in `send_tag`, and the tag is appended to `activations.send_attempts` with
the wall-clock time (every tag a message was ever handed to Brevo under is kept there); sent_at is the
run's clock, the simulated `as_of` when there is one (dbt compares it with cancellations; a send again
re-stamps it). Brevo's 201 turns them all `sent` with their messageIds, in one transaction. A definitive
rejection of a message alone (a 4xx other than 429 and the account-level 401/402/403) deletes its row, so
the message stays planned and is retried next run like a rejected sync row, and its reason goes to
`activations.sync_log`. An account-level refusal, or a batch that never left, deletes the rows of what was
not sent and stops the run (status failed). A lost answer (timeout, dropped connection, 5xx, an answer
without one messageId per version: `MaybeApplied`) leaves the batch's rows `sending`, and so does a process
killed during the call. dbt counts a `sending` row as handled, so the key is never planned again; this
module alone settles it. A `sending` row whose send_tag is null was written by the earlier
one-call-per-message version, whose emails carry their message key as first tag.

Settling an uncertain email, at the start of a run (rows a crashed run left `sending`) and at its end (this
run's lost answers), in rounds:
1. Wait until `settle_seconds` have passed since the message's last attempt (Brevo's event log lags).
2. Look up every tag the message was ever handed over under (`find_sent_to`, once per tag and round). An
   email found under any of them -> `sent` with that messageId (outcome `reconciled`). A look-up refused
   for the account (401/402/403) stops the run with the message still `sending`: it says nothing of the email.
3. Not found: the message goes again only if the rules still allow it now: `may_send` of its `sending` row
   in `sync.sync_marketing__emails`, which dbt computes as of the run with the same rules as a fresh send
   (an exit, a pause, an unsubscribe, an expired reminder or a later step that went out forbid it). One that is not
   allowed, or no longer a message at all, is withdrawn: ledger status `withdrawn` with the reason, never
   sent; dbt then shows it with the status the rules give it. One that is allowed is sent again in a new
   batch under a new tag (outcome `sent`, reason "sent again ..."; counted in `resent`).
Each key gets at most `rounds` look-ups per run and the last one is never followed by a send; a key still
unknown stays `sending` (outcome `unconfirmed`, run status `partial`) for the next run to look up again.

What a user should know about Brevo's event log, which this relies on:
- It lags. Brevo records an accepted email's `requests` event asynchronously and documents no bound for it:
  its transactional reports show the log as real time, aggregated per second and per minute. A look-up
  that comes too early reads "not found", and the email would go out a second time. So nothing is looked up
  before `settle_seconds` (default SETTLE_SECONDS, one minute, the coarsest granularity Brevo reports the
  log in; the operator's setting LIFECYCLE_BREVO_SETTLE_SECONDS) have passed since the message's last
  attempt. A duplicate needs both a lost answer and an event that is still missing after that time, and
  even then the earlier tags are looked up again before any later re-send.
- Look-ups count against the quota of "other /smtp/*" endpoints (300 requests per hour on the general
  plan), so a run looks up at most `lookup_budget` tags (one per batch, however many emails it holds; a tag
  with more than 2,500 events, e.g. opens and clicks of an old batch, takes a request per 2,500); rows
  beyond it stay `sending` until a later run.
- Brevo documents no idempotency key for `/smtp/email`, so the ledger and the tag look-up are the whole
  protection against a second copy. Brevo's `messageVersions` docs give no per-version outcome: a call is
  accepted or refused as a whole.

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
from datetime import datetime
from typing import Any, Protocol

import duckdb

from activations.brevo import MESSAGE_VERSIONS_MAX
from activations.http import MaybeApplied, TransportStats
from activations.runs import REJECTION_SAMPLE, RunResult, recorded_run
from activations.state import (
    SCHEMA,
    LogRow,
    insert_log,
    migrate,
    transaction,
    utc_naive,
    utc_now,
)
from vendor_http import ApiError

DESTINATION = "brevo"
OBJECT = "emails"
EMAILS = "sync.sync_marketing__emails"
"""The emails dbt says may go now: due, or in flight with whether they still may (docs/sends.md)."""

BATCH_SIZE = MESSAGE_VERSIONS_MAX
"""Emails per call (Brevo's cap on messageVersions); also the messages fetched from DuckDB at a time."""
TAG_PREFIX = "lifecycle:"
ROUNDS = 3
"""Look-ups of one uncertain key per run (with a send between two look-ups when it was not found)."""
SETTLE_SECONDS = 60.0
"""How long Brevo's event log is given to show an email whose answer was lost before it is looked for."""
LOOKUP_BUDGET = 250
"""Event-log tag look-ups per run: under the hourly quota of Brevo's "other /smtp/*" endpoints (300)."""
PREVIEW_ROWS = 1000
ACCOUNT_ERRORS = (401, 402, 403)
"""Bad key, no credits, no permission: nothing can be sent, so the run stops instead of rejecting each message."""
NOT_A_MESSAGE = f"no longer a message of any sequence (not in {EMAILS})"

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
    """One email. `template_id` is None for a `sending` key that is no longer a message (not in
`sync.sync_marketing__emails`).
    `send_tag`: the tag of the call it was last handed to Brevo in (None before its first send, and for a
    row of the per-message version, whose tag was its key). `tags`: every tag it was handed over under, and
    `attempted_at` the wall-clock time of the last attempt (None when unknown). `may_send`: whether the rules
    allow it now; `hold`: why not."""

    key: str
    email: str
    sequence: str
    step: int
    template_id: int | None
    params: Mapping[str, Any]
    name: str | None = None
    send_tag: str | None = None
    tags: tuple[str, ...] = ()
    attempted_at: datetime | None = None
    may_send: bool = True
    hold: str | None = None

    @property
    def recipient(self) -> str | dict[str, str]:
        return {"email": self.email, "name": self.name} if self.name else self.email

    @property
    def address(self) -> str:
        """The recipient as Brevo keys it (and reports it in events): trimmed, lowercase."""
        return self.email.strip().lower()

    @property
    def lookup_tags(self) -> tuple[str, ...]:
        """Every tag to look for: those of the attempts, the last one, or the key (per-message version)."""
        return tuple(dict.fromkeys((*self.tags, self.send_tag or self.key)))

    @property
    def step_label(self) -> str:
        return f"{self.sequence}/{self.step}"

    def fields(self) -> dict[str, Any]:
        return {"email": self.email, "sequence": self.sequence, "step": self.step,
                "template_id": self.template_id, "params": dict(self.params)}


@dataclass
class SendResult(RunResult[Message]):
    """What a run of the emails did: the shared numbers (activations/runs.py), and how the uncertain ones
    were settled.

    considered: messages due that had no ledger row, plus `sending` keys taken up from earlier runs.
    sent: emails Brevo accepted in this run (a dry run: would send). reconciled: lost answers found in
    Brevo's event log. resent: emails sent again after a lost answer whose email was not found (each one a
    possible duplicate if Brevo's log lagged past the settle time). withdrawn: uncertain emails not found
    that the rules no longer allow, closed unsent. unconfirmed: keys still `sending` at the end (a dry run:
    those it would look up).
    """

    destination: str = DESTINATION
    object: str = OBJECT
    reconciled: int = 0
    resent: int = 0
    withdrawn: int = 0
    unconfirmed: int = 0
    per_step: Counter[str] = field(default_factory=Counter)
    """Emails sent (a dry run: that would be sent) per "sequence/step"."""
    withdrawal_reasons: Counter[str] = field(default_factory=Counter)
    unconfirmed_keys: list[str] = field(default_factory=list)

    def left_over(self) -> dict[str, int]:
        return {"rejected": self.rejected, "unconfirmed": self.unconfirmed}

    def counts(self) -> dict[str, Any]:
        return {"reconciled": self.reconciled, "resent": self.resent, "withdrawn": self.withdrawn,
                "unconfirmed": self.unconfirmed, "per_step": dict(sorted(self.per_step.items())),
                "withdrawal_reasons": dict(self.withdrawal_reasons),
                "unconfirmed_keys": list(self.unconfirmed_keys)}


def send_due(con: duckdb.DuckDBPyConnection, client: Mailer, *, as_of: datetime | None = None,
             dry_run: bool = False, preview_limit: int = PREVIEW_ROWS, rounds: int = ROUNDS,
             settle_seconds: float = SETTLE_SECONDS, lookup_budget: int = LOOKUP_BUDGET,
             sleep: Callable[[float], None] = time.sleep) -> SendResult:
    """Send the due messages and settle the uncertain ones; record the run (ok, partial when a message was
    rejected or is still unconfirmed, failed when an exception stopped it, re-raised)."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    migrate(con)
    result = SendResult(dry_run=dry_run)
    with recorded_run(con, result, lambda: client.stats.calls, as_of):
        _Run(con, client, result, _clock_value(as_of), preview_limit, rounds, settle_seconds, lookup_budget,
             sleep).execute()
    return result


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
        """The emails due without the keys the ledger holds as sending or sent (the sync model is stale when
        dbt did not run since the last send), oldest first."""
        yield from self._stream(f"""
            select due.message_key, due.email, due.sequence, due.step, due.template_id, due.params,
                   due.recipient_name, cast(null as varchar) as send_tag, true as may_send, cast(null as varchar)
            from {EMAILS} as due
            where due.status = 'planned'
                and not exists (select 1 from {SCHEMA}.send_ledger as ledger
                                where ledger.message_key = due.message_key and ledger.status <> 'withdrawn')
            order by due.due_at, due.message_key
        """, [])

    def _leftovers(self) -> list[Message]:
        """Rows an earlier run left `sending`, of as many tags as this run may look up, oldest first, with
        what dbt says of them now (template, params, may_send and why not) and every tag they went under."""
        messages = list(self._stream(f"""
            with tags as (
                select coalesce(send_tag, message_key) as tag, min(sent_at) as first_sent_at
                from {SCHEMA}.send_ledger
                where status = 'sending'
                group by 1
                order by first_sent_at, tag
                limit ?
            )
            select ledger.message_key, ledger.email, ledger.sequence, ledger.step, emails.template_id,
                   emails.params, emails.recipient_name, ledger.send_tag, coalesce(emails.may_send, false),
                   case when emails.message_key is null then ? else emails.reason end
            from tags
            join {SCHEMA}.send_ledger as ledger
                on coalesce(ledger.send_tag, ledger.message_key) = tags.tag and ledger.status = 'sending'
            left join {EMAILS} as emails on emails.message_key = ledger.message_key
            order by tags.first_sent_at, tags.tag, ledger.message_key
        """, [max(self.lookups_left, 0), NOT_A_MESSAGE]))
        attempts: dict[str, list[tuple[str, datetime]]] = {}
        for key, tag, attempted_at in self.con.execute(
                f"""select message_key, send_tag, attempted_at from {SCHEMA}.send_attempts
                where message_key in (select unnest(?::varchar[])) order by attempted_at""",
                [[message.key for message in messages]]).fetchall():
            attempts.setdefault(key, []).append((tag, attempted_at))
        return [replace(message, tags=tuple(tag for tag, _ in attempts.get(message.key, [])),
                        attempted_at=max((at for _, at in attempts.get(message.key, [])), default=None))
                for message in messages]

    def _stream(self, sql: str, parameters: list[Any]) -> Iterator[Message]:
        cursor = self.con.cursor()
        try:
            rows = cursor.execute(sql, parameters)
            while chunk := rows.fetchmany(BATCH_SIZE):
                for key, email, sequence, step, template_id, params, name, send_tag, may_send, hold in chunk:
                    yield Message(key, email, sequence, int(step),
                                  None if template_id is None else int(template_id),
                                  json.loads(params) if params else {}, name, send_tag,
                                  may_send=bool(may_send), hold=hold)
        finally:
            cursor.close()

    # ----- sending -----------------------------------------------------------------------------------

    def _send(self, batch: Sequence[Message], *, new: bool) -> list[Message]:
        """Send one batch under the ledger protocol, halving it while Brevo rejects it; returns the messages
        whose answer was lost, with the tag they went out under.

        new: first sends, whose rows are inserted; else `sending` keys sent again, whose rows are re-tagged
        and re-stamped. Every call is written ahead under a tag of its own, halves included, so a process
        killed anywhere leaves each row with the tag of the last call that may have carried it, and the
        attempts table with all of them."""
        parts = [list(batch)]
        insert = new
        self.result.batches += new
        lost: list[Message] = []
        while parts:
            tag = f"{TAG_PREFIX}{uuid.uuid4().hex}"
            attempted_at = utc_now()
            part = [replace(message, send_tag=tag, tags=(*message.tags, tag), attempted_at=attempted_at)
                    for message in parts.pop(0)]
            template_id = part[0].template_id
            if template_id is None:
                raise ValueError(f"message {part[0].key} has no template to send")
            self._write_ahead(part, tag, attempted_at, insert)
            insert = False
            try:
                message_ids = self.client.send_batch(template_id, [(m.recipient, m.params) for m in part],
                                                     tags=[tag, part[0].sequence])
            except MaybeApplied:
                lost += part
                continue
            except ApiError as error:
                if not _rejects_message(error):
                    # Not sent: the account is refused, rate limited past the retries, or the request never
                    # left; neither this call nor the parts after it went out.
                    self._settle([], [], part + [message for rest in parts for message in rest], again=not new)
                    raise
                if len(part) == 1:
                    self._settle([], [(part[0], str(error))], [], again=not new)
                else:
                    half = len(part) // 2
                    parts[:0] = [part[:half], part[half:]]
                continue
            self._settle(list(zip(part, message_ids, strict=True)), [], [], again=not new)
        return lost

    def _write_ahead(self, part: Sequence[Message], tag: str, attempted_at: datetime, insert: bool) -> None:
        """Commit the call's rows `sending` under its tag, and the attempt, before the call is made. A key
        withdrawn earlier and planned again (a resumed sequence) replaces its withdrawn row."""
        keys = [m.key for m in part]
        with transaction(self.con):
            if insert:
                self.con.execute(f"delete from {SCHEMA}.send_ledger where status = 'withdrawn' "
                                 "and message_key in (select unnest(?::varchar[]))", [keys])
                self.con.execute(
                    f"""insert into {SCHEMA}.send_ledger (message_key, email, sequence, step, status, sent_at,
                            provider_message_id, send_tag)
                    select unnest(?::varchar[]), unnest(?::varchar[]), unnest(?::varchar[]),
                           unnest(?::integer[]), 'sending', ?, null, ?""",
                    [keys, [m.email for m in part], [m.sequence for m in part], [m.step for m in part],
                     self.sent_at, tag])
            else:
                self.con.execute(
                    f"""update {SCHEMA}.send_ledger set send_tag = ?, sent_at = ?
                    where status = 'sending' and message_key in (select unnest(?::varchar[]))""",
                    [tag, self.sent_at, keys])
            self.con.execute(f"insert into {SCHEMA}.send_attempts (message_key, send_tag, attempted_at) "
                             "select unnest(?::varchar[]), ?, ?", [keys, tag, attempted_at])

    def _settle(self, sent: Sequence[tuple[Message, str]], rejected: Sequence[tuple[Message, str]],
                not_sent: Sequence[Message], *, again: bool) -> None:
        """One transaction: sent keys -> `sent` with their messageIds, rejected and unsent keys out of the
        ledger (planned again next run), and the log rows. again: the messages went after a lost answer."""
        resent = "sent again: no email under its earlier tags in Brevo's event log" if again else None
        with transaction(self.con):
            if sent:
                self._mark_sent([(m, message_id) for m, message_id in sent])
            gone = [m.key for m, _ in rejected] + [m.key for m in not_sent]
            if gone:
                self.con.execute(f"delete from {SCHEMA}.send_ledger where status = 'sending' "
                                 "and message_key in (select unnest(?::varchar[]))", [gone])
            self._log([LogRow(m.key, "send", "sent", resent, m.fields()) for m, _ in sent]
                      + [LogRow(m.key, "send", "rejected", reason, m.fields()) for m, reason in rejected])
        for message, _ in sent:
            self._count_sent(message)
        for message, reason in rejected:
            self.result.reject(message.key, reason)

    def _mark_sent(self, rows: Sequence[tuple[Message, str]]) -> None:
        self.con.execute(
            f"""update {SCHEMA}.send_ledger as ledger
            set status = 'sent', provider_message_id = answers.message_id
            from (select unnest(?::varchar[]) as message_key, unnest(?::varchar[]) as message_id) as answers
            where ledger.message_key = answers.message_key and ledger.status = 'sending'""",
            [[m.key for m, _ in rows], [message_id for _, message_id in rows]])

    def _count_sent(self, message: Message) -> None:
        self.result.sent += 1
        self.result.per_step[message.step_label] += 1
        if len(self.result.preview) < self.preview_limit:
            self.result.preview.append(message)

    # ----- reconciliation ----------------------------------------------------------------------------

    def _reconcile(self, messages: Sequence[Message]) -> None:
        """Settle uncertain messages in rounds: wait for Brevo's log, look up every tag each one went under,
        confirm what is found, withdraw what the rules no longer allow, send the rest again (see module doc)."""
        pending = list(messages)
        reasons: dict[str, str] = {}
        for round_number in range(1, self.rounds + 1):
            if not pending:
                return
            self._wait_to_settle(pending)
            found, problem = self._look_up({tag for message in pending for tag in message.lookup_tags})
            unknown = [m for m in pending if not set(m.lookup_tags) <= found.keys()]
            reasons.update((m.key, problem) for m in unknown)
            missing = self._confirm_found([m for m in pending if set(m.lookup_tags) <= found.keys()], found)
            self._withdraw([m for m in missing if not m.may_send or m.template_id is None])
            again = [m for m in missing if m.may_send and m.template_id is not None]
            if unknown or round_number == self.rounds:
                # No send may follow the last look-up, nor a look-up that failed or was over budget (the
                # run stops looking there).
                stopped = ("not in Brevo's event log, and not sent again: this run stopped looking up"
                           if unknown else f"not in Brevo's event log after {round_number} look-ups")
                reasons.update((m.key, stopped) for m in again)
                self._unconfirmed(unknown + again, reasons)
                return
            self.result.resent += len(again)
            lost = self._send_again(again)
            reasons.update((m.key, "the answer to a new send was lost too") for m in lost)
            pending = lost

    def _wait_to_settle(self, messages: Sequence[Message]) -> None:
        """Sleep until `settle_seconds` after the latest attempt among the messages; one with no recorded
        attempt (left by an older version) counts as attempted when this run started."""
        latest = max((m.attempted_at or self.result.started_at for m in messages), default=None)
        if latest is None:
            return
        wait = self.settle_seconds - (utc_now() - latest).total_seconds()
        if wait > 0:
            self.sleep(wait)

    def _look_up(self, tags: set[str]) -> tuple[dict[str, list[tuple[str, str]]], str]:
        """(messageId, email) of the emails carrying each tag, for the tags this run could look up, and why
        the others were not looked up."""
        found: dict[str, list[tuple[str, str]]] = {}
        for tag in sorted(tags):
            if self.lookups_left <= 0:
                return found, "not looked up: this run's budget of event-log look-ups is spent"
            self.lookups_left -= 1
            try:
                found[tag] = self.client.find_sent_to(tag)
            except ApiError as error:
                if error.status in ACCOUNT_ERRORS:
                    raise
                return found, f"not looked up: the event-log look-up failed: {error}"
        return found, ""

    def _confirm_found(self, messages: Sequence[Message],
                       found: Mapping[str, Sequence[tuple[str, str]]]) -> list[Message]:
        """Mark `sent` (outcome `reconciled`) the messages whose email Brevo has under any of their tags, in
        one transaction; returns the others. A batch tag is matched by recipient; a message-key tag (the
        per-message version) by any email."""
        confirmed: list[tuple[Message, str]] = []
        log: list[LogRow] = []
        missing: list[Message] = []
        for message in messages:
            ids = [message_id for tag in message.lookup_tags for message_id, address in found[tag]
                   if address == message.address or tag == message.key]
            if not ids:
                missing.append(message)
                continue
            confirmed.append((message, ids[0]))
            copies = f"{len(ids)} emails carry its tags" if len(ids) > 1 else None
            log.append(LogRow(message.key, "send", "reconciled", copies, message.fields()))
        if confirmed:
            with transaction(self.con):
                self._mark_sent(confirmed)
                self._log(log)
            self.result.reconciled += len(confirmed)
        return missing

    def _withdraw(self, messages: Sequence[Message]) -> None:
        """Close, unsent, the messages Brevo has no email of and the rules no longer allow."""
        if not messages:
            return
        reasons = [f"not sent again: {m.hold or 'the rules no longer send it'}" for m in messages]
        with transaction(self.con):
            self.con.execute(
                f"""update {SCHEMA}.send_ledger as ledger set status = 'withdrawn', reason = closed.reason
                from (select unnest(?::varchar[]) as message_key, unnest(?::varchar[]) as reason) as closed
                where ledger.message_key = closed.message_key and ledger.status = 'sending'""",
                [[m.key for m in messages], reasons])
            self._log([LogRow(m.key, "send", "withdrawn", reason, m.fields())
                       for m, reason in zip(messages, reasons, strict=True)])
        self.result.withdrawn += len(messages)
        self.result.withdrawal_reasons.update(m.hold or "the rules no longer send it" for m in messages)

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
        insert_log(self.con, self.result.run_id, DESTINATION, OBJECT, rows, utc_now())

    def _unconfirmed(self, messages: Sequence[Message], reasons: Mapping[str, str]) -> None:
        if not messages:
            return
        with transaction(self.con):
            self._log([LogRow(m.key, "send", "unconfirmed", reasons.get(m.key) or "answer lost", m.fields())
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


def _clock_value(as_of: datetime | None) -> datetime:
    """The run's clock as DuckDB stores it: UTC without a zone (a naive `as_of` is taken as UTC)."""
    return utc_now() if as_of is None else utc_naive(as_of)
