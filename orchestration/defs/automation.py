"""Unattended runs of the ``lifecycle`` job: an hourly schedule and a sensor on the landing zone (SPEC §0, §4).

Both are off until an operator turns them on (Dagster's default for new schedules and sensors), in the UI's
Automation page or with ``dagster schedule start lifecycle_hourly -w workspace.yaml`` / ``dagster sensor start
landing_zone_sensor -w workspace.yaml``; they need the daemon, which ``dagster dev`` runs.

Every job of this code location (``lifecycle``, ``ingest``, ``transform``, ``activate``, and materializations
launched from the asset graph) writes the one DuckDB warehouse, so neither requests a run while any run of
the instance is in flight: they skip, naming the run, and try again on their next tick. A failed run needs
nothing extra here: it shows as failed in the UI's run list, and the next tick starts a fresh one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg

from ingestion.landing import STREAMS, landing_files
from orchestration.settings import Settings

LIFECYCLE_JOB = "lifecycle"
IN_FLIGHT_STATUSES = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)
"""A run in any of these may be writing the warehouse, or will soon. NOT_STARTED is left out: a run whose
launch failed can stay in it for good, and would block every later run."""
SENSOR_INTERVAL_SECONDS = 60


def run_in_flight(instance: dg.DagsterInstance) -> str | None:
    """The id of a queued, starting, started or cancelling run of this instance, if there is one."""
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=list(IN_FLIGHT_STATUSES)), limit=1)
    return records[0].dagster_run.run_id if records else None


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
        blocking = run_in_flight(context.instance)
        if blocking:
            return dg.SkipReason(f"run {blocking} is still in flight; the next hour will try again")
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
        blocking = run_in_flight(context.instance)
        if blocking:
            # The cursor stays put, so the change is picked up once the run is over.
            return dg.SkipReason(f"landing files changed, waiting for run {blocking} to finish")
        context.update_cursor(cursor)
        return dg.RunRequest(run_key=f"landing-{digest}")

    return dg.Definitions(schedules=[lifecycle_hourly], sensors=[landing_zone_sensor])
