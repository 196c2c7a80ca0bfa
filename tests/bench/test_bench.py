"""``lifecycle bench``: its arithmetic (write calls, the rate-limit floor) against the sandbox's own limits, and
one small bench end to end, which keeps the command working (its numbers are reported, never asserted on
time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bench.measure import is_write, rate_limit_floor, sandbox_endpoint, sandbox_limits
from orchestration.run_output import stage_of

SMALL_WORLD = 400


def test_searches_and_batch_reads_are_not_write_calls() -> None:
    assert is_write("hubspot POST /crm/v3/objects/contacts/batch/upsert")
    assert is_write("brevo POST /v3/contacts/lists/{list_id}/contacts/remove")
    assert not is_write("hubspot POST /crm/v3/objects/contacts/search")
    assert not is_write("POST /crm/v3/objects/contacts/batch/read")
    assert not is_write("brevo GET /v3/contacts")


def test_steps_map_to_their_stage() -> None:
    steps = ("ingest_crm", "transform_dbt", "hubspot_contacts_sync", "brevo_email_sends", "published__analytics")
    assert [stage_of(step) for step in steps] == ["ingest", "transform", "activate", "activate", "publish"]


def test_the_floor_follows_the_sandboxs_limits_per_group_and_vendor(sandbox_url: str) -> None:
    limits = sandbox_limits(sandbox_url)
    assert limits["hubspot"]["on"] is True
    assert limits["hubspot"]["routes"]["POST /crm/v3/objects/contacts/search"] == "search"
    assert limits["hubspot"]["groups"]["default"] == {"limit": 100, "window_seconds": 10.0}
    floors = rate_limit_floor({
        "hubspot POST /crm/v3/objects/contacts/batch/upsert": 1100,  # 1,000 past the first window: 100 s
        "hubspot POST /crm/v3/objects/contacts/search": 10,  # 5 past the first second: 1 s, a separate bucket
        "brevo POST /v3/contacts/import": 30,  # 20 past the first second at 10 per second: 2 s
        "brevo GET /healthz-not-limited": 500,
    }, limits)
    assert floors == {"hubspot": 100.0, "brevo": 2.0}
    httpx.post(f"{sandbox_url}/_sandbox/limits", json={"off": True}).raise_for_status()
    assert sandbox_limits(sandbox_url)["brevo"]["on"] is False


def test_activation_calls_are_counted_against_the_sandboxs_routes(sandbox_url: str) -> None:
    """An activation asset records its calls under its client's base URL (Brevo's carries ``/v3``) and under
    its own key (``brevo_list_members_sync``): both vendors' calls reach their limit groups."""
    limits = sandbox_limits(sandbox_url)
    calls = {("brevo_list_members_sync", "POST /contacts/lists/{list_id}/contacts/add"): 30,
             ("brevo_contacts_sync", "POST /contacts/attributes/normal/{name}"): 10,
             ("brevo_email_sends", "POST /smtp/email"): 5,
             ("hubspot_contacts_sync", "POST /crm/v3/objects/contacts/batch/upsert"): 1100}
    endpoints = {sandbox_endpoint(asset, call, limits): count for (asset, call), count in calls.items()}
    assert endpoints == {"brevo POST /v3/contacts/lists/{list_id}/contacts/add": 30,
                         "brevo POST /v3/contacts/attributes/{category}/{name}": 10,
                         "brevo POST /v3/smtp/email": 5,
                         "hubspot POST /crm/v3/objects/contacts/batch/upsert": 1100}
    # Brevo's contact endpoints share 10 a second: 40 calls, 30 past the first second, 3 s.
    assert rate_limit_floor(endpoints, limits) == {"hubspot": 100.0, "brevo": 3.0}


@pytest.mark.timeout(900)
def test_a_small_bench_measures_full_change_and_no_change_runs(tmp_path: Path) -> None:
    results = tmp_path / "results"
    completed = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "bench", "--contacts", str(SMALL_WORLD), "--home",
         str(tmp_path / "home"), "--results-dir", str(results)],
        capture_output=True, text=True, check=False, timeout=850)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "run no_change" in completed.stdout and "| 400 | off | no_change |" in completed.stdout
    (path,) = results.glob("*.json")
    record = json.loads(path.read_text())
    runs = {run["run"]: run for run in record["runs"]}
    assert list(runs) == ["full", "change", "no_change"] and all(run["ok"] for run in runs.values())
    for run in runs.values():
        assert set(run["stages"]) == {"ingest", "transform", "activate", "publish"}
        assert run["peak_rss_mb"] > 0
        assert run["stages"]["activate"]["write_calls"] >= run["stages"]["activate"]["batch_minimum"]
        assert {"ingest_crm", "transform_dbt", "hubspot_contacts_sync"} <= set(run["steps"])
    full, change, no_change = runs["full"], runs["change"], runs["no_change"]
    assert set(full["stages"]["activate"]["rate_limit_floor_per_vendor"]) == {"hubspot", "brevo"}
    assert full["stages"]["activate"]["rows_changed"] > SMALL_WORLD
    assert record["hour_of_change"]["contacts_changed"] == SMALL_WORLD // 100
    assert change["stages"]["ingest"]["rows_loaded"]["raw_forms/submissions"] > 0
    assert change["stages"]["activate"]["rows_changed"] > 0
    assert no_change["write_calls_total"] == 0 and no_change["stages"]["activate"]["rows_changed"] == 0
