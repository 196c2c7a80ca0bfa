"""A run ends settled, and a run with nothing to do does (almost) nothing.

One small world, run three times through ``lifecycle run`` (a real process) at one ``--as-of``:

- after the first run, the marts show its own sends (``fct_messages`` counts what the ledger holds as sent,
  ``messages_due`` lists none of them) and the Brevo lists hold what the state after the sends asks for;
- the second run (its ingest reads back the first run's writes) writes nothing: no list membership the
  first run added is removed;
- the third finds nothing landed, nothing sent and the same as-of: it skips the dbt build and writes nothing.

``LIFECYCLE_TEST_SETTLED_CONTACTS`` sets the world's size (default 120).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration import demo
from sandbox.app import Sandbox
from settings import Settings, sandbox_environment
from tests.orchestration.cli_process import lifecycle_env, run_lifecycle, sandbox_calls, write_calls
from tests.servers import fresh_sandbox

CONTACTS = int(os.environ.get("LIFECYCLE_TEST_SETTLED_CONTACTS", "120"))


@dataclass
class World:
    home: Path
    sandbox_url: str
    env: dict[str, str]
    as_of: str

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            return con.execute(sql).fetchall()

    def run(self) -> dict[str, int]:
        """One whole run at the world's as-of; the calls it made that may write."""
        before = sandbox_calls(self.sandbox_url)
        completed = run_lifecycle(self.env, "run", "--select", "all", "--as-of", self.as_of)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        return write_calls(self.sandbox_url, before)

    def transform_materializations(self) -> int:
        """Assets the latest run's dbt step materialized."""
        with dg.DagsterInstance.from_config(str(self.home / "dagster")) as instance:
            (latest, *_) = instance.get_runs(limit=1)
            records = instance.get_records_for_run(
                latest.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
            return sum(1 for record in records if record.event_log_entry.step_key == "transform_dbt")


@pytest.fixture(scope="module")
def world(sandbox_server: tuple[str, Sandbox], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sandbox_url, _ = sandbox_server
    fresh_sandbox(sandbox_url)
    home = tmp_path_factory.mktemp("settled-world")
    demo.generate_world(Settings.from_env(sandbox_environment(sandbox_url, home)), contacts=CONTACTS, seed=5,
                       sandbox_url=sandbox_url, collector_url=None)
    as_of = datetime.now(UTC).replace(microsecond=0).isoformat()
    yield World(home, sandbox_url, lifecycle_env(sandbox_url, home), as_of)


def test_the_first_run_ends_with_marts_that_show_its_sends(world: World) -> None:
    writes = world.run()
    assert writes.get("brevo POST /v3/smtp/email"), "the world has emails due"
    [(sent_in_ledger,)] = world.query("select count(*) from activations.send_ledger where status = 'sent'")
    [(sent_in_marts,)] = world.query("select count(*) from marts.fct_messages where status = 'sent'")
    assert sent_in_marts == sent_in_ledger > 0
    assert world.query("""select count(*) from marts.messages_due as due
                          inner join activations.send_ledger as ledger using (message_key)""") == [(0,)]


def test_the_next_run_at_the_same_moment_undoes_nothing(world: World) -> None:
    assert world.run() == {}


def test_a_run_with_nothing_new_skips_the_build(world: World) -> None:
    assert world.run() == {}
    assert world.transform_materializations() == 0
