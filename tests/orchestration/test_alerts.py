"""The ``run_alerts`` sensor posts failed and partial runs to a webhook: evaluated against a real instance with
real runs, posting over HTTP to a local receiver that records what it gets (and can fail, echoing the URL it
was called on, as some vendors do in their error bodies)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import dagster as dg
import psutil
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from orchestration.defs import automation
from orchestration.defs.activate import no_rejections
from orchestration.liveness import HOST_TAG, PID_TAG, PROCESS_STARTED_TAG, reap_dead_runs, this_host
from settings import Settings
from tests.orchestration.stand_ins import lifecycle_stand_in, transform_stand_in
from tests.servers import serve

WEBHOOK_TOKEN = "T0001/B0002/webhook-secret-token"
HUBSPOT_TOKEN = "pat-na1-secret-in-an-error"


@dataclass
class Receiver:
    """A Slack-like incoming webhook: records JSON bodies; answers 500 (echoing its URL) while told to fail."""

    received: list[dict] = field(default_factory=list)
    failures_left: int = 0

    def app(self) -> Starlette:
        async def hook(request: Request) -> PlainTextResponse:
            if self.failures_left:
                self.failures_left -= 1
                return PlainTextResponse(f"internal error while handling {request.url}", status_code=500)
            self.received.append(await request.json())
            return PlainTextResponse("ok")

        async def healthz(request: Request) -> JSONResponse:
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/services/{path:path}", hook, methods=["POST"]),
                                 Route("/healthz", healthz)])


@pytest.fixture()
def receiver() -> Iterator[tuple[Receiver, str]]:
    hook = Receiver()
    with serve(hook.app()) as base_url:
        yield hook, f"{base_url}/services/{WEBHOOK_TOKEN}"


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def alert_sensor(tmp_path, webhook_url: str | None) -> dg.SensorDefinition:
    env = {"LIFECYCLE_HOME": str(tmp_path), "HUBSPOT_TOKEN": HUBSPOT_TOKEN,
           **({"LIFECYCLE_ALERT_WEBHOOK_URL": webhook_url} if webhook_url else {})}
    defs = dg.Definitions.merge(automation.build_definitions(Settings.from_env(env)),
                                dg.Definitions(jobs=[lifecycle_stand_in, transform_stand_in]))
    return defs.resolve_sensor_def("run_alerts")


@dg.asset(key="hubspot_contacts_sync")
def failing_sync() -> None:
    raise RuntimeError(f"HubSpot refused the batch (token {HUBSPOT_TOKEN})\nsecond line of the error")


@dg.asset(key="hubspot_contacts_sync", check_specs=[dg.AssetCheckSpec("no_rejections", asset="hubspot_contacts_sync")])
def partial_sync() -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[no_rejections(dg.AssetKey("hubspot_contacts_sync"), {"rejected": 3})])


@dg.asset(key="hubspot_contacts_sync", check_specs=[dg.AssetCheckSpec("no_rejections", asset="hubspot_contacts_sync")])
def clean_sync() -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[no_rejections(dg.AssetKey("hubspot_contacts_sync"), {"rejected": 0})])


def run(instance: dg.DagsterInstance, asset: dg.AssetsDefinition) -> str:
    return dg.materialize([asset], instance=instance, raise_on_error=False).run_id


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None) -> tuple[str, str | None]:
    """One evaluation, as the daemon does it: the skip message and the cursor it leaves."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = sensor(context)
    assert isinstance(result, dg.SkipReason), result
    return result.skip_message or "", context.cursor


