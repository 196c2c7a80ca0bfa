"""All configuration, read from the environment (and a ``.env`` file) in one place.

A package of its own, importing none of the others, so that the orchestration and ingestion read the same
``Settings`` (ingestion never imports the orchestration). Secrets are held as ``Secret`` so that printing
settings, logging them or putting them in run metadata shows ``***`` instead of the value.
"""

from __future__ import annotations

import hmac
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn

from dotenv import load_dotenv

REAL_BASE_URLS = {
    "hubspot": "https://api.hubapi.com",
    "brevo": "https://api.brevo.com/v3",
    "calendly": "https://api.calendly.com",
    "stripe": "https://api.stripe.com",
}

DEFAULT_RUN_WAIT_SECONDS = 1800
"""How long ``lifecycle run`` waits for another run (or another process holding the warehouse) to finish."""

DEFAULT_DUCKDB_MEMORY_LIMIT = "1GB"
"""What DuckDB may hold in memory before it spills to disk, in every process that writes the warehouse (dlt's
loads, dbt, the activations): without it DuckDB takes up to 80 % of the machine's memory."""
_MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)", re.IGNORECASE)


class Secret:
    """A credential that never shows its value: str, repr and format give ``***``; json.dumps, pickling,
    concatenation and indexing raise ``TypeError``. ``.reveal()`` is the one way out, where it is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return "***" if self._value else ""

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce_ex__(self, protocol: int) -> NoReturn:
        # Pickles end up in files (run storage, caches): a credential has no business there.
        raise TypeError("a Secret cannot be pickled; pass .reveal() where the value is needed")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict) -> Secret:
        return self


def secret_values(settings: Settings) -> tuple[str, ...]:
    """Every non-empty secret a settings object holds: what the clients mask out of whatever a vendor says
    (a vendor may echo any credential it ever received, not only the one of the current request)."""
    return tuple(value.reveal() for value in vars(settings).values() if isinstance(value, Secret) and value)


@dataclass(frozen=True)
class Settings:
    home: Path
    hubspot_base_url: str
    hubspot_token: Secret = field(repr=False)
    brevo_base_url: str
    brevo_api_key: Secret = field(repr=False)
    brevo_webhook_token: Secret = field(repr=False)
    """The bearer token Brevo's marketing webhook is registered with and the collector checks."""
    calendly_base_url: str
    calendly_token: Secret = field(repr=False)
    calendly_webhook_signing_key: Secret = field(repr=False)
    stripe_base_url: str
    stripe_api_key: Secret = field(repr=False)
    stripe_webhook_secret: Secret = field(repr=False)
    run_wait_seconds: int
    alert_webhook_url: Secret = field(repr=False)
    """Slack-compatible incoming webhook for failed and partial runs; its URL usually embeds a token."""
    brevo_settle_seconds: int | None = None
    """How long Brevo's event log is given before an email whose answer was lost is looked for
    (LIFECYCLE_BREVO_SETTLE_SECONDS); None: activations.sends.SETTLE_SECONDS."""
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT
    """LIFECYCLE_DUCKDB_MEMORY_LIMIT, e.g. ``1GB`` or ``512MB``."""
    scratch: Path | None = None
    """A dry run's throwaway copy of the warehouse and the dlt state; None for a real run."""

    def without_secrets(self) -> Settings:
        """These settings with a placeholder for every credential: for what must not hold one, such as the
        asset definitions (their metadata is shown in the UI)."""
        return replace(self, **{name: Secret("placeholder") for name, value in vars(self).items()
                                if isinstance(value, Secret)})

    @property
    def data_dir(self) -> Path:
        """Where the warehouse and the dlt state are read and written: the home, or a dry run's scratch copy.
        The landing zone, the logs and the Dagster home always stay in the home."""
        return self.scratch or self.home

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def duckdb_config(self) -> dict[str, str]:
        """The settings every connection that writes the warehouse opens with (``duckdb.connect(config=...)``)."""
        return {"memory_limit": self.duckdb_memory_limit}

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def dlt_pipelines_dir(self) -> Path:
        return self.data_dir / "dlt"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def published_path(self) -> Path:
        """The read-only copy of the marts for analysts, replaced after each run (orchestration/publish.py).
        Always in the home: a dry run publishes nothing. Not ``marts.duckdb``: DuckDB names a file's catalog
        after it, and ``marts.<table>`` would then be ambiguous."""
        return self.home / "published" / "analytics.duckdb"

    @property
    def report_path(self) -> Path:
        """The HTML report rendered from the published copy (orchestration/report.py)."""
        return self.home / "reports" / "lifecycle.html"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        if environ is None:
            load_dotenv(override=False)
            environ = dict(os.environ)

        def get(name: str, default: str = "") -> str:
            return environ.get(name) or default

        def seconds(name: str, default: int | None) -> int | None:
            """A whole number of seconds, 0 or more (the default when unset); a clear error for anything else."""
            text = get(name).strip()
            if not text:
                return default
            if not (text.isascii() and text.isdigit()):
                raise ValueError(f"{name} must be a whole number of seconds (0 or more), got {text!r}")
            return int(text)

        def memory_size(name: str, default: str) -> str:
            text = get(name).strip() or default
            if not _MEMORY_SIZE.fullmatch(text):
                raise ValueError(f"{name} must be a size such as 1GB or 512MB, got {text!r}")
            return text

        return cls(
            home=Path(get("LIFECYCLE_HOME", "./.lifecycle")).resolve(),
            hubspot_base_url=get("HUBSPOT_BASE_URL", REAL_BASE_URLS["hubspot"]).rstrip("/"),
            hubspot_token=Secret(get("HUBSPOT_TOKEN")),
            brevo_base_url=get("BREVO_BASE_URL", REAL_BASE_URLS["brevo"]).rstrip("/"),
            brevo_api_key=Secret(get("BREVO_API_KEY")),
            brevo_webhook_token=Secret(get("BREVO_WEBHOOK_TOKEN")),
            calendly_base_url=get("CALENDLY_BASE_URL", REAL_BASE_URLS["calendly"]).rstrip("/"),
            calendly_token=Secret(get("CALENDLY_TOKEN")),
            calendly_webhook_signing_key=Secret(get("CALENDLY_WEBHOOK_SIGNING_KEY")),
            stripe_base_url=get("STRIPE_BASE_URL", REAL_BASE_URLS["stripe"]).rstrip("/"),
            stripe_api_key=Secret(get("STRIPE_API_KEY")),
            stripe_webhook_secret=Secret(get("STRIPE_WEBHOOK_SECRET")),
            run_wait_seconds=seconds("LIFECYCLE_RUN_WAIT_SECONDS", DEFAULT_RUN_WAIT_SECONDS),
            alert_webhook_url=Secret(get("LIFECYCLE_ALERT_WEBHOOK_URL")),
            brevo_settle_seconds=seconds("LIFECYCLE_BREVO_SETTLE_SECONDS", None),
            duckdb_memory_limit=memory_size("LIFECYCLE_DUCKDB_MEMORY_LIMIT", DEFAULT_DUCKDB_MEMORY_LIMIT),
        )




