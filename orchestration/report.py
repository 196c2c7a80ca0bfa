"""The lifecycle report: one self-contained HTML file of the charts marketing looks at after each run.

It reads the analysts' published copy of the marts (orchestration/publish.py), never the live warehouse,
which a run may be writing. plotly.js is embedded once in the page, so the file opens in any browser without
a network. A chart whose mart is not in the copy (a mart not built yet, or a copy from an older version)
shows a note naming it instead, and the rest of the report still renders.
"""

from __future__ import annotations

import html
import itertools
import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from orchestration.publish import PUBLICATION_TABLE

FUNNEL_STAGES = (("leads", "Leads"), ("demos_booked", "Demo booked"), ("demos_completed", "Demo completed"),
                 ("customers", "Customer"))
REJECTION_REASONS_SHOWN = 15

Part = go.Figure | str
"""A chart, or an HTML fragment (a table) already escaped."""
Draw = Callable[[duckdb.DuckDBPyConnection], list[Part]]


@dataclass(frozen=True)
class Chart:
    """What is drawn from the tables it reads (``schema.table``): figures, or a table; nothing without rows."""

    reads: tuple[str, ...]
    draw: Draw


@dataclass(frozen=True)
class Section:
    title: str
    about: str
    charts: tuple[Chart, ...]


def _figure(title: str, x_title: str, y_title: str, traces: Iterable[go.BaseTraceType], *,
            barmode: str = "group") -> go.Figure:
    figure = go.Figure(list(traces))
    figure.update_layout(title=title, template="plotly_white", barmode=barmode, height=420,
                         xaxis_title=x_title, xaxis_type="category", yaxis_title=y_title, legend_title_text="",
                         margin={"l": 60, "r": 20, "t": 60, "b": 80})
    return figure


def _bars(series: Mapping[str, Mapping[str, float]]) -> list[go.Bar]:
    """One bar trace per series name, its x values in the order they were first seen."""
    return [go.Bar(name=name, x=list(values), y=list(values.values())) for name, values in series.items()]


def _grouped(rows: Iterable[tuple], *, skip_empty: bool = False) -> dict[str, dict[str, float]]:
    """``(series, x, value)`` rows as ``{series: {x: value}}``, summing repeated pairs."""
    series: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for name, x, value in rows:
        if skip_empty and not value:
            continue
        series[str(name)][str(x)] += float(value or 0)
    return series


def _attribution(con: duckdb.DuckDBPyConnection) -> list[Part]:
    rows = con.execute("""
        select attribution_model, source || coalesce(' / ' || campaign, ''), currency,
               sum(revenue), sum(demos_booked)
        from marts.fct_campaign_attribution
        group by all order by all""").fetchall()
    if not rows:
        return []
    figures = [_figure("Demos booked by campaign, per attribution model", "source / campaign", "demos booked",
                       _bars(_grouped((model, campaign, demos) for model, campaign, _, _, demos in rows)))]
    for currency in sorted({currency for _, _, currency, _, _ in rows if currency}):
        revenue = _grouped((model, campaign, amount) for model, campaign, row_currency, amount, _ in rows
                           if row_currency == currency)
        figures.append(_figure(f"Revenue by campaign ({currency}), per attribution model", "source / campaign",
                               f"revenue ({currency})", _bars(revenue)))
    return figures


def _funnel(con: duckdb.DuckDBPyConnection) -> list[Part]:
    stages = ", ".join(f"sum({column})" for column, _ in FUNNEL_STAGES)
    rows = con.execute(f"""
        select coalesce(primary_audience, 'Other'), strftime(cohort_month, '%Y-%m'), {stages}
        from marts.fct_funnel group by all order by all""").fetchall()
    if not rows:
        return []
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(FUNNEL_STAGES))
    for audience, _, *counts in rows:
        totals[audience] = [total + float(count or 0) for total, count in zip(totals[audience], counts, strict=True)]
    labels = [label for _, label in FUNNEL_STAGES]
    funnel = _figure("Lead to customer, per primary audience (all cohorts)", "contacts", "",
                     [go.Funnel(name=audience, y=labels, x=counts, textinfo="value+percent initial")
                      for audience, counts in totals.items()])
    funnel.update_layout(funnelmode="group", xaxis_type="linear")
    figures = [funnel]
    for audience in totals:
        by_month = {label: {month: float(counts[index] or 0) for row_audience, month, *counts in rows
                            if row_audience == audience}
                    for index, label in enumerate(labels)}
        figures.append(_figure(f"{audience}: funnel per cohort month", "cohort month (first lead)", "contacts",
                               _bars(by_month)))
    return figures


def _sequences(con: duckdb.DuckDBPyConnection) -> list[Part]:
    rows = con.execute("""
        select sequence, step, count(*), sum(case when is_opened then 1 else 0 end),
               sum(case when is_clicked then 1 else 0 end)
        from marts.fct_message_engagement group by all order by all""").fetchall()
    if not rows:
        return []
    steps = [f"{sequence} · step {step}" for sequence, step, *_ in rows]
    traces = [go.Bar(name=name, x=steps, y=[row[index] for row in rows])
              for index, name in ((2, "sent"), (3, "opened"), (4, "clicked"))]
    return [_figure("Emails sent, opened and clicked per sequence step", "sequence step", "emails", traces)]