def test_failed_and_partial_runs_are_posted_once_and_clean_runs_not(
        tmp_path, instance: dg.DagsterInstance, receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    sensor = alert_sensor(tmp_path, url)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    run(instance, failing_sync)  # before the sensor's first tick: not alerted
    message, cursor = tick(sensor, instance, None)
    assert "from now on" in message and hook.received == []

    failed, partial, clean = run(instance, failing_sync), run(instance, partial_sync), run(instance, clean_sync)
    message, cursor = tick(sensor, instance, cursor)
    assert f"{failed} (failed)" in message and f"{partial} (partial)" in message and clean not in message

    failed_alert, partial_alert = hook.received
    assert failed_alert["status"] == "failed" and failed_alert["run_id"] == failed
    assert failed_alert["job"] == "__ephemeral_asset_job__"
    assert failed_alert["failures"] == ["step hubspot_contacts_sync"]
    assert failed_alert["error"] == "RuntimeError: HubSpot refused the batch (token ***)"
    assert failed_alert["link"] == f"/runs/{failed}"
    assert failed_alert["text"].startswith(f"lifecycle: run {failed} of job __ephemeral_asset_job__ FAILED")
    assert "RuntimeError: HubSpot refused the batch" in failed_alert["text"]

    assert partial_alert["status"] == "partial" and partial_alert["run_id"] == partial
    assert partial_alert["failures"] == ["check hubspot_contacts_sync no_rejections (WARN)"]
    assert partial_alert["error"] == "hubspot_contacts_sync no_rejections: rejected 3"
    assert "finished PARTIALLY" in partial_alert["text"]
    for alert in hook.received:
        assert HUBSPOT_TOKEN not in str(alert) and WEBHOOK_TOKEN not in str(alert)

    message, _ = tick(sensor, instance, cursor)
    assert message == "no failed or partial run since the last tick"
    assert len(hook.received) == 2


def test_a_failed_post_is_retried_next_tick_and_never_shows_the_webhook_url(
        tmp_path, instance: dg.DagsterInstance, receiver: tuple[Receiver, str],
        capsys: pytest.CaptureFixture[str]) -> None:
    hook, url = receiver
    sensor = alert_sensor(tmp_path, url)
    _, cursor = tick(sensor, instance, None)
    failed = run(instance, failing_sync)

    hook.failures_left = 1
    capsys.readouterr()
    message, after_failure = tick(sensor, instance, cursor)
    logged = capsys.readouterr().err  # the sensor's log, as the daemon shows it
    assert "HTTP 500" in message and "retrying on the next tick" in message
    assert after_failure == cursor and hook.received == []
    assert f"alert for run {failed} not posted: the webhook answered HTTP 500" in logged
    for text in (message, logged):
        assert "webhook-secret-token" not in text and "/services/" not in text

    message, after_retry = tick(sensor, instance, after_failure)
    assert f"{failed} (failed)" in message and after_retry != cursor
    assert [alert["run_id"] for alert in hook.received] == [failed]


def test_an_unreachable_webhook_is_a_skipped_tick_not_a_crash(tmp_path, instance: dg.DagsterInstance) -> None:
    sensor = alert_sensor(tmp_path, f"http://127.0.0.1:9/services/{WEBHOOK_TOKEN}")
    _, cursor = tick(sensor, instance, None)
    run(instance, failing_sync)
    message, after = tick(sensor, instance, cursor)
    assert "could not be reached" in message and after == cursor
    assert "webhook-secret-token" not in message


def test_nothing_is_posted_while_the_webhook_is_unset(
        tmp_path, instance: dg.DagsterInstance, receiver: tuple[Receiver, str]) -> None:
    hook, _ = receiver
    sensor = alert_sensor(tmp_path, None)
    _, cursor = tick(sensor, instance, None)
    run(instance, failing_sync)
    message, _ = tick(sensor, instance, cursor)
    assert "LIFECYCLE_ALERT_WEBHOOK_URL is not set" in message
    assert hook.received == []


def test_a_run_found_dead_is_alerted_with_why(
        tmp_path, instance: dg.DagsterInstance, receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    sensor = alert_sensor(tmp_path, url)
    _, cursor = tick(sensor, instance, None)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    tags = {HOST_TAG: this_host(), PID_TAG: str(worker.pid),
            PROCESS_STARTED_TAG: repr(psutil.Process(worker.pid).create_time())}
    dead = instance.create_run_for_job(lifecycle_stand_in, status=dg.DagsterRunStatus.STARTED, tags=tags)
    worker.kill()
    worker.wait()
    assert reap_dead_runs(instance, "the schedule lifecycle_hourly")

    tick(sensor, instance, cursor)
    (alert,) = hook.received
    assert alert["run_id"] == dead.run_id and alert["status"] == "failed" and alert["failures"] == []
    assert alert["error"].startswith(f"Found dead by the schedule lifecycle_hourly: the run's process (pid {worker.pid}")
