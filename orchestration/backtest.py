"""``lifecycle backtest``: what a changed sequence file would have sent over a past window, next to what was
sent, without touching a destination, the send ledger or the live marts.

It works on a scratch copy of the warehouse and of the dbt project (with the new ``sequences.csv``). The ledger
copy keeps what was sent before the window and forgets the rest; then the window is replayed on the hourly
schedule the pipeline runs on: at each hour where something can fall due (a trigger happened since the last
build, or a scheduled step's time came), dbt builds the sequence models as of that hour and every message due
is recorded in the copy's ledger as sent then, so the next build sees it sent, exactly as after a real run.
Hours where nothing can fall due are skipped. Finally each message key is matched with the real ledger's
sends in the window; the comparison is written as CSV, with a page of charts, to
``$LIFECYCLE_HOME/reports/backtest-<time>/`` (the report links to it).
"""

from __future__ import annotations

import bisect
import csv
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import duckdb

from activations.state import migrate, sql_literal, utc_naive
from orchestration.report import BACKTEST_PAGE, render_backtest
from orchestration.resources import DBT_EXECUTABLE, DBT_PROJECT_DIR, scratch_copy
from settings import Settings

SEQUENCES_SEED = Path("seeds") / "sequences.csv"
BACKTEST_TAG = "backtest"
DBT_TIMEOUT_SECONDS = 1800


class BacktestError(Exception):
    """A backtest that cannot start or whose dbt build failed; the message says what to fix."""


class StepCount(NamedTuple):
    sequence: str
    step: int
    backtest: int
    actual: int
    both: int


@dataclass(frozen=True)
class BacktestResult:
    builds: int
    steps: list[StepCount]
    summary_csv: Path
    messages_csv: Path
    page: Path


def check_sequences_file(path: Path) -> None:
    """The new file must be a readable CSV with the project's columns; the rest is checked by dbt's tests of
    the seed and of ``int_sequence_definitions`` before anything is replayed."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError) as error:
        raise BacktestError(f"cannot read {path}: {error}") from error
    with (DBT_PROJECT_DIR / SEQUENCES_SEED).open(newline="", encoding="utf-8") as handle:
        expected = next(csv.reader(handle))
    problems = []
    if missing := [column for column in expected if column not in header]:
        problems.append(f"missing {', '.join(missing)}")
    if unknown := [column for column in header if column not in expected]:
        problems.append(f"unknown {', '.join(unknown)}")
    if problems:
        raise BacktestError(f"{path} does not have the columns of {SEQUENCES_SEED}: {'; '.join(problems)}")


class _Replay:
    """The scratch copy and the dbt commands run in it."""

    def __init__(self, settings: Settings, sequences: Path) -> None:
        self.scratch = scratch_copy(settings, prefix="backtest-", dlt_state=False)
        self.project = self.scratch / "dbt_project"
        shutil.copytree(DBT_PROJECT_DIR, self.project, ignore=shutil.ignore_patterns("target", "logs"))
        shutil.copyfile(sequences, self.project / SEQUENCES_SEED)
        self.warehouse = self.scratch / settings.warehouse_path.name
        self.env = {**os.environ, "LIFECYCLE_HOME": str(self.scratch), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                    "LIFECYCLE_DUCKDB_MEMORY_LIMIT": settings.duckdb_config["memory_limit"]}
        with self.connect() as con:
            migrate(con)  # the replay writes the copy's send ledger, which an older warehouse lays out otherwise

    def dbt(self, *args: str, as_of: datetime) -> None:
        command = [DBT_EXECUTABLE, *args, "--project-dir", str(self.project), "--profiles-dir", str(self.project),
                   "--target-path", str(self.scratch / "target"), "--log-path", str(self.scratch / "logs")]
        env = {**self.env, "LIFECYCLE_AS_OF": as_of.strftime("%Y-%m-%dT%H:%M:%SZ")}
        completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False,
                                   timeout=DBT_TIMEOUT_SECONDS)
        if completed.returncode != 0:
            failures = [line for line in completed.stdout.splitlines() if "FAIL" in line or "Error" in line]
            raise BacktestError(f"dbt {args[0]} as of {as_of:%Y-%m-%dT%H:%M:%SZ} failed:\n"
                                + "\n".join(failures[-20:] or completed.stdout.splitlines()[-20:]))

    def connect(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.warehouse))

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def _forget_sends_from(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> None:
    """Keep the window's real sends aside for the comparison, then take them (and anything unsettled since)
    out of the copy's ledger: the new file decides the window afresh."""
    con.execute("""create or replace table activations.backtest_actual as
                   select message_key, email, sequence, step, sent_at from activations.send_ledger
                   where status = 'sent' and sent_at >= ? and sent_at <= ?""", [start, end])
    con.execute("delete from activations.send_ledger where coalesce(sent_at, ?) >= ?", [start, start])


def _tick_sql(column: str) -> str:
    """The schedule tick (start + k * every) at or after ``column``, as k; parameters: start, every seconds."""
    return f"cast(ceil((epoch({column}) - epoch(cast(? as timestamp))) / ?) as bigint)"


