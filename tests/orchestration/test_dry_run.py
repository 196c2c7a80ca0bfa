"""A dry run changes nothing a later run reads, and a real activation never goes back in time by accident.

One small world, synced once for real through ``lifecycle run`` (a real process); the tests then run in order
on it, each starting where the last ended:

- a dry run of the whole job, as of a future moment, after a new lead landed: it prints what it would load,
  sync and send, and leaves every warehouse table (row counts and contents), the dlt state and the emulated
  APIs as they were;
- a later real ``--select activate`` sends nothing the dry run computed (nothing at all: nothing changed);
- an activation as of an earlier moment is refused, before any run starts, unless it says ``--replay``; the
  activation assets refuse it too when the run is launched without the CLI.

``LIFECYCLE_TEST_DRY_RUN_CONTACTS`` sets the world's size (default 40).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from ingestion.backfill import import_forms
from ingestion.landing import LandingZone
from orchestration import demo
from orchestration.defs import activate
from orchestration.resources import LifecycleSettings
from sandbox.app import Sandbox
from settings import Settings, sandbox_environment
from tests.orchestration.cli_process import (
    dagster_runs,
    lifecycle_env,
    run_lifecycle,
    sandbox_calls,
    write_calls,
)
from tests.servers import fresh_sandbox

CONTACTS = int(os.environ.get("LIFECYCLE_TEST_DRY_RUN_CONTACTS", "40"))
NEW_LEAD = "dry.run.lead@example.org"
MASKED_LEAD = "dr***@example.org"


@dataclass
class World:
    home: Path
    sandbox_url: str
    env: dict[str, str]
    synced_as_of: datetime

    def emails(self) -> list[dict]:
        return httpx.get(f"{self.sandbox_url}/_sandbox/brevo/emails").json()

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            return con.execute(sql).fetchall()


def snapshot(home: Path) -> dict[str, object]:
    """Row count and a digest of the contents of every warehouse table, and a digest of every dlt state file."""
    state: dict[str, object] = {}
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        tables = con.execute("select table_schema, table_name from information_schema.tables "
                             "where table_type = 'BASE TABLE' order by all").fetchall()
        for schema, table in tables:
            rows = sorted(repr(row) for row in con.execute(f'select * from "{schema}"."{table}"').fetchall())
            state[f"{schema}.{table}"] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    for path in sorted((home / "dlt").rglob("*")):
        if path.is_file():
            state[str(path.relative_to(home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@pytest.fixture(scope="module")
def world(sandbox_server: tuple[str, Sandbox], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sandbox_url, _ = sandbox_server
    fresh_sandbox(sandbox_url)
    home = tmp_path_factory.mktemp("dry-run-world")
    demo.generate_world(Settings.from_env(sandbox_environment(sandbox_url, home)), contacts=CONTACTS, seed=11,
                       sandbox_url=sandbox_url, collector_url=None)
    env = lifecycle_env(sandbox_url, home)
    synced_as_of = datetime.now(UTC).replace(microsecond=0)
    completed = run_lifecycle(env, "run", "--select", "all", "--skip-dbt-tests",
                              "--as-of", synced_as_of.isoformat())
    assert completed.returncode == 0, completed.stdout + completed.stderr
    yield World(home, sandbox_url, env, synced_as_of)


def test_a_dry_run_changes_nothing_yet_prints_what_it_would_do(world: World, tmp_path: Path) -> None:
    form = tmp_path / "lead.jsonl"
    form.write_text(json.dumps({"form_id": "contact", "email": NEW_LEAD, "first_name": "Dry", "last_name": "Run",
                                "submitted_at": world.synced_as_of.isoformat()}) + "\n")
    assert not import_forms(form, LandingZone(world.home / "landing", writer="import-test")).rejected
    before = snapshot(world.home)
    calls_before = sandbox_calls(world.sandbox_url)
    emails_before = world.emails()
    future = world.synced_as_of + timedelta(days=60)

    completed = run_lifecycle(world.env, "run", "--select", "all", "--dry-run", "--as-of", future.isoformat())

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert snapshot(world.home) == before
    assert write_calls(world.sandbox_url, calls_before) == {}
    assert world.emails() == emails_before
    assert not any((world.home / "scratch").iterdir()), "the scratch copy is thrown away"
    out = completed.stdout
    assert "dry run raw_forms/submissions: would load 1 rows" in out
    assert "dry run hubspot_contacts_sync: would add 1," in out and "dry run brevo_contacts_sync: would add 1," in out
    assert f"| add | {MASKED_LEAD} |" in out and NEW_LEAD not in out, "the preview masks the address"
    assert "dry run brevo_email_sends: would send " in out
    added, changed, removed = map(int, re.search(
        r"dry run hubspot_contacts_sync: would add (\d+), change (\d+), remove (\d+) of", out).groups())
    assert re.search(rf"^  hubspot_contacts_sync\s+{added + changed + removed:,} / 0$", out, re.MULTILINE), \
        "the summary counts the rows the dry run would send"
    assert "rows per raw table" not in out, "the live warehouse's counts did not change: not printed"
    [listed] = (world.home / "logs").glob("dry-run-*-hubspot-contacts.csv")
    assert f"{NEW_LEAD},add," in listed.read_text()


def test_an_activation_after_a_future_dry_run_sends_nothing_it_computed(world: World) -> None:
    calls_before = sandbox_calls(world.sandbox_url)
    emails_before = world.emails()

    completed = run_lifecycle(world.env, "run", "--select", "activate", "--skip-dbt-tests")

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert write_calls(world.sandbox_url, calls_before) == {}
    assert world.emails() == emails_before
    assert httpx.get(f"{world.sandbox_url}/_sandbox/hubspot/contacts/{NEW_LEAD}").status_code == 404


def test_an_activation_as_of_an_earlier_moment_is_refused_unless_it_is_a_replay(world: World) -> None:
    earlier = world.synced_as_of - timedelta(days=3)
    runs_before = len(dagster_runs(world.home))
    calls_before = sandbox_calls(world.sandbox_url)

    refused = run_lifecycle(world.env, "run", "--select", "activate", "--as-of", earlier.isoformat())

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.startswith(f"lifecycle run: refusing to activate as of {earlier:%Y-%m-%dT%H:%M:%S}Z: ")
    assert "--replay" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert write_calls(world.sandbox_url, calls_before) == {}
    assert len(dagster_runs(world.home)) == runs_before, "refused before a run started"

    replay = run_lifecycle(world.env, "run", "--select", "activate", "--as-of", earlier.isoformat(), "--replay")

    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert world.query("select count(*) from activations.sync_runs where not dry_run and as_of = "
                       f"'{earlier:%Y-%m-%d %H:%M:%S}'") == [(5,)], "the five activations ran as of that moment"


def test_the_activation_assets_refuse_an_earlier_moment_when_launched_without_the_cli(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run launched from the UI with an older ``lifecycle/as_of`` fails in the asset with the same line."""
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    earlier = (world.synced_as_of - timedelta(days=1)).isoformat()
    calls_before = sandbox_calls(world.sandbox_url)

    result = dg.materialize([activate.activate_destinations], selection=[activate.HUBSPOT_CONTACTS_KEY],
                            resources={"lifecycle": LifecycleSettings()}, tags={"lifecycle/as_of": earlier},
                            raise_on_error=False)

    [failure] = [event.step_failure_data for event in result.all_events if event.is_step_failure]
    assert failure.user_failure_data.description.startswith("hubspot_contacts_sync: refusing to activate as of ")
    assert write_calls(world.sandbox_url, calls_before) == {}
    replayed = dg.materialize([activate.activate_destinations], selection=[activate.HUBSPOT_CONTACTS_KEY],
                              resources={"lifecycle": LifecycleSettings()},
                              tags={"lifecycle/as_of": earlier, "lifecycle/replay": "true"})
    assert replayed.success
    assert world.query("select count(*) from activations.sync_runs where destination = 'hubspot' and "
                       f"object = 'contacts' and as_of = '{earlier[:19].replace('T', ' ')}'") == [(1,)]