def _segments(con: duckdb.DuckDBPyConnection) -> list[Part]:
    rows = con.execute("""
        select coalesce(segment, 'unknown'), strftime(date_trunc('month', original_touch_at), '%Y-%m'), count(*)
        from marts.dim_contacts where original_touch_at is not null
        group by all order by 2, 1""").fetchall()
    if not rows:
        return []
    months = sorted({month for _, month, _ in rows})
    new = _grouped(rows)
    traces = []
    for segment, per_month in sorted(new.items()):
        running, totals = 0.0, []
        for month in months:
            running += per_month.get(month, 0.0)
            totals.append(running)
        traces.append(go.Scatter(name=segment, x=months, y=totals, mode="lines+markers"))
    return [_figure("Contacts per segment at each month's end (by first touch)", "month", "contacts", traces)]


def _tiers(con: duckdb.DuckDBPyConnection) -> list[Part]:
    rows = con.execute("""
        with bounds as (
            select date_trunc('month', min(valid_from)) as first_month, max(coalesce(valid_to, valid_from)) as last_at
            from intermediate.int_engagement_tier_history
        ),
        month_ends as (
            select unnest(range(first_month + interval 1 month, last_at + interval 1 month, interval 1 month))
                   as month_end
            from bounds
        )
        select history.tier, strftime(month_ends.month_end - interval 1 day, '%Y-%m'), count(*)
        from month_ends
        inner join intermediate.int_engagement_tier_history as history
            on history.valid_from < month_ends.month_end
            and (history.valid_to is null or history.valid_to >= month_ends.month_end)
        group by all order by 2, 1""").fetchall()
    if not rows:
        return []
    traces = [go.Bar(name=tier, x=list(values), y=list(values.values())) for tier, values in _grouped(rows).items()]
    return [_figure("Contacts per engagement tier at each month's end", "month", "contacts", traces,
                    barmode="stack")]


def _sync_runs(con: duckdb.DuckDBPyConnection) -> list[Part]:
    rows = con.execute("""
        select strftime(as_of, '%Y-%m-%d %H:%M'), destination || ' ' || object, sent - rejected, rejected, api_calls
        from activations.sync_runs where not dry_run order by as_of, started_at""").fetchall()
    if not rows:
        return []
    synced = _grouped((name, run, rows_synced) for run, name, rows_synced, _, _ in rows)
    rejected = _grouped(((name, run, count) for run, name, _, count, _ in rows), skip_empty=True)
    calls = _grouped((name, run, sum(json.loads(api_calls or "{}").values())) for run, name, _, _, api_calls in rows)
    figures = [_figure("Rows synced per run (as of)", "run (as of)", "rows", _bars(synced), barmode="stack")]
    if rejected:
        figures.append(_figure("Rows rejected per run (as of)", "run (as of)", "rows", _bars(rejected),
                               barmode="stack"))
    figures.append(_figure("API calls per run (as of)", "run (as of)", "calls", _bars(calls), barmode="stack"))
    return figures

def _rejection_reasons(con: duckdb.DuckDBPyConnection) -> list[Part]:
    rows = con.execute(f"""
        select destination || ' ' || destination_object, coalesce(reason, '(no reason)'), count(*)
        from marts.fct_sync_log where is_rejected
        group by all order by 3 desc, 1, 2 limit {REJECTION_REASONS_SHOWN}""").fetchall()
    if not rows:
        return ["<p>No row was rejected.</p>"]
    cells = "".join(f"<tr><td>{html.escape(target)}</td><td>{html.escape(reason)}</td><td>{count:,}</td></tr>"
                    for target, reason, count in rows)
    return [("<h3>Most frequent rejections</h3><table><thead><tr><th>destination</th>"
            f"<th>reason</th><th>rows</th></tr></thead><tbody>{cells}</tbody></table>")]



