"""Shared by the collector's test suites: signing keys and headers, reading the landing zone, and a real
``lifecycle collector`` process on a free loopback port."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import stripe

from ingestion.landing import STREAMS, landing_files, read_complete_lines
from orchestration.services import free_port, stop, wait_healthy

CALENDLY_KEY = "calendly-test-key"
STRIPE_SECRET = "whsec_test_secret"


def landed(root: Path, stream: str) -> list[dict]:
    """Every record on disk, each line parsed (a partial or corrupt line fails the test)."""
    records = []
    for path in landing_files(root, stream):
        text = path.read_text(encoding="utf-8")
        assert text == "" or text.endswith("\n")
        records.extend(json.loads(line) for line in text.splitlines())
    return records


def calendly_headers(body: bytes, key: str = CALENDLY_KEY, t: int | None = None) -> dict[str, str]:
    t = int(time.time()) if t is None else t
    signature = hmac.new(key.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Calendly-Webhook-Signature": f"t={t},v1={signature}", "Content-Type": "application/json"}


def stripe_headers(body: bytes, secret: str = STRIPE_SECRET, t: int | None = None) -> dict[str, str]:
    """Signed by the ``stripe`` library itself; a body that is not UTF-8 (which the library cannot sign)
    gets the same HMAC over its raw bytes."""
    try:
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=t)
    except UnicodeDecodeError:
        t = int(time.time()) if t is None else t
        header = f"t={t},v1={hmac.new(secret.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


@dataclass
class LandingWatcher:
    """The records appended to a landing zone since the previous look, per stream (complete lines only)."""

    root: Path
    offsets: dict[Path, int] = field(default_factory=dict)

    def new_records(self) -> dict[str, list[dict]]:
        found: dict[str, list[dict]] = {}
        for stream in STREAMS:
            records = found.setdefault(stream, [])
            for path in landing_files(self.root, stream):
                lines, self.offsets[path] = read_complete_lines(path, self.offsets.get(path, 0))
                records.extend(json.loads(text) for _, text in lines)
        return found


@dataclass
class CollectorProcess:
    """A running ``lifecycle collector``: its base URL, landing directory, process and log file."""

    url: str
    landing: Path
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def collector_process(home: Path) -> Iterator[CollectorProcess]:
    """``lifecycle collector`` with ``LIFECYCLE_HOME=home`` until the block ends (stopped by SIGTERM unless the
    test killed it). Its output is appended to ``home/collector.log``, so restarts share one log."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "LIFECYCLE_HOME": str(home), "CALENDLY_WEBHOOK_SIGNING_KEY": CALENDLY_KEY,
           "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET}
    log_path = home / "collector.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestration.cli", "collector", "--port", str(port)],
            cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/healthz", process)
        yield CollectorProcess(url, home / "landing", process, log_path)
    finally:
        stop(process)
