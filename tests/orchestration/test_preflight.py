"""Configuration errors read as such: ``lifecycle run`` checks the settings and credentials the selected job
needs before it starts a run, and says what is wrong in one line; a run launched without the CLI (the Dagster
UI) fails with the same line; a failed run prints one line per failed step and keeps the tracebacks in the log
file it names."""

from __future__ import annotations

import re
import subprocess
import sys
from itertools import takewhile
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.services import free_port
from tests.orchestration.cli_process import (
    dagster_runs,
    lifecycle_env,
    run_lifecycle,
    sandbox_calls,
    write_calls,
)

DAGSTER = str(Path(sys.executable).parent / "dagster")


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.mark.parametrize(("select", "variable"), [("activate", "HUBSPOT_TOKEN"), ("ingest", "STRIPE_API_KEY"),
                                                  ("all", "BREVO_API_KEY")])
def test_an_unset_variable_is_named_in_one_line_and_no_run_starts(
        sandbox_url: str, home: Path, select: str, variable: str) -> None:
    completed = run_lifecycle(lifecycle_env(sandbox_url, home, **{variable: None}), "run", "--select", select)

    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert completed.stderr == f"lifecycle run: {variable} is not set (set it in the environment or in .env)\n"
    assert completed.stdout == ""
    assert sandbox_calls(sandbox_url) == {}, "nothing is tried without the credential"
    assert dagster_runs(home) == []


def test_several_unset_variables_are_named_together(sandbox_url: str, home: Path) -> None:
    completed = run_lifecycle(lifecycle_env(sandbox_url, home, HUBSPOT_TOKEN=None, BREVO_API_KEY=None),
                              "run", "--select", "activate")

    assert completed.returncode == 2
    assert completed.stderr == ("lifecycle run: HUBSPOT_TOKEN, BREVO_API_KEY are not set "
                                "(set them in the environment or in .env)\n")


@pytest.mark.parametrize(("select", "variable", "secret", "answer"), [
    ("activate", "HUBSPOT_TOKEN", "pat-na1-wrong-token",
     "HUBSPOT_TOKEN was refused by HubSpot: INVALID_AUTHENTICATION: Authentication credentials not found."),
    ("activate", "BREVO_API_KEY", "xkeysib-wrong-key", "BREVO_API_KEY was refused by Brevo: unauthorized: Key not found"),
    ("ingest", "CALENDLY_TOKEN", "calendly-wrong-token",
     "CALENDLY_TOKEN was refused by Calendly: Unauthenticated: The access token is invalid"),
])
def test_a_refused_credential_gives_the_vendors_answer_in_one_line(
        sandbox_url: str, home: Path, select: str, variable: str, secret: str, answer: str) -> None:
    completed = run_lifecycle(lifecycle_env(sandbox_url, home, **{variable: secret}), "run", "--select", select)

    assert completed.returncode == 2, completed.stdout + completed.stderr
    log_path = home / "logs" / f"{'lifecycle' if select == 'all' else select}.log"
    [line] = completed.stderr.splitlines()
    assert line.startswith(f"lifecycle run: {answer}"), line
    assert line.endswith(f"(details in {log_path})")
    log = log_path.read_text()
    assert "Traceback (most recent call last)" in log and "(HTTP 401)" in log
    assert secret not in completed.stderr + completed.stdout + log
    assert write_calls(sandbox_url, {}) == {}
    assert dagster_runs(home) == []


def test_every_refused_credential_has_its_line(sandbox_url: str, home: Path) -> None:
    completed = run_lifecycle(lifecycle_env(sandbox_url, home, HUBSPOT_TOKEN="pat-na1-wrong",
                                            BREVO_API_KEY="xkeysib-wrong"), "run", "--select", "activate")

    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert [line.split(":")[1].strip() for line in completed.stderr.splitlines()] == [
        "HUBSPOT_TOKEN was refused by HubSpot", "BREVO_API_KEY was refused by Brevo"]
    assert dagster_runs(home) == []


