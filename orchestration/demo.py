"""``lifecycle world`` and ``lifecycle demo``: a synthetic world generated into the sandbox (and the collector),
and a replay of the pipeline over its days, as a new user's first look at the product.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from orchestration.jobs import RUN_JOBS, execute_job, failure_lines
from settings import Settings, sandbox_environment

if TYPE_CHECKING:
    import dagster as dg

DEMO_MARKER = ".lifecycle-demo"
REPLAY_GROUPS = ("transform", "activate")
"""What a simulated day re-runs once everything is ingested: dbt as of that day, then the activations."""


def generate_world(settings: Settings, *, contacts: int, seed: int, sandbox_url: str,
                   collector_url: str | None, start: str | None = None, days: int | None = None) -> dict:
    """Generate a world into the sandbox (and the collector), then backfill its historical forms."""
    from ingestion.backfill import import_forms
    from ingestion.landing import LandingZone
    from ingestion.webhooks import register_webhooks
    from orchestration.services import reachable

    for name, url in (("sandbox", sandbox_url), ("collector", collector_url)):
        if url and not reachable(f"{url}/healthz"):
            raise SystemExit(f"the {name} does not answer at {url}; start it with `lifecycle {name}` first")
    if collector_url:
        sandbox_env = sandbox_environment(sandbox_url, settings.home)
        register_webhooks(
            collector_url,
            calendly_base_url=sandbox_env["CALENDLY_BASE_URL"],
            calendly_token=sandbox_env["CALENDLY_TOKEN"],
            # Signed with the key the collector checks, so the generated bookings are accepted.
            calendly_signing_key=(settings.calendly_webhook_signing_key.reveal()
                                  or sandbox_env["CALENDLY_WEBHOOK_SIGNING_KEY"]),
            stripe_base_url=sandbox_env["STRIPE_BASE_URL"],
            stripe_api_key=sandbox_env["STRIPE_API_KEY"],
            brevo_base_url=sandbox_env["BREVO_BASE_URL"],
            brevo_api_key=sandbox_env["BREVO_API_KEY"],
            # The token the collector checks, so the generated newsletter engagement is accepted.
            brevo_webhook_token=(settings.brevo_webhook_token.reveal()
                                 or sandbox_env["BREVO_WEBHOOK_TOKEN"]),
        )
    forms_file = settings.home / "world" / f"forms-seed{seed}-{contacts}.jsonl"
    forms_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "sandbox", "world", "--contacts", str(contacts), "--seed", str(seed),
               "--sandbox-url", sandbox_url, "--forms-out", str(forms_file)]
    if collector_url:
        command += ["--collector-url", collector_url]
    if start:
        command += ["--start", start]
    if days:
        command += ["--days", str(days)]
    completed = subprocess.run(command, check=False, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(completed.stderr.strip() or f"the world generator failed (exit {completed.returncode})")
    summary = json.loads(completed.stdout)
    report = import_forms(forms_file, LandingZone(settings.landing_dir, writer=f"import-world-seed{seed}"))
    summary["forms_backfill"] = report.summary()
    return summary


def prepare_demo_home(home: Path) -> None:
    """The demo starts from an empty warehouse; it only ever wipes a home that a demo created."""
    if home.exists() and any(home.iterdir()) and not (home / DEMO_MARKER).exists():
        raise SystemExit(
            f"{home} holds data that the demo did not create; set LIFECYCLE_HOME to another folder for the demo."
        )
    for child in ("warehouse.duckdb", "warehouse.duckdb.wal", "landing", "dlt", "world", "published", "reports"):
        path = home / child
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    home.mkdir(parents=True, exist_ok=True)
    (home / DEMO_MARKER).write_text("created by `lifecycle demo`; the demo may wipe this folder\n")


def _activation_numbers(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, int]]:
    """Per activation asset (``hubspot_contacts_sync`` ...), the rows it sent and the destination rejected."""
    from orchestration.run_output import materializations

    return {asset: {"sent": int(metadata["sent"]), "rejected": int(metadata["rejected"])}
            for asset, metadata in materializations(result) if "sent" in metadata and "rejected" in metadata}


def _day_line(as_of: str, result: dg.ExecuteInProcessResult, seconds: float) -> str:
    numbers = _activation_numbers(result)
    sent = ", ".join(f"{key} {n['sent']}" for key, n in sorted(numbers.items()) if n["sent"])
    rejected = sum(n["rejected"] for n in numbers.values())
    status = "ok" if result.success else f"FAILED (run {result.run_id}: see it in the Dagster UI)"
    return (f"  {as_of[:10]}  {status:<4} {seconds:5.1f} s  sent: {sent or 'nothing'}"
            + (f"; rejected {rejected}" if rejected else ""))


def simulate_days(first: datetime, days: int) -> bool:
    """Replay ``days`` days up to ``first + days``: the first day is the go-live (ingest every source, build,
    sync and send the backlog); then each day moves the clock (``--as-of``) and re-runs dbt and the
    activations; the last day runs the whole job again with the dbt data tests (asset checks).

    The world was generated up front, so after the first ingest only the clock moves: each day's dbt sees the
    events up to that day, and the activations send what became due. Prints one line per day."""
    ok = True
    for day in range(days + 1):
        as_of = (first + timedelta(days=day)).isoformat().replace("+00:00", "Z")
        last = day == days
        started = datetime.now(UTC)
        result = execute_job(RUN_JOBS["all"], as_of, dbt_tests=last,
                             groups=None if day == 0 or last else REPLAY_GROUPS)
        print(_day_line(as_of, result, (datetime.now(UTC) - started).total_seconds()), flush=True)
        for line in failure_lines(result):
            print(f"    {line}")
        ok = ok and result.success
    return ok


def run_demo(contacts: int, seed: int, days: int) -> bool:
    """Generate a world of ``contacts`` (seed ``seed``) and run the pipeline once a day over its last ``days``
    days, with the sandbox and the collector started for the time it takes; True when every run succeeded."""
    from orchestration.reporting import format_counts, marts_summary, raw_table_counts
    from orchestration.run_output import dagster_ui_command
    from orchestration.services import background_service, collector_command, free_port, sandbox_command

    home = Settings.from_env().home
    prepare_demo_home(home)
    sandbox_port, collector_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    collector_url = f"http://127.0.0.1:{collector_port}"
    demo_env = sandbox_environment(sandbox_url, home)
    os.environ.update(demo_env)
    settings = Settings.from_env()
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = now - timedelta(days=days)
    print(f"sandbox on {sandbox_url}, collector on {collector_url}, data in {home}")
    with background_service(sandbox_command(sandbox_port), f"{sandbox_url}/healthz", demo_env), \
            background_service(collector_command(collector_port), f"{collector_url}/healthz", demo_env):
        print(f"generating a world of {contacts:,} contacts (seed {seed}) ...")
        summary = generate_world(settings, contacts=contacts, seed=seed,
                                 sandbox_url=sandbox_url, collector_url=collector_url)
        print(json.dumps(summary, indent=2))
        print(f"going live on {first:%Y-%m-%d} and running the pipeline once a day for {days} days "
              "(as of each day; step output in logs/):")
        ok = simulate_days(first, days)
    print("rows per raw table:")
    print(format_counts(raw_table_counts(settings.warehouse_path)))
    print(marts_summary(settings.warehouse_path))
    print(
        "\nSee the assets, the lineage and these runs in the Dagster UI:\n"
        f"  {dagster_ui_command(home, settings.dagster_home)}\n"
        f"Query the marts (the copy published after each run):  .venv/bin/python -c \"import duckdb; "
        f"print(duckdb.connect('{settings.published_path}', read_only=True).sql('show all tables'))\"\n"
        f"The report of the last run: {settings.report_path}"
    )
    return ok


