"""Unattended runs of the ``lifecycle`` job: an hourly schedule and a sensor on the landing zone,
and of the ``transform`` job with the dbt data tests: a daily schedule.

The hourly path leaves the dbt data tests out (``checks_to_run`` in transform.py); ``dbt_tests_daily`` builds
the dbt project with its tests once a day. All three are off until an operator turns them on (Dagster's
default for new schedules and sensors), in the UI's Automation page or with ``dagster schedule start
lifecycle_hourly -w workspace.yaml`` (``dbt_tests_daily``, ``dagster sensor start landing_zone_sensor``); they
need the daemon, which ``dagster dev`` runs.

Every job of this code location (``lifecycle``, ``ingest``, ``transform``, ``activate``, and materializations
launched from the asset graph) writes the one DuckDB warehouse, so neither requests a run while any run of
the instance is in flight: they skip, naming the run, and try again on their next tick. Before that, every
tick marks failed the runs whose process is gone (a killed ``lifecycle run``, a crashed run worker: see
orchestration/liveness.py) and frees their pool slots, so a dead run never blocks them for long.

Failed and partial runs (a run that succeeded with a failed asset check, e.g. ``no_rejections`` when a
destination rejected rows) are posted as alerts by the sensor ``run_alerts`` (on by default; it posts only
when ``LIFECYCLE_ALERT_WEBHOOK_URL`` is set): see orchestration/alerts.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg

from ingestion.landing import STREAMS, landing_files
from orchestration.alerts import alert_for, latest_outcome, post_alert, run_outcomes
from orchestration.defs.transform import checks_to_run
from orchestration.liveness import reap_dead_runs, run_in_flight
from settings import Settings

LIFECYCLE_JOB = "lifecycle"
TRANSFORM_JOB = "transform"
SENSOR_INTERVAL_SECONDS = 60
ALERT_INTERVAL_SECONDS = 30
ALERT_RUNS_PER_TICK = 50


def blocking_run(context: dg.ScheduleEvaluationContext | dg.SensorEvaluationContext, found_by: str) -> str | None:
    """The id of a queued, starting, started or cancelling run of this instance, if there is one, once the
    runs whose process is gone have been marked failed and their pool slots freed (logged)."""
    for line in reap_dead_runs(context.instance, found_by):
        context.log.warning(line)
    record = run_in_flight(context.instance)
    return record.dagster_run.run_id if record else None


def hourly_run(context: dg.ScheduleEvaluationContext | dg.SensorEvaluationContext,
               run_key: str | None = None) -> dg.RunRequest:
    """A run of the whole ``lifecycle`` job without the dbt data tests."""
    repository = context.repository_def
    keys = set(repository.get_job(LIFECYCLE_JOB).asset_layer.executable_asset_keys)
    checks = checks_to_run(repository.asset_graph, keys, dbt_tests=False)
    if checks == checks_to_run(repository.asset_graph, keys, dbt_tests=True):
        return dg.RunRequest(run_key=run_key)
    return dg.RunRequest(run_key=run_key, asset_selection=sorted(keys), asset_check_keys=sorted(checks))


def landing_signature(landing_dir: Path) -> tuple[int, str] | None:
    """How many landing files there are and a digest of their sorted (path, size); None when there are none.

    Only ``stat`` calls: the landing zone is append-only, so a new or grown file changes the digest, and
    nothing is read however large the files get.
    """
    entries = sorted(
        (path.relative_to(landing_dir).as_posix(), path.stat().st_size)
        for stream in STREAMS
        for path in landing_files(landing_dir, stream)
    )
    if not entries:
        return None
    digest = hashlib.blake2b(digest_size=16)
    for relative, size in entries:
        digest.update(f"{relative}\t{size}\n".encode())
    return len(entries), digest.hexdigest()


def build_definitions(settings: Settings) -> dg.Definitions:
    landing_dir = settings.landing_dir

    @dg.schedule(
        cron_schedule="0 * * * *",
        execution_timezone="UTC",
        job_name=LIFECYCLE_JOB,
        name="lifecycle_hourly",
        description="Runs the whole pipeline (ingest, dbt, activations) at the top of every hour, UTC. Off "
                    "until turned on in the UI or with `dagster schedule start lifecycle_hourly`. Skips an "
                    "hour while another run is queued or running: they all write the same warehouse.",
    )
    def lifecycle_hourly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        blocking = blocking_run(context, found_by="the schedule lifecycle_hourly")
        if blocking:
            return dg.SkipReason(f"run {blocking} is still in flight; the next hour will try again")
        return hourly_run(context)

    @dg.schedule(
        cron_schedule="30 4 * * *",
        execution_timezone="UTC",
        job_name=TRANSFORM_JOB,
        name="dbt_tests_daily",
        description="Builds the dbt project with its data tests (asset checks) every day at 04:30 UTC: the hourly "
                    "runs leave the tests out. Off until turned on in the UI or with `dagster schedule start "
                    "dbt_tests_daily`. Skips while another run is queued or running.",
    )
    def dbt_tests_daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        blocking = blocking_run(context, found_by="the schedule dbt_tests_daily")
        if blocking:
            return dg.SkipReason(f"run {blocking} is still in flight; tomorrow will try again")
        return dg.RunRequest()

    @dg.sensor(
        job_name=LIFECYCLE_JOB,
        name="landing_zone_sensor",
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        description=f"Runs the whole pipeline when files in the landing zone ({landing_dir}) are new or have "
                    f"grown (forms and webhooks from the collector, backfills), checking every "
                    f"{SENSOR_INTERVAL_SECONDS} s. Off until turned on in the UI or with `dagster sensor start "
                    "landing_zone_sensor`. Waits while another run is queued or running.",
    )
    def landing_zone_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        signature = landing_signature(landing_dir)
        if signature is None:
            return dg.SkipReason(f"no landing files yet in {landing_dir}")
        files, digest = signature
        cursor = f"{files} files {digest}"
        if cursor == context.cursor:
            return dg.SkipReason("no new or grown landing files since the last requested run")
        blocking = blocking_run(context, found_by="the sensor landing_zone_sensor")
        if blocking:
            # The cursor stays put, so the change is picked up once the run is over.
            return dg.SkipReason(f"landing files changed, waiting for run {blocking} to finish")
        context.update_cursor(cursor)
        return hourly_run(context, run_key=f"landing-{digest}")

    @dg.sensor(
        name="run_alerts",
        minimum_interval_seconds=ALERT_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts a Slack-compatible JSON alert for every run that failed, or succeeded with a failed "
                    "asset check (a partial run: rows rejected, emails unconfirmed), to the webhook in "
                    "LIFECYCLE_ALERT_WEBHOOK_URL; posts nothing while it is unset. A post that fails is logged "
                    "and tried again on the next tick.",
    )
    def run_alerts(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        instance = context.instance
        url = settings.alert_webhook_url
        if not url or context.cursor is None:
            # Alerts are about what happens from now on: no flood of old failures when they are turned on.
            context.update_cursor(str(latest_outcome(instance)))
            return dg.SkipReason("LIFECYCLE_ALERT_WEBHOOK_URL is not set: no alerts are posted" if not url
                                 else "watching for failed and partial runs from now on")
        posted = []
        for storage_id, run in run_outcomes(instance, int(context.cursor), ALERT_RUNS_PER_TICK):
            alert = alert_for(instance, run, settings)
            if alert is not None:
                problem = post_alert(url, alert)
                if problem is not None:
                    # The cursor stays before this run: the next tick posts it again.
                    context.log.warning(f"alert for run {run.run_id} not posted: {problem}; retrying next tick")
                    return dg.SkipReason(f"alert for run {run.run_id} not posted: {problem}; "
                                         "retrying on the next tick")
                posted.append(f"{run.run_id} ({alert.status})")
            context.update_cursor(str(storage_id))
        if posted:
            return dg.SkipReason(f"posted alerts for runs {', '.join(posted)}")
        return dg.SkipReason("no failed or partial run since the last tick")

    return dg.Definitions(schedules=[lifecycle_hourly, dbt_tests_daily], sensors=[landing_zone_sensor, run_alerts])