def test_an_unreachable_vendor_names_its_base_url_variable_and_the_network_error(
        sandbox_url: str, home: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/brevo/v3"
    completed = run_lifecycle(lifecycle_env(sandbox_url, home, BREVO_BASE_URL=nowhere),
                              "run", "--select", "activate")

    assert completed.returncode == 2, completed.stdout + completed.stderr
    [line] = completed.stderr.splitlines()
    log_path = home / "logs" / "activate.log"
    assert line == (f"lifecycle run: BREVO_BASE_URL ({nowhere}) cannot be reached: ConnectionError: "
                    f"[Errno 111] Connection refused (details in {log_path})")
    log = log_path.read_text()
    assert "Traceback (most recent call last)" in log
    assert "ConnectionError, retrying" in log, "the probe's retries are logged to the file, not the terminal"
    assert dagster_runs(home) == []


def test_a_base_url_that_is_not_a_url_is_named(sandbox_url: str, home: Path) -> None:
    completed = run_lifecycle(lifecycle_env(sandbox_url, home, HUBSPOT_BASE_URL="api.hubapi.com"),
                              "run", "--select", "activate")

    assert completed.returncode == 2
    assert completed.stderr == "lifecycle run: HUBSPOT_BASE_URL is not an http(s) URL: 'api.hubapi.com'\n"


def test_a_failed_run_prints_one_line_per_failed_step_and_logs_the_tracebacks(
        sandbox_url: str, home: Path) -> None:
    """Activating an empty warehouse (no dbt build yet) fails in both contact syncs, which run side by side in
    one step; what follows them is not run."""
    completed = run_lifecycle(lifecycle_env(sandbox_url, home), "run", "--select", "activate")

    assert completed.returncode == 1, completed.stdout + completed.stderr
    log_path = home / "logs" / "activate.log"
    lines = completed.stdout.splitlines()
    [verdict] = [n for n, line in enumerate(lines) if line.startswith("job 'activate' FAILED in ")]
    assert lines[verdict].endswith(f"step output and tracebacks in {log_path})")
    assert any(re.search(r"activate destinations: FAILED in [\d.]+ s$", line) for line in lines[:verdict])
    missing = 'does not exist because schema "sync" does not exist.'
    assert sorted(takewhile(lambda line: line.startswith("  "), lines[verdict + 1:])) == [
        f'  brevo_contacts_sync: CatalogException: Catalog Error: Table with name "sync.sync_marketing__contacts" {missing}',
        f'  hubspot_contacts_sync: CatalogException: Catalog Error: Table with name "sync.sync_crm__contacts" {missing}',
    ]
    assert "Traceback" not in completed.stderr and "Stack Trace" not in completed.stderr
    log = log_path.read_text()
    assert log.count("STEP_FAILURE") == 1 and "Stack Trace:" in log
    assert "hubspot_contacts_sync failed: Traceback" in log and "brevo_contacts_sync failed: Traceback" in log
    assert 'File "' in log and "activations/engine.py" in log


@pytest.mark.parametrize(("token", "error", "calls"), [
    (None, "HUBSPOT_TOKEN is not set (set it in the environment or in .env)", {}),
    ("pat-na1-wrong-token", "HUBSPOT_TOKEN was refused by HubSpot: INVALID_AUTHENTICATION: ",
     {"hubspot GET /crm/v3/objects/contacts": 1}),
])
def test_an_activation_launched_without_the_cli_fails_with_the_same_line(
        sandbox_url: str, home: Path, token: str | None, error: str, calls: dict[str, int]) -> None:
    """What a run launched from the Dagster UI meets (here through Dagster's own command line): the asset's
    check, not a retried protocol error. The warehouse holds a contact to sync."""
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("create schema sync")
        con.execute("create table sync.sync_crm__contacts as select 'ada@example.com' as email, 'Ada' as firstname")
    (home / "dagster").mkdir()

    completed = subprocess.run(
        [DAGSTER, "asset", "materialize", "--select", "hubspot_contacts_sync", "-m", "orchestration.definitions",
         "-a", "defs"],
        env=lifecycle_env(sandbox_url, home, HUBSPOT_TOKEN=token), cwd=home, capture_output=True, text=True,
        timeout=600, check=False)

    assert completed.returncode != 0
    [run] = dagster_runs(home)
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        [failure] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    description = failure.dagster_event.step_failure_data.user_failure_data.description
    assert description.startswith(f"hubspot_contacts_sync: {error}")
    assert "LocalProtocolError" not in completed.stderr
    assert sandbox_calls(sandbox_url) == calls
