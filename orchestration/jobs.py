"""Running a Dagster job from the command line: on the persistent instance that ``dagster dev`` shows, after
the checks that must hold first, with each step shown as it runs and a summary of what the run did.
``lifecycle run`` (orchestration/cli.py), the demo and the tests all start runs through here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from settings import Settings

if TYPE_CHECKING:
    import dagster as dg

RUN_JOBS = {"ingest": "ingest", "transform": "transform", "activate": "activate", "all": "lifecycle"}
"""``lifecycle run --select`` -> the Dagster job it executes."""
ACTIVATING_JOBS = ("activate", "lifecycle")
WRITTEN_BY_LIFECYCLE = "# Written by `lifecycle`"
DAGSTER_INSTANCE_YAML = f"""\
{WRITTEN_BY_LIFECYCLE}, which rewrites it when its settings change (delete this line to keep your edits).
# DuckDB takes one writer at a time: the assets that write the warehouse share the concurrency pool
# "warehouse", limited to one step at a time.
concurrency:
  pools:
    default_limit: 1
# Runs launched by the daemon or the UI are tagged with their host, and run monitoring marks a run failed
# once its process is gone (orchestration/liveness.py); the pool slots of a run that ended are freed.
run_launcher:
  module: orchestration.liveness
  class: LivenessRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: 60
  free_slots_after_run_end_seconds: 60
# A local-first tool makes no calls home.
telemetry:
  enabled: false
