"""Checks made before a job touches anything, each failing with one line that says what to fix.

- Settings: the variables each job needs (``ingest``: every source's credential and base URL; ``activate``:
  HubSpot's and Brevo's; ``transform``: none). An unset token would otherwise surface as a retried protocol
  error deep inside a client.
- Access: one cheap authenticated read per vendor. A 401/403 becomes "HUBSPOT_TOKEN was refused by HubSpot:
  <the vendor's message>", an unreachable vendor names its base URL variable and the network error.
- The activation clock: a real activation computed as of a moment before the latest real activation would
  push older state to a live CRM, so it is refused unless the run says it is a replay.

``lifecycle run`` runs them before it starts a run; the assets run them too (once per vendor per run, see
orchestration/resources.py), so a run launched from the Dagster UI fails with the same line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import httpx

from activations.state import SCHEMA, utc_naive
from ingestion.sources.http import (
    Retries,
    VendorClient,
    brevo_client,
    calendly_client,
    hubspot_client,
    stripe_client,
)
from settings import Secret, Settings
from vendor_http import ApiError

PROBE_RETRIES = Retries(attempts=3, timeout=10.0)
"""A transient 429, 5xx or timeout is retried twice; a vendor still failing after that is reported."""


class Refused(RuntimeError):
    """A run that must not go ahead; the message is the one line to show, and never holds a credential."""


@dataclass(frozen=True)
class Vendor:
    """One system the pipeline talks to: its variables and the read that proves the credential works."""

    label: str
    secret_variable: str
    url_variable: str
    secret: Callable[[Settings], Secret]
    base_url: Callable[[Settings], str]
    client: Callable[..., VendorClient]
    probe_path: str
    probe_params: Mapping[str, Any] = field(default_factory=dict)


VENDORS: dict[str, Vendor] = {
    "hubspot": Vendor("HubSpot", "HUBSPOT_TOKEN", "HUBSPOT_BASE_URL", lambda s: s.hubspot_token,
                      lambda s: s.hubspot_base_url, hubspot_client, "/crm/v3/objects/contacts", {"limit": 1}),
    "brevo": Vendor("Brevo", "BREVO_API_KEY", "BREVO_BASE_URL", lambda s: s.brevo_api_key,
                    lambda s: s.brevo_base_url, brevo_client, "/contacts", {"limit": 1}),
    "calendly": Vendor("Calendly", "CALENDLY_TOKEN", "CALENDLY_BASE_URL", lambda s: s.calendly_token,
                       lambda s: s.calendly_base_url, calendly_client, "/users/me"),
    "stripe": Vendor("Stripe", "STRIPE_API_KEY", "STRIPE_BASE_URL", lambda s: s.stripe_api_key,
                     lambda s: s.stripe_base_url, stripe_client, "/v1/events", {"limit": 1}),
}

SOURCE_VENDORS: dict[str, tuple[str, ...]] = {
    "forms": (), "calendly": ("calendly",), "stripe": ("stripe",), "crm": ("hubspot",), "marketing": ("brevo",)}
"""The vendors each ingestion source reads (forms come from the landing zone only)."""

JOB_VENDORS: dict[str, tuple[str, ...]] = {
    "ingest": tuple(VENDORS), "transform": (), "activate": ("hubspot", "brevo"), "lifecycle": tuple(VENDORS)}
"""The vendors each Dagster job talks to."""


def check_settings(settings: Settings, vendors: Iterable[str]) -> None:
    """Every variable these vendors need is set and each base URL is an http(s) URL; no network call."""
    chosen = [VENDORS[name] for name in vendors]
    missing = [vendor.secret_variable for vendor in chosen if not vendor.secret(settings).reveal()]
    if len(missing) == 1:
        raise Refused(f"{missing[0]} is not set (set it in the environment or in .env)")
    if missing:
        raise Refused(f"{', '.join(missing)} are not set (set them in the environment or in .env)")
    for vendor in chosen:
        url = vendor.base_url(settings)
        if httpx.URL(url).scheme not in ("http", "https"):
            raise Refused(f"{vendor.url_variable} is not an http(s) URL: {url!r}")


def check_access(settings: Settings, name: str) -> None:
    """One authenticated read: the credential is accepted and the vendor answers at its base URL."""
    vendor = VENDORS[name]
    url = vendor.base_url(settings)
    try:
        with vendor.client(url, vendor.secret(settings).reveal(), retries=PROBE_RETRIES) as client:
            client.read(vendor.probe_path, dict(vendor.probe_params))
    except ApiError as error:
        if error.status in (401, 403):
            raise Refused(f"{vendor.secret_variable} was refused by {vendor.label}: {error.vendor_message}") from error
        if error.status is None:
            raise Refused(f"{vendor.url_variable} ({url}) cannot be reached: {network_error(error)}") from error
        raise Refused(f"{vendor.label} at {vendor.url_variable} ({url}) answered HTTP {error.status} to "
                      f"GET {vendor.probe_path}: {error.vendor_message}") from error


def network_error(error: ApiError) -> str:
    """The network error behind a request that got no answer: the client keeps only its class name, and the
    cause at the bottom of the chain (e.g. ``[Errno 111] Connection refused``) says what happened."""
    cause = error.__context__
    if cause is None:
        return error.vendor_message
    root = cause
    while (root.__cause__ or root.__context__) is not None:
        root = root.__cause__ or root.__context__
    return f"{type(cause).__name__}: {root}" if str(root) else error.vendor_message


def latest_activation(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The latest as-of of a real (not dry) activation recorded in the warehouse; None before the first."""
    recorded = con.execute(
        "select count(*) from information_schema.columns "
        "where table_schema = ? and table_name = 'sync_runs' and column_name = 'as_of'", [SCHEMA]).fetchone()[0]
    if not recorded:
        return None
    return con.execute(f'select max(as_of) from "{SCHEMA}".sync_runs where not dry_run').fetchone()[0]


def check_activation_clock(con: duckdb.DuckDBPyConnection, as_of: datetime | None, replay: bool) -> None:
    """Refuse a real activation as of a moment (``None``: now) before the latest one, unless it is a replay."""
    latest = latest_activation(con)
    moment = utc_naive(as_of or datetime.now(UTC))
    if replay or latest is None or moment >= latest:
        return
    raise Refused(f"refusing to activate as of {_iso(moment)}: HubSpot and Brevo already hold state as of "
                  f"{_iso(latest)}, and older state would overwrite it; to do that on purpose, pass --replay "
                  "(or tag the run lifecycle/replay=true)")


def _iso(moment: datetime) -> str:
    return f"{moment.isoformat(timespec='seconds')}Z"
