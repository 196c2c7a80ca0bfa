"""A run ends settled, and a run with nothing to do does (almost) nothing.

One small world, run three times through ``lifecycle run`` (a real process) at one ``--as-of``:

- after the first run, the marts show its own sends (``fct_messages`` counts what the ledger holds as sent,
  ``messages_due`` lists none of them) and the Brevo lists hold what the state after the sends asks for;
- the second run (its ingest reads back the first run's writes) writes nothing: no list membership the
  first run added is removed;
- the third finds nothing landed, nothing sent and the same as-of: it skips the dbt build and writes nothing;
- after a person edits a HubSpot contact, the fourth builds only the models that read HubSpot's contacts, and
  the warehouse ends as a full build at that as-of leaves it.

``LIFECYCLE_TEST_SETTLED_CONTACTS`` sets the world's size (default 120).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from orchestration import builds, demo
from orchestration.dbt_process import DBT_PROJECT
from orchestration.resources import DBT_EXECUTABLE, DBT_PROJECT_DIR
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
    output: str = ""

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            return con.execute(sql).fetchall()

    def run(self) -> dict[str, int]:
        """One whole run at the world's as-of; the calls it made that may write."""
        before = sandbox_calls(self.sandbox_url)
        completed = run_lifecycle(self.env, "run", "--select", "all", "--as-of", self.as_of)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        self.output = completed.stdout
        return write_calls(self.sandbox_url, before)

    def materialized(self) -> dict[str, list[dg.AssetMaterialization]]:
        """The latest run's materializations per step."""
        with dg.DagsterInstance.from_config(str(self.home / "dagster")) as instance:
            (latest, *_) = instance.get_runs(limit=1)
            records = instance.get_records_for_run(
                latest.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        steps: dict[str, list[dg.AssetMaterialization]] = {}
        for record in records:
            event = record.event_log_entry.dagster_event
            steps.setdefault(event.step_key, []).append(event.step_materialization_data.materialization)
        return steps

    def rebuilt_and_standing(self) -> tuple[int, int]:
        """How many models and seeds the latest run's dbt step built, and how many it left as they were."""
        transform = self.materialized()["transform_dbt"]
        standing = sum(1 for materialization in transform if builds.STANDING in materialization.metadata)
        return len(transform) - standing, standing


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
    assert world.rebuilt_and_standing() == (0, len(buildable()))
    assert len(world.materialized()["activate_destinations"]) == 5, "the activations still run"


def buildable() -> list[str]:
    manifest = json.loads(DBT_PROJECT.manifest_path.read_text())
    return [unique_id for unique_id, node in manifest["nodes"].items() if node["resource_type"] in ("model", "seed")]


def differing_tables(warehouse: Path, other: Path) -> list[str]:
    """The models' and seeds' tables whose rows differ between two warehouses."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute(f"attach '{other}' as other (read_only)")
        tables = con.execute("""
            select table_schema, table_name from information_schema.tables
            where table_catalog = 'warehouse' and table_type = 'BASE TABLE'
                and table_schema in ('seeds', 'staging', 'intermediate', 'marts', 'sync')""").fetchall()
        assert len(tables) > 30
        return [f"{schema}.{table}" for schema, table in tables if con.execute(f"""
            select count(*) from (
                (select * from warehouse.{schema}.{table} except all select * from other.{schema}.{table})
                union all
                (select * from other.{schema}.{table} except all select * from warehouse.{schema}.{table}))
            """).fetchone()[0]]


def test_a_change_at_the_same_moment_builds_only_what_reads_it(world: World, tmp_path: Path) -> None:
    [(contact_id, email, owner)] = world.query(
        "select id, lower(email), hubspot_owner_id from raw_crm.contacts order by id limit 1")
    [(new_owner,), *_] = world.query(f"select id from raw_crm.owners where id is distinct from '{owner}' order by id")
    edited = httpx.patch(f"{world.env['HUBSPOT_BASE_URL']}/crm/v3/objects/contacts/{contact_id}",
                         headers={"Authorization": f"Bearer {world.env['HUBSPOT_TOKEN']}"},
                         json={"properties": {"hubspot_owner_id": new_owner}})
    assert edited.status_code == 200, edited.text
    world.run()

    standing = builds.unaffected(json.loads(DBT_PROJECT.manifest_path.read_text()), {"raw_crm.contacts"})
    assert standing and world.rebuilt_and_standing() == (len(buildable()) - len(standing), len(standing))
    assert (f"({len(buildable()) - len(standing)} models and seeds built, {len(standing)} stood as built: "
            "nothing they read changed)") in world.output
    assert len(world.materialized()["activate_destinations"]) == 5
    assert world.query(f"select crm_owner_id from marts.dim_contacts where email = '{email}'") == [(new_owner,)]

    full_home = tmp_path / "full-build"
    full_home.mkdir()
    shutil.copy(world.home / "warehouse.duckdb", full_home / "warehouse.duckdb")
    completed = subprocess.run(
        [DBT_EXECUTABLE, "build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test",
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        env={**os.environ, "LIFECYCLE_HOME": str(full_home), "LIFECYCLE_AS_OF": world.as_of,
             "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert differing_tables(world.home / "warehouse.duckdb", full_home / "warehouse.duckdb") == []
