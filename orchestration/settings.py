"""All configuration, read from the environment (and a ``.env`` file) in one place (SPEC §5.1).

Secrets are held as ``Secret`` so that printing settings, logging them or putting them in run metadata
shows ``***`` instead of the value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import load_dotenv

REAL_BASE_URLS = {
    "hubspot": "https://api.hubapi.com",
    "brevo": "https://api.brevo.com/v3",
    "calendly": "https://api.calendly.com",
    "stripe": "https://api.stripe.com",
}


class Secret(str):
    """A string whose repr and str never show the value; use ``.reveal()`` where it is sent."""

    def __repr__(self) -> str:
        return "Secret('***')" if self.reveal() else "Secret('')"

    def __str__(self) -> str:
        return "***" if self.reveal() else ""

    def __format__(self, spec: str) -> str:
        return str(self)

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class Settings:
    home: Path
    hubspot_base_url: str
    hubspot_token: Secret = field(repr=False)
    brevo_base_url: str
    brevo_api_key: Secret = field(repr=False)
    calendly_base_url: str
    calendly_token: Secret = field(repr=False)
    calendly_webhook_signing_key: Secret = field(repr=False)
    stripe_base_url: str
    stripe_api_key: Secret = field(repr=False)
    stripe_webhook_secret: Secret = field(repr=False)
    scratch: Path | None = None
    """A dry run's throwaway copy of the warehouse and the dlt state; None for a real run."""

    @property
    def data_dir(self) -> Path:
        """Where the warehouse and the dlt state are read and written: the home, or a dry run's scratch copy.
        The landing zone, the logs and the Dagster home always stay in the home."""
        return self.scratch or self.home

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def dlt_pipelines_dir(self) -> Path:
        return self.data_dir / "dlt"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        if environ is None:
            load_dotenv(override=False)
            environ = dict(os.environ)

        def get(name: str, default: str = "") -> str:
            return environ.get(name) or default

        return cls(
            home=Path(get("LIFECYCLE_HOME", "./.lifecycle")).resolve(),
            hubspot_base_url=get("HUBSPOT_BASE_URL", REAL_BASE_URLS["hubspot"]).rstrip("/"),
            hubspot_token=Secret(get("HUBSPOT_TOKEN")),
            brevo_base_url=get("BREVO_BASE_URL", REAL_BASE_URLS["brevo"]).rstrip("/"),
            brevo_api_key=Secret(get("BREVO_API_KEY")),
            calendly_base_url=get("CALENDLY_BASE_URL", REAL_BASE_URLS["calendly"]).rstrip("/"),
            calendly_token=Secret(get("CALENDLY_TOKEN")),
            calendly_webhook_signing_key=Secret(get("CALENDLY_WEBHOOK_SIGNING_KEY")),
            stripe_base_url=get("STRIPE_BASE_URL", REAL_BASE_URLS["stripe"]).rstrip("/"),
            stripe_api_key=Secret(get("STRIPE_API_KEY")),
            stripe_webhook_secret=Secret(get("STRIPE_WEBHOOK_SECRET")),
        )


def sandbox_environment(sandbox_url: str, home: Path) -> dict[str, str]:
    """The variables that point every client at a local sandbox with its default credentials."""
    return {
        "LIFECYCLE_HOME": str(home),
        "HUBSPOT_BASE_URL": f"{sandbox_url}/hubspot",
        "HUBSPOT_TOKEN": "pat-sandbox",
        "BREVO_BASE_URL": f"{sandbox_url}/brevo/v3",
        "BREVO_API_KEY": "xkeysib-sandbox",
        "CALENDLY_BASE_URL": f"{sandbox_url}/calendly",
        "CALENDLY_TOKEN": "calendly-sandbox",
        "CALENDLY_WEBHOOK_SIGNING_KEY": "calendly-signing-sandbox",
        "STRIPE_BASE_URL": f"{sandbox_url}/stripe",
        "STRIPE_API_KEY": "sk_test_sandbox",
        "STRIPE_WEBHOOK_SECRET": "whsec_sandbox",
    }
