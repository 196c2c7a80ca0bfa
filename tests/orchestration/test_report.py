"""The HTML report, rendered from a published copy that holds every table it reads, opened in headless
Chromium: every chart must draw (plotly's SVG with bars, funnel segments or lines in its plot area).

The copy here is a fixture holding the report's tables with a few rows each, the attribution and funnel marts
included as their columns are agreed; ``test_published_copy.py`` renders the report of a real run.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from orchestration import cli
from orchestration.report import render_report
from tests.orchestration.browser import drawn_charts, rendered_dom

CURRENCIES = ("EUR", "USD")
AUDIENCES = ("Senior Living", "Family Caregivers")
SEQUENCE_STEPS = (("demo_nurture", 1), ("demo_nurture", 2), ("winback", 1))
REJECTION_REASON = "invalid email address"

FIXTURE_SQL = f"""
create schema marts;
create schema intermediate;
create schema activations;
create table marts.fct_campaign_attribution as
select * from (values
    ('first_touch', date '2026-09-01', 'google', 'cpc', 'spring', '{CURRENCIES[0]}', 3.0, 2.0, 1.0, 1.0, 1.0, 120.0),
    ('last_touch', date '2026-09-01', 'google', 'cpc', 'spring', '{CURRENCIES[0]}', 3.0, 1.0, 1.0, 0.0, 1.0, 80.0),
    ('linear', date '2026-10-01', 'newsletter', 'email', 'webinar', '{CURRENCIES[1]}', 1.5, 0.5, 0.5, 0.5, 1.0, 49.5),
    ('position_based', date '2026-10-01', 'direct', '(none)', null, null, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0)
) as rows(attribution_model, conversion_month, source, medium, campaign, currency, leads, demos_booked,
          demos_completed, customers_won, purchases, revenue);
create table marts.fct_funnel as
select * from (values
    (date '2026-09-01', '{AUDIENCES[0]}', 'B2B', 'google', 40, 12, 8, 3),
    (date '2026-10-01', '{AUDIENCES[0]}', 'B2B', 'google', 30, 9, 5, 2),
    (date '2026-09-01', '{AUDIENCES[1]}', 'B2C', 'newsletter', 60, 6, 4, 1)
) as rows(cohort_month, primary_audience, segment, original_touch_source, leads, demos_booked, demos_completed,
          customers);
create table marts.fct_message_engagement as
select * from (values
    ('k1', '{SEQUENCE_STEPS[0][0]}', {SEQUENCE_STEPS[0][1]}, true, true),
    ('k2', '{SEQUENCE_STEPS[0][0]}', {SEQUENCE_STEPS[0][1]}, true, false),
    ('k3', '{SEQUENCE_STEPS[1][0]}', {SEQUENCE_STEPS[1][1]}, false, false),
    ('k4', '{SEQUENCE_STEPS[2][0]}', {SEQUENCE_STEPS[2][1]}, true, false)
) as rows(message_key, sequence, step, is_opened, is_clicked);
create table marts.dim_contacts as
select * from (values
    ('a@example.com', 'B2B', timestamp '2026-08-03 10:00:00'),
    ('b@example.com', 'B2C', timestamp '2026-09-12 10:00:00'),
    ('c@example.com', 'B2C', timestamp '2026-10-20 10:00:00')
) as rows(email, segment, original_touch_at);
create table intermediate.int_engagement_tier_history as
select * from (values
    ('a@example.com', 'new', timestamp '2026-08-03 10:00:00', timestamp '2026-09-01 00:00:00'),
    ('a@example.com', 'most_engaged', timestamp '2026-09-01 00:00:00', null),
    ('b@example.com', 'engaged', timestamp '2026-09-12 10:00:00', null)
) as rows(email, tier, valid_from, valid_to);
create table activations.sync_runs as
select * from (values
    ('r1', 'hubspot', 'contacts', timestamp '2026-10-01 00:00:00', false, 10, 1, '{{"POST /crm/v3/objects/contacts/batch/upsert": 1}}'),
    ('r2', 'brevo', 'contacts', timestamp '2026-10-01 00:00:00', false, 8, 0, '{{"POST /contacts/import": 1, "GET /processes/1": 2}}'),
    ('r3', 'hubspot', 'contacts', timestamp '2026-10-02 00:00:00', false, 2, 0, '{{"POST /crm/v3/objects/contacts/batch/upsert": 1}}'),
    ('r4', 'hubspot', 'contacts', timestamp '2026-10-03 00:00:00', true, 5, 0, '{{}}')
) as rows(run_id, destination, object, as_of, dry_run, sent, rejected, api_calls);
alter table activations.sync_runs add column started_at timestamp;
update activations.sync_runs set started_at = as_of;
create table marts.fct_sync_log as
select * from (values
    ('r1', 'hubspot', 'contacts', 'x@bad', true, '{REJECTION_REASON}')
) as rows(sync_run_id, destination, destination_object, record_key, is_rejected, reason);
create table publication as select timestamp '2026-10-02 01:00:00' as published_at, 'run-1' as run_id,
    '2026-10-02T00:00:00Z' as as_of;
