"""``python -m sandbox serve [--host] [--port]``: run the emulated APIs (what ``lifecycle sandbox`` runs).

``python -m sandbox world --contacts N --seed S --sandbox-url URL --forms-out PATH ...``: generate a
synthetic company into a running sandbox (what ``lifecycle world`` runs as a subprocess; sandbox/world/).

``python -m sandbox hour --contacts N --changed K --known FILE --start ISO --end ISO ...``: one realistic
hour of change on top of such a world (what ``lifecycle bench`` runs between its runs; sandbox/hour.py).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime

import uvicorn

from sandbox import hour as hour_generator
from sandbox import world as world_generator
from sandbox.app import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the emulated HubSpot, Brevo, Calendly and Stripe APIs")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    world = sub.add_parser("world", help="generate a synthetic company into a running sandbox")
    world.add_argument("--contacts", type=int, required=True)
    world.add_argument("--seed", type=int, default=42)
    world.add_argument("--sandbox-url", required=True)
    world.add_argument("--collector-url", default=None, help="also POST live form submissions here")
    world.add_argument("--forms-out", required=True, help="JSONL backfill file for `lifecycle import-forms`")
    world.add_argument("--start", type=date.fromisoformat, default=None,
                       help="first day of the window, YYYY-MM-DD (default: today UTC minus --days)")
    world.add_argument("--days", type=int, default=120)
    world.add_argument("--live-forms", type=int, default=None, help="default: min(20, contacts)")
    hour = sub.add_parser("hour", help="one hour of change (new leads, bookings, purchases, edits, engagement)")
    hour.add_argument("--contacts", type=int, required=True, help="the world's size: new leads come after it")
    hour.add_argument("--changed", type=int, required=True, help="contacts that do something in the hour")
    hour.add_argument("--known", required=True, help="JSONL of known contacts to pick from (email, names, segment)")
    hour.add_argument("--start", type=datetime.fromisoformat, required=True)
    hour.add_argument("--end", type=datetime.fromisoformat, required=True)
    hour.add_argument("--seed", type=int, default=42)
    hour.add_argument("--sandbox-url", required=True)
    hour.add_argument("--collector-url", required=True, help="where the live form submissions go")
    args = parser.parse_args(argv)
    if args.command == "serve":
        uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    elif args.command == "world":
        sys.exit(world_generator.main(args))
    elif args.command == "hour":
        sys.exit(hour_generator.main(args))


if __name__ == "__main__":
    main()
