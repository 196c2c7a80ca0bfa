"""The activation tables have one definition (activations/state.py TABLES): a fresh warehouse gets it, an
older one is migrated to it step by step and only once, and dbt's sources declare the same columns."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml

from activations import state
from activations.state import MIGRATIONS, SCHEMA, TABLES, Migration, migrate

ROOT = Path(__file__).resolve().parents[2]
SOURCES_YML = ROOT / "dbt_project" / "models" / "staging" / "activations" / "_activations__sources.yml"

OLD_LAYOUT = """
    create schema activations;
    create table activations.send_ledger (message_key varchar, email varchar, sequence varchar, step integer,
        status varchar, sent_at timestamp, provider_message_id varchar);
    create table activations.sync_state (destination varchar, object varchar, key varchar, payload_hash varchar,
        synced_at timestamp);
    create table activations.sync_runs (run_id varchar, destination varchar, object varchar, started_at timestamp,
        finished_at timestamp, dry_run boolean, considered bigint, changed bigint, sent bigint, rejected bigint,
        api_calls varchar, status varchar, error varchar);
    create table activations.sync_log (run_id varchar, destination varchar, object varchar, key varchar,
        action varchar, outcome varchar, reason varchar, fields varchar, "at" timestamp);
"""
"""The tables as a warehouse of the one-call-per-message version has them: no send_tag (nor reason) in the
ledger, no payload in the sync state, no as_of in the runs, no send_attempts, no schema_version."""


def columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """Each activation table's (column, type), in order; the version record left out."""
    rows = con.execute("""select table_name, column_name, lower(data_type) from information_schema.columns
                          where table_schema = ? and table_name <> ? order by table_name, ordinal_position""",
                       [SCHEMA, state.VERSION_TABLE]).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in rows:
        tables.setdefault(table, []).append((column, kind))
    return tables


def versions(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(f"select version, description, applied_at from {SCHEMA}.{state.VERSION_TABLE} "
                       "order by version").fetchall()


def test_a_fresh_warehouse_gets_every_table_as_defined_and_records_every_step(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        applied = migrate(con)

        assert columns(con) == {table: list(defined) for table, defined in TABLES.items()}
        assert applied == [version for version, _, _ in versions(con)]
        assert applied == list(range(1, len(MIGRATIONS) + 1)), "steps are numbered 1, 2, ... in order"


def test_an_older_layout_gains_every_column_and_keeps_its_rows(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute(OLD_LAYOUT)
        con.execute("insert into activations.send_ledger values "
                    "('k-1', 'ada@example.com', 'demo_nurture', 1, 'sent', '2026-09-01 10:00', 'msg-1')")
        con.execute("insert into activations.sync_state values "
                    "('brevo', 'contacts', 'ada@example.com', 'hash', '2026-09-01 10:00')")

        migrate(con)

        assert {table: sorted(found) for table, found in columns(con).items()} == {
            table: sorted(defined) for table, defined in TABLES.items()}
        assert con.execute("select message_key, status, provider_message_id, send_tag, reason "
                           "from activations.send_ledger").fetchall() == [("k-1", "sent", "msg-1", None, None)]
        assert con.execute("select key, payload_hash, payload from activations.sync_state").fetchall() == [
            ("ada@example.com", "hash", None)]


def test_migrating_again_changes_nothing(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute(OLD_LAYOUT)
        migrate(con)
        tables, record = columns(con), versions(con)

        assert migrate(con) == []
        assert (columns(con), versions(con)) == (tables, record)


def test_each_step_is_idempotent_so_one_interrupted_before_its_record_can_run_again(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        migrate(con)
        tables = columns(con)
        for migration in MIGRATIONS:
            for statement in migration.statements:
                con.execute(statement)

        assert columns(con) == tables


def test_a_failing_step_is_not_recorded_and_the_steps_before_it_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = Migration(len(MIGRATIONS) + 1, "a step that fails halfway", (
        f'alter table "{SCHEMA}".sync_log add column if not exists "half" varchar',
        "select * from a_table_that_does_not_exist"))
    monkeypatch.setattr(state, "MIGRATIONS", (*MIGRATIONS, broken))
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute(OLD_LAYOUT)
        with pytest.raises(duckdb.CatalogException):
            migrate(con)

        assert [version for version, _, _ in versions(con)] == [m.version for m in MIGRATIONS]
        assert "half" not in [column for column, _ in columns(con)["sync_log"]]
        assert "send_tag" in [column for column, _ in columns(con)["send_ledger"]]


def test_dbt_declares_each_source_table_with_the_defined_columns_and_types() -> None:
    """The yml's data_type is what dbt stands in for a table not created yet (macros/source_or_empty.sql)."""
    [source] = [source for source in yaml.safe_load(SOURCES_YML.read_text())["sources"]
                if source["name"] == "activations"]
    with duckdb.connect() as con:
        def duckdb_type(name: str) -> str:
            return con.execute(f"select lower(typeof(cast(null as {name})))").fetchone()[0]

        declared = {table["name"]: {column["name"]: duckdb_type(column["data_type"])
                                    for column in table["columns"]}
                    for table in source["tables"]}
        defined = {table: {column: duckdb_type(kind) for column, kind in TABLES[table]} for table in declared}

    assert declared == defined
    assert {"send_ledger", "sync_state", "sync_runs", "sync_log"} <= declared.keys()