"""



def use_dagster_home(settings: Settings) -> None:
    """Runs launched from the CLI land in the instance that ``dagster dev`` shows (``$DAGSTER_HOME``,
    by default ``$LIFECYCLE_HOME/dagster``)."""
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_config = dagster_home / "dagster.yaml"
    written = instance_config.read_text() if instance_config.exists() else WRITTEN_BY_LIFECYCLE
    if written.startswith(WRITTEN_BY_LIFECYCLE) and written != DAGSTER_INSTANCE_YAML:
        instance_config.write_text(DAGSTER_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(dagster_home)


def job_log_path(settings: Settings, job_name: str) -> Path:
    """Where a job's steps print (dbt's log lines): the terminal only gets a summary."""
    return settings.home / "logs" / f"{job_name}.log"


def execute_job(job_name: str, as_of: str | None = None, dry_run: bool = False, dbt_tests: bool | None = None,
                groups: tuple[str, ...] | None = None, replay: bool = False,
                listener: Callable[[Any], None] | None = None) -> dg.ExecuteInProcessResult:
    """Execute one Dagster job in-process on the persistent instance (the runs ``dagster dev`` shows).

    ``as_of`` (ISO 8601, UTC) becomes the run's ``lifecycle/as_of`` tag: the moment the run computes for.
    ``dry_run`` tags it ``lifecycle/dry_run=true``: the run works on a scratch copy of the warehouse and the
    dlt state and reports what the syncs would write, changing nothing a later run reads. ``replay`` tags it
    ``lifecycle/replay=true``: its activations may push state older than the latest activation's.
    ``dbt_tests`` runs the dbt data tests (asset checks) or leaves them out; by default only the ``transform``
    job runs them, the whole pipeline (the hourly path) does not (see ``checks_to_run``). ``groups`` runs only
    the job's assets in those asset groups (e.g. transform and activate: a day whose sources have nothing new).
    ``listener`` is called with each event of the run as it happens (``orchestration/run_output.py`` shows
    progress from them).

    The run is tagged with this process (host, pid, start time) so that, should the process die, a later run
    finds it dead and cleans it up. It starts once no other run is in flight and the warehouse is free
    (``wait_for_warehouse``): it says what it waits for, stops on SIGTERM or Ctrl-C, and gives up after
    ``LIFECYCLE_RUN_WAIT_SECONDS`` (both raise ``WaitAborted``, a ``SystemExit``, without creating a run).
    """
    import dagster as dg

    settings = Settings.from_env()
    use_dagster_home(settings)
    from orchestration.definitions import defs
    from orchestration.defs.transform import AS_OF_TAG, checks_to_run
    from orchestration.liveness import RUN_LOCK_FILE, process_tags, run_lock, wait_for_warehouse
    from orchestration.resources import DRY_RUN_TAG, REPLAY_TAG

    job = defs.resolve_job_def(job_name)
    graph = defs.resolve_asset_graph()
    keys = set(job.asset_layer.executable_asset_keys)
    if groups:
        keys &= dg.AssetSelection.groups(*groups).resolve(graph)
    checks = checks_to_run(graph, keys, dbt_tests=job_name == RUN_JOBS["transform"] if dbt_tests is None else dbt_tests)
    job = job.get_subset(asset_selection=keys, asset_check_selection=checks)
    # The full event log is in the instance (the Dagster UI). What the steps print (dbt's log lines) and
    # Dagster's warnings and errors, tracebacks included, go to a file; the caller prints a summary.
    log_path = job_log_path(settings, job_name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tags = {**({AS_OF_TAG: as_of} if as_of else {}), **({DRY_RUN_TAG: "true"} if dry_run else {}),
            **({REPLAY_TAG: "true"} if replay else {}), **process_tags()}
    run_id = str(uuid.uuid4())
    with dg.DagsterInstance.get() as instance, run_lock(settings.home / RUN_LOCK_FILE) as lock:
        wait_for_warehouse(instance, settings.warehouse_path, lock, settings.run_wait_seconds)
        if listener is not None:
            instance.add_event_listener(run_id, listener)
        with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            return job.execute_in_process(
                instance=instance,
                run_id=run_id,
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                tags=tags,
            )


def run_job(job_name: str, as_of: str | None = None, dry_run: bool = False, dbt_tests: bool | None = None,
            replay: bool = False) -> bool:
    """``execute_job`` with each step shown as it starts and ends, then one line for the run, one more per
    failed step (its error's first line), the dry run's would-be writes and the summary of what the run did
    (``orchestration/run_output.py``); True on success."""
    from orchestration.run_output import RunProgress, run_summary

    started = datetime.now(UTC)
    print(f"job {job_name!r}{' (dry run)' if dry_run else ''}: starting", flush=True)
    with RunProgress.for_stream(sys.stdout) as progress:
        result = execute_job(job_name, as_of, dry_run, dbt_tests, replay=replay, listener=progress)
    seconds = (datetime.now(UTC) - started).total_seconds()
    settings = Settings.from_env()
    log_path = job_log_path(settings, job_name)
    if result.success:
        print(f"job {job_name!r} succeeded in {seconds:.1f} s (run id {result.run_id}; step output in {log_path})")
    else:
        print(f"job {job_name!r} FAILED in {seconds:.1f} s (run id {result.run_id}; step output and "
              f"tracebacks in {log_path})")
        for line in failure_lines(result):
            print(f"  {line}")
    if dry_run:
        _print_dry_run(result)
    print("\n".join(run_summary(result, warehouse_path=settings.warehouse_path, home=settings.home,
                                dagster_home=Path(os.environ["DAGSTER_HOME"]), log_path=log_path, dry_run=dry_run)))
    return result.success


def failure_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """Per failed step, ``step: first line of its error`` (a refused check's own line), or per failed asset for
    the activations' step; the run's error when no step failed (e.g. a resource that could not start)."""
    import dagster as dg

    from orchestration.defs.activate import FAILED_ASSETS

    steps = [(event.step_key, event.step_failure_data) for event in result.all_events
             if event.event_type == dg.DagsterEventType.STEP_FAILURE]
    lines = []
    for step, data in steps:
        failed = data.user_failure_data.metadata.get(FAILED_ASSETS) if data.user_failure_data else None
        if failed is not None:  # a step of several assets names each that failed
            lines += [f"{asset}: {line}" for asset, line in failed.value.items()]
        else:
            lines.append(f"{step}: {_first_line(data.user_failure_data, data.error)}")
    if lines:
        return lines
    return [f"run: {_first_line(None, event.event_specific_data.error)}" for event in result.all_events
            if event.event_type == dg.DagsterEventType.RUN_FAILURE and event.event_specific_data.error]


def _first_line(failure: Any, error: Any) -> str:
    """A ``dg.Failure``'s description, else the first line of the error Dagster wrapped, as ``Class: text``."""
    if failure is not None and failure.description:
        return failure.description.splitlines()[0]
    while error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
        error = error.cause
    _, _, text = error.message.partition("\n")[0].partition(": ")
    return f"{error.cls_name}: {text}" if text else error.cls_name


def _print_dry_run(result: dg.ExecuteInProcessResult) -> None:
    """Per raw table the rows the ingestion would load, per destination object what the sync would have
    written, and the emails that would go out (from the materialization metadata)."""
    from orchestration.run_output import materializations

    for asset, metadata in materializations(result):
        if "rows_loaded" in metadata:
            print(f"dry run {asset}: would load {metadata['rows_loaded']} rows")
        if not metadata.get("dry_run"):
            continue
        if "per_step" in metadata:
            print(f"dry run {asset}: would send {metadata['sent']} messages")
            for step, count in (metadata["per_step"] or {}).items():
                print(f"  {step}: {count}")
        else:
            print(f"dry run {asset}: would add {metadata['added']}, change {metadata['updated']}, "
                  f"remove {metadata['removed']} of {metadata['considered']} rows")
        for line in str(metadata.get("preview") or "").splitlines():
            print(f"  {line}")


def preflight(job_name: str, as_of: str | None, *, dry_run: bool, replay: bool) -> None:
    """What must hold before the job starts (orchestration/preflight.py): the settings it needs; for a real
    activation, an as-of not before the latest activation's (unless ``replay``); then each vendor's answer
    to one authenticated read of every vendor the job needs. Raises ``Refused`` with the one line to show, or
    an ``ExceptionGroup`` of one per vendor that refused (so that one run names every credential to fix)."""
    import duckdb

    from orchestration.preflight import (
        JOB_VENDORS,
        Refused,
        check_access,
        check_activation_clock,
        check_settings,
    )

    settings = Settings.from_env()
    check_settings(settings, JOB_VENDORS[job_name])
    if job_name in ACTIVATING_JOBS and not dry_run and settings.warehouse_path.exists():
        with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
            check_activation_clock(con, datetime.fromisoformat(as_of) if as_of else None, replay)
    refusals = []
    for vendor in JOB_VENDORS[job_name]:
        try:
            check_access(settings, vendor)
        except Refused as refusal:
            refusals.append(refusal)
    if refusals:
        raise ExceptionGroup("refused", refusals)


def refused(job_name: str, as_of: str | None, *, dry_run: bool, replay: bool) -> list[str]:
    """``preflight``'s refusals as the lines to print, none when the job may start. A probe's retries and the
    traceback behind a vendor's refusal go to the job's log file, which the line then names."""
    from orchestration.preflight import Refused

    log_path = job_log_path(Settings.from_env(), job_name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, delay=True)
    logging.getLogger().addHandler(handler)
    lines: list[str] = []
    try:
        preflight(job_name, as_of, dry_run=dry_run, replay=replay)
    except* Refused as group:
        for refusal in group.exceptions:
            if refusal.__cause__ is None:
                lines.append(str(refusal))
                continue
            with open(log_path, "a") as log:
                traceback.print_exception(refusal, file=log)
            lines.append(f"{refusal} (details in {log_path})")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    return lines


