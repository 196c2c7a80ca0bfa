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


MESSAGES_STILL_DUE = (
    "select sequence, step, count(*) from marts.messages_due "
    "where message_key not in (select message_key from activations.send_ledger where status <> 'withdrawn') "
    "group by all order by all")
"""Per sequence and step, the messages due that no run has sent (or is sending) yet."""
SUMMARY_QUERIES = {
    "contacts per segment and audience":
        "select segment, primary_audience, count(*) from marts.dim_contacts group by all order by all",
    "demo status": "select demo_status, count(*) from marts.fct_demos group by all order by all",
    "contacts per marketing list": "select list_name, count(*) from sync.sync_marketing__list_members "
                                   "group by all order by all",
    "emails sent per sequence and step": "select sequence, step, count(*) from activations.send_ledger "
                                         "where status = 'sent' group by all order by all",
    "messages due but not sent yet (retried next run)": MESSAGES_STILL_DUE,
    "messages per status at the last dbt build":
        "select status, count(*) from marts.fct_messages group by all order by all",
    "revenue per source (linear attribution)":
        "select source, currency, round(sum(revenue), 2) from marts.fct_campaign_attribution "
        "where attribution_model = 'linear' and revenue <> 0 group by all order by 3 desc",
    "flagged records": "select reason, count(*) from marts.dq_flagged_records group by all order by all",
    # a sync's `sent` counts the rows it handed over, the rejected ones included; the emails' only those Brevo took
    "rows synced to the destinations": "select destination, object, "
                                       "sum(sent - case when object = 'emails' then 0 else rejected end) "
                                       "from activations.sync_runs where not dry_run group by all order by all",
    "rows the destinations rejected": "select destination, object, sum(rejected) from activations.sync_runs "
                                      "where not dry_run and rejected > 0 group by all order by all",
}


def marts_summary(warehouse_path: Path) -> str:
    """A readable summary of the marts the analysts query (what ``lifecycle demo`` prints)."""
    if not warehouse_path.exists():
        return "  (no warehouse yet)"
    lines: list[str] = []
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        for title, sql in SUMMARY_QUERIES.items():
            lines.append(f"{title}:")
            try:
                rows = con.execute(sql).fetchall()
            except duckdb.CatalogException:
                lines.append("  (not built yet)")
                continue
            lines.extend(f"  {' / '.join(str(v) for v in row[:-1]):<40} {row[-1]:>8,}" for row in rows)
            if not rows:
                lines.append("  (none)")
    return "\n".join(lines)


def messages_still_due(warehouse_path: Path) -> list[tuple[str, int, int]]:
    """``MESSAGES_STILL_DUE`` as rows ``(sequence, step, count)``; none before the first build."""
    if not warehouse_path.exists():
        return []
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        try:
            return [(sequence, step, count) for sequence, step, count in con.execute(MESSAGES_STILL_DUE).fetchall()]
        except duckdb.CatalogException:
            return []
