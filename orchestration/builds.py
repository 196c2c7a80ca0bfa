"""What the warehouse's models were last built from: a run skips a build that would change nothing, builds
only what a change reaches, and a run that sent emails rebuilds what its sends changed before it ends.

A full dbt build depends on the project (its manifest, seeds included, and its vars), the raw data (each raw table's rows and
the latest dlt load that wrote any), the send ledger (what was already sent decides what is due next) and the
as-of moment: its ``inputs``. After a successful full build at a fixed as-of, they are kept next to dbt's
artifacts. A later run at the same as-of with the same project compares them with what the warehouse holds now:

- nothing changed (nothing landed, nothing sent): the build is skipped, the models are already what it would
  produce;
- some tables changed: only the models downstream of them are built (``unaffected``). The others read only
  tables that did not change, at the same as-of, so they already hold what a full build would give them.

Either way the models left standing are reported as materialized with ``STANDING`` metadata: the activations
downstream still run, to retry what a destination refused and to confirm that nothing else is due.

The record is removed before a build starts, so a build that dies midway never leaves a record vouching for
half-built models. A run without a fixed as-of always builds everything: its clock moves, and with it what is
due, which tier a contact is in, which demo is over.

Settling: emails go out after the build, and the ledger rows they write feed the sequence models
(``int_sequence_messages`` -> ``fct_messages``, ``fct_sequence_enrollments``, ``messages_due``,
``sync_marketing__list_members``). Those are rebuilt right after the sends, so that a run ends with marts that
show its own sends and the list memberships are synced from that state: nothing the run adds is undone by
the next one, and a second run at the same as-of with nothing new writes nothing. The record keeps the
ledger's state those models were built from, so a run killed between its sends and that rebuild leaves the
next run to do it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

BUILD_RECORD = "last_build.json"
STANDING = "standing"
"""Materialization metadata of a model a build left as it was (True): nothing it reads changed. Dagster records
it as current in that run, so that what depends on it (the activations) runs."""
LEDGER = "activations.send_ledger"
SETTLE_SELECTION = f"source:{LEDGER}+"
"""The models that read the send ledger, and what depends on them."""


def _raw_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, bool]]:
    """Every table dlt loads rows into, and whether its rows carry their load id (rows loaded as Arrow
    tables do not). dlt's own ``_dlt_*`` tables and merge staging schemas are left out: a load that only
    moves a cursor changes them, not the data."""
    return con.execute("""
        select table_schema, table_name, bool_or(column_name = '_dlt_load_id')
        from information_schema.columns
        where starts_with(table_schema, 'raw_') and not ends_with(table_schema, '_staging')
            and not starts_with(table_name, '_dlt')
        group by all order by all""").fetchall()


def _table_state(con: duckdb.DuckDBPyConnection, schema: str, table: str, has_load_id: bool) -> tuple:
    """Row count and the latest load that wrote a row, or a digest of every column without load ids."""
    content = "max(_dlt_load_id)" if has_load_id else "sum(hash(columns(*)))"
    return con.execute(f'select count(*), {content} from "{schema}"."{table}"').fetchone()


def ledger_state(con: duckdb.DuckDBPyConnection) -> str:
    """The send ledger's rows and their states, as one value: it changes whenever a send changes a row."""
    exists = con.execute("select count(*) from information_schema.tables "
                         "where table_schema = 'activations' and table_name = 'send_ledger'").fetchone()[0]
    if not exists:
        return "no ledger"
    count, digest = con.execute(
        "select count(*), coalesce(sum(hash(message_key, status, send_tag, sent_at)), 0) "
        "from activations.send_ledger").fetchone()
    return f"{count}:{digest}"


def inputs(warehouse: Path, definition: Sequence[Path], as_of: str | None) -> dict[str, Any] | None:
    """What a full build at ``as_of`` would be computed from: the as-of, a digest of the project's
    ``definition`` files and the state of each table it reads (``schema.table``), the send ledger included.
    None without a fixed as-of, a warehouse or a parsed project."""
    if not as_of or not warehouse.exists() or not all(path.exists() for path in definition):
        return None
    project = hashlib.sha256()
    for path in definition:
        project.update(hashlib.sha256(path.read_bytes()).digest())
    with duckdb.connect(str(warehouse)) as con:
        tables = {f"{schema}.{table}": str(_table_state(con, schema, table, has_load_id))
                  for schema, table, has_load_id in _raw_tables(con)}
        tables[LEDGER] = ledger_state(con)
    return {"as_of": as_of.strip(), "project": project.hexdigest(), "tables": tables}


def changed_tables(built_from: Mapping[str, Any] | None, now: Mapping[str, Any] | None) -> set[str] | None:
    """The tables (``schema.table``) whose state differs between the last build's inputs and the current ones;
    None when the two cannot be compared (no record, no fixed as-of, another as-of or project): build all."""
    if not built_from or not now or (built_from.get("as_of"), built_from.get("project")) != (
            now["as_of"], now["project"]):
        return None
    before, after = built_from.get("tables") or {}, now["tables"]
    return {table for table in before.keys() | after.keys() if before.get(table) != after.get(table)}


def unaffected(manifest: Mapping[str, Any], tables: set[str]) -> list[str] | None:
    """The models and seeds (unique ids) that read none of ``tables``, directly or through other models; None
    when a table is not a dbt source, so that what reads it cannot be told. What they read is unaffected too."""
    sources = {f"{source['schema']}.{source['identifier']}": unique_id
               for unique_id, source in manifest["sources"].items()}
    if not tables <= sources.keys():
        return None
    reached: set[str] = set()
    pending = [sources[table] for table in tables]
    while pending:
        for child in manifest["child_map"].get(pending.pop(), ()):
            if child not in reached:
                reached.add(child)
                pending.append(child)
    return sorted(unique_id for unique_id, node in manifest["nodes"].items()
                  if node["resource_type"] in ("model", "seed") and unique_id not in reached)


def recorded(record_dir: Path) -> dict[str, Any]:
    """The last build's record: ``inputs`` (None unless a whole build at a fixed as-of) and ``ledger``,
    the send ledger's state the sequence models were built from; empty when there is none."""
    try:
        record = json.loads((record_dir / BUILD_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def forget(record_dir: Path) -> None:
    (record_dir / BUILD_RECORD).unlink(missing_ok=True)


def remember(record_dir: Path, built_from: Mapping[str, Any] | None, ledger: str) -> None:
    record_dir.mkdir(parents=True, exist_ok=True)
    partial = record_dir / f"{BUILD_RECORD}.partial"
    partial.write_text(json.dumps({"inputs": built_from, "ledger": ledger}))
    partial.replace(record_dir / BUILD_RECORD)


def current_ledger(warehouse: Path) -> str:
    with duckdb.connect(str(warehouse)) as con:
        return ledger_state(con)
