"""A read-only copy of the marts for analysts, published after each run of the ``lifecycle`` job.

DuckDB lets one process write a database file, and nobody else may open it meanwhile, not even to read: an
analyst holding the warehouse open would stop the next run, and a run makes the warehouse unreadable for its
whole length. So after each run the marts, with the activations' run records that the report reads, are
copied to a file of their own (``Settings.published_path``) that analysts open read-only at any time.

The copy is written to a temporary file beside it and moved over the previous one with ``os.replace``: a
reader opens either the old copy or the new one, never half of one, and a reader that holds the old file open
keeps reading it (the file lives on until it is closed). Views in the warehouse (``marts.fct_sync_log``,
which must see the activations' writes after dbt's build) become tables in the copy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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


def publish(warehouse: Path, destination: Path, duckdb_config: Mapping[str, str], *, run_id: str,
            as_of: str | None) -> dict[str, int]:
    """Copy the published schemas and tables of ``warehouse`` to ``destination``, atomically; rows per table."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")
    _remove(partial)
    try:
        rows = _write_copy(warehouse, partial, duckdb_config, run_id=run_id, as_of=as_of)
        os.replace(partial, destination)
    finally:
        _remove(partial)
    return rows


def _write_copy(warehouse: Path, path: Path, duckdb_config: Mapping[str, str], *, run_id: str,
                as_of: str | None) -> dict[str, int]:
    rows: dict[str, int] = {}
    with duckdb.connect(str(path), config=dict(duckdb_config)) as con:
        con.execute(f"attach {sql_literal(str(warehouse))} as warehouse (read_only)")
        schemas = ", ".join(sql_literal(schema) for schema in PUBLISHED_SCHEMAS)
        extra = " or ".join(f"(table_schema = {sql_literal(schema)} and table_name = {sql_literal(table)})"
                            for schema, table in PUBLISHED_TABLES)
        tables = con.execute(f"""
            select table_schema, table_name from information_schema.tables
            where table_catalog = 'warehouse' and (table_schema in ({schemas}) or {extra})
            order by all""").fetchall()
        for schema, table in tables:
            con.execute(f'create schema if not exists "{schema}"')
            con.execute(f'create table "{schema}"."{table}" as select * from warehouse."{schema}"."{table}"')
            rows[f"{schema}.{table}"] = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
        con.execute("detach warehouse")
        con.execute(f"create table {PUBLICATION_TABLE} (published_at timestamp, run_id varchar, as_of varchar)")
        con.execute(f"insert into {PUBLICATION_TABLE} values (?, ?, ?)",
                    [datetime.now(UTC).replace(tzinfo=None), run_id, as_of])
    return rows


def _remove(path: Path) -> None:
    """The temporary copy and its write-ahead log, of this publication or of one that died midway."""
    for leftover in (path, path.with_name(f"{path.name}.wal")):
        leftover.unlink(missing_ok=True)
