"""The demo's summary of the marts and the activations' run records."""

from __future__ import annotations

from pathlib import Path

import duckdb

from activations.state import migrate
from orchestration.reporting import marts_summary


def test_rows_synced_count_what_each_destination_took(tmp_path: Path) -> None:
    """A sync's `sent` includes its rejected rows and the emails' does not: the summary shows, for both, the
    rows the destination took."""
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        migrate(con)
        con.executemany(
            "insert into activations.sync_runs (run_id, destination, object, dry_run, sent, rejected) "
            "values (?, ?, ?, ?, ?, ?)",
            [("a", "hubspot", "contacts", False, 10, 2), ("b", "hubspot", "contacts", False, 5, 0),
             ("c", "brevo", "emails", False, 7, 1), ("d", "brevo", "emails", True, 50, 0)],
        )
    summary = marts_summary(warehouse)
    synced = summary.split("rows synced to the destinations:\n")[1].split("rows the destinations rejected:")[0]
    assert synced.split() == ["brevo", "/", "emails", "7", "hubspot", "/", "contacts", "13"]
    rejected = summary.split("rows the destinations rejected:\n")[1].split()
    assert rejected == ["brevo", "/", "emails", "1", "hubspot", "/", "contacts", "2"]
