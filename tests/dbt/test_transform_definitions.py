"""The Dagster wiring of dbt: one lineage graph from the dlt assets to the marts, no dependency on the
tables the activations write, dbt tests as asset checks, and the jobs and CLI that run it."""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_dbt import DagsterDbtTranslator

from orchestration import dbt_process
from orchestration.cli import as_of_timestamp, main
from orchestration.defs import ingest, transform
from orchestration.resources import RESOURCES
from settings import Settings
from tests.dbt.conftest import BuiltWorld

STAGING_PARENTS = {
    "stg_forms__submissions": "raw_forms/submissions",
    "stg_calendly__webhook_events": "raw_calendly/webhook_events",
    "stg_calendly__invitees": "raw_calendly/invitees",
    "stg_calendly__scheduled_events": "raw_calendly/scheduled_events",
    "stg_stripe__webhook_events": "raw_stripe/webhook_events",
    "stg_stripe__events": "raw_stripe/events",
    "stg_stripe__checkout_sessions": "raw_stripe/checkout_sessions",
    "stg_stripe__checkout_line_items": "raw_stripe/checkout_line_items",
    "stg_crm__contacts": "raw_crm/contacts",
    "stg_crm__owners": "raw_crm/owners",
    "stg_marketing__contacts": "raw_marketing/contacts",
    "stg_marketing__contact_list_ids": "raw_marketing/contacts",
    "stg_marketing__email_events": "raw_marketing/email_events",
    "stg_marketing__campaign_events": "raw_marketing/campaign_events",
}


@pytest.fixture(scope="module")
def pipeline_defs(tmp_path_factory: pytest.TempPathFactory) -> dg.Definitions:
    settings = Settings.from_env({"LIFECYCLE_HOME": str(tmp_path_factory.mktemp("defs"))})
    return dg.Definitions.merge(ingest.build_definitions(settings), transform.build_definitions(),
                                dg.Definitions(resources=RESOURCES))


def test_dlt_assets_feed_the_dbt_staging_models(pipeline_defs: dg.Definitions) -> None:
    graph = pipeline_defs.resolve_asset_graph()
    for model, raw in STAGING_PARENTS.items():
        node = graph.get(dg.AssetKey(["staging", model]))
        assert node.parent_keys == {dg.AssetKey.from_user_string(raw)}, model
        assert node.group_name == "transform"
        assert graph.get(dg.AssetKey.from_user_string(raw)).group_name == "ingestion"
    dq_parents = graph.get(dg.AssetKey(["marts", "dq_flagged_records"])).parent_keys
    assert {dg.AssetKey(["raw_forms", "rejected_lines"]), dg.AssetKey(["raw_stripe", "rejected_lines"]),
            dg.AssetKey(["raw_calendly", "rejected_lines"]), dg.AssetKey(["raw_marketing", "rejected_lines"])
            } <= dq_parents
    assert not any(key.path[0] == "activations" for key in graph.get_all_asset_keys())


def test_dbt_tests_are_asset_checks(pipeline_defs: dg.Definitions) -> None:
    checks = pipeline_defs.resolve_asset_graph().asset_check_keys
    assert dg.AssetCheckKey(dg.AssetKey(["staging", "stg_forms__submissions"]),
                            "unique_stg_forms__submissions_submission_id") in checks
    assert any(check.asset_key == dg.AssetKey(["marts", "dq_flagged_records"]) for check in checks)


def test_activation_owned_sources_are_not_dependencies() -> None:
    """A model reading the send ledger (as messages_due will) depends on it in dbt, not in Dagster."""
    manifest = json.loads(dbt_process.prepare_manifest().read_text())
    node = copy.deepcopy(manifest["nodes"]["model.lifecycle.stg_forms__submissions"])
    node.update(unique_id="model.lifecycle.reads_the_ledger", name="reads_the_ledger", alias="reads_the_ledger")
    node["depends_on"]["nodes"] = ["source.lifecycle.activations.send_ledger",
                                   "model.lifecycle.stg_forms__submissions"]
    manifest["nodes"][node["unique_id"]] = node
    ledger = dg.AssetKey(["activations", "send_ledger"])

    default_deps = {dep.asset_key for dep in DagsterDbtTranslator().get_asset_spec(
        manifest, node["unique_id"], None).deps}
    ours = {dep.asset_key for dep in transform.LifecycleDbtTranslator().get_asset_spec(
        manifest, node["unique_id"], None).deps}

    assert ledger in default_deps
    assert ours == {dg.AssetKey(["staging", "stg_forms__submissions"])}


