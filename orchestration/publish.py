"""A read-only copy of the marts for analysts, published after each run of the ``lifecycle`` job.

DuckDB lets one process write a database file, and nobody else may open it meanwhile, not even to read: an
analyst holding the warehouse open would stop the next run, and a run makes the warehouse unreadable for its
whole length. So after each run the marts, with the activations' run records that the report reads, are
copied to a file of their own (``Settings.published_path``) that analysts open read-only at any time.

The copy is written to a temporary file beside it and moved over the previous one with ``os.replace``: a
reader opens either the old copy or the new one, never half of one, and a reader that holds the old file open
keeps reading it (the file lives on until it is closed). Views in the warehouse (``marts.fct_sync_log``,
which must see the activations' writes after dbt's build) become tables in the copy.

Only what changed is copied: the temporary file starts as a copy of the previous publication, and a table is
copied again from the warehouse only when its fingerprint (its columns, its row count and an order-free sum
of its rows' hashes) differs from the one that publication recorded (``PUBLISHED_TABLES_TABLE``). Reading a
table to fingerprint it costs a fraction of writing it: a run that rebuilt models into the same rows, or
built none, publishes in a second instead of rewriting every mart. Without a readable previous publication
everything is copied.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from activations.state import sql_literal

PUBLISHED_SCHEMAS = ("marts",)
PUBLISHED_TABLES = (("activations", "sync_runs"), ("intermediate", "int_engagement_tier_history"))
"""Besides the marts, what the report reads: the activations' run records (one row per sync run, with its API
calls) and each contact's engagement tier over time."""
PUBLICATION_TABLE = "publication"
"""One row in the copy's ``main`` schema: when it was published, by which run, as of which moment."""
PUBLISHED_TABLES_TABLE = "published_tables"
"""In the copy's ``main`` schema: each published table (``schema.table``) with its fingerprint."""
ROW = "published_row__"
"""The alias that names a whole row in a fingerprint's query: unlike a short one, no column shadows it."""


@dataclass(frozen=True)
class Publication:
    rows: dict[str, int]
    """Rows per published table."""
    copied: list[str]
    """The tables copied from the warehouse this time: those that changed since the previous publication."""


def publish(warehouse: Path, destination: Path, duckdb_config: Mapping[str, str], *, run_id: str,
            as_of: str | None) -> Publication:
    """Bring ``destination`` to the published schemas and tables of ``warehouse``, atomically."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")
    _remove(partial)
    try:
        previous = _published_fingerprints(destination, duckdb_config)
        if previous:
            shutil.copyfile(destination, partial)
        publication = _write_copy(warehouse, partial, duckdb_config, previous, run_id=run_id, as_of=as_of)
        os.replace(partial, destination)
    finally:
        _remove(partial)
    return publication


def _published_fingerprints(path: Path, duckdb_config: Mapping[str, str]) -> dict[str, str]:
    """What the previous publication recorded, or nothing when there is none it can be built on."""
    if not path.exists():
        return {}
    try:
        with duckdb.connect(str(path), read_only=True, config=dict(duckdb_config)) as con:
            recorded = con.execute(f"select table_name, fingerprint from {PUBLISHED_TABLES_TABLE}").fetchall()
        return dict(recorded)
    except duckdb.Error:
        return {}


def _write_copy(warehouse: Path, path: Path, duckdb_config: Mapping[str, str], previous: Mapping[str, str],
                *, run_id: str, as_of: str | None) -> Publication:
    publication = Publication(rows={}, copied=[])
    fingerprints: dict[str, str] = {}
    with duckdb.connect(str(path), config=dict(duckdb_config)) as con:
        con.execute(f"attach {sql_literal(str(warehouse))} as warehouse (read_only)")
        schemas = ", ".join(sql_literal(schema) for schema in PUBLISHED_SCHEMAS)
        extra = " or ".join(f"(table_schema = {sql_literal(schema)} and table_name = {sql_literal(table)})"
                            for schema, table in PUBLISHED_TABLES)
        tables = con.execute(f"""
            select table_schema, table_name,
                string_agg(column_name || ' ' || data_type, ', ' order by ordinal_position)
            from information_schema.columns
            where table_catalog = 'warehouse' and (table_schema in ({schemas}) or {extra})
            group by all order by all""").fetchall()
        for schema, table, columns in tables:
            name = f"{schema}.{table}"
            rows, digest = con.execute(f'select count(*), coalesce(sum(hash({ROW})), 0) '
                                       f'from warehouse."{schema}"."{table}" as {ROW}').fetchone()
            fingerprints[name] = f"{columns}|{rows}|{digest}"
            publication.rows[name] = rows
            if previous.get(name) != fingerprints[name]:
                con.execute(f'create schema if not exists "{schema}"')
                con.execute(f'create or replace table "{schema}"."{table}" as '
                            f'select * from warehouse."{schema}"."{table}"')
                publication.copied.append(name)
        for name in previous.keys() - fingerprints.keys():
            schema, table = name.split(".", 1)
            con.execute(f'drop table if exists "{schema}"."{table}"')
        con.execute("detach warehouse")
        con.execute(f"create or replace table {PUBLISHED_TABLES_TABLE} "
                    "(table_name varchar, fingerprint varchar)")
        con.executemany(f"insert into {PUBLISHED_TABLES_TABLE} values (?, ?)", list(fingerprints.items()))
        con.execute(f"create or replace table {PUBLICATION_TABLE} "
                    "(published_at timestamp, run_id varchar, as_of varchar)")
        con.execute(f"insert into {PUBLICATION_TABLE} values (?, ?, ?)",
                    [datetime.now(UTC).replace(tzinfo=None), run_id, as_of])
    return publication


def _remove(path: Path) -> None:
    """The temporary copy and its write-ahead log, of this publication or of one that died midway."""
    for leftover in (path, path.with_name(f"{path.name}.wal")):
        leftover.unlink(missing_ok=True)
