"""One small synthetic world, generated, ingested and transformed once per session for the dbt tests.

The world goes through the real path: sandbox + collector (webhooks) + backfill, dlt ingestion, then the
Dagster ``transform`` job (dbt build through dagster-dbt), twice, unchanged. A few bad records the world
generator does not make are added on purpose: a submission to an unknown form, unreadable landing lines
and a purchase of a product missing from the products seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from ingestion.collector.app import create_collector_app
from ingestion.landing import LandingZone
from ingestion.pipelines import run_ingestion
from orchestration.defs import transform
from orchestration.demo import generate_world
from orchestration.resources import OWN_WRITES, RESOURCES
from sandbox.app import Sandbox
from settings import Settings, sandbox_environment
from tests.servers import fresh_sandbox, serve, unsubscribe_calendly

WORLD_CONTACTS = 200
WORLD_SEED = 11
UNKNOWN_FORM_ID = "careers"
UNKNOWN_PRODUCT_ID = "prod_mystery"


@dataclass(frozen=True)
class BuiltWorld:
    home: Path
    env: dict[str, str]
    summary: dict
    builds: list[dg.ExecuteInProcessResult]

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()


def transform_definitions() -> dg.Definitions:
    return dg.Definitions.merge(transform.build_definitions(), dg.Definitions(resources=RESOURCES))


def run_transform(tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
    job = transform_definitions().resolve_job_def("transform")
    return job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, tags=tags)


def add_bad_records(settings: Settings, sandbox_url: str, collector_url: str) -> None:
    """Records of each data-quality reason that the world generator leaves out."""
    httpx.post(f"{collector_url}/forms/{UNKNOWN_FORM_ID}",
               json={"email": "jobseeker@example.com", "first_name": "Jo"}).raise_for_status()
    broken = settings.landing_dir / "forms" / "2026-08-01.hand-edited.jsonl"
    broken.write_text('{"form_id": "contact", "fields": {"email": "no-id@example.com"}}\n{not json\n')
    bought = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    httpx.post(f"{sandbox_url}/_sandbox/stripe/purchases", json={
        "email": "mystery@example.com", "name": "Myst Ery", "product_id": UNKNOWN_PRODUCT_ID,
        "product_name": "Mystery box", "amount": 1000, "currency": "usd", "created_at": bought,
    }).raise_for_status()


def add_booking_without_webhook(summary: dict, sandbox_url: str) -> None:
    """A booking whose webhook never came (the collector was down): it reaches the warehouse by REST only,
    while the world's other bookings came by webhook as well. Counted in the world's ``bookings``."""
    unsubscribe_calendly(sandbox_url)
    booked = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    start = booked + timedelta(days=5)
    httpx.post(f"{sandbox_url}/_sandbox/calendly/bookings", json={
        "email": " Missed.Webhook@Example.com ", "name": "Miss Ed", "event_name": "Demo",
        **{key: moment.strftime("%Y-%m-%dT%H:%M:%SZ") for key, moment in (
            ("created_at", booked), ("start_time", start), ("end_time", start + timedelta(minutes=30)))},
    }).raise_for_status()
    summary["bookings"] += 1


@pytest.fixture(scope="session")
def dbt_world(sandbox_server: tuple[str, Sandbox], tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltWorld]:
    sandbox_url, _ = sandbox_server
    fresh_sandbox(sandbox_url)
    home = tmp_path_factory.mktemp("dbt-world")
    env = sandbox_environment(sandbox_url, home)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        settings = Settings.from_env()
        collector = create_collector_app(LandingZone(settings.landing_dir, writer="collector"),
                                         calendly_signing_key=env["CALENDLY_WEBHOOK_SIGNING_KEY"],
                                         stripe_webhook_secret=env["STRIPE_WEBHOOK_SECRET"],
                                         brevo_webhook_token=env["BREVO_WEBHOOK_TOKEN"])
        with serve(collector) as collector_url:
            summary = generate_world(settings, contacts=WORLD_CONTACTS, seed=WORLD_SEED,
                                     sandbox_url=sandbox_url, collector_url=collector_url)
            add_bad_records(settings, sandbox_url, collector_url)
        add_booking_without_webhook(summary, sandbox_url)
        run_ingestion(settings, own_writes=OWN_WRITES)
        builds = [run_transform(), run_transform()]
        yield BuiltWorld(home=home, env=env, summary=summary, builds=builds)
