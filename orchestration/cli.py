"""``lifecycle``: the command line of docs/interfaces.md#command-line-and-settings.

Every command reads its configuration from the environment (and ``.env``) through ``Settings``; the
pipeline commands execute the same Dagster definitions that ``dagster dev -w workspace.yaml`` shows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestration.demo import generate_world, run_demo
from orchestration.jobs import RUN_JOBS, refused, run_job
from settings import Settings

EXIT_FAILED = 1
EXIT_REFUSED = 2
"""``lifecycle run``'s exit codes: the run failed; or it was refused before it started (a setting, a
vendor's answer, an activation older than the latest one)."""


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
          "POST /webhooks/calendly, /webhooks/stripe, /webhooks/brevo; Ctrl-C stops it)", flush=True)
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


def cmd_demo(args: argparse.Namespace) -> int:
    return 0 if run_demo(args.contacts, args.seed, args.days) else EXIT_FAILED


def cmd_world(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    summary = generate_world(settings, contacts=args.contacts, seed=args.seed, sandbox_url=args.sandbox_url,
                             collector_url=args.collector_url, start=args.start, days=args.days)
    print(json.dumps(summary, indent=2))
    return 0


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
