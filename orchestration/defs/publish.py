"""What analysts read, refreshed at the end of each ``lifecycle`` run: a read-only copy of the marts
(``published/analytics``, orchestration/publish.py) and the HTML report rendered from it
(``published/report``, orchestration/report.py).

The copy follows every activation, so it holds the marts as the run leaves them (the models rebuilt after the
emails included) and the run's own sync log. A dry run publishes nothing: its warehouse is a scratch copy
that is thrown away, and analysts must not see what did not happen.
"""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at definition time.
import dagster as dg
from dagster import AssetExecutionContext

from orchestration.defs.activate import ACTIVATIONS, EMAILS_KEY, is_dry_run
from orchestration.defs.ingest import WAREHOUSE_POOL
from orchestration.defs.transform import AS_OF_TAG
from orchestration.publish import publish
from orchestration.report import render_report
from orchestration.resources import LifecycleSettings

PUBLISH_GROUP = "publish"
PUBLISHED_KEY = dg.AssetKey(["published", "analytics"])
REPORT_KEY = dg.AssetKey(["published", "report"])


@dg.asset(
    key=PUBLISHED_KEY,
    deps=[*(activation.key for activation in ACTIVATIONS), EMAILS_KEY],
    group_name=PUBLISH_GROUP,
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    description="A read-only copy of the marts (and the activations' run records) that analysts open while "
                "the next run writes the warehouse; replaced atomically.",
)
def published_analytics(context: AssetExecutionContext, lifecycle: LifecycleSettings) -> dg.MaterializeResult:
    if is_dry_run(context.run.tags):
        context.log.info("dry run: the analysts' copy is left as it was")
        return dg.MaterializeResult(metadata={"published": False})
    settings = lifecycle.settings()
    publication = publish(settings.warehouse_path, settings.published_path, settings.duckdb_config,
                          run_id=context.run.run_id, as_of=context.run.tags.get(AS_OF_TAG))
    context.log.info(f"published {len(publication.rows)} tables to {settings.published_path}, "
                     f"{len(publication.copied)} of them changed and copied")
    return dg.MaterializeResult(metadata={"published": True, "path": dg.MetadataValue.path(str(settings.published_path)),
                                          "rows": dg.MetadataValue.json(publication.rows),
                                          "copied": dg.MetadataValue.json(publication.copied)})


@dg.asset(
    key=REPORT_KEY,
    deps=[PUBLISHED_KEY],
    group_name=PUBLISH_GROUP,
    kinds={"html"},
    description="The lifecycle report: one self-contained HTML file rendered from the analysts' copy.",
)
def published_report(context: AssetExecutionContext, lifecycle: LifecycleSettings) -> dg.MaterializeResult:
    if is_dry_run(context.run.tags):
        context.log.info("dry run: the report is left as it was")
        return dg.MaterializeResult(metadata={"rendered": False})
    settings = lifecycle.settings()
    path = render_report(settings.published_path, settings.report_path)
    context.log.info(f"report: {path}")
    return dg.MaterializeResult(metadata={"rendered": True, "path": dg.MetadataValue.path(str(path))})


def build_definitions() -> dg.Definitions:
    return dg.Definitions(assets=[published_analytics, published_report])
