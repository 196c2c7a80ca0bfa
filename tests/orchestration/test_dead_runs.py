"""A killed ``lifecycle run`` never blocks later runs.

Real processes on a small world in the sandbox: ``lifecycle run`` is started as a subprocess, and its process
group is SIGKILLed while its run holds the ``warehouse`` pool slot (the sandbox's HubSpot hangs, so the
HubSpot ingestion step is caught mid-way, as in the reported incident). Then a second ``lifecycle run``
completes by itself, and the schedule and sensor request a run by themselves; the dead run shows as failed.

``LIFECYCLE_TEST_DEAD_RUN_CONTACTS`` sets the world's size (default 30).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pytest

from orchestration import demo, jobs
from orchestration.defs import automation
from orchestration.defs.ingest import WAREHOUSE_POOL
from sandbox.app import Sandbox
from settings import Settings, sandbox_environment
from tests.orchestration.stand_ins import lifecycle_stand_in, transform_stand_in
from tests.servers import fresh_sandbox

CONTACTS = int(os.environ.get("LIFECYCLE_TEST_DEAD_RUN_CONTACTS", "30"))
HANGING_STEP = "ingest_crm"
"""The HubSpot ingestion step: the sandbox's HubSpot is made to hang while it runs."""
STEP_SECONDS = 240
"""How long the test waits for the first run to reach that step (a generous bound, not a measure)."""
RUN_SECONDS = 420
"""How long the second run may take before the test calls it blocked (without the fix it waits for ever)."""
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class World:
    sandbox_url: str
    home: Path
    env: dict[str, str]

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.dagster_home))

    def lifecycle_run(self, *args: str, **popen: object) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "orchestration.cli", "run", *args], cwd=REPO_ROOT,
                                env=self.env, start_new_session=True, text=True, **popen)

    def hubspot_hangs(self, hang: bool) -> None:
        faults = {"rate_timeout": 1.0, "timeout_seconds": 600} if hang else {}
        httpx.post(f"{self.sandbox_url}/_sandbox/faults", json={"service": "hubspot", **faults}).raise_for_status()


@pytest.fixture(scope="module")
def world(sandbox_server: tuple[str, Sandbox], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sandbox_url, _ = sandbox_server
    fresh_sandbox(sandbox_url)
    home = tmp_path_factory.mktemp("dead-runs")
    env = {**os.environ, **sandbox_environment(sandbox_url, home), "DAGSTER_HOME": str(home / "dagster")}
    (home / "dagster").mkdir()
    (home / "dagster" / "dagster.yaml").write_text(jobs.DAGSTER_INSTANCE_YAML)
    demo.generate_world(Settings.from_env(env), contacts=CONTACTS, seed=11, sandbox_url=sandbox_url,
                       collector_url=None)
    world = World(sandbox_url, home, env)
    try:
        yield world
    finally:
        world.hubspot_hangs(False)


def holds_pool_slot(instance: dg.DagsterInstance, run_id: str, step_key: str) -> bool:
    slots = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
    return any(slot.run_id == run_id and slot.step_key == step_key for slot in slots)


def kill_mid_step(world: World) -> str:
    """Start ``lifecycle run --select ingest``, SIGKILL its process group once its run holds the warehouse
    pool slot in the hanging HubSpot step; return the dead run's id (still "started", still holding it).
    HubSpot hangs from the moment the run exists: the CLI's pre-run check of the credentials comes first."""
    with world.instance() as instance:
        known = {run.run_id for run in instance.get_runs()}
        process = world.lifecycle_run("--select", "ingest", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + STEP_SECONDS
            run_id = None
            while not (run_id and holds_pool_slot(instance, run_id, HANGING_STEP)):
                assert process.poll() is None, f"the run ended before its step {HANGING_STEP} ({process.returncode})"
                assert time.monotonic() < deadline, f"the run did not reach {HANGING_STEP} in {STEP_SECONDS} s"
                if run_id is None:
                    run_id = next((run.run_id for run in instance.get_runs() if run.run_id not in known), None)
                    if run_id is not None:
                        world.hubspot_hangs(True)
                time.sleep(0.2)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        world.hubspot_hangs(False)
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.STARTED
        assert holds_pool_slot(instance, run_id, HANGING_STEP), "the dead run still holds the pool slot"
    return run_id


def assert_found_dead(instance: dg.DagsterInstance, run_id: str, found_by: str) -> None:
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
    (failure,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert f"Found dead by {found_by}" in failure.message
    assert f"pid {run.tags['lifecycle/pid']}" in failure.message
    assert run_id not in instance.event_log_storage.get_concurrency_run_ids()


@pytest.mark.timeout(STEP_SECONDS + RUN_SECONDS + 120)
def test_a_run_after_a_killed_run_completes_by_itself(world: World) -> None:
    dead = kill_mid_step(world)

    second = world.lifecycle_run("--select", "ingest", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = second.communicate(timeout=RUN_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(second.pid, signal.SIGKILL)
        second.communicate()
        pytest.fail(f"the run after the killed run {dead} did not finish within {RUN_SECONDS} s: blocked by it")

    assert second.returncode == 0, f"{out}\n{err}"
    assert "job 'ingest' succeeded" in out
    assert f"run {dead} (job ingest) was dead" in err
    with world.instance() as instance:
        assert_found_dead(instance, dead, "`lifecycle run` before starting")
        (latest, *_) = instance.get_runs(limit=1)
        assert latest.run_id != dead and latest.status == dg.DagsterRunStatus.SUCCESS


@pytest.mark.timeout(2 * STEP_SECONDS + 120)
def test_schedule_and_sensor_request_a_run_after_a_killed_run(world: World) -> None:
    defs = dg.Definitions.merge(automation.build_definitions(Settings.from_env(world.env)),
                                dg.Definitions(jobs=[lifecycle_stand_in, transform_stand_in]))

    dead = kill_mid_step(world)
    with world.instance() as instance:
        context = dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
        request = defs.resolve_sensor_def("landing_zone_sensor")(context)
        assert isinstance(request, dg.RunRequest), request
        assert_found_dead(instance, dead, "the sensor landing_zone_sensor")

    dead = kill_mid_step(world)
    with world.instance() as instance:
        context = dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def())
        request = defs.resolve_schedule_def("lifecycle_hourly")(context)
        assert isinstance(request, dg.RunRequest), request
        assert_found_dead(instance, dead, "the schedule lifecycle_hourly")
