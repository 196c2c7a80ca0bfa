"""Transformation assets: the dbt project (``dbt_project/``) as Dagster assets through dagster-dbt.

Keys: models and seeds are ``[schema, name]`` (``staging/stg_forms__submissions``, ``marts/dq_flagged_records``),
the same shape as the raw tables' ``[dataset, table]``. dbt sources keep dagster-dbt's ``[source, table]``,
which are exactly the dlt asset keys (``raw_forms/submissions``), so dlt -> dbt is one lineage graph. The
activation-owned sources (schema ``activations``, flagged ``asset_dependency: false`` in their yml) are
read by dbt but left out of the graph: the activations write them after dbt, so a dependency would be a
cycle. They are created, or migrated from an older layout, before each build (activations/state.py), so
that the views on them read the real tables from the first build on. dbt tests become asset checks
(dagster-dbt's default).

Time travel: a run tagged ``lifecycle/as_of`` (``lifecycle run --as-of``, or a tag set in the UI's
launchpad) passes it to dbt (``LIFECYCLE_AS_OF``, which the ``as_of`` macro reads like its var); without the
tag, dbt uses the run's start time. A dry run
builds its scratch copy of the warehouse (orchestration/resources.py).

At the as-of of the last whole build, a build leaves standing the models that read nothing changed since then
(orchestration/builds.py) and reports them current (metadata ``standing``), so the activations still run.
"""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at definition time.
import json
from collections.abc import Iterator, Mapping
from graphlib import TopologicalSorter
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)
from dagster_dbt.asset_utils import default_description_fn

from orchestration import builds
from orchestration.dbt_process import (
    BUILD_DEFINITION,
    DBT_BUILD_ARGS,
    DBT_PROJECT,
    build_record_dir,
    dbt_environment,
    dbt_target_path,
    prepare_activation_tables,
    prepare_manifest,
    stop_dbt,
)
from orchestration.defs.ingest import WAREHOUSE_POOL
from orchestration.resources import LifecycleSettings

TRANSFORM_GROUP = "transform"
AS_OF_TAG = "lifecycle/as_of"


def activation_owned_sources(manifest: Mapping[str, Any]) -> set[str]:
    """Unique ids of the sources flagged ``meta: {lifecycle: {asset_dependency: false}}``."""
    return {
        unique_id
        for unique_id, source in manifest.get("sources", {}).items()
        if (source.get("meta") or {}).get("lifecycle", {}).get("asset_dependency") is False
    }


class LifecycleDbtTranslator(DagsterDbtTranslator):
    """Models and seeds keyed ``[schema, name]`` in group ``transform``; sources keyed as dagster-dbt does
    (``[source, table]``, or their ``meta.dagster.asset_key``); activation-owned sources dropped from deps."""

    def __init__(self) -> None:
        # raw_marketing.contacts__list_ids is loaded with raw_marketing.contacts: both map to that asset
        super().__init__(DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return TRANSFORM_GROUP

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        """The yml description alone: dagster-dbt appends the model's raw SQL, which buries it in the UI (the
        SQL is in the code and in dbt's docs)."""
        return default_description_fn(dbt_resource_props, display_raw_sql=False)

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: Any) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        excluded = {self.get_asset_key(manifest["sources"][source_id])
                    for source_id in activation_owned_sources(manifest)}
        if not any(dep.asset_key in excluded for dep in spec.deps):
            return spec
        return spec.replace_attributes(deps=[dep for dep in spec.deps if dep.asset_key not in excluded])


TRANSLATOR = LifecycleDbtTranslator()


def checks_to_run(graph: Any, keys: set[dg.AssetKey], *, dbt_tests: bool) -> set[dg.AssetCheckKey]:
    """The asset checks of ``keys`` that a run executes: all of them, or all but the dbt data tests.

    The hourly path leaves the data tests out: they re-read every model (about 60 % of a build's time at
    100,000 contacts) and check the data, not what a run sends. They run with the ``transform`` job, which
    the ``dbt_tests_daily`` schedule launches every day, and in the test suite.
    """
    dbt_models = dg.AssetSelection.groups(TRANSFORM_GROUP).resolve(graph)
    return {check for check in graph.asset_check_keys
            if check.asset_key in keys and (dbt_tests or check.asset_key not in dbt_models)}


def standing(context: AssetExecutionContext, keys: set[dg.AssetKey]) -> Iterator[dg.MaterializeResult]:
    """Models and seeds a build leaves as they are, reported current (``builds.STANDING``), upstream first as
    Dagster takes a multi-asset's outputs. What they read stands too, so they come before anything built."""
    upstream = context.assets_def.asset_deps
    for key in TopologicalSorter({key: upstream[key] & keys for key in keys}).static_order():
        yield dg.MaterializeResult(asset_key=key, metadata={builds.STANDING: True})


def build_definitions() -> dg.Definitions:
    @dbt_assets(
        manifest=prepare_manifest(DBT_PROJECT),
        project=DBT_PROJECT,
        dagster_dbt_translator=TRANSLATOR,
        name="transform_dbt",
        pool=WAREHOUSE_POOL,
    )
    def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, lifecycle: LifecycleSettings) -> Iterator:
        settings = lifecycle.settings()
        as_of = context.run.tags.get(AS_OF_TAG)
        # A whole-project build without tests skips what nothing it reads changed for (builds.py).
        whole = set(context.selected_asset_keys) == set(context.assets_def.keys) and not context.selected_asset_check_keys
        current = builds.inputs(settings.warehouse_path, BUILD_DEFINITION, as_of) if whole else None
        changed = builds.changed_tables(builds.recorded(build_record_dir(settings)).get("inputs"), current)
        if changed is not None and not changed:
            context.log.info("dbt build skipped: nothing landed or was sent since the last build at this as-of")
            yield from standing(context, set(context.selected_asset_keys))
            return
        manifest = json.loads(DBT_PROJECT.manifest_path.read_text())
        unaffected = [manifest["nodes"][unique_id]
                      for unique_id in (builds.unaffected(manifest, changed) if changed else None) or ()]
        if unaffected:
            context.log.info(f"dbt builds only what reads {', '.join(sorted(changed))}, which changed since the "
                             f"last build at this as-of; {len(unaffected)} models and seeds stand as built")
            yield from standing(context, {TRANSLATOR.get_asset_key(node) for node in unaffected})
        builds.forget(build_record_dir(settings))
        prepare_activation_tables(settings)
        exclude = ["--exclude", " ".join("fqn:" + ".".join(node["fqn"]) for node in unaffected)] if unaffected else []
        with dbt_environment(settings, as_of):
            invocation = dbt.cli([*DBT_BUILD_ARGS, *exclude], context=context, target_path=dbt_target_path(settings))
        try:
            yield from invocation.stream()
        finally:
            stop_dbt(invocation.process)
        if whole:
            builds.remember(build_record_dir(settings),
                            builds.inputs(settings.warehouse_path, BUILD_DEFINITION, as_of),
                            builds.current_ledger(settings.warehouse_path))

    transform_job = dg.define_asset_job(
        "transform",
        selection=dg.AssetSelection.groups(TRANSFORM_GROUP),
        description="Build the dbt project (staging -> intermediate -> marts) and run its tests. "
                    f"Tag a run `{AS_OF_TAG}=<ISO 8601>` to compute it as of that moment.",
        executor_def=dg.in_process_executor,
    )
    return dg.Definitions(assets=[dbt_models], jobs=[transform_job])
