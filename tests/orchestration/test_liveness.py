"""Which runs are dead: a run whose process is gone from this host (exited, a zombie, or its pid taken by a
younger process) is marked failed and its pool slots freed; a live run, a run on another host and a run whose
process is not known are left alone. Real processes, a real instance; the launcher's health check is
exercised through Dagster's own run monitoring."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import dagster as dg
import psutil
import pytest
from dagster._core.events import EngineEventData
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from orchestration.liveness import (
    HOST_TAG,
    PID_TAG,
    PROCESS_STARTED_TAG,
    LivenessRunLauncher,
    process_tags,
    reap_dead_runs,
    this_host,
)
from tests.orchestration.stand_ins import lifecycle_stand_in

POOL = "warehouse"


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    overrides = {"concurrency": {"pools": {"default_limit": 1}},
                 "run_launcher": {"module": "orchestration.liveness", "class": "LivenessRunLauncher"},
                 "run_monitoring": {"enabled": True}}
    with dg.instance_for_test(overrides=overrides) as test_instance:
        yield test_instance


def sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


def tags_of(process: subprocess.Popen) -> dict[str, str]:
    return {HOST_TAG: this_host(), PID_TAG: str(process.pid),
            PROCESS_STARTED_TAG: repr(psutil.Process(process.pid).create_time())}


def started_run(instance: dg.DagsterInstance, tags: dict[str, str], step: str | None = "ingest_forms") -> dg.DagsterRun:
    """A started run with ``tags`` that holds the pool slot (for ``step``)."""
    run = instance.create_run_for_job(lifecycle_stand_in, status=dg.DagsterRunStatus.STARTED, tags=tags)
    if step:
        instance.event_log_storage.initialize_concurrency_limit_to_default(POOL)
        assert instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, step).is_claimed
    return run


def status(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRunStatus:
    record = instance.get_run_by_id(run.run_id)
    assert record is not None
    return record.status


def holders(instance: dg.DagsterInstance) -> set[str]:
    return instance.event_log_storage.get_concurrency_run_ids()


def test_a_run_whose_process_exited_is_marked_failed_and_frees_its_slot(instance: dg.DagsterInstance) -> None:
    process = sleeper()
    run = started_run(instance, tags_of(process))
    assert reap_dead_runs(instance, "a test") == []
    assert status(instance, run) == dg.DagsterRunStatus.STARTED

    process.kill()
    process.wait()
    (line,) = reap_dead_runs(instance, "a test")
    assert run.run_id in line and f"pid {process.pid}" in line
    assert status(instance, run) == dg.DagsterRunStatus.FAILURE
    assert run.run_id not in holders(instance)
    (failure,) = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert failure.message.startswith(f"Found dead by a test: the run's process (pid {process.pid} on ")


def test_a_zombie_is_dead(instance: dg.DagsterInstance) -> None:
    process = sleeper()
    run = started_run(instance, tags_of(process))
    process.kill()  # and not reaped: it stays a zombie until process.wait()
    try:
        deadline = time.monotonic() + 60
        while psutil.Process(process.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the killed process did not turn into a zombie"
            time.sleep(0.05)
        assert reap_dead_runs(instance, "a test")
        assert status(instance, run) == dg.DagsterRunStatus.FAILURE
    finally:
        process.wait()


def test_a_pid_now_held_by_a_younger_process_is_not_the_run(instance: dg.DagsterInstance) -> None:
    tags = process_tags()
    tags[PROCESS_STARTED_TAG] = repr(float(tags[PROCESS_STARTED_TAG]) - 3600)
    run = started_run(instance, tags)
    assert reap_dead_runs(instance, "a test")
    assert status(instance, run) == dg.DagsterRunStatus.FAILURE


def test_live_unknown_and_other_host_runs_are_left_alone(instance: dg.DagsterInstance) -> None:
    live = started_run(instance, process_tags())
    elsewhere = started_run(instance, {HOST_TAG: "another-host.example", PID_TAG: "4194304",
                                       PROCESS_STARTED_TAG: "1.0"}, step=None)
    untagged = started_run(instance, {}, step=None)
    garbled = started_run(instance, {HOST_TAG: this_host(), PID_TAG: "not a pid"}, step=None)
    assert reap_dead_runs(instance, "a test") == []
    for run in (live, elsewhere, untagged, garbled):
        assert status(instance, run) == dg.DagsterRunStatus.STARTED
    assert live.run_id in holders(instance)


def test_the_slots_of_a_run_that_is_over_are_freed_unless_its_process_still_runs(
        instance: dg.DagsterInstance) -> None:
    process = sleeper()
    try:
        still_running = started_run(instance, tags_of(process), step="ingest_forms")
        instance.report_run_failed(still_running, "marked failed by hand while its process still runs")
        assert reap_dead_runs(instance, "a test") == []
        assert still_running.run_id in holders(instance)
    finally:
        process.kill()
        process.wait()
    (line,) = reap_dead_runs(instance, "a test")
    assert f"run {still_running.run_id} is over (FAILURE): its pool slots freed" == line
    assert holders(instance) == set()


def launched_run(instance: dg.DagsterInstance, worker_pid: int) -> dg.DagsterRun:
    """A run as the daemon's launcher leaves it: the host tag, and the worker's "Started process" event."""
    run = instance.create_run_for_job(lifecycle_stand_in, status=dg.DagsterRunStatus.STARTED,
                                      tags={HOST_TAG: this_host()})
    instance.report_engine_event(f"Started process for run (pid: {worker_pid}).", run,
                                 EngineEventData.in_process(worker_pid))
    return run


def test_run_monitoring_fails_a_launched_run_whose_worker_is_gone(instance: dg.DagsterInstance) -> None:
    assert isinstance(instance.run_launcher, LivenessRunLauncher)
    worker = sleeper()
    live = launched_run(instance, os.getpid())
    dead = launched_run(instance, worker.pid)
    worker.kill()
    worker.wait()
    logger = logging.getLogger("run_monitoring_test")
    for run in (live, dead):
        record = instance.get_run_record_by_id(run.run_id)
        assert record is not None
        monitor_started_run(instance, None, record, logger)  # the workspace is only used to resume runs

    assert status(instance, live) == dg.DagsterRunStatus.STARTED
    assert status(instance, dead) == dg.DagsterRunStatus.FAILURE
    (failure,) = instance.all_logs(dead.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert f"Found dead by run monitoring: the run's process (pid {worker.pid} on " in failure.message
