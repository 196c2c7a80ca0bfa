"""Ingestion assets: one dagster-dlt multi-asset per source system, one asset per raw table.

Asset keys are ``[dataset, table]`` (e.g. ``raw_crm/contacts``), the same keys dagster-dbt gives the dbt
sources named after the dlt datasets, so dlt -> dbt -> activations form one lineage graph.

Each source first checks the settings and the credential of the system it reads (orchestration/preflight.py),
so a missing or refused token fails the step with one line. A dry run loads into its scratch copy of the
warehouse and the dlt state (orchestration/resources.py).
"""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at definition time.
from collections.abc import Iterator

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, build_dlt_asset_specs
from dagster_dlt.translator import DltResourceTranslatorData

from ingestion.pipelines import LOADER_FILE_FORMAT, SOURCE_NAMES, build_source, make_pipeline
from orchestration.preflight import SOURCE_VENDORS
from orchestration.resources import OWN_WRITES, LifecycleSettings
from settings import Settings

INGESTION_GROUP = "ingestion"
WAREHOUSE_POOL = "warehouse"
REJECTED_LINES = "rejected_lines"


SOURCE_SYSTEMS = {"forms": "the landing zone (forms)", "calendly": "Calendly", "stripe": "Stripe",
                  "crm": "HubSpot", "marketing": "Brevo"}
"""Who each source reads, for the raw tables' descriptions."""


class RawTableTranslator(DagsterDltTranslator):
    """Key each dlt resource by its dataset and table, with no upstream dependencies; its kinds (dlt and
    DuckDB, which dagster-dlt sets, and the vendor it reads) and a description say where its rows come from."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        dataset, table = data.pipeline.dataset_name, data.resource.name
        source = dataset.removeprefix("raw_")
        return spec.replace_attributes(
            key=dg.AssetKey([dataset, table]),
            deps=[],
            group_name=INGESTION_GROUP,
            kinds={*spec.kinds, *SOURCE_VENDORS[source]},
            description=(f"Landing-zone lines of {SOURCE_SYSTEMS[source]} that could not be read, kept in "
                         f"`{dataset}.{table}` and flagged in marts.dq_flagged_records." if table == REJECTED_LINES
                         else f"Raw `{table}` rows dlt loads from {SOURCE_SYSTEMS[source]} into `{dataset}.{table}`."),
        )


def _source_assets(name: str, settings: Settings) -> dg.AssetsDefinition:
    """All tables of one source as one multi-asset that always runs whole.

    Not subsettable (unlike ``@dlt_assets``): a source's tables share readers whose cursors advance together
    (the landing-zone offsets feed both ``submissions`` and ``rejected_lines``), so loading only some
    of them would skip the others' rows for good.
    """
    template = settings.without_secrets()  # definitions hold no secret: their metadata is shown in the UI

    @dg.multi_asset(
        specs=build_dlt_asset_specs(
            dlt_source=build_source(name, template),
            dlt_pipeline=make_pipeline(name, template),
            dagster_dlt_translator=RawTableTranslator(),
        ),
        name=f"ingest_{name}",
        can_subset=False,
        pool=WAREHOUSE_POOL,
    )
    def source_assets(
        context: AssetExecutionContext, dlt: DagsterDltResource, lifecycle: LifecycleSettings
    ) -> Iterator:
        settings = lifecycle.require(*SOURCE_VENDORS[name])
        yield from dlt.run(
            context=context,
            dlt_source=build_source(name, settings, OWN_WRITES),
            dlt_pipeline=make_pipeline(name, settings),
            loader_file_format=LOADER_FILE_FORMAT,
        )

    return source_assets


def build_definitions(settings: Settings) -> dg.Definitions:
    assets = [_source_assets(name, settings) for name in SOURCE_NAMES]
    ingest_job = dg.define_asset_job(
        "ingest",
        selection=dg.AssetSelection.groups(INGESTION_GROUP),
        description="Land every source (forms, Calendly, Stripe, HubSpot, Brevo) in the warehouse's raw_* schemas.",
        executor_def=dg.in_process_executor,
    )
    return dg.Definitions(assets=assets, jobs=[ingest_job])
