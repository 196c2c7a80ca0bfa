"""One dlt pipeline per source, all loading into the same DuckDB warehouse (one ``raw_<name>`` schema each).

``run_ingestion`` runs them one after the other (DuckDB allows one writer at a time) and reports the rows
each table received. Orchestration wraps the same ``build_source`` / ``make_pipeline`` in dagster-dlt
assets; building a source makes no network call, so placeholder credentials are fine there (at run time,
with ``own_writes``, building Brevo's asks once for its list of lists, to recognise our list changes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import dlt
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.extract.source import DltSource

from ingestion.echoes import EchoFilter
from ingestion.sources import brevo, hubspot
from ingestion.sources.brevo import brevo_source
from ingestion.sources.calendly import calendly_source
from ingestion.sources.forms import forms_source
from ingestion.sources.hubspot import hubspot_source
from ingestion.sources.stripe import stripe_source
from settings import Settings, secret_values

logger = logging.getLogger(__name__)

SOURCE_NAMES = ("forms", "calendly", "stripe", "crm", "marketing")
DATASETS = {name: f"raw_{name}" for name in SOURCE_NAMES}
LOADER_FILE_FORMAT = "parquet"
"""Measured about 5x faster than dlt's default insert-values format on DuckDB."""


OwnWrites = Mapping[str, str]
"""Per source (``crm``, ``marketing``): a query over the warehouse giving ``(email, payload, written_at)``,
what our syncs last wrote to each contact, so that those writes are not loaded again when they come back
(ingestion/echoes.py). The orchestration passes the activations' queries; without: every record is loaded."""


def _echoes(name: str, settings: Settings, own_writes: OwnWrites) -> EchoFilter | None:
    writes = own_writes.get(name)
    if writes is None:
        return None
    if name == "crm":
        return hubspot.contact_echoes(settings.warehouse_path, settings.duckdb_config, DATASETS[name], writes)
    return brevo.contact_echoes(settings.warehouse_path, settings.duckdb_config, DATASETS[name], writes,
                                lambda: brevo.list_ids(settings.brevo_base_url,
                                                       settings.brevo_api_key.reveal(), secret_values(settings)))


def build_source(name: str, settings: Settings, own_writes: OwnWrites | None = None) -> DltSource:
    """The configured dlt source for ``name`` (one of ``SOURCE_NAMES``). Every configured secret is masked
    out of its errors: a vendor may echo any it ever received."""
    landing = str(settings.landing_dir)
    mask = secret_values(settings)
    if name == "forms":
        return forms_source(landing_dir=landing)
    if name == "calendly":
        return calendly_source(base_url=settings.calendly_base_url, token=settings.calendly_token.reveal(),
                               landing_dir=landing, mask=mask)
    if name == "stripe":
        return stripe_source(base_url=settings.stripe_base_url, api_key=settings.stripe_api_key.reveal(),
                             landing_dir=landing, mask=mask)
    if name == "crm":
        return hubspot_source(base_url=settings.hubspot_base_url, token=settings.hubspot_token.reveal(),
                              mask=mask, echoes=_echoes(name, settings, own_writes or {}))
    if name == "marketing":
        return brevo_source(base_url=settings.brevo_base_url, api_key=settings.brevo_api_key.reveal(),
                            landing_dir=landing, mask=mask, echoes=_echoes(name, settings, own_writes or {}))
    raise ValueError(f"unknown source {name!r}; expected one of {SOURCE_NAMES}")


def make_pipeline(name: str, settings: Settings) -> dlt.Pipeline:
    """The source's pipeline into the warehouse, with the settings' DuckDB limits: a load merges whole
    tables in DuckDB, which otherwise takes up to 80 % of the machine's memory.

    Rows given as Arrow tables (Brevo's events) get dlt's ``_dlt_load_id`` and ``_dlt_id`` like every other
    raw row: analysts see when each landed, and a table that once loaded dicts, whose two columns are not
    null, takes Arrow rows too. The files dlt passes between extract, normalize and load are not compressed:
    they live for one run, and gzip took a tenth of a full load's time."""
    for column in ("add_dlt_load_id", "add_dlt_id"):
        dlt.config[f"normalize.parquet_normalizer.{column}"] = True
    dlt.config["data_writer.disable_compression"] = True
    return dlt.pipeline(
        pipeline_name=f"lifecycle_{name}",
        dataset_name=DATASETS[name],
        destination=dlt.destinations.duckdb(
            DuckDbCredentials(str(settings.warehouse_path), global_config=dict(settings.duckdb_config))),
        pipelines_dir=str(settings.dlt_pipelines_dir),
    )


def loaded_row_counts(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Rows the last run normalized per ``raw_x.table`` (child tables included, dlt's own tables not)."""
    trace = pipeline.last_trace
    info = trace.last_normalize_info if trace is not None else None
    if info is None:
        return {}
    return {
        f"{pipeline.dataset_name}.{table}": count
        for table, count in sorted(info.row_counts.items())
        if not table.startswith("_dlt")
    }


def run_ingestion(settings: Settings, only: Iterable[str] | None = None,
                  own_writes: OwnWrites | None = None) -> dict[str, dict[str, int]]:
    """Run each selected pipeline in turn; returns ``{source: {"raw_x.table": rows loaded}}``."""
    names = list(SOURCE_NAMES if only is None else only)
    unknown = sorted(set(names) - set(SOURCE_NAMES))
    if unknown:
        raise ValueError(f"unknown sources {unknown}; expected some of {SOURCE_NAMES}")
    results: dict[str, dict[str, int]] = {}
    for name in names:
        pipeline = make_pipeline(name, settings)
        counts: dict[str, int] = {}
        if pipeline.has_pending_data:
            # dlt's run() would only finish these and skip the extract: finish them first, then extract.
            logger.warning("%s: loading the packages an interrupted run left behind first", name)
            pipeline.run()
            counts = loaded_row_counts(pipeline)
        pipeline.run(build_source(name, settings, own_writes), loader_file_format=LOADER_FILE_FORMAT)
        for table, rows in loaded_row_counts(pipeline).items():
            counts[table] = counts.get(table, 0) + rows
        results[name] = counts
        logger.info("ingested %s: %s", name, results[name] or "nothing new")
    return results
