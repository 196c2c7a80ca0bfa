"""Lifecycle emails through Brevo's transactional API, each message key sent at most once, ever (SPEC §3.9.2,
§6.2): the rows of `marts.messages_due`, one `POST /smtp/email` per message.

The ledger (`activations.send_ledger`) is written ahead of the call. Before each send a row `sending` is
committed (sent_at = the run's clock, the simulated `as_of` when there is one: dbt compares it with
cancellations; a send again re-stamps it); Brevo's 201 turns it `sent` with the messageId. A definitive
rejection of the message (a 4xx other than 429 and the account-level 401/402/403) deletes the row, so the
message stays planned and is retried next run like a rejected sync row, and its reason goes to
`activations.sync_log`. An account-level refusal, or a send that never left, deletes the row too and stops
the run (status failed). A lost answer (timeout, dropped connection, 5xx: `MaybeApplied`)
leaves the row `sending`, and so does a process killed during the call. dbt counts any ledger row as
handled, so a `sending` key is never planned again; this module alone settles it.

Reconciliation: every email carries its message key as its first tag (Brevo reports the first tag as an
event's `tag`) and its sequence name as the second. At the start of a run (keys a crashed run left
`sending`) and at its end (this run's lost answers), each `sending` key is looked up in Brevo's event log
(`find_sent`): found -> `sent` with that messageId (outcome `reconciled`); not found -> sent again by the
same protocol, with its template and params from `marts.fct_messages` (messages_due no longer lists a key
that has a ledger row). Each key gets at most `rounds` look-ups per run and the last one is never followed
by a send; a key still unknown stays `sending` (outcome `unconfirmed`, run status `partial`) for the next
run to look up again.

What a user should know about Brevo's event log, which this relies on:
- It lags. Brevo records an accepted email's `requests` event asynchronously, usually within seconds but
  sometimes later. A look-up that comes too early reads "not found", and the email goes out a second time.
  So each round of look-ups first waits until `settle_seconds` have passed since the last lost answer (for
  keys left by an earlier process: since this run started). Raise it if your account's log lags more; a
  duplicate needs both a lost answer and an event that is still missing after that time.
- Look-ups count against the quota of "other /smtp/*" endpoints (300 requests per hour on the general
  plan), so a run makes at most `lookup_budget` of them; keys beyond it stay `sending` until a later run.
- Brevo documents no idempotency key for `/smtp/email` (api_contracts.md §2.10 has none), so the ledger and
  the tag look-up are the whole protection against a second copy.

Dry run: no API call and no ledger write; the run is recorded in `sync_runs` (dry_run = true), each message
it would send is logged `would_send` in `sync_log`, and the result carries the counts per sequence and step
and a preview. Messages are streamed from DuckDB a chunk at a time.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import duckdb

from activations.http import ApiError, MaybeApplied, TransportStats
from activations.state import SCHEMA, LogRow, ensure_tables, finish_run, insert_log, start_run

DESTINATION = "brevo"
OBJECT = "emails"
MESSAGES_DUE = "marts.messages_due"
MESSAGES = "marts.fct_messages"
CONTACTS = "marts.dim_contacts"

READ_ROWS = 1_000
"""Messages fetched from DuckDB at a time."""
ROUNDS = 3
"""Look-ups of one uncertain key per run (with a send between two look-ups when it was not found)."""
SETTLE_SECONDS = 5.0
"""How long Brevo's event log is given to show an email whose answer was lost before it is looked for."""
LOOKUP_BUDGET = 250
"""Event-log look-ups per run: under the hourly quota of Brevo's "other /smtp/*" endpoints (300)."""
PREVIEW_ROWS = 1000
REJECTION_SAMPLE = 100
ACCOUNT_ERRORS = (401, 402, 403)
SEND_CHUNK = 100
"""First sends per ledger transaction pair: the `sending` rows of a chunk are committed before its calls."""
"""Bad key, no credits, no permission: nothing can be sent, so the run stops instead of rejecting each message."""

SendOutcome = Literal["sent", "rejected", "uncertain"]


class Mailer(Protocol):
    """What sending needs from the Brevo client (activations.brevo.BrevoClient)."""

    @property
    def stats(self) -> TransportStats: ...

    def send_transactional(self, to: str | Mapping[str, str], template_id: int,
                           params: Mapping[str, Any] | None = None, tags: Sequence[str] = ()) -> str: ...

    def find_sent(self, tag: str) -> list[str]: ...


