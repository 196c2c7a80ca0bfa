"""The analysts' copy is brought up to date by copying only the tables that changed: after each publication
every published table equals the warehouse's, whatever changed (rows, columns, tables added or dropped), and
the tables that did not change are not copied again."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from orchestration.publish import PUBLICATION_TABLE, publish

CONFIG = {"threads": "1"}


@pytest.fixture()
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        for schema in ("marts", "activations", "intermediate", "staging"):
            con.execute(f"create schema {schema}")
        con.execute("create table marts.dim_contacts as select range as id, 'c' || range as email from range(1000)")
        con.execute("create table marts.fct_messages as select range as id, range % 7 as step, 0 as t "
                    "from range(500)")
        con.execute("create table activations.sync_runs as select 1 as run, 10 as sent")
        con.execute("create table activations.sync_state as select 1 as key")
        con.execute("create table staging.notes as select 1 as id")
        con.execute("create view marts.fct_sync_log as select run, sent from activations.sync_runs")
    return path


def write(warehouse: Path, *statements: str) -> None:
    with duckdb.connect(str(warehouse)) as con:
        for statement in statements:
            con.execute(statement)


def contents(path: Path) -> dict[str, list[tuple]]:
    """Every user table and view outside ``main``, its columns and its rows (sorted)."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = con.execute("select table_schema, table_name from information_schema.tables "
                            "where table_schema != 'main' order by all").fetchall()
        return {f"{schema}.{table}": [tuple(column for column, *_ in con.execute(
                    f'describe "{schema}"."{table}"').fetchall()),
                    *sorted(con.execute(f'select * from "{schema}"."{table}"').fetchall())]
                for schema, table in names}


def published_run(path: Path) -> str:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"select run_id from {PUBLICATION_TABLE}").fetchone()[0]


def test_only_what_changed_is_copied_and_the_copy_equals_the_warehouse(warehouse: Path, tmp_path: Path) -> None:
    copy = tmp_path / "published" / "analytics.duckdb"
    expected = {"marts.dim_contacts", "marts.fct_messages", "marts.fct_sync_log", "activations.sync_runs"}

    first = publish(warehouse, copy, CONFIG, run_id="first", as_of=None)
    assert sorted(first.copied) == sorted(expected)
    assert first.rows["marts.dim_contacts"] == 1000
    assert contents(copy) == {name: rows for name, rows in contents(warehouse).items() if name in expected}

    write(warehouse, "create or replace table marts.dim_contacts as "
                     "select range as id, 'c' || range as email from range(1000)")
    unchanged = publish(warehouse, copy, CONFIG, run_id="unchanged", as_of=None)
    assert unchanged.copied == []
    assert published_run(copy) == "unchanged"

    write(warehouse, "update marts.fct_messages set step = 0 where id = 1")
    assert publish(warehouse, copy, CONFIG, run_id="step", as_of=None).copied == ["marts.fct_messages"]

    write(warehouse,
          "update marts.dim_contacts set email = 'changed' where id = 500",
          "alter table marts.fct_messages add column sent boolean",
          "insert into activations.sync_runs values (2, 0)",
          "create table marts.fct_new as select 1 as id",
          "create or replace table marts.fct_same_rows_new_type as select 1::bigint as id")
    changed = publish(warehouse, copy, CONFIG, run_id="changed", as_of="2026-03-01T00:00:00Z")
    assert sorted(changed.copied) == ["activations.sync_runs", "marts.dim_contacts", "marts.fct_messages",
                                      "marts.fct_new", "marts.fct_same_rows_new_type", "marts.fct_sync_log"]
    expected |= {"marts.fct_new", "marts.fct_same_rows_new_type"}
    assert contents(copy) == {name: rows for name, rows in contents(warehouse).items() if name in expected}

    write(warehouse, "drop table marts.fct_new",
          "create or replace table marts.fct_same_rows_new_type as select 1::integer as id")
    dropped = publish(warehouse, copy, CONFIG, run_id="dropped", as_of=None)
    assert dropped.copied == ["marts.fct_same_rows_new_type"]
    expected.discard("marts.fct_new")
    assert contents(copy) == {name: rows for name, rows in contents(warehouse).items() if name in expected}
    assert [path.name for path in copy.parent.iterdir()] == [copy.name]


def test_a_copy_without_a_record_of_its_tables_is_rewritten_whole(warehouse: Path, tmp_path: Path) -> None:
    copy = tmp_path / "analytics.duckdb"
    with duckdb.connect(str(copy)) as con:
        con.execute("create schema marts")
        con.execute("create table marts.dim_contacts as select 'stale' as email")
        con.execute("create table marts.fct_gone as select 1 as id")

    publication = publish(warehouse, copy, CONFIG, run_id="first", as_of=None)

    assert "marts.dim_contacts" in publication.copied
    assert contents(copy)["marts.dim_contacts"] == contents(warehouse)["marts.dim_contacts"]
    assert "marts.fct_gone" not in contents(copy)
