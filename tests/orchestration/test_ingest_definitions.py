"""The Dagster wiring of ingestion: asset keys that dbt sources connect to, a job that runs whole sources,
no secret in definitions, and ``lifecycle run --select ingest`` executing the same job in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from orchestration.cli import main
from orchestration.defs import ingest
from orchestration.resources import RESOURCES
from settings import Settings, sandbox_environment

EXPECTED_KEYS = {
    "raw_forms/submissions", "raw_forms/rejected_lines",
    "raw_calendly/webhook_events", "raw_calendly/scheduled_events", "raw_calendly/invitees",
    "raw_calendly/rejected_lines",
    "raw_stripe/webhook_events", "raw_stripe/events", "raw_stripe/checkout_sessions",
    "raw_stripe/checkout_line_items", "raw_stripe/rejected_lines",
    "raw_crm/contacts", "raw_crm/owners",
    "raw_marketing/contacts", "raw_marketing/email_events", "raw_marketing/campaign_events",
    "raw_marketing/rejected_lines",
}


def test_assets_are_keyed_dataset_then_table_with_no_upstream(tmp_path: Path) -> None:
    defs = dg.Definitions.merge(ingest.build_definitions(Settings.from_env({"LIFECYCLE_HOME": str(tmp_path)})),
                                dg.Definitions(resources=RESOURCES))
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == EXPECTED_KEYS
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.parent_keys == set()
        assert node.group_name == "ingestion"


def test_each_source_runs_whole(tmp_path: Path) -> None:
    defs = ingest.build_definitions(Settings.from_env({"LIFECYCLE_HOME": str(tmp_path)}))
    for assets_def in defs.assets:
        assert not assets_def.can_subset, assets_def.node_def.name


def test_definitions_hold_no_secret(tmp_path: Path) -> None:
    env = {"LIFECYCLE_HOME": str(tmp_path), "HUBSPOT_TOKEN": "pat-na1-topsecret", "BREVO_API_KEY": "xkeysib-topsecret",
           "CALENDLY_TOKEN": "cal-topsecret", "STRIPE_API_KEY": "sk_live_topsecret"}
    defs = ingest.build_definitions(Settings.from_env(env))
    for assets_def in defs.assets:
        for spec in assets_def.specs:
            rendered = repr(spec.metadata) + repr(vars(spec.metadata["dagster_dlt/source"]))
            assert "topsecret" not in rendered


def test_lifecycle_run_ingest_executes_the_dagster_job(
    sandbox_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for name, value in sandbox_environment(sandbox_url, tmp_path / "home").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    httpx.post(f"{sandbox_url}/_sandbox/limits", json={"off": True}).raise_for_status()
    httpx.post(f"{sandbox_url}/_sandbox/calendly/bookings", json={
        "email": "ada@example.com", "name": "Ada Lovelace", "event_name": "Demo",
        "start_time": "2026-03-02T10:00:00Z", "end_time": "2026-03-02T10:30:00Z",
        "created_at": "2026-02-20T09:00:00Z"}).raise_for_status()
    forms = tmp_path / "forms.jsonl"
    forms.write_text(json.dumps({"form_id": "contact", "email": "ada@example.com",
                                 "submitted_at": "2026-02-19T08:00:00Z", "org_type": "YMCA"}) + "\n")
    assert main(["import-forms", str(forms)]) == 0

    assert main(["run", "--select", "ingest"]) == 0

    out = capsys.readouterr().out
    assert "job 'ingest' succeeded" in out
    warehouse = tmp_path / "home" / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select email, org_type from raw_forms.submissions").fetchall() == [
            ("ada@example.com", "YMCA")]
        assert con.execute("select count(*) from raw_calendly.invitees").fetchone()[0] == 1
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert [run.job_name for run in runs] == ["ingest"]
        assert runs[0].status == dg.DagsterRunStatus.SUCCESS
        materialized = instance.get_latest_materialization_event(dg.AssetKey(["raw_forms", "submissions"]))
        assert materialized is not None


def test_workspace_yaml_loads_in_dagster(tmp_path: Path) -> None:
    """What ``dagster dev -w workspace.yaml`` loads: validated by Dagster's own CLI in a fresh process."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "LIFECYCLE_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        check=False, cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stderr + result.stdout
