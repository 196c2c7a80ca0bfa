"""Read-only summaries of the warehouse for the command line."""

from __future__ import annotations

from pathlib import Path

import duckdb


def raw_table_counts(warehouse_path: Path) -> dict[str, int]:
    """Rows per ``raw_*`` table, e.g. ``{"raw_crm.contacts": 1200}``; dlt's bookkeeping tables and its
    ``*_staging`` merge schemas are left out."""
    if not warehouse_path.exists():
        return {}
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        tables = con.execute(
            """
            select table_schema, table_name from information_schema.tables
            where table_schema like 'raw\\_%' escape '\\'
              and table_schema not like '%\\_staging' escape '\\'
              and table_name not like '\\_dlt\\_%' escape '\\'
            order by 1, 2
            """
        ).fetchall()
        return {
            f"{schema}.{table}": con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
            for schema, table in tables
        }


def format_counts(counts: dict[str, int]) -> str:
    if not counts:
        return "  (no raw tables yet)"
    width = max(len(name) for name in counts)
    return "\n".join(f"  {name:<{width}}  {rows:>10,}" for name, rows in counts.items())
