"""``lifecycle``: the command line of docs/interfaces.md#command-line-and-settings.

Every command reads its configuration from the environment (and ``.env``) through ``Settings``; the
pipeline commands execute the same Dagster definitions that ``dagster dev -w workspace.yaml`` shows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from settings import Settings, sandbox_environment

if TYPE_CHECKING:
    import dagster as dg

DEMO_MARKER = ".lifecycle-demo"
RUN_JOBS = {"ingest": "ingest", "transform": "transform", "activate": "activate", "all": "lifecycle"}
"""``lifecycle run --select`` -> the Dagster job it executes."""
ACTIVATING_JOBS = ("activate", "lifecycle")
EXIT_FAILED = 1
EXIT_REFUSED = 2
"""``lifecycle run``'s exit codes: the run failed; or it was refused before it started (a setting, a
vendor's answer, an activation older than the latest one)."""
REPLAY_GROUPS = ("transform", "activate")
"""What a simulated day re-runs once everything is ingested: dbt as of that day, then the activations."""
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


def _use_dagster_home(settings: Settings) -> None:
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
    _use_dagster_home(settings)
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
    """Per failed step, ``step: first line of its error`` (a refused check's own line); the run's error
    when no step failed (e.g. a resource that could not start)."""
    import dagster as dg

    steps = [(event.step_key, event.step_failure_data) for event in result.all_events
             if event.event_type == dg.DagsterEventType.STEP_FAILURE]
    if steps:
        return [f"{step}: {_first_line(data.user_failure_data, data.error)}" for step, data in steps]
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


def cmd_run(args: argparse.Namespace) -> int:
    job_name = RUN_JOBS[args.select]
    refusals = refused(job_name, args.as_of, dry_run=args.dry_run, replay=args.replay)
    for refusal in refusals:
        print(f"lifecycle run: {refusal}", file=sys.stderr)
    if refusals:
        return EXIT_REFUSED
    ok = run_job(job_name, args.as_of, args.dry_run, dbt_tests=args.dbt_tests, replay=args.replay)
    if ok and args.select in ("ingest", "all") and not args.dry_run:
        from orchestration.reporting import format_counts, raw_table_counts

        print("rows per raw table:")
        print(format_counts(raw_table_counts(Settings.from_env().warehouse_path)))
    return 0 if ok else EXIT_FAILED


def cmd_report(args: argparse.Namespace) -> int:
    """Render the HTML report from the analysts' published copy (what each ``lifecycle`` run does last)."""
    from orchestration.report import render_report

    settings = Settings.from_env()
    if not settings.published_path.exists():
        print(f"lifecycle report: no published copy at {settings.published_path} yet; a `lifecycle run` "
              "publishes it", file=sys.stderr)
        return EXIT_REFUSED
    output = Path(args.output).resolve() if args.output else settings.report_path
    print(render_report(settings.published_path, output))
    return 0


