"""The hourly schedule and the landing-zone sensor: when they request a ``lifecycle`` run, and when they skip."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin

from orchestration.defs import automation
from orchestration.liveness import HOST_TAG, IN_FLIGHT_STATUSES, PID_TAG, PROCESS_STARTED_TAG, this_host
from settings import Settings
from tests.orchestration.stand_ins import activate_stand_in, lifecycle_stand_in, transform_stand_in


def add_run(instance: dg.DagsterInstance, job: dg.JobDefinition, status: dg.DagsterRunStatus) -> dg.DagsterRun:
    """A run record in ``status``; a queued one must name where its job's code lives, as the run queue
    needs it to launch the run later (Dagster has no public helper for this)."""
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("orchestration.definitions"),
                                                 "__repository__"),
        job_name=job.name,
    )
    return instance.create_run_for_job(job, status=status, remote_job_origin=origin)


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture()
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture()
def defs(tmp_path: Path) -> dg.Definitions:
    """The automation with a stand-in ``lifecycle`` job, so the targets resolve as in the root definitions."""
    return dg.Definitions.merge(
        automation.build_definitions(Settings.from_env({"LIFECYCLE_HOME": str(tmp_path)})),
        dg.Definitions(jobs=[lifecycle_stand_in, transform_stand_in]),
    )


def repository(defs: dg.Definitions) -> dg.RepositoryDefinition:
    return defs.get_repository_def()


def schedule_context(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ScheduleEvaluationContext:
    return dg.build_schedule_context(instance=instance, repository_def=repository(defs))


def schedule_of(defs: dg.Definitions) -> dg.ScheduleDefinition:
    return defs.resolve_schedule_def("lifecycle_hourly")


def sensor_of(defs: dg.Definitions) -> dg.SensorDefinition:
    return defs.resolve_sensor_def("landing_zone_sensor")


def append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(text)


# ----- schedule ----------------------------------------------------------------------------------------------

def test_schedule_is_hourly_utc_on_the_lifecycle_job_and_off_by_default(defs: dg.Definitions) -> None:
    schedule = schedule_of(defs)
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == "lifecycle"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert "dagster schedule start lifecycle_hourly" in schedule.description


def test_schedule_requests_a_run_when_nothing_is_in_flight(defs: dg.Definitions,
                                                           instance: dg.DagsterInstance) -> None:
    for finished in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        add_run(instance, lifecycle_stand_in, finished)
    result = schedule_of(defs)(schedule_context(defs, instance))
    assert isinstance(result, dg.RunRequest)


@pytest.mark.parametrize("status", list(IN_FLIGHT_STATUSES))
def test_schedule_skips_while_a_run_is_in_flight(defs: dg.Definitions, instance: dg.DagsterInstance,
                                                 status: dg.DagsterRunStatus) -> None:
    run = add_run(instance, lifecycle_stand_in, status)
    result = schedule_of(defs)(schedule_context(defs, instance))
    assert isinstance(result, dg.SkipReason)
    assert run.run_id in result.skip_message


def test_schedule_skips_while_another_warehouse_job_runs(defs: dg.Definitions,
                                                         instance: dg.DagsterInstance) -> None:
    run = add_run(instance, activate_stand_in, dg.DagsterRunStatus.STARTED)
    result = schedule_of(defs)(schedule_context(defs, instance))
    assert isinstance(result, dg.SkipReason)
    assert run.run_id in result.skip_message


def test_schedule_marks_a_run_whose_process_is_gone_failed_and_runs(defs: dg.Definitions,
                                                                     instance: dg.DagsterInstance) -> None:
    dead = add_run(instance, lifecycle_stand_in, dg.DagsterRunStatus.STARTED)
    instance.add_run_tags(dead.run_id, {HOST_TAG: this_host(), PID_TAG: "4194304", PROCESS_STARTED_TAG: "1.0"})
    assert isinstance(schedule_of(defs)(schedule_context(defs, instance)), dg.RunRequest)
    reaped = instance.get_run_by_id(dead.run_id)
    assert reaped is not None and reaped.status == dg.DagsterRunStatus.FAILURE


def test_schedule_runs_again_once_the_blocking_run_has_failed(defs: dg.Definitions,
                                                              instance: dg.DagsterInstance) -> None:
    run = add_run(instance, lifecycle_stand_in, dg.DagsterRunStatus.STARTED)
    assert isinstance(schedule_of(defs)(schedule_context(defs, instance)), dg.SkipReason)
    instance.report_run_failed(run)
    assert isinstance(schedule_of(defs)(schedule_context(defs, instance)), dg.RunRequest)


# ----- landing-zone sensor -----------------------------------------------------------------------------------

def test_sensor_targets_lifecycle_every_minute_and_is_off_by_default(defs: dg.Definitions) -> None:
    sensor = sensor_of(defs)
    assert sensor.job_name == "lifecycle"
    assert sensor.minimum_interval_seconds == 60
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED


def test_sensor_skips_without_a_landing_zone(defs: dg.Definitions, instance: dg.DagsterInstance,
                                             landing: Path) -> None:
    context = dg.build_sensor_context(instance=instance, repository_def=repository(defs))
    assert isinstance(sensor_of(defs)(context), dg.SkipReason)
    (landing / "forms").mkdir(parents=True)
    assert isinstance(sensor_of(defs)(context), dg.SkipReason)
    assert context.cursor is None


def test_sensor_requests_a_run_for_new_or_grown_files_only(defs: dg.Definitions, instance: dg.DagsterInstance,
                                                           landing: Path) -> None:
    sensor = sensor_of(defs)
    append(landing / "forms" / "2026-11-27.collector.jsonl", '{"id": "f1"}\n')

    first = dg.build_sensor_context(instance=instance, repository_def=repository(defs))
    request = sensor(first)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key and request.run_key.startswith("landing-")
    assert first.cursor

    again = dg.build_sensor_context(instance=instance, repository_def=repository(defs), cursor=first.cursor)
    assert isinstance(sensor(again), dg.SkipReason)
    assert again.cursor == first.cursor

    append(landing / "forms" / "2026-11-27.collector.jsonl", '{"id": "f2"}\n')
    grown = dg.build_sensor_context(instance=instance, repository_def=repository(defs), cursor=first.cursor)
    grown_request = sensor(grown)
    assert isinstance(grown_request, dg.RunRequest)
    assert grown_request.run_key != request.run_key
    assert grown.cursor != first.cursor

    append(landing / "stripe" / "2026-11-28.collector.jsonl", '{"id": "evt_1"}\n')
    new_file = dg.build_sensor_context(instance=instance, repository_def=repository(defs), cursor=grown.cursor)
    new_file_request = sensor(new_file)
    assert isinstance(new_file_request, dg.RunRequest)
    assert new_file_request.run_key not in (request.run_key, grown_request.run_key)


def test_sensor_ignores_files_outside_the_landing_streams(defs: dg.Definitions, instance: dg.DagsterInstance,
                                                          landing: Path) -> None:
    append(landing / "calendly" / "2026-11-27.collector.jsonl", '{"id": "c1"}\n')
    context = dg.build_sensor_context(instance=instance, repository_def=repository(defs))
    assert isinstance(sensor_of(defs)(context), dg.RunRequest)
    append(landing / "calendly" / "notes.txt", "not a landing file\n")
    append(landing / "scratch" / "2026-11-27.collector.jsonl", '{"id": "x"}\n')
    later = dg.build_sensor_context(instance=instance, repository_def=repository(defs), cursor=context.cursor)
    assert isinstance(sensor_of(defs)(later), dg.SkipReason)


def test_sensor_waits_for_a_run_in_flight_and_then_requests(defs: dg.Definitions, instance: dg.DagsterInstance,
                                                            landing: Path) -> None:
    sensor = sensor_of(defs)
    append(landing / "forms" / "2026-11-27.collector.jsonl", '{"id": "f1"}\n')
    run = add_run(instance, lifecycle_stand_in, dg.DagsterRunStatus.QUEUED)

    waiting = dg.build_sensor_context(instance=instance, repository_def=repository(defs), cursor="an older signature")
    result = sensor(waiting)
    assert isinstance(result, dg.SkipReason)
    assert run.run_id in result.skip_message
    assert waiting.cursor == "an older signature"

    instance.report_run_canceled(run)
    after = dg.build_sensor_context(instance=instance, repository_def=repository(defs), cursor=waiting.cursor)
    assert isinstance(sensor(after), dg.RunRequest)


def test_signature_reads_no_file_contents(landing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    append(landing / "forms" / "2026-11-27.collector.jsonl", '{"id": "f1"}\n' * 100)
    append(landing / "calendly" / "2026-11-27.collector.jsonl", '{"id": "c1"}\n')
    before = automation.landing_signature(landing)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the landing signature must not open files")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(Path, "open", refuse)
    assert automation.landing_signature(landing) == before
    assert before is not None and before[0] == 2


def test_root_definitions_carry_the_schedule_and_sensor_on_the_lifecycle_job() -> None:
    from orchestration.definitions import defs as root

    repository = root.get_repository_def()
    assert repository.get_schedule_def("lifecycle_hourly").job_name == "lifecycle"
    assert repository.get_sensor_def("landing_zone_sensor").job_name == "lifecycle"
    assert repository.has_job("lifecycle")
    alerts = repository.get_sensor_def("run_alerts")
    assert alerts.default_status == dg.DefaultSensorStatus.RUNNING and not alerts.targets


def test_the_hourly_path_leaves_the_dbt_data_tests_to_the_daily_schedule(tmp_path: Path) -> None:
    from orchestration.definitions import defs as root

    repository = root.get_repository_def()
    graph = root.resolve_asset_graph()
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        hourly = repository.get_schedule_def("lifecycle_hourly")(schedule_context(root, instance))
        daily = repository.get_schedule_def("dbt_tests_daily")(schedule_context(root, instance))
    assert isinstance(hourly, dg.RunRequest) and isinstance(daily, dg.RunRequest)
    assert set(hourly.asset_selection) == set(repository.get_job("lifecycle").asset_layer.executable_asset_keys)
    checks = set(hourly.asset_check_keys)
    dbt_test = dg.AssetCheckKey(dg.AssetKey(["staging", "stg_forms__submissions"]),
                                "unique_stg_forms__submissions_submission_id")
    assert dbt_test in graph.asset_check_keys and dbt_test not in checks
    assert dg.AssetCheckKey(dg.AssetKey("hubspot_contacts_sync"), "no_rejections") in checks
    assert repository.get_schedule_def("dbt_tests_daily").job_name == "transform"
    assert daily.asset_selection is None
