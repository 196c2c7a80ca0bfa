"""Root Dagster definitions: merges each domain's definitions and registers the resources once."""

from __future__ import annotations

import dagster as dg

from orchestration.defs import ingest
from orchestration.resources import RESOURCES
from orchestration.settings import Settings

_settings = Settings.from_env()

defs = dg.Definitions.merge(
    ingest.build_definitions(_settings),
    dg.Definitions(resources=RESOURCES),
)
