"""``lifecycle backtest`` replays the stored history with another sequence file, in a scratch copy.

One small world, run for real (a ``lifecycle run`` process per day, sends to the sandbox) on four days; then:

- the shipped sequence file replayed over the last three days on the same daily cadence reproduces exactly
  what those runs sent: every message key, at the same time (the replay is exact, not an estimate);
- its page draws its chart in headless Chromium, and the report links to it;
- a file with one more sequence shows its messages next to the unchanged ones, and the live warehouse,
  the sandbox's APIs and the emails sent are left as they were;
- a file without the project's columns is refused with one line naming them.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from orchestration import demo
from orchestration.report import render_report
from orchestration.resources import DBT_PROJECT_DIR
from sandbox.app import Sandbox
from settings import Settings, sandbox_environment
from tests.orchestration.browser import drawn_charts, rendered_dom
from tests.orchestration.cli_process import lifecycle_env, run_lifecycle, sandbox_calls, write_calls
from tests.orchestration.test_dry_run import snapshot
from tests.servers import fresh_sandbox

FIRST_RUN = datetime(2026, 9, 6, 12)
RUN_DAYS = 4
NEW_SEQUENCE = {"sequence": "webinar_followup", "step": "1", "kind": "marketing", "template_id": "901",
                "entry_trigger": "webinar_registration", "offset_from": "entry", "offset_days": "1",
                "offset_hours": "0", "expires_at_anchor": "false", "exit_scope": "contact",
                "resume_delay_days": "0", "merge_policy": "ignore", "reentry_policy": "each_trigger",
                "reentry_after_days": "0", "description": "One day after a webinar registration: the recording"}


@dataclass
class World:
    home: Path
    sandbox_url: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def world(sandbox_server: tuple[str, Sandbox], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sandbox_url, _ = sandbox_server
    fresh_sandbox(sandbox_url)
    home = tmp_path_factory.mktemp("backtest-world")
    demo.generate_world(Settings.from_env(sandbox_environment(sandbox_url, home)), contacts=60, seed=5,
                       sandbox_url=sandbox_url, collector_url=None, start="2026-08-01", days=40)
    env = lifecycle_env(sandbox_url, home)
    for day in range(RUN_DAYS):
        as_of = (FIRST_RUN + timedelta(days=day)).isoformat() + "Z"
        completed = run_lifecycle(env, "run", "--select", "all", "--skip-dbt-tests", "--as-of", as_of)
        assert completed.returncode == 0, completed.stdout + completed.stderr
    yield World(home, sandbox_url, env)


def backtest(world: World, sequences: Path, *, every_hours: int) -> tuple[list[dict[str, str]], str]:
    start, end = FIRST_RUN + timedelta(days=1), FIRST_RUN + timedelta(days=RUN_DAYS - 1)
    completed = run_lifecycle(world.env, "backtest", "--sequences", str(sequences), "--from", start.isoformat() + "Z",
                              "--to", end.isoformat() + "Z", "--every-hours", str(every_hours))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    page, messages = (Path(line.split(": ", 1)[1]) for line in completed.stdout.strip().splitlines()[-3:-1])
    assert page.name == "backtest.html" and page.parent == messages.parent
    with messages.open(newline="") as handle:
        return list(csv.DictReader(handle)), completed.stdout


@pytest.mark.timeout(1200)
def test_the_shipped_file_on_the_real_cadence_reproduces_the_real_sends(world: World) -> None:
    rows, out = backtest(world, DBT_PROJECT_DIR / "seeds" / "sequences.csv", every_hours=24)

    assert len(rows) > 10, out
    mismatched = [row for row in rows if row["backtest_sent_at"] != row["actual_sent_at"]]
    assert mismatched == [], out
    assert {row["sequence"] for row in rows} >= {"demo_nurture", "webinar_confirmation", "post_purchase"}


def test_the_backtest_page_draws_its_chart_and_the_report_links_it(world: World, tmp_path: Path) -> None:
    """The page of the last backtest opens offline in a browser with its chart drawn; the report lists it."""
    [page] = sorted((world.home / "reports").glob("backtest-*/backtest.html"))[-1:]

    [chart] = drawn_charts(rendered_dom(page, tmp_path / "browser")).values()

    assert chart.title.startswith("Emails per sequence step") and chart.marks["point"] > 0
    shutil.copytree(page.parent, tmp_path / "reports" / page.parent.name)
    report = render_report(world.home / "published" / "analytics.duckdb", tmp_path / "reports" / "lifecycle.html")
    assert f'href="{page.parent.name}/backtest.html"' in report.read_text()


@pytest.mark.timeout(900)
def test_a_new_sequence_shows_beside_the_others_and_nothing_live_changes(world: World, tmp_path: Path) -> None:
    sequences = tmp_path / "sequences.csv"
    shutil.copyfile(DBT_PROJECT_DIR / "seeds" / "sequences.csv", sequences)
    with sequences.open() as handle:
        columns = next(csv.reader(handle))
    with sequences.open("a", newline="") as handle:
        csv.DictWriter(handle, columns, restval="", lineterminator="\n").writerow(NEW_SEQUENCE)
    before = snapshot(world.home)
    calls_before = sandbox_calls(world.sandbox_url)
    emails_before = httpx.get(f"{world.sandbox_url}/_sandbox/brevo/emails").json()

    rows, out = backtest(world, sequences, every_hours=6)

    followups = [row for row in rows if row["sequence"] == "webinar_followup"]
    assert followups and all(row["actual_sent_at"] == "" and row["backtest_sent_at"] for row in followups), out
    assert any(row["sequence"] != "webinar_followup" and row["backtest_sent_at"] and row["actual_sent_at"]
               for row in rows)
    assert "webinar_followup" in out
    assert snapshot(world.home) == before
    assert write_calls(world.sandbox_url, calls_before) == {}
    assert httpx.get(f"{world.sandbox_url}/_sandbox/brevo/emails").json() == emails_before
    assert not any((world.home / "scratch").iterdir()), "the scratch copy is thrown away"


def test_a_file_without_the_projects_columns_is_refused(world: World, tmp_path: Path) -> None:
    sequences = tmp_path / "sequences.csv"
    sequences.write_text("sequence,step,kind\ndemo_nurture,1,marketing\n")

    completed = run_lifecycle(world.env, "backtest", "--sequences", str(sequences), "--from", "2026-09-07T00:00:00Z",
                              "--to", "2026-09-08T00:00:00Z")

    assert completed.returncode == 2
    assert completed.stderr.startswith(f"lifecycle backtest: {sequences} does not have the columns of ")
    assert "missing template_id, " in completed.stderr