def test_jobs_select_their_groups() -> None:
    from orchestration.definitions import defs

    def assets_of(job_name: str) -> set[str]:
        job = defs.resolve_job_def(job_name)
        return {defs.resolve_asset_graph().get(key).group_name for key in job.asset_layer.selected_asset_keys}

    assert assets_of("transform") == {"transform"}
    assert assets_of("lifecycle") == {"ingestion", "transform", "activate", "publish"}
    assert assets_of("activate") == {"activate"}
    assert assets_of("ingest") == {"ingestion"}


def test_as_of_is_normalized_to_utc() -> None:
    assert as_of_timestamp("2026-09-01T00:00:00Z") == "2026-09-01T00:00:00Z"
    assert as_of_timestamp("2026-09-01T02:30:00+02:00") == "2026-09-01T00:30:00Z"
    assert as_of_timestamp("2026-09-01") == "2026-09-01T00:00:00Z"
    with pytest.raises(argparse.ArgumentTypeError, match="ISO 8601"):
        as_of_timestamp("next tuesday")


def test_lifecycle_run_all_as_of(dbt_world: BuiltWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture) -> None:
    """`lifecycle run --select all --as-of`: ingest then transform, the marts as of that moment. Runs on a
    copy of the session's world so that the other tests keep seeing it as of now."""
    home = tmp_path / "home"
    shutil.copytree(dbt_world.home, home)
    for name, value in dbt_world.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LIFECYCLE_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))

    assert main(["run", "--select", "all", "--as-of", "2026-09-01T00:00:00Z"]) == 0

    assert "job 'lifecycle' succeeded" in capsys.readouterr().out
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs()
        assert run.job_name == "lifecycle"
        assert run.tags[transform.AS_OF_TAG] == "2026-09-01T00:00:00Z"
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        staged_until_as_of = con.execute("""select count(*) from staging.stg_forms__submissions
                                            where occurred_at <= timestamp '2026-09-01 00:00:00'""").fetchone()
        later = con.execute("""select count(*) from staging.stg_forms__submissions
                               where occurred_at > timestamp '2026-09-01 00:00:00'""").fetchone()
        assert later[0] > 0
        assert con.execute("select count(*) from intermediate.int_forms__submissions").fetchone() == staged_until_as_of
        assert con.execute("""select count(*) from marts.dq_flagged_records
                              where occurred_at > timestamp '2026-09-01 00:00:00'""").fetchone() == (0,)


def _sleeper(ignore_sigint: bool) -> subprocess.Popen:
    """A process that ignores SIGINT or ends on it. Both are set explicitly: a child inherits an ignored
    SIGINT (anything started in the background by a non-interactive shell has it), and Python then keeps it."""
    code = ("import signal, sys, time\n"
            + f"signal.signal(signal.SIGINT, {'signal.SIG_IGN' if ignore_sigint else 'signal.default_int_handler'})\n"
            + "print('ready', flush=True)\ntime.sleep(120)\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    return process


def test_a_dbt_step_ended_early_stops_dbt_so_it_releases_the_warehouse() -> None:
    """dbt gets SIGINT first (it rolls back and exits), SIGKILL when it does not stop within the grace."""
    polite, stubborn = _sleeper(ignore_sigint=False), _sleeper(ignore_sigint=True)

    dbt_process.stop_dbt(polite)
    dbt_process.stop_dbt(stubborn, grace_seconds=0.5)

    assert polite.returncode == -signal.SIGINT  # Python ends by the signal after an unhandled KeyboardInterrupt
    assert stubborn.returncode == -signal.SIGKILL
