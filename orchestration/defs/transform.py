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
"""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at definition time.
import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster import AssetExecutionContext
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from dagster_dbt.asset_utils import default_description_fn
from filelock import FileLock

from activations.state import migrate
from orchestration import builds
from orchestration.defs.ingest import WAREHOUSE_POOL
from orchestration.resources import DBT_EXECUTABLE, DBT_PROJECT_DIR, LifecycleSettings
from settings import Settings

TRANSFORM_GROUP = "transform"
AS_OF_TAG = "lifecycle/as_of"
DBT_STOP_GRACE_SECONDS = 30.0
MANIFEST_INPUTS = ("dbt_project.yml", "profiles.yml", "models", "macros", "seeds", "tests")
"""What a parse reads; the manifest is rebuilt when any of it is newer."""


DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def manifest_is_current(project: DbtProject) -> bool:
    if not project.manifest_path.exists():
        return False
    built = project.manifest_path.stat().st_mtime
    for name in MANIFEST_INPUTS:
        path = project.project_dir / name
        paths = path.rglob("*") if path.is_dir() else [path]
        if any(p.stat().st_mtime > built for p in paths if p.is_file()):
            return False
    return True


def prepare_manifest(project: DbtProject = DBT_PROJECT) -> Path:
    """``target/manifest.json``, parsed (``dbt parse``, ~5 s) when missing or older than the project.

    Instead of ``DbtProject.prepare_if_dev``, which only acts under ``dagster dev``: this also serves
    ``lifecycle run``, the tests and a fresh clone, and names the virtualenv's dbt (often not on PATH). The parse writes into a scratch folder and the files are
    moved into place, so another process loading the definitions never reads a half-written manifest;
    the lock keeps two processes from parsing at once.
    """
    manifest = project.manifest_path
    target = manifest.parent
    if manifest_is_current(project):
        return manifest
    target.mkdir(exist_ok=True)
    with FileLock(target / "manifest.lock"):
        if manifest_is_current(project):
            return manifest
        with tempfile.TemporaryDirectory(dir=target, prefix="parse-") as scratch:
            partial_parse = target / "partial_parse.msgpack"
            if partial_parse.exists():
                (Path(scratch) / partial_parse.name).write_bytes(partial_parse.read_bytes())
            completed = subprocess.run(
                [DBT_EXECUTABLE, "parse", "--quiet", "--project-dir", str(project.project_dir),
                 "--profiles-dir", str(project.profiles_dir), "--target-path", scratch, "--log-path", scratch],
                check=False, capture_output=True, text=True,
                env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
            )
            if completed.returncode != 0:
                raise RuntimeError(f"dbt parse failed:\n{(completed.stdout + completed.stderr)[-4000:]}")
            os.replace(Path(scratch) / partial_parse.name, partial_parse)
            os.replace(Path(scratch) / manifest.name, manifest)
    return manifest


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


def stop_dbt(process: subprocess.Popen, grace_seconds: float = DBT_STOP_GRACE_SECONDS) -> None:
    """dbt must not outlive its step: it holds the warehouse's write lock, and the next run would fail on it.
    dagster-dbt forwards Dagster's own interrupts; anything else that ends the step early (an exception, a
    harness's timeout) lands here. dbt gets SIGINT (it rolls back and exits), then SIGKILL after the grace."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def environment(**variables: str) -> Iterator[None]:
    """Set these environment variables for the block (the dbt process started in it inherits them)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


DBT_BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test"]
"""Models, seeds and data tests. Unit tests check the SQL, not the data: they run in the test suite
(``dbt test --select test_type:unit``), and they need the raw tables, which a fresh warehouse lacks."""


def dbt_target_path(settings: Settings) -> Path:
    """One artifacts folder per warehouse, reused run after run (dbt's partial parse is kept there too)."""
    return settings.data_dir / "dbt" / "target"


def build_record_dir(settings: Settings) -> Path:
    return settings.data_dir / "dbt"


def dbt_environment(settings: Settings, as_of: str | None) -> contextlib.AbstractContextManager[None]:
    """profiles.yml reads LIFECYCLE_HOME (the folder of warehouse.duckdb), relative to where dbt runs
    (dbt_project/): dbt gets the resolved folder, a dry run's scratch copy included. The as-of moment goes in
    LIFECYCLE_AS_OF rather than ``--vars``, which would make dbt parse the whole project again (about 10 s).
    The memory limit goes in as validated by the settings."""
    return environment(LIFECYCLE_HOME=str(settings.data_dir), LIFECYCLE_AS_OF=as_of or "",
                       LIFECYCLE_DUCKDB_MEMORY_LIMIT=settings.duckdb_memory_limit)


def prepare_activation_tables(settings: Settings) -> None:
    """Create the tables the activations own and dbt reads, or migrate them from an older layout."""
    with duckdb.connect(str(settings.warehouse_path), config=settings.duckdb_config) as con:
        migrate(con)


def rebuild_after_sends(dbt: DbtCliResource, settings: Settings, as_of: str | None) -> None:
    """Rebuild the models that read the send ledger (``builds.SETTLE_SELECTION``), without their tests."""
    args = ["build", "--select", builds.SETTLE_SELECTION, "--exclude-resource-type", "test",
            "--exclude-resource-type", "unit_test"]
    with dbt_environment(settings, as_of):
        invocation = dbt.cli(args, manifest=prepare_manifest(DBT_PROJECT), target_path=dbt_target_path(settings))
    try:
        invocation.wait()
    finally:
        stop_dbt(invocation.process)


def checks_to_run(graph: Any, keys: set[dg.AssetKey], *, dbt_tests: bool) -> set[dg.AssetCheckKey]:
    """The asset checks of ``keys`` that a run executes: all of them, or all but the dbt data tests.

    The hourly path leaves the data tests out: they re-read every model (about 60 % of a build's time at
    100,000 contacts) and check the data, not what a run sends. They run with the ``transform`` job, which
    the ``dbt_tests_daily`` schedule launches every day, and in the test suite.
    """
    dbt_models = dg.AssetSelection.groups(TRANSFORM_GROUP).resolve(graph)
    return {check for check in graph.asset_check_keys
            if check.asset_key in keys and (dbt_tests or check.asset_key not in dbt_models)}


def build_definitions() -> dg.Definitions:
    @dbt_assets(
        manifest=prepare_manifest(DBT_PROJECT),
        project=DBT_PROJECT,
        dagster_dbt_translator=LifecycleDbtTranslator(),
        name="transform_dbt",
        pool=WAREHOUSE_POOL,
    )
    def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, lifecycle: LifecycleSettings) -> Iterator:
        settings = lifecycle.settings()
        as_of = context.run.tags.get(AS_OF_TAG)
        # A whole-project build without tests may be skipped when nothing it reads changed (builds.py).
        whole = set(context.selected_asset_keys) == set(context.assets_def.keys) and not context.selected_asset_check_keys
        current = builds.fingerprint(settings.warehouse_path, DBT_PROJECT.manifest_path, as_of) if whole else None
        if current is not None and current == builds.recorded(build_record_dir(settings)).get("fingerprint"):
            context.log.info("dbt build skipped: nothing landed or was sent since the last build at this as-of")
            return
        builds.forget(build_record_dir(settings))
        prepare_activation_tables(settings)
        with dbt_environment(settings, as_of):
            invocation = dbt.cli(DBT_BUILD_ARGS, context=context, target_path=dbt_target_path(settings))
        try:
            yield from invocation.stream()
        finally:
            stop_dbt(invocation.process)
        if whole:
            builds.remember(build_record_dir(settings),
                            builds.fingerprint(settings.warehouse_path, DBT_PROJECT.manifest_path, as_of),
                            builds.current_ledger(settings.warehouse_path))

    transform_job = dg.define_asset_job(
        "transform",
        selection=dg.AssetSelection.groups(TRANSFORM_GROUP),
        description="Build the dbt project (staging -> intermediate -> marts) and run its tests. "
                    f"Tag a run `{AS_OF_TAG}=<ISO 8601>` to compute it as of that moment.",
        executor_def=dg.in_process_executor,
    )
    return dg.Definitions(assets=[dbt_models], jobs=[transform_job])