@dataclass(frozen=True)
class Message:
    """One email: `template_id` is None for a `sending` key that is no longer in marts.fct_messages (it can
    be looked up, not sent again)."""

    key: str
    email: str
    sequence: str
    step: int
    template_id: int | None
    params: Mapping[str, Any]
    name: str | None = None

    @property
    def recipient(self) -> str | dict[str, str]:
        return {"email": self.email, "name": self.name} if self.name else self.email

    @property
    def tags(self) -> list[str]:
        """The message key first: it is what reconciliation looks for (Brevo's event `tag` is the first)."""
        return [self.key, self.sequence]

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
    ensure_tables(con)
    result = SendResult(run_id=uuid.uuid4().hex, dry_run=dry_run, started_at=_now())
    start_run(con, result.run_id, DESTINATION, OBJECT, result.started_at, dry_run)
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
        lost: list[Message] = []
        chunk: list[Message] = []
        for message in self._due():
            self.result.considered += 1
            chunk.append(message)
            if len(chunk) == SEND_CHUNK:
                lost += self._send_chunk(chunk)
                chunk = []
        lost += self._send_chunk(chunk)
        self._reconcile(lost)

    # ----- reading -----------------------------------------------------------------------------------

    def _due(self) -> Iterator[Message]:
        """messages_due without the keys the ledger already has (messages_due is stale when dbt did not
        run since the last send), oldest first."""
        yield from self._stream(f"""
            select due.message_key, due.email, due.sequence, due.step, due.template_id, due.params,
                   {_NAME_SQL}
            from {MESSAGES_DUE} as due
            left join {CONTACTS} as contacts on contacts.email = due.email
            where not exists (select 1 from {SCHEMA}.send_ledger as ledger
                              where ledger.message_key = due.message_key)
            order by due.due_at, due.message_key
        """, [])

    def _leftovers(self) -> list[Message]:
        """Keys an earlier run left `sending`, as many as this run may look up."""
        return list(self._stream(f"""
            select ledger.message_key, ledger.email, ledger.sequence, ledger.step, messages.template_id,
                   messages.params, {_NAME_SQL}
            from {SCHEMA}.send_ledger as ledger
            left join {MESSAGES} as messages on messages.message_key = ledger.message_key
            left join {CONTACTS} as contacts on contacts.email = ledger.email
            where ledger.status = 'sending'
            order by ledger.sent_at, ledger.message_key
            limit ?
        """, [self.lookups_left]))

    def _stream(self, sql: str, parameters: list[Any]) -> Iterator[Message]:
        cursor = self.con.cursor()
        try:
            rows = cursor.execute(sql, parameters)
            while chunk := rows.fetchmany(READ_ROWS):
                for key, email, sequence, step, template_id, params, name in chunk:
                    yield Message(key, email, sequence, int(step),
                                  None if template_id is None else int(template_id),
                                  json.loads(params) if params else {}, name)
        finally:
            cursor.close()

    # ----- sending -----------------------------------------------------------------------------------

    def _resend(self, message: Message) -> SendOutcome:
        """Send a `sending` key again (it was looked for and not found), re-stamped with this run's clock;
        re-raises what leaves the email's fate unknowable here."""
        if message.template_id is None:
            raise ValueError(f"message {message.key} has no template to send")
        with self._transaction():
            self.con.execute(f"update {SCHEMA}.send_ledger set sent_at = ? "
                             "where message_key = ? and status = 'sending'", [self.sent_at, message.key])
        try:
            message_id = self.client.send_transactional(message.recipient, message.template_id,
                                                        message.params, tags=message.tags)
        except MaybeApplied:
            self.last_uncertain = time.monotonic()
            return "uncertain"
        except ApiError as error:
            if _rejects_message(error):
                self._settle_chunk([], [(message, str(error))], [])
                return "rejected"
            self._settle_chunk([], [], [message])
            raise
        self._settle_chunk([(message, message_id)], [], [])
        return "sent"

    def _send_chunk(self, chunk: Sequence[Message]) -> list[Message]:
        """First sends of up to SEND_CHUNK messages under the ledger protocol, with one ledger transaction
        before the calls and one after them (not two per message); returns those whose answer was lost.

        The `sending` rows are committed before the first call, so a process killed anywhere in the chunk
        leaves every key of it `sending`: the next run looks each up before sending it (at most SEND_CHUNK
        look-ups, within the per-run budget)."""
        if not chunk:
            return []
        if any(message.template_id is None for message in chunk):
            raise ValueError("a due message has no template to send")
        with self._transaction():
            self.con.execute(
                f"""insert into {SCHEMA}.send_ledger (message_key, email, sequence, step, status, sent_at,
                        provider_message_id)
                select unnest(?::varchar[]), unnest(?::varchar[]), unnest(?::varchar[]), unnest(?::integer[]),
                       'sending', ?, null""",
                [[m.key for m in chunk], [m.email for m in chunk], [m.sequence for m in chunk],
                 [m.step for m in chunk], self.sent_at])
        sent: list[tuple[Message, str]] = []
        rejected: list[tuple[Message, str]] = []
        lost: list[Message] = []
        not_sent: list[Message] = []
        try:
            for index, message in enumerate(chunk):
                try:
                    sent.append((message, self.client.send_transactional(
                        message.recipient, message.template_id, message.params, tags=message.tags)))
                except MaybeApplied:
                    self.last_uncertain = time.monotonic()
                    lost.append(message)
                except ApiError as error:
                    if not _rejects_message(error):
                        # Not sent: the account is refused, rate limited past the retries, or the request never
                        # left; neither it nor the rest of the chunk went out.
                        not_sent = list(chunk[index:])
                        raise
                    rejected.append((message, str(error)))
        finally:
            self._settle_chunk(sent, rejected, not_sent)
        return lost

    def _settle_chunk(self, sent: Sequence[tuple[Message, str]], rejected: Sequence[tuple[Message, str]],
                      not_sent: Sequence[Message]) -> None:
        """One transaction: sent keys -> `sent` with their messageIds, rejected and unsent keys out of the
        ledger (planned again next run), and the log rows."""
        with self._transaction():
            if sent:
                self.con.execute(
                    f"""update {SCHEMA}.send_ledger as ledger
                    set status = 'sent', provider_message_id = answers.message_id
                    from (select unnest(?::varchar[]) as message_key, unnest(?::varchar[]) as message_id)
                        as answers
                    where ledger.message_key = answers.message_key""",
                    [[m.key for m, _ in sent], [message_id for _, message_id in sent]])
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

    def _reconcile(self, messages: Sequence[Message]) -> None:
        """Look each uncertain key up in Brevo's event log; send again the ones not there (see module doc)."""
        pending = list(messages)
        reasons: dict[str, str] = {}
        for round_number in range(1, self.rounds + 1):
            if not pending:
                return
            wait = self.settle_seconds - (time.monotonic() - self.last_uncertain)
            if wait > 0:
                self.sleep(wait)
            still: list[Message] = []
            for index, message in enumerate(pending):
                problem, stop = self._look_up(message, last_round=round_number == self.rounds)
                if problem is None:
                    continue
                reasons[message.key] = problem
                still.append(message)
                if stop:
                    reasons.update((m.key, problem) for m in pending[index + 1:])
                    still.extend(pending[index + 1:])
                    self._unconfirmed(still, reasons)
                    return
            pending = still
        if pending:
            self._unconfirmed(pending, reasons)

    def _look_up(self, message: Message, *, last_round: bool) -> tuple[str | None, bool]:
        """Settle one key: (None, False) when it is no longer uncertain (sent, or rejected when sent again),
        else (why it still is, whether this run must stop looking keys up)."""
        if self.lookups_left <= 0:
            return "not looked up: this run's budget of event-log look-ups is spent", True
        self.lookups_left -= 1
        try:
            found = self.client.find_sent(message.key)
        except ApiError as error:
            return f"not looked up: the event-log look-up failed: {error}", True
        if found:
            copies = f"{len(found)} emails carry this key" if len(found) > 1 else None
            self._confirm(message, found[0], "reconciled", copies)
            self.result.reconciled += 1
            return None, False
        if message.template_id is None:
            return f"not in Brevo's event log, and no longer in {MESSAGES} to be sent again", False
        if last_round:
            return f"not in Brevo's event log after {self.rounds} look-ups", False
        if self._resend(message) == "uncertain":
            return "the answer to a new send was lost too", False
        return None, False

    # ----- ledger and log ----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.con.execute("begin transaction")
        try:
            yield
        except BaseException:
            self.con.execute("rollback")
            raise
        self.con.execute("commit")

    def _log(self, rows: Sequence[LogRow]) -> None:
        insert_log(self.con, self.result.run_id, DESTINATION, OBJECT, rows, _now())

    def _confirm(self, message: Message, message_id: str, outcome: str, reason: str | None) -> None:
        with self._transaction():
            self.con.execute(f"update {SCHEMA}.send_ledger set status = 'sent', provider_message_id = ? "
                             "where message_key = ?", [message_id, message.key])
            self._log([LogRow(message.key, "send", outcome, reason, message.fields())])

    def _unconfirmed(self, messages: Sequence[Message], reasons: Mapping[str, str]) -> None:
        with self._transaction():
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
            if len(batch) >= READ_ROWS:
                self._commit_log(batch)
                batch = []
        self._commit_log(batch)

    def _commit_log(self, rows: Sequence[LogRow]) -> None:
        if rows:
            with self._transaction():
                self._log(rows)


def _rejects_message(error: ApiError) -> bool:
    """A 4xx about this message (bad address, template, params), not about the account or the rate."""
    return error.status is not None and 400 <= error.status < 500 and error.status not in (429, *ACCOUNT_ERRORS)


_NAME_SQL = "nullif(trim(concat_ws(' ', contacts.first_name, contacts.last_name)), '') as name"


def _clock_value(as_of: datetime | None) -> datetime:
    """The run's clock as DuckDB stores it: UTC without a zone (a naive `as_of` is taken as UTC)."""
    if as_of is None:
        return _now()
    return as_of.astimezone(UTC).replace(tzinfo=None) if as_of.tzinfo else as_of


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
