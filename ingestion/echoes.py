"""Our own writes, read back: a contact that holds only what the warehouse already has and what our syncs
last wrote to it is not news, and is not loaded again.

Neither HubSpot nor Brevo can leave one integration's changes out of a read, so every contact a sync updates
comes back on the next incremental read as modified. Loading those echoes costs a merge per contact and makes
the models rebuild for nothing. A record is an echo when each compared field holds what we expect: the value
our syncs last wrote, for a field they wrote, else the value already landed. Fields that change with every
write (modification times) are not compared. Everything else lands as before: a contact the warehouse does not
hold yet (even one our sync created: it brings the vendor's id), a field someone changed after our write, a
field the warehouse has never held.

Values are compared in one canonical text form, so that an instant written as epoch milliseconds matches the
ISO string the vendor returns, ``5`` matches ``"5"`` and an empty string matches a cleared (null) value.

The filter runs after dlt's incremental step (``EchoFilter.step``): a skipped echo still moves the cursor and is
not read again.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, ClassVar

import duckdb
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.extract.items_transform import FilterItem

NAMING = NamingConvention()
FETCH_ROWS = 10_000
WRITTEN = "__written"
"""The column, next to the landed fields, that carries what our syncs last wrote (a JSON object)."""


@functools.cache
def column_name(*path: str) -> str:
    """The warehouse column dlt makes of a (nested) record field, e.g. ``attributes__first_name``."""
    return NAMING.normalize_path(NAMING.make_path(*path))


def flatten(record: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    """A record's fields under the column names dlt gives them (nested objects joined with ``__``)."""
    fields: dict[str, Any] = {}
    for name, value in record.items():
        path = (*prefix, name)
        if isinstance(value, Mapping):
            fields.update(flatten(value, path))
        else:
            fields[column_name(*path)] = value
    return fields


def _epoch_ms(moment: datetime) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return str(round(aware.timestamp() * 1000))


def canonical(value: Any) -> str | None:
    """One text form per value, whatever type the vendor, the warehouse or our payload gave it: instants
    (datetimes, dates and ISO 8601 text) become epoch milliseconds, as HubSpot also writes them."""
    if value is None or value == "":
        return None
    kind = type(value)
    if kind is str:
        if len(value) >= 10 and value[4] == "-":
            try:
                return _epoch_ms(datetime.fromisoformat(value))
            except ValueError:
                return value
        return value
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _epoch_ms(value)
    if isinstance(value, date):
        return _epoch_ms(datetime.combine(value, time(), tzinfo=UTC))
    if kind is float and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "\x1d".join(sorted(canonical(item) or "" for item in value)) or None
    return str(value)


def digest(fields: Mapping[str, Any], names: Sequence[str]) -> int:
    """A 64-bit digest of the canonical values of ``names`` (sorted) in ``fields``; a missing field is null."""
    text = "\x1e".join([f"{name}\x1f{canonical(fields.get(name)) or chr(0)}" for name in names])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class AfterIncremental(FilterItem):
    """A filter step that dlt places after the incremental step (placement affinity 1): the records it drops
    still move the cursor, so they are not read again."""

    placement_affinity: ClassVar[float] = 1.05


@dataclass
class EchoFilter:
    """Drops records that are echoes of our own writes; a resource takes it as ``add_step(f.step())``.

    ``expected``: per record key (a top-level field, named alike in the record and the warehouse), the
    digest of the record as we expect it back. ``compared``: the columns the digest covers (sorted);
    ``ignored``: columns never compared (the key, modification times).
    """

    key: str
    compared: tuple[str, ...]
    ignored: frozenset[str]
    expected: dict[str, int]
    skipped: int = 0

    def __call__(self, record: Mapping[str, Any]) -> bool:
        wanted = self.expected.get(str(record.get(self.key)))
        if wanted is None:
            return True
        fields = flatten(record)
        unknown = (name for name in fields.keys() - self.ignored - set(self.compared)
                   if canonical(fields[name]) is not None)
        if any(True for _ in unknown) or digest(fields, self.compared) != wanted:
            return True
        self.skipped += 1
        return False

    def step(self) -> AfterIncremental:
        return AfterIncremental(self)


def _exists(con: duckdb.DuckDBPyConnection, sql: str) -> bool:
    try:
        con.execute(f"select * from ({sql}) limit 0")
    except duckdb.CatalogException:
        return False
    return True


def echo_filter(
    warehouse: Path,
    duckdb_config: Mapping[str, str],
    *,
    dataset: str,
    landed_sql: str,
    writes_sql: str,
    key: str,
    ignored: Iterable[str],
    overlay: Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]],
) -> EchoFilter | None:
    """The filter for one table, or None when nothing has landed yet or our syncs never wrote.

    ``landed_sql``: the landed records, one row each (``key``, ``email`` and the compared columns; dlt's own
    columns are left out). ``writes_sql``: ``(email, payload, written_at)``, what our syncs last wrote per
    lower-cased email (a JSON object of vendor field names) and when (UTC). ``overlay(landed, written)``: the
    warehouse columns our write set, given the landed row and the payload.

    Only writes since ``dataset``'s last completed load can come back now: the ones before it came back in
    that load's read (ingestion and syncs take turns on the warehouse). So after the first full sync this
    reads every contact once, and an ordinary run reads only the contacts the last run wrote.
    """
    if not warehouse.exists():
        return None
    ignored = frozenset(ignored) | {key}
    loads = f'"{dataset}"."_dlt_loads"'
    with duckdb.connect(str(warehouse), config=dict(duckdb_config)) as con:
        if not all(_exists(con, sql) for sql in (landed_sql, writes_sql, f"select * from {loads}")):
            return None
        cursor = con.execute(f"""
            select landed.*, writes.payload as {WRITTEN}
            from ({landed_sql}) as landed
            inner join ({writes_sql}) as writes on lower(landed.email) = writes.email
            where writes.written_at > (
                select coalesce(timezone('UTC', max(inserted_at)), '-infinity'::timestamp)
                from {loads} where status = 0)""")
        columns = [column[0] for column in cursor.description]
        compared = tuple(sorted(name for name in columns
                                if name not in ignored and name != WRITTEN and not name.startswith("_dlt")))
        overlaid = set(compared)
        expected: dict[str, int] = {}
        while rows := cursor.fetchmany(FETCH_ROWS):
            for row in rows:
                fields = dict(zip(columns, row, strict=True))
                written = fields.pop(WRITTEN)
                fields.update((name, value) for name, value in overlay(fields, json.loads(written)).items()
                              if name in overlaid)
                expected[str(fields[key])] = digest(fields, compared)
    return EchoFilter(key=key, compared=compared, ignored=ignored, expected=expected)
