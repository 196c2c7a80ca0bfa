"""What ``lifecycle run`` prints, as a new user sees it in a log or CI (stdout not a terminal): each step as it
starts and ends while the run goes, then a summary whose numbers are the warehouse's and the sandbox's.

One small world, with one lead whose address Brevo refuses (HubSpot and the collector take it), run once
through ``lifecycle run`` in its own process. ``LIFECYCLE_TEST_RUN_OUTPUT_CONTACTS`` sets the world's size
(default 30).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import takewhile
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from ingestion.backfill import import_forms
from ingestion.landing import LandingZone
from orchestration import demo
from orchestration.defs.activate import ACTIVATIONS, EMAILS_KEY, EMAILS_OBJECT, mask_emails
from orchestration.run_output import FIRST_REASONS, LiveDisplay, RunProgress, step_label
from orchestration.services import free_port, stop, wait_healthy
from sandbox.app import Sandbox
from settings import Settings, sandbox_environment
from tests.orchestration.cli_process import LIFECYCLE, lifecycle_env, run_lifecycle
from tests.servers import fresh_sandbox

CONTACTS = int(os.environ.get("LIFECYCLE_TEST_RUN_OUTPUT_CONTACTS", "30"))
REFUSED_BY_BREVO = "ann!ops@example.com"
"""A valid address (the collector and dbt take it) whose local part Brevo's import skips."""
STAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"
ASSET_OF = {(activation.destination, activation.object): activation.key.to_user_string()
            for activation in ACTIVATIONS} | {EMAILS_OBJECT: EMAILS_KEY.to_user_string()}
"""The activation asset that records each (destination, object) of activations.sync_runs."""


@dataclass
class Run:
    home: Path
    sandbox_url: str
    out: str
    run_id: str

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            return con.execute(sql).fetchall()

    def summary(self) -> str:
        return self.out[self.out.index("job 'lifecycle' succeeded"):]


@pytest.fixture(scope="module")
def run(sandbox_server: tuple[str, Sandbox], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    sandbox_url, _ = sandbox_server
    fresh_sandbox(sandbox_url)
    home = tmp_path_factory.mktemp("run-output")
    demo.generate_world(Settings.from_env(sandbox_environment(sandbox_url, home)), contacts=CONTACTS, seed=5,
                       sandbox_url=sandbox_url, collector_url=None)
    form = home / "refused.jsonl"
    form.write_text(json.dumps({"form_id": "contact", "email": REFUSED_BY_BREVO, "first_name": "Ann",
                                "submitted_at": datetime.now(UTC).isoformat()}) + "\n")
    assert not import_forms(form, LandingZone(home / "landing", writer="import-test")).rejected

    completed = run_lifecycle(lifecycle_env(sandbox_url, home), "run", "--select", "all", "--skip-dbt-tests")

    assert completed.returncode == 0, completed.stdout + completed.stderr
    run_id = re.search(r"\(run id ([0-9a-f-]{36})", completed.stdout).group(1)
    yield Run(home, sandbox_url, completed.stdout, run_id)


def test_each_step_is_named_as_it_starts_and_ends(run: Run) -> None:
    with dg.DagsterInstance.from_config(str(run.home / "dagster")) as instance:
        steps = [stat.step_key for stat in instance.get_run_step_stats(run.run_id)]
    lines = run.out.splitlines()
    finished = lines.index(next(line for line in lines if line.startswith("job 'lifecycle' succeeded")))
    assert {"ingest_forms", "transform_dbt", "published__report"} <= set(steps)
    for step in steps:
        label = re.escape(step_label(step))
        [started] = [n for n, line in enumerate(lines) if re.fullmatch(rf"{STAMP}  {label}: started", line)]
        [ended] = [n for n, line in enumerate(lines) if re.match(rf"{STAMP}  {label}: done in ", line)]
        assert started < ended < finished, step


def test_the_summary_reports_what_the_warehouse_and_the_sandbox_hold(run: Run) -> None:
    summary = run.summary()
    emails = httpx.get(f"{run.sandbox_url}/_sandbox/brevo/emails").json()
    # a sync's `sent` counts the rows it sent, rejected ones included; the emails' counts those Brevo took
    synced = run.query("select destination, object, sent - rejected, rejected from activations.sync_runs "
                       f"where not dry_run and (destination, object) <> {EMAILS_OBJECT} union all "
                       "select destination, object, sent, rejected from activations.sync_runs "
                       f"where not dry_run and (destination, object) = {EMAILS_OBJECT}")
    assert len(synced) == len(ASSET_OF)
    for destination, object_, accepted, rejected in synced:
        asset = re.escape(ASSET_OF[(destination, object_)])
        assert re.search(rf"^  {asset}\s+{accepted:,} / {rejected:,}$", summary, re.MULTILINE), asset
    assert re.search(rf"^  {EMAILS_KEY.to_user_string()}\s+{len(emails):,} / ", summary, re.MULTILINE)

    per_sequence = run.query("select sequence, count(*) from activations.send_ledger where status = 'sent' "
                             "group by all order by all")
    assert per_sequence and sum(count for _, count in per_sequence) == len(emails)
    assert f"emails sent per sequence ({EMAILS_KEY.to_user_string()}): {len(emails):,}" in summary
    for sequence, count in per_sequence:
        assert re.search(rf"^  {sequence}\s+{count:,}  \(step ", summary, re.MULTILINE), sequence

    [(due,)] = run.query("select count(*) from marts.messages_due as due left join activations.send_ledger as sent "
                         "on sent.message_key = due.message_key "
                         "where sent.message_key is null or sent.status = 'withdrawn'")
    assert f"messages still due (sent by a later run): {due:,}" in summary

    assert f"Dagster run id {run.run_id}" in summary and f"/runs/{run.run_id}" in summary
    assert f"DAGSTER_HOME={run.home / 'dagster'}" in summary
    [report] = re.findall(r"^the report: (.+)$", summary, re.MULTILINE)
    assert Path(report).is_file()


def test_a_rejection_shows_with_its_reason(run: Run) -> None:
    reasons = run.query("select destination, object, reason, count(*) from activations.sync_log "
                        "where outcome = 'rejected' group by all")
    assert ("brevo", "contacts") in {(destination, object_) for destination, object_, *_ in reasons}
    lines = run.summary().splitlines()
    for destination, object_ in {(destination, object_) for destination, object_, *_ in reasons}:
        counts = {reason: count for d, o, reason, count in reasons if (d, o) == (destination, object_)}
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:FIRST_REASONS]
        start = next(n for n, line in enumerate(lines) if line.startswith(f"  {ASSET_OF[(destination, object_)]} "))
        shown = list(takewhile(lambda line: line.startswith("    rejected: "), lines[start + 1:]))
        assert shown == [f"    rejected: {count} x {mask_emails(reason)}" for reason, count in ranked]
    assert REFUSED_BY_BREVO not in run.summary(), "addresses are masked"


