"""The diff-based sync engine: desired state in, only adds and changed fields out.

A sync model (a dbt table such as `sync.sync_crm__contacts`) holds one row per destination object, keyed by
one or more columns; the other columns are the payload, and null means "do not write this field". The engine
joins the model to `activations.sync_state` inside DuckDB and streams out only the rows whose hash differs
from the one the destination last accepted, so unchanged rows never reach Python and a run with nothing
changed makes no write call. Each row is an add (no state yet) or a change (only the fields that differ from
the accepted payload are sent); with `remove_missing`, keys that left the model are removals.

Rows go to a `Destination` in batches of its limit. State is written only for rows the destination
accepted, in the same transaction as their `sync_log` rows and only after the destination answered, so a
rejected row stays dirty and is retried on the next run, and a crash loses at most the batch in flight
(which the next run sends again: destination writes are upserts by key). A dry run computes the same diff,
calls no destination and writes no state: it records the run in `sync_runs` (dry_run = true) and each row it
would send in `sync_log` with outcome `would_send` and the fields, and returns a preview of them.

Destination-neutral: the HubSpot and Brevo clients are wrapped by small adapters that implement
`Destination`. Nothing here knows Dagster; `SyncResult.metadata()` gives it the numbers to show, in the shape
every activation run shares (activations/runs.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import duckdb

from activations.runs import RunResult, recorded_run
from activations.state import (
    SCHEMA,
    Accepted,
    LogRow,
    StateStore,
    migrate,
    sql_literal,
    utc_now,
)

Action = Literal["add", "change", "remove"]

READ_ROWS = 10_000
"""Rows fetched from DuckDB at a time: bounds memory whatever the model's size."""

REFRESH_ROWS = 10_000
"""State refreshes (no write needed) buffered before they are committed on their own."""


@dataclass(frozen=True)
class Change:
    """One row to write: `fields` are the non-null payload fields that differ from the accepted state.

    `key` is the state key (the key column's text, or a JSON array of the key columns' texts when the key
    has several columns); `key_values` names them, e.g. {"email": ..., "list_name": ...}.
    """

    key: str
    key_values: Mapping[str, str]
    action: Action
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Outcome:
    """The destination's answer for one row: accepted, or rejected with the destination's own reason."""

    key: str
    accepted: bool
    reason: str | None = None


class Destination(Protocol):
    """One object in one destination (e.g. HubSpot contacts), as the engine drives it.

    `write` gets at most `batch_size` changes, either upserts (adds and changes together, as batch upsert
    APIs take them) or removals, never both, and returns one outcome per change (by key); it
    raises only when it cannot tell what happened (the engine then records the run as failed and leaves the
    batch dirty). `api_calls` is a running count of calls per endpoint ("METHOD /path/template").
    """

    name: str
    object: str
    batch_size: int

    def write(self, changes: Sequence[Change]) -> Sequence[Outcome]: ...

    def api_calls(self) -> Mapping[str, int]: ...


@dataclass(frozen=True)
class SyncObject:
    """Where a destination object's desired state lives and how to diff it.

    model: the sync model's relation, e.g. "sync.sync_crm__contacts".
    keys: the key column(s); every other column is payload.
    create_only: send only keys with no state yet (objects that never change once created, e.g. notes).
    remove_missing: keys in the state but no longer in the model are sent as removals (e.g. list members).
    batch_by: a key column whose value a batch never mixes (e.g. list_name: one list per API call).
    """

    model: str
    keys: tuple[str, ...]
    create_only: bool = False
    remove_missing: bool = False
    batch_by: str | None = None

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a sync object needs at least one key column")
        if self.batch_by is not None and self.batch_by not in self.keys:
            raise ValueError("batch_by must be one of the key columns")


