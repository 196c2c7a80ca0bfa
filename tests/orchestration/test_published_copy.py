"""The analysts' copy of the marts and the report, after real runs of ``lifecycle run`` (real processes) on a
small world in the sandbox. The tests run in order on the same home:

- the run publishes every mart, its own sync log included (``marts.fct_sync_log``, a view in the warehouse,
  a table in the copy), and renders the report from the copy, whose charts draw in a browser;
- the copy opens read-only while another process holds the live warehouse open for writing, and a reader
  holding the copy open keeps reading it while a new copy replaces it;
- a dry run leaves the copy and the report as they were.

``LIFECYCLE_TEST_PUBLISH_CONTACTS`` sets the world's size (default 40).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from orchestration import demo
from orchestration.publish import publish
from sandbox.app import Sandbox
from settings import Settings, sandbox_environment
from tests.orchestration.browser import drawn_charts, rendered_dom
from tests.orchestration.cli_process import lifecycle_env, run_lifecycle
from tests.servers import fresh_sandbox

CONTACTS = int(os.environ.get("LIFECYCLE_TEST_PUBLISH_CONTACTS", "40"))
HOLD_FOR_WRITING = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("begin transaction")
con.execute("create table main.held_by_writer as select 1 as held")
print("holding", flush=True)
sys.stdin.read()
"""
"""A second process that writes the live warehouse (as a run does) and holds it until told; its transaction is
never committed."""


@dataclass
class World:
    home: Path
    env: dict[str, str]
    as_of: datetime

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def published(self) -> Path:
        return Settings.from_env(self.env).published_path

    @property
    def report(self) -> Path:
        return Settings.from_env(self.env).report_path


def tables(path: Path, schema: str) -> dict[str, int]:
    """Rows per table and view of ``schema``."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = [name for (name,) in con.execute(
            "select table_name from information_schema.tables where table_schema = ? order by 1", [schema]).fetchall()]
        return {name: con.execute(f'select count(*) from "{schema}"."{name}"').fetchone()[0] for name in names}


def publication(path: Path) -> tuple:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("select published_at, run_id, as_of from publication").fetchone()


@pytest.fixture(scope="module")
def world(sandbox_server: tuple[str, Sandbox], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sandbox_url, _ = sandbox_server
    fresh_sandbox(sandbox_url)
    home = tmp_path_factory.mktemp("published-world")
    demo.generate_world(Settings.from_env(sandbox_environment(sandbox_url, home)), contacts=CONTACTS, seed=5,
                       sandbox_url=sandbox_url, collector_url=None)
    env = lifecycle_env(sandbox_url, home)
    as_of = datetime.now(UTC).replace(microsecond=0)
    completed = run_lifecycle(env, "run", "--select", "all", "--skip-dbt-tests", "--as-of", as_of.isoformat())
    assert completed.returncode == 0, completed.stdout + completed.stderr
    yield World(home, env, as_of)


def test_the_run_publishes_every_mart_with_its_own_sync_log(world: World) -> None:
    published = tables(world.published, "marts")

    assert published == tables(world.warehouse, "marts")
    assert published["fct_sync_log"] > 0 and published["dim_contacts"] >= CONTACTS
    with duckdb.connect(str(world.published), read_only=True) as con:
        kind = con.execute("select table_type from information_schema.tables "
                           "where table_schema = 'marts' and table_name = 'fct_sync_log'").fetchone()
        logged = con.execute("select destination || '/' || destination_object, count(*), min(as_of), max(as_of) "
                             "from marts.fct_sync_log group by all order by all").fetchall()
        runs = con.execute("select destination || '/' || object, sent from activations.sync_runs "
                           "where not dry_run and sent > 0 order by all").fetchall()
    assert kind == ("BASE TABLE",), "materialized: it holds the run's log, not a view on a warehouse it lacks"
    as_of = world.as_of.replace(tzinfo=None)
    assert all(first == last == as_of for _, _, first, last in logged), "this run's syncs"
    assert {target: count for target, count, _, _ in logged} == dict(runs), "every row each sync sent"
    assert publication(world.published)[2] == world.as_of.isoformat().replace("+00:00", "Z")
    assert [path.name for path in world.published.parent.iterdir()] == [world.published.name]


def test_the_run_renders_the_report_from_the_copy_and_its_charts_draw(world: World, tmp_path: Path) -> None:
    _, run_id, _ = publication(world.published)
    page = world.report.read_text()

    assert f"by run {run_id}" in page, "rendered from this run's copy"
    charts = drawn_charts(rendered_dom(world.report, tmp_path / "browser"))
    titles = {chart.title for chart in charts.values()}
    assert {"Emails sent, opened and clicked per sequence step", "Rows synced per run (as of)",
            "API calls per run (as of)", "Contacts per segment at each month's end (by first touch)"} <= titles
    for chart in charts.values():
        assert chart.svgs and sum(chart.marks.values()), f"{chart.title} drew nothing: {chart}"
    missing = {table for table in ("fct_campaign_attribution", "fct_funnel")
               if table not in tables(world.published, "marts")}
    assert {f"Not built yet: marts.{table}." for table in missing} == {
        line for line in ("Not built yet: marts.fct_campaign_attribution.", "Not built yet: marts.fct_funnel.")
        if line in page}


def test_analysts_read_the_copy_while_another_process_writes_the_warehouse(world: World) -> None:
    writer = subprocess.Popen([sys.executable, "-c", HOLD_FOR_WRITING, str(world.warehouse)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "holding"
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(str(world.warehouse), read_only=True)
        with duckdb.connect(str(world.published), read_only=True) as con:
            assert con.execute("select count(*) from marts.dim_contacts").fetchone()[0] >= CONTACTS
    finally:
        writer.communicate("", timeout=60)
    assert writer.returncode == 0


def test_a_reader_of_the_old_copy_keeps_reading_while_a_new_one_replaces_it(world: World) -> None:
    settings = Settings.from_env(world.env)
    with duckdb.connect(str(world.published), read_only=True) as reader:
        before = reader.execute("select run_id, (select count(*) from marts.fct_sync_log) from publication").fetchone()

        publish(settings.warehouse_path, settings.published_path, settings.duckdb_config, run_id="next-run",
                as_of=None)

        assert reader.execute("select run_id, (select count(*) from marts.fct_sync_log) "
                              "from publication").fetchone() == before
    assert publication(world.published)[1] == "next-run"


def test_a_dry_run_leaves_the_copy_and_the_report_as_they_were(world: World) -> None:
    published, report = world.published.stat(), world.report.stat()
    before = publication(world.published)

    completed = run_lifecycle(world.env, "run", "--select", "all", "--dry-run", "--skip-dbt-tests",
                              "--as-of", (world.as_of + timedelta(days=30)).isoformat())

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert publication(world.published) == before
    after_published, after_report = world.published.stat(), world.report.stat()
    assert (after_published.st_ino, after_published.st_mtime_ns) == (published.st_ino, published.st_mtime_ns)
    assert (after_report.st_ino, after_report.st_mtime_ns) == (report.st_ino, report.st_mtime_ns)