def as_of_timestamp(text: str) -> str:
    """``--as-of``: an ISO 8601 timestamp (``Z`` or an offset; none means UTC) normalized to UTC ``...Z``."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 timestamp: {text!r} (e.g. 2026-09-01T00:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cmd_sandbox(args: argparse.Namespace) -> int:
    from orchestration.services import sandbox_command

    command = sandbox_command(args.port, args.host)
    print(f"sandbox (emulated HubSpot, Brevo, Calendly and Stripe) listening on http://{args.host}:{args.port} "
          "(admin API under /_sandbox; Ctrl-C stops it)", flush=True)
    os.execv(command[0], command)  # become the sandbox, so signals reach it directly


def cmd_collector(args: argparse.Namespace) -> int:
    import uvicorn

    from ingestion.collector.app import create_collector_app
    from ingestion.landing import LandingZone

    settings = Settings.from_env()
    app = create_collector_app(
        LandingZone(settings.landing_dir, writer="collector"),
        calendly_signing_key=settings.calendly_webhook_signing_key.reveal(),
        stripe_webhook_secret=settings.stripe_webhook_secret.reveal(),
        brevo_webhook_token=settings.brevo_webhook_token.reveal(),
    )
    print(f"collector listening on http://{args.host}:{args.port} (forms: POST /forms/<form_id>; webhooks: "
          "POST /webhooks/calendly, /webhooks/stripe; Ctrl-C stops it)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_import_forms(args: argparse.Namespace) -> int:
    from ingestion.backfill import ImportFileError, import_forms
    from ingestion.landing import LandingZone

    settings = Settings.from_env()
    writer = "import-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    try:
        report = import_forms(Path(args.file), LandingZone(settings.landing_dir, writer=writer))
    except (ImportFileError, OSError) as exc:
        print(f"lifecycle import-forms: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0 if report.complete else 1


def cmd_webhooks_register(args: argparse.Namespace) -> int:
    from ingestion.webhooks import register_webhooks

    settings = Settings.from_env()
    try:
        messages = register_webhooks(
            args.url.rstrip("/"),
            calendly_base_url=settings.calendly_base_url,
            calendly_token=settings.calendly_token.reveal(),
            calendly_signing_key=settings.calendly_webhook_signing_key.reveal(),
            stripe_base_url=settings.stripe_base_url,
            stripe_api_key=settings.stripe_api_key.reveal(),
            brevo_base_url=settings.brevo_base_url,
            brevo_api_key=settings.brevo_api_key.reveal(),
            brevo_webhook_token=settings.brevo_webhook_token.reveal(),
        )
    except ValueError as exc:
        print(f"lifecycle webhooks register: {exc}", file=sys.stderr)
        return 2
    for message in messages:
        print(message)
    return 0


def generate_world(settings: Settings, *, contacts: int, seed: int, sandbox_url: str,
                   collector_url: str | None, start: str | None = None, days: int | None = None) -> dict:
    """Generate a world into the sandbox (and the collector), then backfill its historical forms."""
    from ingestion.backfill import import_forms
    from ingestion.landing import LandingZone
    from ingestion.webhooks import register_webhooks
    from orchestration.services import reachable

    for name, url in (("sandbox", sandbox_url), ("collector", collector_url)):
        if url and not reachable(f"{url}/healthz"):
            raise SystemExit(f"the {name} does not answer at {url}; start it with `lifecycle {name}` first")
    if collector_url:
        sandbox_env = sandbox_environment(sandbox_url, settings.home)
        register_webhooks(
            collector_url,
            calendly_base_url=sandbox_env["CALENDLY_BASE_URL"],
            calendly_token=sandbox_env["CALENDLY_TOKEN"],
            # Signed with the key the collector checks, so the generated bookings are accepted.
            calendly_signing_key=(settings.calendly_webhook_signing_key.reveal()
                                  or sandbox_env["CALENDLY_WEBHOOK_SIGNING_KEY"]),
            stripe_base_url=sandbox_env["STRIPE_BASE_URL"],
            stripe_api_key=sandbox_env["STRIPE_API_KEY"],
            brevo_base_url=sandbox_env["BREVO_BASE_URL"],
            brevo_api_key=sandbox_env["BREVO_API_KEY"],
            # The token the collector checks, so the generated newsletter engagement is accepted.
            brevo_webhook_token=(settings.brevo_webhook_token.reveal()
                                 or sandbox_env["BREVO_WEBHOOK_TOKEN"]),
        )
    forms_file = settings.home / "world" / f"forms-seed{seed}-{contacts}.jsonl"
    forms_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "sandbox", "world", "--contacts", str(contacts), "--seed", str(seed),
               "--sandbox-url", sandbox_url, "--forms-out", str(forms_file)]
    if collector_url:
        command += ["--collector-url", collector_url]
    if start:
        command += ["--start", start]
    if days:
        command += ["--days", str(days)]
    completed = subprocess.run(command, check=False, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(completed.stderr.strip() or f"the world generator failed (exit {completed.returncode})")
    summary = json.loads(completed.stdout)
    report = import_forms(forms_file, LandingZone(settings.landing_dir, writer=f"import-world-seed{seed}"))
    summary["forms_backfill"] = report.summary()
    return summary


def cmd_world(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    summary = generate_world(settings, contacts=args.contacts, seed=args.seed, sandbox_url=args.sandbox_url,
                             collector_url=args.collector_url, start=args.start, days=args.days)
    print(json.dumps(summary, indent=2))
    return 0


def _prepare_demo_home(home: Path) -> None:
    """The demo starts from an empty warehouse; it only ever wipes a home that a demo created."""
    if home.exists() and any(home.iterdir()) and not (home / DEMO_MARKER).exists():
        raise SystemExit(
            f"{home} holds data that the demo did not create; set LIFECYCLE_HOME to another folder for the demo."
        )
    for child in ("warehouse.duckdb", "warehouse.duckdb.wal", "landing", "dlt", "world", "published", "reports"):
        path = home / child
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    home.mkdir(parents=True, exist_ok=True)
    (home / DEMO_MARKER).write_text("created by `lifecycle demo`; the demo may wipe this folder\n")


def _activation_numbers(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, int]]:
    """Per activation asset (``hubspot_contacts_sync`` ...), the rows it sent and the destination rejected."""
    from orchestration.run_output import materializations

    return {asset: {"sent": int(metadata["sent"]), "rejected": int(metadata["rejected"])}
            for asset, metadata in materializations(result) if "sent" in metadata and "rejected" in metadata}


def _day_line(as_of: str, result: dg.ExecuteInProcessResult, seconds: float) -> str:
    numbers = _activation_numbers(result)
    sent = ", ".join(f"{key} {n['sent']}" for key, n in sorted(numbers.items()) if n["sent"])
    rejected = sum(n["rejected"] for n in numbers.values())
    status = "ok" if result.success else f"FAILED (run {result.run_id}: see it in the Dagster UI)"
    return (f"  {as_of[:10]}  {status:<4} {seconds:5.1f} s  sent: {sent or 'nothing'}"
            + (f"; rejected {rejected}" if rejected else ""))


def simulate_days(first: datetime, days: int) -> bool:
    """Replay ``days`` days up to ``first + days``: the first day is the go-live (ingest every source, build,
    sync and send the backlog); then each day moves the clock (``--as-of``) and re-runs dbt and the
    activations; the last day runs the whole job again with the dbt data tests (asset checks).

    The world was generated up front, so after the first ingest only the clock moves: each day's dbt sees the
    events up to that day, and the activations send what became due. Prints one line per day."""
    ok = True
    for day in range(days + 1):
        as_of = (first + timedelta(days=day)).isoformat().replace("+00:00", "Z")
        last = day == days
        started = datetime.now(UTC)
        result = execute_job(RUN_JOBS["all"], as_of, dbt_tests=last,
                             groups=None if day == 0 or last else REPLAY_GROUPS)
        print(_day_line(as_of, result, (datetime.now(UTC) - started).total_seconds()), flush=True)
        for line in failure_lines(result):
            print(f"    {line}")
        ok = ok and result.success
    return ok


def cmd_demo(args: argparse.Namespace) -> int:
    from orchestration.reporting import format_counts, marts_summary, raw_table_counts
    from orchestration.run_output import dagster_ui_command
    from orchestration.services import background_service, collector_command, free_port, sandbox_command

    home = Settings.from_env().home
    _prepare_demo_home(home)
    sandbox_port, collector_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    collector_url = f"http://127.0.0.1:{collector_port}"
    demo_env = sandbox_environment(sandbox_url, home)
    os.environ.update(demo_env)
    settings = Settings.from_env()
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = now - timedelta(days=args.days)
    print(f"sandbox on {sandbox_url}, collector on {collector_url}, data in {home}")
    with background_service(sandbox_command(sandbox_port), f"{sandbox_url}/healthz", demo_env), \
            background_service(collector_command(collector_port), f"{collector_url}/healthz", demo_env):
        print(f"generating a world of {args.contacts:,} contacts (seed {args.seed}) ...")
        summary = generate_world(settings, contacts=args.contacts, seed=args.seed,
                                 sandbox_url=sandbox_url, collector_url=collector_url)
        print(json.dumps(summary, indent=2))
        print(f"going live on {first:%Y-%m-%d} and running the pipeline once a day for {args.days} days "
              "(as of each day; step output in logs/):")
        ok = simulate_days(first, args.days)
    print("rows per raw table:")
    print(format_counts(raw_table_counts(settings.warehouse_path)))
    print(marts_summary(settings.warehouse_path))
    print(
        "\nSee the assets, the lineage and these runs in the Dagster UI:\n"
        f"  {dagster_ui_command(home, settings.dagster_home)}\n"
        f"Query the marts (the copy published after each run):  .venv/bin/python -c \"import duckdb; "
        f"print(duckdb.connect('{settings.published_path}', read_only=True).sql('show all tables'))\"\n"
        f"The report of the last run: {settings.report_path}"
    )
    return 0 if ok else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from bench.runner import BenchConfig, bench, latest_results, table

    results_dir = Path(args.results_dir)
    if not args.table:
        config = BenchConfig(contacts=args.contacts, seed=args.seed, limits=args.limits, results_dir=results_dir,
                             home=Path(args.home) if args.home else None)
        failed = any(not run["ok"] for path in bench(config) for run in json.loads(path.read_text())["runs"])
        if failed:
            return EXIT_FAILED
    print(table(latest_results(results_dir)))
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from orchestration.backtest import BacktestError, backtest

    settings = Settings.from_env()

    def progress(at: datetime, sent: int) -> None:
        print(f"  {at:%Y-%m-%d %H:%M}Z  {sent} would be sent", flush=True)

    print(f"replaying {args.start} .. {args.end} with {args.sequences} in a scratch copy "
          f"(a build at each hour where something can fall due):", flush=True)
    try:
        result = backtest(settings, Path(args.sequences), datetime.fromisoformat(args.start),
                          datetime.fromisoformat(args.end), every=timedelta(hours=args.every_hours),
                          progress=progress)
    except BacktestError as error:
        print(f"lifecycle backtest: {error}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"{result.builds} builds; per sequence and step, sent in the backtest / really sent / both:")
    for step in result.steps:
        print(f"  {step.sequence:<28} {step.step:>2}  {step.backtest:>7} / {step.actual:>7} / {step.both:>7}")
    print(f"the page: {result.page}\nevery message: {result.messages_csv}\nthe table: {result.summary_csv}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lifecycle", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="sandbox + collector + a synthetic world + the pipeline, then a summary")
    demo.add_argument("--contacts", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--days", type=int, default=14, help="simulated days to run the pipeline over")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="one pipeline pass through the Dagster job, in-process")
    run.add_argument("--select", choices=sorted(RUN_JOBS), default="all",
                     help="ingest, transform (dbt), activate (sync HubSpot and Brevo), or all (the `lifecycle` "
                          "job: ingest, transform, then activate)")
    run.add_argument("--as-of", type=as_of_timestamp, default=None,
                     help="compute as of this moment (ISO 8601, e.g. 2026-09-01T00:00:00Z; default: now)")
    run.add_argument("--dry-run", action="store_true",
                     help="compute and print what the run would load, sync and send, on a scratch copy of the "
                          "warehouse and the dlt state: changes nothing anywhere")
    run.add_argument("--replay", action="store_true",
                     help="let the activations push state older than the latest activation's (an --as-of "
                          "before it): refused without this flag")
    tests = run.add_mutually_exclusive_group()
    tests.add_argument("--dbt-tests", dest="dbt_tests", action="store_true", default=None,
                       help="also run the dbt data tests (asset checks); by default only --select transform does")
    tests.add_argument("--skip-dbt-tests", dest="dbt_tests", action="store_false",
                       help="leave out the dbt data tests, also with --select transform")
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="render the HTML report from the analysts' published copy of the marts")
    report.add_argument("--output", default=None,
                        help="where to write it (default: $LIFECYCLE_HOME/reports/lifecycle.html)")
    report.set_defaults(func=cmd_report)

    sandbox = sub.add_parser("sandbox", help="run the emulated HubSpot, Brevo, Calendly and Stripe APIs")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.set_defaults(func=cmd_sandbox)

    collector = sub.add_parser("collector", help="run the intake service for forms and webhooks")
    collector.add_argument("--port", type=int, default=8766)
    collector.add_argument("--host", default="127.0.0.1")
    collector.set_defaults(func=cmd_collector)

    world = sub.add_parser("world", help="generate a synthetic world into the sandbox and the landing zone")
    world.add_argument("--contacts", type=int, required=True)
    world.add_argument("--seed", type=int, default=1)
    world.add_argument("--sandbox-url", default="http://127.0.0.1:8765")
    world.add_argument("--collector-url", default=None,
                       help="collector to receive the webhooks and live forms (e.g. http://127.0.0.1:8766)")
    world.add_argument("--start", default=None, help="first day of the world, YYYY-MM-DD (default: --days ago)")
    world.add_argument("--days", type=int, default=None)
    world.set_defaults(func=cmd_world)

    bench = sub.add_parser("bench", help="measure full, 1 %% change and no-change runs on a synthetic world",
                           description="Generate a world of N contacts in a private sandbox and home, run the "
                                       "pipeline full, after an hour of 1 % change, and with nothing new; "
                                       "write each stage's seconds, memory, rows and API calls to JSON.")
    bench.add_argument("--contacts", type=int, default=2000)
    bench.add_argument("--seed", type=int, default=1)
    bench.add_argument("--limits", choices=("off", "on", "both"), default="off",
                       help="the sandbox's rate limits: off (our own cost), on (the API-bound cost) or both")
    bench.add_argument("--results-dir", default="bench/results", help="where the JSON results go")
    bench.add_argument("--home", default=None,
                       help="the bench's own data folder, wiped first (default: $LIFECYCLE_HOME/bench/N)")
    bench.add_argument("--table", action="store_true",
                       help="only print the table of the latest results per size and limit mode")
    bench.set_defaults(func=cmd_bench)

    backtest = sub.add_parser(
        "backtest", help="replay past days with a changed sequence file and compare with what was sent",
        description="Replay the stored history from --from to --to with another sequences.csv, in a scratch copy "
                    "of the warehouse and the dbt project, on the pipeline's hourly schedule, and compare who would "
                    "have received what and when with what was sent. Touches no destination, the send ledger or "
                    "the live marts. Writes summary.csv and messages.csv to $LIFECYCLE_HOME/reports/backtest-*/.")
    backtest.add_argument("--sequences", required=True, metavar="FILE", help="the sequence file to try")
    backtest.add_argument("--from", dest="start", required=True, type=as_of_timestamp, metavar="ISO8601")
    backtest.add_argument("--to", dest="end", required=True, type=as_of_timestamp, metavar="ISO8601")
    backtest.add_argument("--every-hours", type=int, default=1,
                          help="how often the replayed pipeline runs (default 1, as the hourly schedule)")
    backtest.set_defaults(func=cmd_backtest)

    from ingestion.backfill import format_help

    imports = sub.add_parser("import-forms", help="backfill historical form submissions (.csv or .jsonl)",
                             description="Backfill form submissions from a previous system into the landing\n"
                                         "zone, each with its original submission time.",
                             epilog=format_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    imports.add_argument("file", metavar="FILE", help="a .csv or .jsonl file")
    imports.set_defaults(func=cmd_import_forms)

    webhooks = sub.add_parser("webhooks", help="webhook subscriptions at Calendly, Stripe and Brevo")
    webhooks_sub = webhooks.add_subparsers(dest="webhooks_command", required=True)
    register = webhooks_sub.add_parser("register", help="register the collector's webhook endpoints")
    register.add_argument("--url", required=True, help="public base URL of the collector")
    register.set_defaults(func=cmd_webhooks_register)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