@dataclass
class SyncResult(RunResult[Change]):
    """What a sync did: the shared numbers (activations/runs.py), with the writes by kind and how many of the
    rows sent the destination accepted."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    accepted: int = 0

    @property
    def changed(self) -> int:
        """Rows that needed a write: adds, changes and removals."""
        return self.added + self.updated + self.removed

    def counts(self) -> dict[str, Any]:
        return {"changed": self.changed, "added": self.added, "updated": self.updated, "removed": self.removed,
                "accepted": self.accepted, "write_calls": sum(self.api_calls.values())}


@dataclass
class _Pending:
    change: Change
    state: Accepted


def sync(con: duckdb.DuckDBPyConnection, source: SyncObject, destination: Destination, *,
         dry_run: bool = False, preview_limit: int = 1000, as_of: datetime | None = None) -> SyncResult:
    """Diff `source` against the accepted state and send the difference to `destination`.

    Records the run in activations.sync_runs (status ok, partial when some rows were rejected, failed when
    an exception stopped it: the exception is re-raised after the accepted batches were kept), with `as_of`,
    the moment the model was computed for (default: now).
    """
    if destination.batch_size < 1:
        raise ValueError("a destination's batch_size must be at least 1")
    migrate(con)
    result = SyncResult(destination=destination.name, object=destination.object, dry_run=dry_run)
    with recorded_run(con, result, destination.api_calls, as_of):
        _Run(con, source, destination, result, preview_limit).execute()
    return result


class _Run:
    """One sync pass: the SQL diff, streamed through batches to the destination and into the state."""

    def __init__(self, con: duckdb.DuckDBPyConnection, source: SyncObject, destination: Destination,
                 result: SyncResult, preview_limit: int) -> None:
        self.con = con
        self.source = source
        self.destination = destination
        self.result = result
        self.preview_limit = preview_limit
        self.store = StateStore(con, destination.name, destination.object)
        self.relation = _relation(source.model)
        columns = [column[0] for column in con.execute(f"select * from {self.relation} limit 0").description]
        missing = [key for key in source.keys if key not in columns]
        if missing:
            raise ValueError(f"{source.model} has no key column {', '.join(missing)}")
        self.payload_columns = [column for column in columns if column not in source.keys]
        self.refreshes: list[Accepted] = []

    def execute(self) -> None:
        self._check_keys()
        self._send(self._upserts())
        if self.source.remove_missing:
            self._send(self._removals())
        self._commit_refreshes()

    def _check_keys(self) -> None:
        """Count the rows, and refuse null or duplicate keys before anything is sent."""
        null_key = " or ".join(f"{_quote(key)} is null" for key in self.source.keys)
        considered, null_keys, distinct = self.con.execute(
            f"select count(*), count(*) filter (where {null_key}), count(distinct {self._key_sql()}) "
            f"from {self.relation}"
        ).fetchone()
        self.result.considered = considered
        if null_keys:
            raise ValueError(f"{self.source.model}: {null_keys} rows have a null key; nothing was synced")
        if distinct != considered:
            raise ValueError(
                f"{self.source.model}: {considered - distinct} rows repeat a key; nothing was synced")

    def _key_sql(self) -> str:
        texts = [f"cast({_quote(key)} as varchar)" for key in self.source.keys]
        if len(texts) == 1:
            return texts[0]
        return f"cast(json_array({', '.join(texts)}) as varchar)"

    def _payload_sql(self) -> str:
        if not self.payload_columns:
            return "'{}'"
        pairs = ", ".join(f"{sql_literal(column)}, {_quote(column)}" for column in self.payload_columns)
        return f"cast(json_object({pairs}) as varchar)"

    def _group_sql(self, key_column: str) -> str:
        """The batch_by value, from the model's column or, for state rows, from their key text."""
        if self.source.batch_by is None:
            return "null"
        if len(self.source.keys) == 1:
            return key_column
        return f"json_extract_string({key_column}, '$[{self.source.keys.index(self.source.batch_by)}]')"

    def _upserts(self) -> Iterator[tuple[_Pending, str | None]]:
        dirty = "state.key is null" if self.source.create_only else (
            "state.key is null or state.payload_hash is distinct from desired.payload_hash")
        group = "null" if self.source.batch_by is None else f"cast({_quote(self.source.batch_by)} as varchar)"
        sql = f"""
            with desired as (
                select key, payload, md5(payload) as payload_hash, batch_group
                from (select {self._key_sql()} as key, {self._payload_sql()} as payload,
                             {group} as batch_group
                      from {self.relation})
            )
            select desired.key, desired.payload, desired.payload_hash, state.payload, state.key is null,
                   desired.batch_group
            from desired
            left join (select key, payload_hash, payload from {SCHEMA}.sync_state
                       where destination = ? and object = ?) as state
                on state.key = desired.key
            where {dirty}
            {"order by desired.batch_group" if self.source.batch_by else ""}
        """
        for key, payload, payload_hash, synced, is_new, batch_group in self._stream(sql):
            desired = {name: value for name, value in json.loads(payload).items() if value is not None}
            if is_new:
                yield _Pending(Change(key, self._key_values(key), "add", desired),
                               Accepted(key, payload_hash, desired, is_new=True)), batch_group
                continue
            held = json.loads(synced) if synced else {}
            fields = {name: value for name, value in desired.items() if not _same(held.get(name), value)}
            state = Accepted(key, payload_hash, {**held, **desired}, is_new=False)
            if fields:
                yield _Pending(Change(key, self._key_values(key), "change", fields), state), batch_group
            elif not self.result.dry_run:
                # only fields that went null changed: nothing to write, the destination keeps its values
                self._refresh(state)

    def _removals(self) -> Iterator[tuple[_Pending, str | None]]:
        sql = f"""
            select state.key, state.payload_hash, {self._group_sql('state.key')} as batch_group
            from {SCHEMA}.sync_state as state
            where state.destination = ? and state.object = ?
                and not exists (select 1 from {self.relation} as desired where {self._key_sql()} = state.key)
            {"order by batch_group" if self.source.batch_by else ""}
        """
        for key, payload_hash, batch_group in self._stream(sql):
            yield _Pending(Change(key, self._key_values(key), "remove", {}),
                           Accepted(key, payload_hash, {}, is_new=False)), batch_group

    def _stream(self, sql: str) -> Iterator[tuple[Any, ...]]:
        """Rows of the diff, a chunk at a time, on a cursor of its own so that state writes can interleave."""
        cursor = self.con.cursor()
        try:
            rows = cursor.execute(sql, [self.destination.name, self.destination.object])
            while chunk := rows.fetchmany(READ_ROWS):
                yield from chunk
        finally:
            cursor.close()

    def _key_values(self, key: str) -> dict[str, str]:
        if len(self.source.keys) == 1:
            return {self.source.keys[0]: key}
        return dict(zip(self.source.keys, json.loads(key), strict=True))

    def _send(self, pending: Iterator[tuple[_Pending, str | None]]) -> None:
        batch: list[_Pending] = []
        batch_group: str | None = None
        for item, group in pending:
            if batch and (len(batch) == self.destination.batch_size or group != batch_group):
                self._flush(batch)
                batch = []
            batch.append(item)
            batch_group = group
            self._count(item.change)
        if batch:
            self._flush(batch)

    def _count(self, change: Change) -> None:
        if change.action == "add":
            self.result.added += 1
        elif change.action == "change":
            self.result.updated += 1
        else:
            self.result.removed += 1
        if len(self.result.preview) < self.preview_limit:
            self.result.preview.append(change)

    def _flush(self, batch: list[_Pending]) -> None:
        at = utc_now()
        self.result.batches += 1
        if self.result.dry_run:
            log = [LogRow(p.change.key, p.change.action, "would_send", None, p.change.fields) for p in batch]
            self.store.commit(at, self.result.run_id, [], [], log)
            return
        outcomes = self.destination.write([pending.change for pending in batch])
        self.result.sent += len(batch)
        by_key = {outcome.key: outcome for outcome in outcomes}
        accepted: list[Accepted] = []
        removed: list[str] = []
        log: list[LogRow] = []
        for pending in batch:
            change = pending.change
            outcome = by_key.get(change.key) or Outcome(change.key, False,
                                                        "the destination reported no outcome")
            if outcome.accepted:
                self.result.accepted += 1
                if change.action == "remove":
                    removed.append(change.key)
                else:
                    accepted.append(pending.state)
                log.append(LogRow(change.key, change.action, "accepted", None, change.fields))
            else:
                reason = outcome.reason or "rejected without a reason"
                self.result.reject(change.key, reason)
                log.append(LogRow(change.key, change.action, "rejected", reason, change.fields))
        self.store.commit(at, self.result.run_id, accepted + self.refreshes, removed, log)
        self.refreshes = []

    def _refresh(self, state: Accepted) -> None:
        self.refreshes.append(state)
        if len(self.refreshes) >= REFRESH_ROWS:
            self._commit_refreshes()

    def _commit_refreshes(self) -> None:
        if self.refreshes:
            self.store.commit(utc_now(), self.result.run_id, self.refreshes, [], [])
            self.refreshes = []


def _same(held: Any, desired: Any) -> bool:
    """Equal JSON values of the same type (True is not 1 for a destination)."""
    return type(held) is type(desired) and held == desired


def _relation(model: str) -> str:
    return ".".join(_quote(part) for part in model.split("."))


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
