"""One dlt pipeline per source, all loading into the same DuckDB warehouse (one ``raw_<name>`` schema each).

``run_ingestion`` runs them one after the other (DuckDB allows one writer at a time) and reports the rows
each table received. Orchestration wraps the same ``build_source`` / ``make_pipeline`` in dagster-dlt
assets; building a source makes no network call, so placeholder credentials are fine there (at run time,
with ``own_writes``, building Brevo's asks once for its list of lists, to recognise our list changes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

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

logger = logging.getLogger(__name__)

SOURCE_NAMES = ("forms", "calendly", "stripe", "crm", "marketing")
DATASETS = {name: f"raw_{name}" for name in SOURCE_NAMES}
LOADER_FILE_FORMAT = "parquet"
"""Measured about 5x faster than dlt's default insert-values format on DuckDB."""


@dataclass(frozen=True)
class IngestionConfig:
    """Where to load and how to reach each system; orchestration builds it from its settings."""

    warehouse_path: Path
    pipelines_dir: Path
    landing_dir: Path
    hubspot_base_url: str
    hubspot_token: str = field(repr=False)
    brevo_base_url: str
    brevo_api_key: str = field(repr=False)
    calendly_base_url: str
    calendly_token: str = field(repr=False)
    stripe_base_url: str
    stripe_api_key: str = field(repr=False)
    mask: tuple[str, ...] = field(default=(), repr=False)
    """Every secret to keep out of errors (all configured ones): a vendor may echo any it ever received."""
    duckdb_config: dict[str, str] = field(default_factory=dict)
    """DuckDB settings for the loads, e.g. ``memory_limit``: a load merges whole tables in DuckDB, which
    otherwise takes up to 80 % of the machine's memory (measured: 5.6 GB for Brevo's events at 1M contacts)."""
    own_writes: Mapping[str, str] = field(default_factory=dict)
    """Per source (``crm``, ``marketing``): a query over the warehouse giving ``(email, payload, written_at)``,
    what our syncs last wrote to each contact, so that those writes are not loaded again when they come back
    (ingestion/echoes.py). Empty: every record read is loaded."""


def _echoes(name: str, config: IngestionConfig) -> EchoFilter | None:
    writes = config.own_writes.get(name)
    if writes is None:
        return None
    if name == "crm":
        return hubspot.contact_echoes(config.warehouse_path, config.duckdb_config, DATASETS[name], writes)
    return brevo.contact_echoes(config.warehouse_path, config.duckdb_config, DATASETS[name], writes,
                                lambda: brevo.list_ids(config.brevo_base_url, config.brevo_api_key, config.mask))


def build_source(name: str, config: IngestionConfig) -> DltSource:
    """The configured dlt source for ``name`` (one of ``SOURCE_NAMES``)."""
    landing = str(config.landing_dir)
    if name == "forms":
        return forms_source(landing_dir=landing)
    if name == "calendly":
        return calendly_source(base_url=config.calendly_base_url, token=config.calendly_token,
                               landing_dir=landing, mask=config.mask)
    if name == "stripe":
        return stripe_source(base_url=config.stripe_base_url, api_key=config.stripe_api_key,
                             landing_dir=landing, mask=config.mask)
    if name == "crm":
        return hubspot_source(base_url=config.hubspot_base_url, token=config.hubspot_token, mask=config.mask,
                              echoes=_echoes(name, config))
    if name == "marketing":
        return brevo_source(base_url=config.brevo_base_url, api_key=config.brevo_api_key, landing_dir=landing,
                            mask=config.mask, echoes=_echoes(name, config))
    raise ValueError(f"unknown source {name!r}; expected one of {SOURCE_NAMES}")


def make_pipeline(name: str, config: IngestionConfig) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name=f"lifecycle_{name}",
        dataset_name=DATASETS[name],
        destination=dlt.destinations.duckdb(
            DuckDbCredentials(str(config.warehouse_path), global_config=dict(config.duckdb_config))),
        pipelines_dir=str(config.pipelines_dir),
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


def run_ingestion(config: IngestionConfig, only: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """Run each selected pipeline in turn; returns ``{source: {"raw_x.table": rows loaded}}``."""
    names = list(SOURCE_NAMES if only is None else only)
    unknown = sorted(set(names) - set(SOURCE_NAMES))
    if unknown:
        raise ValueError(f"unknown sources {unknown}; expected some of {SOURCE_NAMES}")
    results: dict[str, dict[str, int]] = {}
    for name in names:
        pipeline = make_pipeline(name, config)
        counts: dict[str, int] = {}
        if pipeline.has_pending_data:
            # dlt's run() would only finish these and skip the extract: finish them first, then extract.
            logger.warning("%s: loading the packages an interrupted run left behind first", name)
            pipeline.run()
            counts = loaded_row_counts(pipeline)
        pipeline.run(build_source(name, config), loader_file_format=LOADER_FILE_FORMAT)
        for table, rows in loaded_row_counts(pipeline).items():
            counts[table] = counts.get(table, 0) + rows
        results[name] = counts
        logger.info("ingested %s: %s", name, results[name] or "nothing new")
    return results