def sandbox_environment(sandbox_url: str, home: Path) -> dict[str, str]:
    """The variables that point every client at a local sandbox with its default credentials. The sandbox's
    Brevo event log shows an email at once (unless a test makes it lag), so a lost answer is looked up after
    a second instead of Brevo's minute."""
    return {
        "LIFECYCLE_HOME": str(home),
        "HUBSPOT_BASE_URL": f"{sandbox_url}/hubspot",
        "HUBSPOT_TOKEN": "pat-sandbox",
        "BREVO_BASE_URL": f"{sandbox_url}/brevo/v3",
        "BREVO_API_KEY": "xkeysib-sandbox",
        "BREVO_WEBHOOK_TOKEN": "brevo-webhook-sandbox",
        "CALENDLY_BASE_URL": f"{sandbox_url}/calendly",
        "CALENDLY_TOKEN": "calendly-sandbox",
        "CALENDLY_WEBHOOK_SIGNING_KEY": "calendly-signing-sandbox",
        "STRIPE_BASE_URL": f"{sandbox_url}/stripe",
        "STRIPE_API_KEY": "sk_test_sandbox",
        "STRIPE_WEBHOOK_SECRET": "whsec_sandbox",
        "LIFECYCLE_BREVO_SETTLE_SECONDS": "1",
    }