SECTIONS = (
    Section("Campaigns", "Revenue and demos booked credited to each campaign, under each attribution model.",
            (Chart(("marts.fct_campaign_attribution",), _attribution),)),
    Section("Funnel", "Lead, demo booked, demo completed and customer, per primary audience and per cohort month.",
            (Chart(("marts.fct_funnel",), _funnel),)),
    Section("Sequences", "Each lifecycle sequence's emails sent, opened and clicked per step (a click counts "
                         "as an open).", (Chart(("marts.fct_message_engagement",), _sequences),)),
    Section("Audience", "Segment and engagement-tier sizes over time.",
            (Chart(("marts.dim_contacts",), _segments),
             Chart(("intermediate.int_engagement_tier_history",), _tiers))),
    Section("Sync health", "Per run of the activations: rows synced to HubSpot and Brevo, rows they rejected, "
                           "API calls, and why rows were rejected.",
            (Chart(("activations.sync_runs",), _sync_runs), Chart(("marts.fct_sync_log",), _rejection_reasons))),
)


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _section_html(section: Section, con: duckdb.DuckDBPyConnection, existing: set[str],
                  chart_ids: Iterator[int]) -> str:
    parts = [f"<section><h2>{html.escape(section.title)}</h2><p>{html.escape(section.about)}</p>"]
    for chart in section.charts:
        missing = [table for table in chart.reads if table not in existing]
        if missing:
            parts.append(_note(f"Not built yet: {', '.join(missing)}."))
            continue
        drawn = chart.draw(con)
        if not drawn:
            parts.append(_note(f"No rows yet in {', '.join(chart.reads)}."))
        for part in drawn:
            parts.append(part if isinstance(part, str) else _chart_html(part, next(chart_ids)))
    parts.append("</section>")
    return "".join(parts)


def _publication_line(con: duckdb.DuckDBPyConnection, existing: set[str]) -> str:
    if f"main.{PUBLICATION_TABLE}" not in existing:
        return ""
    published_at, run_id, as_of = con.execute(f"select published_at, run_id, as_of from {PUBLICATION_TABLE}").fetchone()
    return (f"Data published {published_at:%Y-%m-%d %H:%M} UTC by run {run_id}"
            + (f", computed as of {as_of}" if as_of else "") + ". ")


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
section { margin-bottom: 3rem; }
.note { color: #8a5a00; background: #fff6e0; padding: 0.5rem 1rem; border-radius: 4px; }
table { border-collapse: collapse; } td, th { border-bottom: 1px solid #ddd; padding: 0.3rem 0.8rem; text-align: left; }
"""


def _chart_html(figure: go.Figure, chart_id: int) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{chart_id}",
                          config={"displaylogo": False, "responsive": True})


def _write_page(output: Path, title: str, intro: str, body: str) -> Path:
    """One self-contained page (plotly.js embedded), replaced whole, atomically."""
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style><script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{intro}</p>{body}</body></html>")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, output)
    return output


def _backtests_section(reports_dir: Path) -> str:
    """Links to the backtest pages beside the report (``lifecycle backtest`` writes them), newest first."""
    pages = sorted(reports_dir.glob(f"backtest-*/{BACKTEST_PAGE}"), reverse=True)
    if not pages:
        return ""
    links = "".join(f'<li><a href="{html.escape(page.relative_to(reports_dir).as_posix())}">'
                    f"{html.escape(page.parent.name)}</a></li>" for page in pages)
    return (f"<section><h2>Backtests</h2><p>Sequence files replayed over past windows with "
            f"<code>lifecycle backtest</code>, compared with what was sent.</p><ul>{links}</ul></section>")


def render_report(published: Path, output: Path) -> Path:
    """Write the report of the published copy ``published`` to ``output`` (replaced whole, atomically)."""
    with duckdb.connect(str(published), read_only=True) as con:
        existing = {f"{schema}.{table}" for schema, table in
                    con.execute("select table_schema, table_name from information_schema.tables").fetchall()}
        chart_ids = itertools.count(1)
        sections = [_section_html(section, con, existing, chart_ids) for section in SECTIONS]
        publication = _publication_line(con, existing)
    rendered = datetime.now(UTC)
    intro = (f"{html.escape(publication)}Rendered {rendered:%Y-%m-%d %H:%M} UTC from "
             f"{html.escape(str(published))}.")
    return _write_page(output, "Lifecycle report", intro, "".join(sections) + _backtests_section(output.parent))


BACKTEST_PAGE = "backtest.html"


def render_backtest(steps: Iterable[tuple[str, int, int, int, int]], output: Path, *, window: str,
                    sequences: Path) -> Path:
    """The backtest's page: per sequence and step, sent in the backtest, really sent, and both."""
    rows = list(steps)
    labels = [f"{sequence} · step {step}" for sequence, step, *_ in rows]
    traces = [go.Bar(name=name, x=labels, y=[row[index] for row in rows])
              for index, name in ((2, "backtest"), (3, "really sent"), (4, "both"))]
    figure = _figure("Emails per sequence step: backtest and reality", "sequence step", "emails", traces)
    cells = "".join(f"<tr><td>{html.escape(sequence)}</td><td>{step}</td><td>{backtest:,}</td><td>{actual:,}</td>"
                    f"<td>{both:,}</td></tr>" for sequence, step, backtest, actual, both in rows)
    table = ("<table><thead><tr><th>sequence</th><th>step</th><th>backtest</th><th>really sent</th><th>both</th>"
             f"</tr></thead><tbody>{cells}</tbody></table>")
    body = (_chart_html(figure, 1) if rows else _note("Nothing was sent in the window, in the backtest or for real."))
    intro = (f"{html.escape(str(sequences))} replayed over {html.escape(window)}; every message with both send "
             f"times is in messages.csv beside this page.")
    return _write_page(output, "Sequence backtest", intro, body + table)