"""

EXPECTED_CHARTS = {
    "Demos booked by campaign, per attribution model",
    *(f"Revenue by campaign ({currency}), per attribution model" for currency in CURRENCIES),
    "Lead to customer, per primary audience (all cohorts)",
    *(f"{audience}: funnel per cohort month" for audience in AUDIENCES),
    "Emails sent, opened and clicked per sequence step",
    "Contacts per segment at each month's end (by first touch)",
    "Contacts per engagement tier at each month's end",
    "Rows synced per run (as of)",
    "Rows rejected per run (as of)",
    "API calls per run (as of)",
}


@pytest.fixture()
def published(tmp_path: Path) -> Path:
    path = tmp_path / "published" / "analytics.duckdb"
    path.parent.mkdir()
    with duckdb.connect(str(path)) as con:
        con.execute(FIXTURE_SQL)
    return path


def test_every_chart_draws_in_a_browser(published: Path, tmp_path: Path) -> None:
    report = render_report(published, tmp_path / "reports" / "lifecycle.html")

    charts = drawn_charts(rendered_dom(report, tmp_path / "browser"))

    assert {chart.title for chart in charts.values()} == EXPECTED_CHARTS
    for chart_id, chart in charts.items():
        assert chart.svgs and sum(chart.marks.values()), f"{chart_id} ({chart.title}) drew nothing: {chart}"
    [sequences] = [chart for chart in charts.values() if chart.title.startswith("Emails sent")]
    assert sequences.marks["point"] == 3 * len(SEQUENCE_STEPS), "sent, opened and clicked for every step"
    [segments] = [chart for chart in charts.values() if chart.title.startswith("Contacts per segment")]
    assert segments.marks["js-line"] == 2, "one line per segment"


def test_the_report_is_one_self_contained_file(published: Path, tmp_path: Path) -> None:
    page = render_report(published, tmp_path / "report.html").read_text()

    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", page), "nothing is fetched when it opens"
    assert page.count("Plotly.newPlot(") == len(EXPECTED_CHARTS)
    assert "Data published 2026-10-02 01:00 UTC by run run-1, computed as of 2026-10-02T00:00:00Z." in page
    assert f"<td>{REJECTION_REASON}</td>" in page
    assert "Not built yet" not in page and "No rows yet" not in page


def test_a_missing_mart_is_a_note_and_the_rest_still_draws(published: Path, tmp_path: Path) -> None:
    with duckdb.connect(str(published)) as con:
        con.execute("drop table marts.fct_campaign_attribution; drop table marts.fct_funnel; "
                    "delete from marts.fct_message_engagement")

    report = render_report(published, tmp_path / "report.html")

    page = report.read_text()
    assert "Not built yet: marts.fct_campaign_attribution." in page
    assert "Not built yet: marts.fct_funnel." in page
    assert "No rows yet in marts.fct_message_engagement." in page
    charts = drawn_charts(rendered_dom(report, tmp_path / "browser"))
    assert {chart.title for chart in charts.values()} == {
        title for title in EXPECTED_CHARTS
        if not title.startswith(("Demos booked", "Revenue", "Lead to", "Emails sent"))
        and "funnel per cohort" not in title}
    assert all(sum(chart.marks.values()) for chart in charts.values())


def test_lifecycle_report_renders_the_published_copy(published: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    home = published.parent.parent
    monkeypatch.setenv("LIFECYCLE_HOME", str(home))

    assert cli.main(["report"]) == 0

    report = home / "reports" / "lifecycle.html"
    assert capsys.readouterr().out.strip() == str(report)
    assert "Lifecycle report" in report.read_text()
    assert not list(report.parent.glob(".*partial")), "written beside, then moved in place"


def test_lifecycle_report_without_a_published_copy_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LIFECYCLE_HOME", str(tmp_path))

    assert cli.main(["report"]) == cli.EXIT_REFUSED

    assert "no published copy" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()