def _trigger_ticks(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, every: timedelta) -> list[datetime]:
    """The ticks that follow a trigger in the window (at most one per tick, however many contacts)."""
    rows = con.execute(f"""select distinct {_tick_sql('occurred_at')} from intermediate.int_sequence_triggers
                           where occurred_at > ? and occurred_at <= ? order by 1""",
                       [start, every.total_seconds(), start, end]).fetchall()
    return [start + ticks * every for (ticks,) in rows]


def _scheduled_tick(con: duckdb.DuckDBPyConnection, after: datetime, start: datetime,
                    every: timedelta) -> datetime | None:
    """The tick at which the next scheduled step after ``after`` falls due, if any."""
    ticks = con.execute(f"""select min({_tick_sql('due_at')}) from marts.fct_messages
                            where status = 'scheduled' and due_at > ?""",
                        [start, every.total_seconds(), after]).fetchone()[0]
    return None if ticks is None else start + ticks * every


def _send_due(con: duckdb.DuckDBPyConnection, at: datetime) -> int:
    """Record every message due as sent at ``at``, as a run's sends would; returns how many."""
    due = con.execute("select count(*) from marts.messages_due").fetchone()[0]
    con.execute("""insert into activations.send_ledger (message_key, email, sequence, step, status, sent_at, send_tag)
                   select message_key, email, sequence, step, 'sent', ?, ? from marts.messages_due""",
                [at, BACKTEST_TAG])
    return due


def _next_tick(at: datetime, trigger_ticks: list[datetime], scheduled: datetime | None) -> datetime | None:
    """The first tick after ``at`` at which a build may send something: a trigger's or a scheduled step's."""
    later = bisect.bisect_right(trigger_ticks, at)
    upcoming = [tick for tick in (trigger_ticks[later] if later < len(trigger_ticks) else None, scheduled) if tick]
    return min(upcoming, default=None)


def _compare(con: duckdb.DuckDBPyConnection, out: Path) -> tuple[list[StepCount], Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    con.execute(f"""create or replace temp view compared as
        select coalesce(b.message_key, a.message_key) as message_key, coalesce(b.email, a.email) as email,
               coalesce(b.sequence, a.sequence) as sequence, coalesce(b.step, a.step) as step,
               b.sent_at as backtest_sent_at, a.sent_at as actual_sent_at
        from (select * from activations.send_ledger where send_tag = '{BACKTEST_TAG}') as b
        full outer join activations.backtest_actual as a on b.message_key = a.message_key""")
    con.execute("""create or replace temp view step_counts as
        select sequence, step, count(backtest_sent_at) as backtest, count(actual_sent_at) as actual,
               count(case when backtest_sent_at is not null and actual_sent_at is not null then 1 end) as both_sent
        from compared group by sequence, step""")
    summary, messages = out / "summary.csv", out / "messages.csv"
    con.execute(f"copy (select * from step_counts order by sequence, step) to {sql_literal(str(summary))} (header)")
    con.execute(f"copy (select * from compared order by sequence, step, coalesce(backtest_sent_at, actual_sent_at), "
                f"email) to {sql_literal(str(messages))} (header)")
    steps = [StepCount(*row) for row in con.execute("select * from step_counts order by sequence, step").fetchall()]
    return steps, summary, messages


def backtest(settings: Settings, sequences: Path, start: datetime, end: datetime, *,
             every: timedelta = timedelta(hours=1),
             progress: Callable[[datetime, int], None] = lambda at, sent: None) -> BacktestResult:
    """Replay [start, end] with ``sequences`` in a scratch copy and compare with what was sent."""
    check_sequences_file(sequences)
    if not settings.warehouse_path.exists():
        raise BacktestError(f"no warehouse at {settings.warehouse_path}: run the pipeline first")
    if end <= start:
        raise BacktestError("--to must be after --from")
    start, end = utc_naive(start), utc_naive(end)
    replay = _Replay(settings, sequences)
    try:
        replay.dbt("build", "--select", "sequences", "int_sequence_definitions", as_of=end)
        replay.dbt("run", "--select", "+int_sequence_triggers", as_of=end)
        with replay.connect() as con:
            _forget_sends_from(con, start, end)
            trigger_ticks = _trigger_ticks(con, start, end, every)
        builds = 0
        at: datetime | None = start
        while at is not None and at <= end:
            replay.dbt("run", "--select", "+messages_due", as_of=at)
            builds += 1
            with replay.connect() as con:
                progress(at, _send_due(con, at))
                scheduled = _scheduled_tick(con, at, start, every)
            at = _next_tick(at, trigger_ticks, scheduled)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        with replay.connect() as con:
            steps, summary, messages = _compare(con, settings.home / "reports" / f"backtest-{stamp}")
        page = render_backtest(steps, summary.with_name(BACKTEST_PAGE), sequences=sequences,
                               window=f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
        return BacktestResult(builds=builds, steps=steps, summary_csv=summary, messages_csv=messages, page=page)
    finally:
        replay.close()