def test_no_materialization_names_a_metadata_key_run_id(run: Run) -> None:
    """Dagster shows its own run id with every event: ours is the sync run's, ``sync_run_id``."""
    with dg.DagsterInstance.from_config(str(run.home / "dagster")) as instance:
        records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        metadata = {record.event_log_entry.asset_materialization.asset_key.to_user_string():
                    record.event_log_entry.asset_materialization.metadata for record in records}
    assert all("run_id" not in keys for keys in metadata.values())
    sync_runs = {run_id for (run_id,) in run.query("select run_id from activations.sync_runs")}
    assert {keys["sync_run_id"].value for asset, keys in metadata.items() if asset in ASSET_OF.values()} == sync_runs


class Terminal:
    """A stream that says it is a terminal, so that the live display is chosen."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, text: str) -> int:
        self.written.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_live_display_with_each_step_and_its_result() -> None:
    """Each asset of the activations' step shows as it ends, then the step."""
    @dg.multi_asset(name="activate_destinations",
                    specs=[dg.AssetSpec("hubspot_contacts_sync"), dg.AssetSpec("brevo_contacts_sync")])
    def sync() -> Iterator[dg.MaterializeResult]:
        yield dg.MaterializeResult(asset_key="hubspot_contacts_sync", metadata={"sent": 3, "rejected": 1})
        yield dg.MaterializeResult(asset_key="brevo_contacts_sync", metadata={"sent": 5, "rejected": 0})

    terminal = Terminal()
    run_id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    with dg.instance_for_test() as instance, RunProgress.for_stream(terminal) as progress:
        assert isinstance(progress.display, LiveDisplay)
        instance.add_event_listener(run_id, progress)
        job = dg.Definitions(assets=[sync]).resolve_implicit_global_asset_job_def()
        assert job.execute_in_process(instance=instance, run_id=run_id).success
    shown = "".join(terminal.written)
    assert "activate hubspot_contacts_sync" in shown and "sent 3, rejected 1" in shown
    assert "activate brevo_contacts_sync" in shown and "sent 5, rejected 0" in shown
    assert "activate destinations" in shown and "2 assets materialized" in shown
    assert Counter(shown)["✓"] >= 3


@pytest.mark.parametrize("service", ["sandbox", "collector"])
def test_the_services_say_where_they_listen(service: str, tmp_path: Path) -> None:
    port = free_port()
    env = lifecycle_env("http://unused", tmp_path)
    process = subprocess.Popen([LIFECYCLE, service, "--port", str(port)], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        assert f"listening on {url} " in first_line, first_line
        wait_healthy(f"{url}/healthz", process)
    finally:
        stop(process)
