"""Root Dagster definitions: merges each domain's definitions and registers the resources once."""

from __future__ import annotations

import dagster as dg

from orchestration.defs import activate, automation, ingest, publish, transform
from orchestration.resources import RESOURCES
from settings import Settings

_settings = Settings.from_env()

lifecycle_job = dg.define_asset_job(
    "lifecycle",
    selection=dg.AssetSelection.groups(ingest.INGESTION_GROUP, transform.TRANSFORM_GROUP, activate.ACTIVATE_GROUP,
                                       publish.PUBLISH_GROUP),
    description="One pass of the whole pipeline: ingest every source, build the dbt project, sync the "
                "destinations, then publish the analysts' copy of the marts and the report.",
    executor_def=dg.in_process_executor,
)

defs = dg.Definitions.merge(
    ingest.build_definitions(_settings),
    transform.build_definitions(),
    activate.build_definitions(),
    publish.build_definitions(),
    automation.build_definitions(_settings),
    dg.Definitions(jobs=[lifecycle_job], resources=RESOURCES),
)
