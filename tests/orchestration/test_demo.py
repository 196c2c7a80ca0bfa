"""`lifecycle demo`, the README's main job, end to end on a small world: sandbox and collector as processes, a
world, the pipeline over simulated days, the summary. Checked against the warehouse it leaves behind."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from orchestration import cli

DAYS = 2
DAY_LINE = re.compile(r"^  (\d{4}-\d{2}-\d{2})  (\S+)\s+[\d.]+ s  sent: (.*)$", re.MULTILINE)


def test_demo_runs_the_pipeline_day_by_day_and_summarizes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "demo"
    monkeypatch.setenv("LIFECYCLE_HOME", str(home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)

    code = cli.main(["demo", "--contacts", "150", "--seed", "3", "--days", str(DAYS)])
    out = capsys.readouterr().out

    assert code == 0, out
    days = DAY_LINE.findall(out)
    today = datetime.now(UTC).date()
    assert [day for day, _, _ in days] == [str(today - timedelta(days=DAYS - n)) for n in range(DAYS + 1)]
    assert all(status == "ok" for _, status, _ in days), out
    emails_per_day = [int(m.group(1)) if (m := re.search(r"brevo_email_sends (\d+)", sent)) else 0
                      for _, _, sent in days]
    assert emails_per_day[0] > 0, "the go-live sends the backlog"

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        ledger = con.execute("select cast(sent_at as date), count(*) from activations.send_ledger "
                             "where status = 'sent' group by all order by all").fetchall()
        sequences = con.execute("select sequence, step, count(*) from activations.send_ledger "
                                "where status = 'sent' group by all order by all").fetchall()
    # each day's emails are stamped with that day's clock (--as-of), and the lines report them all
    assert sum(count for _, count in ledger) == sum(emails_per_day)
    assert {str(day) for day, _ in ledger} <= {day for day, _, _ in days}
    summary = out[out.index("emails sent per sequence and step:"):]
    for sequence, step, count in sequences:
        assert re.search(rf"^  {sequence} / {step}\s+{count}$", summary, re.MULTILINE), (sequence, step)
    assert "contacts per segment and audience:" in out
    assert f"DAGSTER_HOME={home / 'dagster'}" in out and "dagster dev -w workspace.yaml" in out
    report = home / "reports" / "lifecycle.html"
    assert out.rstrip().splitlines()[-1] == f"The report of the last run: {report}"
    assert report.is_file() and "Sequences" in report.read_text()
