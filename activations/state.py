"""The engine's warehouse tables: what each destination accepted, and what every run did.

`activations.sync_state` is the diff baseline: per destination, object and key, the payload the destination
last accepted (JSON text, the fields it holds as far as we know) and the hash of the desired row that produced
it. `activations.send_ledger` holds every lifecycle email handed to the provider, one row per message key
(status `sending` while its fate is unknown, then `sent`, or `withdrawn` with its reason when the provider
never got it and the rules no longer allow it; activations/sends.py), and `send_attempts` every tag it was
handed over under, with the wall-clock time of the attempt. `sync_runs` and `sync_log` are for analysts and
the operator: one row per run, one row per key sent (or that a dry run would send). `sync_runs.as_of` is the
moment a run computed for (its `--as-of`, else when it started): a real run older than the latest one would
push older state to a destination.

`TABLES` is the one definition of these tables. dbt reads them as sources (and stands in an empty relation
with the columns its yml declares while they do not exist yet; tests/activations/test_tables.py keeps that
yml equal to `TABLES`). A warehouse gets them, and an older warehouse the columns it lacks, from `migrate`:
ordered, idempotent steps, each recorded in `activations.schema_version` once applied.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

SCHEMA = "activations"

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "send_ledger": (
        ("message_key", "varchar"),
        ("email", "varchar"),
        ("sequence", "varchar"),
        ("step", "integer"),
        ("status", "varchar"),
        ("sent_at", "timestamp"),
        ("provider_message_id", "varchar"),
        ("send_tag", "varchar"),
        ("reason", "varchar"),
    ),
    "send_attempts": (
        ("message_key", "varchar"),
        ("send_tag", "varchar"),
        ("attempted_at", "timestamp"),
    ),
    "sync_state": (
        ("destination", "varchar"),
        ("object", "varchar"),
        ("key", "varchar"),
        ("payload_hash", "varchar"),
        ("synced_at", "timestamp"),
        ("payload", "varchar"),
    ),
    "sync_runs": (
        ("run_id", "varchar"),
        ("destination", "varchar"),
        ("object", "varchar"),
        ("started_at", "timestamp"),
        ("finished_at", "timestamp"),
        ("dry_run", "boolean"),
        ("considered", "bigint"),
        ("changed", "bigint"),
        ("sent", "bigint"),
        ("rejected", "bigint"),
        ("api_calls", "varchar"),
        ("status", "varchar"),
        ("error", "varchar"),
        ("as_of", "timestamp"),
    ),
    "sync_log": (
        ("run_id", "varchar"),
        ("destination", "varchar"),
        ("object", "varchar"),
        ("key", "varchar"),
        ("action", "varchar"),
        ("outcome", "varchar"),
        ("reason", "varchar"),
        ("fields", "varchar"),
        ("at", "timestamp"),
    ),
}


VERSION_TABLE = "schema_version"
"""One row per migration applied to this warehouse: its version, what it did and when."""


@dataclass(frozen=True)
class Migration:
    """One step of the tables' history. `statements` are idempotent (``if not exists``), so a step that runs
    on a warehouse that already has its change, or runs twice, changes nothing."""

    version: int
    description: str
    statements: tuple[str, ...]


def _create_table(table: str) -> str:
    column_list = ", ".join(f'"{name}" {kind}' for name, kind in TABLES[table])
    return f'create table if not exists "{SCHEMA}"."{table}" ({column_list})'


def _add_column(table: str, column: str) -> str:
    kind = dict(TABLES[table])[column]
    return f'alter table "{SCHEMA}"."{table}" add column if not exists "{column}" {kind}'


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the activation tables (a fresh warehouse gets them with every column)",
              tuple(_create_table(table) for table in TABLES)),
    Migration(2, "send_ledger.send_tag: the tag of the batch call that last carried the email",
              (_add_column("send_ledger", "send_tag"),)),
    Migration(3, "sync_state.payload: the accepted payload, to send only the fields that differ",
              (_add_column("sync_state", "payload"),)),
    Migration(4, "send_ledger.reason: why an email was withdrawn",
              (_add_column("send_ledger", "reason"),)),
    Migration(5, "sync_runs.as_of: the moment a run computed for",
              (_add_column("sync_runs", "as_of"),)),
)
"""Append a step for every change to `TABLES`: a new table is created by its own step, a new column added
by one (a fresh warehouse already has it from step 1, so the step changes nothing there)."""


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations this warehouse has not had yet, each in a transaction with its record; returns
    their versions. Called before the tables are read or written (each run of the activations, and before
    dbt builds), so a warehouse of any earlier version is brought up to date."""
    con.execute(f'create schema if not exists "{SCHEMA}"')
    con.execute(f'create table if not exists "{SCHEMA}"."{VERSION_TABLE}" '
                "(version integer, description varchar, applied_at timestamp)")
    current = con.execute(f'select coalesce(max(version), 0) from "{SCHEMA}"."{VERSION_TABLE}"').fetchone()[0]
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        with transaction(con):
            for statement in migration.statements:
                con.execute(statement)
            con.execute(f'insert into "{SCHEMA}"."{VERSION_TABLE}" values (?, ?, ?)',
                        [migration.version, migration.description, utc_now()])
        applied.append(migration.version)
    return applied


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One DuckDB transaction: committed when the block ends, rolled back when anything escapes it."""
    con.execute("begin transaction")
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


@dataclass(frozen=True)
class Accepted:
    """A key whose new state the destination accepted (or that needs no write): desired hash and payload."""

    key: str
    payload_hash: str
    payload: Mapping[str, Any]
    is_new: bool


@dataclass(frozen=True)
class LogRow:
    key: str
    action: str
    outcome: str
    reason: str | None
    fields: Mapping[str, Any] | None


class StateStore:
    """Writes one destination object's state and log rows; each `commit` is one transaction."""

    def __init__(self, con: duckdb.DuckDBPyConnection, destination: str, object_name: str) -> None:
        self.con = con
        self.destination = destination
        self.object = object_name

    def commit(self, at: datetime, run_id: str, accepted: Sequence[Accepted], removed: Sequence[str],
               log: Sequence[LogRow]) -> None:
        """Record accepted state, removed keys and their log rows in one transaction (crash-consistent)."""
        with transaction(self.con):
            self._insert_state([row for row in accepted if row.is_new], at)
            self._update_state([row for row in accepted if not row.is_new], at)
            self._delete_state(removed)
            self._insert_log(run_id, log, at)

    def _insert_state(self, rows: Sequence[Accepted], at: datetime) -> None:
        if not rows:
            return
        self.con.execute(
            f"""insert into "{SCHEMA}".sync_state (destination, object, key, payload_hash, synced_at, payload)
            select ?, ?, unnest(?::varchar[]), unnest(?::varchar[]), ?, unnest(?::varchar[])""",
            [self.destination, self.object, [row.key for row in rows], [row.payload_hash for row in rows], at,
             [dumps(row.payload) for row in rows]],
        )

    def _update_state(self, rows: Sequence[Accepted], at: datetime) -> None:
        if not rows:
            return
        self.con.execute(
            f"""update "{SCHEMA}".sync_state as state
            set payload_hash = new.payload_hash, payload = new.payload, synced_at = ?
            from (select unnest(?::varchar[]) as key, unnest(?::varchar[]) as payload_hash,
                         unnest(?::varchar[]) as payload) as new
            where state.destination = ? and state.object = ? and state.key = new.key""",
            [at, [row.key for row in rows], [row.payload_hash for row in rows],
             [dumps(row.payload) for row in rows], self.destination, self.object],
        )

    def _delete_state(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        self.con.execute(
            f"""delete from "{SCHEMA}".sync_state
            where destination = ? and object = ? and key in (select unnest(?::varchar[]))""",
            [self.destination, self.object, list(keys)],
        )

    def _insert_log(self, run_id: str, rows: Sequence[LogRow], at: datetime) -> None:
        insert_log(self.con, run_id, self.destination, self.object, rows, at)


def insert_log(con: duckdb.DuckDBPyConnection, run_id: str | None, destination: str, object_name: str,
               rows: Sequence[LogRow], at: datetime) -> None:
    """Append sync_log rows, inside the caller's transaction if it has one."""
    if not rows:
        return
    con.execute(
        f"""insert into "{SCHEMA}".sync_log
            (run_id, destination, object, key, action, outcome, reason, fields, "at")
        select ?, ?, ?, unnest(?::varchar[]), unnest(?::varchar[]), unnest(?::varchar[]),
               unnest(?::varchar[]), unnest(?::varchar[]), ?""",
        [run_id, destination, object_name, [row.key for row in rows], [row.action for row in rows],
         [row.outcome for row in rows], [row.reason for row in rows],
         [None if row.fields is None else dumps(row.fields) for row in rows], at],
    )


def written_payloads_sql(destination: str, object_name: str) -> str:
    """A query of what the syncs last wrote to each key of a destination object keyed by email:
    ``(email, payload, written_at)``, the payload as the destination accepted it. Ingestion reads it to
    recognise these writes when the vendor returns them (ingestion/echoes.py)."""
    return (f"select lower(key) as email, payload, synced_at as written_at from {SCHEMA}.sync_state "
            f"where destination = {sql_literal(destination)} and object = {sql_literal(object_name)}")


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def utc_naive(moment: datetime) -> datetime:
    """UTC without a zone, as every timestamp here is stored; a moment without a zone is taken as UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def utc_now() -> datetime:
    """Now in UTC, without a zone: DuckDB's timestamp columns hold UTC without a zone."""
    return datetime.now(UTC).replace(tzinfo=None)


def dumps(value: Any) -> str:
    """Canonical JSON text (sorted keys, compact), so equal payloads are equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
